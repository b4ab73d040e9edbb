"""What adding an isosurface costs napari in the GUI thread (the Inspect step's remaining freeze).

A labels volume is shown in 3D first, as in the app; then a marching-cubes surface of an 80³
blob volume (about 250k faces, what Inspect draws at 128³) is added and removed ``--repeat``
times. Prints the time ``add_surface`` takes and the time of the first draw after it.

    xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX" python bench/napari_surface_add.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    import napari
    from qtpy.QtWidgets import QApplication
    from scipy import ndimage
    from skimage import measure

    v = ndimage.gaussian_filter(np.random.default_rng(0).random((80, 80, 80)), 3) > 0.5
    verts, faces, _, _ = measure.marching_cubes(np.pad(v, 1).astype(np.float32), 0.5)
    verts, faces = verts.astype(np.float32), faces.astype(np.int32)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_labels(v.astype(np.uint8))
    viewer.dims.ndisplay = 3
    for _ in range(5):
        app.processEvents()
    print(f"{len(faces):,} faces")
    for k in range(a.repeat):
        t0 = time.perf_counter()
        layer = viewer.add_surface((verts, faces, np.ones(len(verts), np.float32)), shading="smooth")
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        print(f"surface {k + 1}: add_surface {t1 - t0:.3f} s, first draw {t2 - t1:.3f} s")
        viewer.layers.remove(layer)
        app.processEvents()
    viewer.close()


if __name__ == "__main__":
    main()

"""The Inspect step's long work at 128³: statistics stage by stage, and the isosurface off the GUI thread.

1. Statistics: :func:`microlib_gui.core.stats.compare` of a 256² image and a 128³ volume (two-phase
   blobs), tortuosity on the CPU's default central 64³ cube; the seconds of each stage from the
   stage reports (``progress``), then the figure (:func:`microlib_gui.core.report.entry_figure`).
2. Isosurface: the Inspect view (:class:`~microlib_gui.gui.widgets.napari_view.NapariView`) in
   3D, phase 1 of the same volume, computed through a JobRunner in a worker process: seconds from
   the request to the layer, the longest the event loop stood still meanwhile (a 10 ms QTimer), and
   the mesh's faces; beside it the same surface computed in the GUI thread (no runner), where the
   whole time is a freeze, and so without the block means (the mesh of every voxel, as before).
   Run under Xvfb (software OpenGL draws the layer).

    xvfb-run -a python bench/inspect_responsive.py [--side 128] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def blobs(shape, seed: int, sigma: float = 3.0) -> np.ndarray:
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return (f > np.median(f)).astype(np.uint8)


def stats_stages(img, vol) -> list[tuple[str, float]]:
    from microlib_gui.core.report import entry_figure
    from microlib_gui.core.stats import compare

    marks: list[tuple[str, float]] = []

    def progress(step, total, message):
        name = "tortuosity" if message.startswith("tortuosity") else message  # "(N solver iterations)"
        if not marks or marks[-1][0] != name:
            marks.append((name, time.perf_counter()))

    res = compare(img, vol, device="cpu", progress=progress)
    t = time.perf_counter()
    entry_figure(res, None, title="bench")
    marks.append(("figure", t))
    marks.append(("end", time.perf_counter()))
    return [(a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:]) if a[0] != "statistics done"]


def isosurface(vol, with_runner: bool) -> dict:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from microlib_gui.gui.jobrunner import JobRunner
    from microlib_gui.gui.widgets.napari_view import NapariView

    app = QApplication.instance() or QApplication([])
    runner = JobRunner() if with_runner else None
    view = NapariView(jobs=runner)
    view.resize(900, 650)
    view.show()
    view.set_volume(vol)
    view.set_ndisplay(3)
    for _ in range(5):
        app.processEvents()
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    done = []
    view.surface_changed.connect(lambda p: done.append(time.perf_counter()))
    t0 = time.perf_counter()
    last[0] = t0
    view.show_isosurface(1)
    while not done:
        app.processEvents()
        time.sleep(0.002)
    for _ in range(3):  # the first draw of the new layer
        app.processEvents()
    t_end = time.perf_counter()
    timer.stop()
    faces = len(view.surface_layer.faces)
    view.close_viewer()
    view.deleteLater()
    return {"seconds": t_end - t0, "longest_freeze": max(gaps + [t_end - last[0]]), "faces": faces}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    img, vol = blobs((2 * args.side, 2 * args.side), 1), blobs((args.side,) * 3, 2)

    print(f"## statistics, {args.side}³ volume, {2 * args.side}² image (seconds per stage)")
    runs = [stats_stages(img, vol) for _ in range(args.repeat)]
    for i, (name, _s) in enumerate(runs[0]):
        print(f"| {name} | " + " | ".join(f"{r[i][1]:.2f}" for r in runs) + " |")
    print("| total | " + " | ".join(f"{sum(s for _n, s in r):.2f}" for r in runs) + " |")

    print(f"\n## isosurface of phase 1, {args.side}³")
    from microlib_gui.gui.widgets import napari_view

    budget = napari_view.MAX_ISO_VOXELS
    for label, runner, voxels in (("worker process (JobRunner)", True, budget),
                                  ("GUI thread (no runner)", False, budget),
                                  ("GUI thread, full-resolution mesh (as before)", False, vol.size)):
        napari_view.MAX_ISO_VOXELS = voxels
        for _ in range(args.repeat):
            r = isosurface(vol, runner)
            print(f"| {label} | {r['seconds']:.2f} s to the layer | longest freeze {r['longest_freeze']:.2f} s "
                  f"| {r['faces']:,} faces |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Media rendering speed: one view, a cut-away view, `_long.png` and the 72-frame `.mp4`.

    python bench/bench_media.py [--sides 64 128 256]

The volume is three-phase (thresholded smoothed noise). Prints one line per size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from microlib_gui.core import media


def timed(fn, n: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        print("| volume | one view (320 px) | cut-away view (256 px) | `_long.png` | `.mp4`, 72 frames |")
        print("| --- | --- | --- | --- | --- |")
        for side in args.sides:
            f = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((side,) * 3), 3)
            vol = np.digitize(f, [-0.05, 0.05]).astype(np.uint8)
            a = timed(lambda: media.render_view(vol, size=320), 5)
            b = timed(lambda: media.render_view(vol, size=256, cut=0.5))
            c = timed(lambda: media.write_long_png(vol, out / "b.png"))
            e = timed(lambda: media.write_rotation_movie(vol, out / "b.mp4", n_frames=72))
            print(f"| {side}³ | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {c:.1f} s | {e:.1f} s |", flush=True)


if __name__ == "__main__":
    main()

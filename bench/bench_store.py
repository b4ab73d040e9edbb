"""Library store and image loading: how long the everyday operations take.

    .venv/bin/python bench/bench_store.py [--entries 500]

Prints a markdown table (median of repeats) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from microlib_gui.core.images import load_image
from microlib_gui.core.library import Library


def timed(fn, repeat=5):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for side in (512, 2048):
            a = rng.integers(0, 255, (side, side), dtype=np.uint8)
            p = d / f"img{side}.png"
            Image.fromarray(a).save(p)
            rows.append((f"load_image, {side}² 8-bit PNG", timed(lambda: load_image(p))))
            t = d / f"img{side}.tif"
            Image.fromarray((a.astype(np.uint16) * 257)).save(t)
            rows.append((f"load_image, {side}² 16-bit TIFF", timed(lambda: load_image(t))))
        small = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (128, 128), dtype=np.uint8)).save(small, format="PNG")
        raw = small.getvalue()
        lib = Library(d / "lib")
        t0 = time.perf_counter()
        for _ in range(args.entries):
            lib.add_entry(raw)
        rows.append((f"add_entry (128² PNG), mean of {args.entries}", (time.perf_counter() - t0) / args.entries))
        eid = lib.list_entries()[0].id
        rows.append(("set_annotations (one edit)", timed(lambda: lib.set_annotations(eid, {"phases": [50, 200]}), 20)))
        rows.append(("undo_annotations", timed(lambda: lib.undo_annotations(eid), 20)))
        rows.append((f"list_entries ({args.entries} entries)", timed(lambda: lib.list_entries())))
        rows.append(("write_file 4 MB + provenance",
                     timed(lambda: lib.write_file(eid, "_blob.bin", rng.bytes(4 << 20), produced_by="bench"))))
        rows.append(("integrity_check", timed(lib.integrity_check)))
    print("| operation | time |\n|---|---|")
    for name, s in rows:
        print(f"| {name} | {s * 1000:.1f} ms |")


if __name__ == "__main__":
    main()

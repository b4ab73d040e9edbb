"""Overhead and throughput of ``microlib build`` with the local executor.

Usage: python bench/bench_build.py [--shared ../shared/data] [--entries 4]

Builds N rawlike entries (1) with the ``selftest`` step only — the cost of a job
itself: a subprocess, imports, library access, result files — at 1 and 2 jobs at
once, and (2) the whole pipeline with tiny settings for one entry.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from microlib_gui.core.build import BuildOptions, plan_build, start_build
from microlib_gui.core.library import Library

IDS = ("001", "006", "016", "039", "054", "070", "612", "721")
TINY = {"train": {"preset": "tiny", "iters": 2, "device": "cpu"}, "generate": {"size": 32, "device": "cpu"},
        "media": {"n_frames": 8, "size": 96}}


def make(root: Path, shared: Path, n: int) -> Library:
    raw = shared / "rawlike"
    lib = Library(root)
    for did in IDS[:n]:
        e = lib.add_entry(raw / f"raw{did}.png", source="doitpoms", doitpoms_id=int(did))
        if (raw / f"seg{did}.png").exists():
            lib.write_file(e.id, "_segmented.png", (raw / f"seg{did}.png").read_bytes(), produced_by="segment")
        lib.write_file(e.id, "_mask.png", (raw / f"bar{did}.png").read_bytes(), produced_by="scalebar")
        lib.set_annotations(e.id, {"data_type": "twophase"})
    return lib


def timed(lib: Library, ids, opts: BuildOptions) -> float:
    t0 = time.perf_counter()
    start_build(lib, plan_build(lib, ids, opts), opts)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--entries", type=int, default=4)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        for par in (1, 2):
            lib = make(tmp / f"lib{par}", Path(a.shared), a.entries)
            ids = [e.id for e in lib.list_entries()]
            dt = timed(lib, ids, BuildOptions(steps=["selftest"], max_parallel=par))
            print(f"selftest, {len(ids)} entries, {par} at once: {dt:.1f} s ({dt / len(ids):.2f} s per entry)")
            dt2 = timed(lib, ids, BuildOptions(steps=["selftest"], max_parallel=par))
            print(f"  again (all skipped, planning only): {dt2:.2f} s")
        lib = make(tmp / "full", Path(a.shared), 1)
        opts = BuildOptions(steps=["inpaint", "train", "generate", "stats", "media", "export"], params=TINY)
        dt = timed(lib, [lib.list_entries()[0].id], opts)
        runs = {r["kind"]: r["timings"].get("total_s", 0.0) for r in lib.runs()}
        print(f"whole pipeline, tiny settings, 1 entry: {dt:.1f} s; per step: "
              + ", ".join(f"{k[6:]} {v:.1f} s" for k, v in runs.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

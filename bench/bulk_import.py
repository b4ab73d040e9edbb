"""Bulk import: records per second of ``import-anns`` (MicroLib annotation files, data_anns.json).

    .venv/bin/python bench/bulk_import.py [--records 20000] [--entries 2000] [--repeat 3]

Three cases, each one whole file imported (validated first, then one transaction):

- a MicroLib annotation file of ``--records`` records naming micrographs not in the
  library (kept pending);
- one of ``--entries`` records applied to entries already in the library (each one an
  annotation version with Undo, stale marks);
- a ``data_anns.json`` of ``--entries`` records updating those entries' metadata.

Prints a markdown table (median of ``--repeat`` runs, each on a fresh copy) for
docs/benchmarks.md: wall-clock time and this process's CPU time (on a machine busy
with other work the wall clock mostly measures the others). Adding the entries
(the set-up) is not timed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from microlib_gui.core.library import Library


def microlib_file(path: Path, ids: list[int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    doc = {}
    for i, did in enumerate(ids):
        x0, y0 = (int(v) for v in rng.integers(0, 60, 2))
        doc[str(i)] = {
            "data_path": f"microlib/raw/{did:06d}.png",
            "barbox": [[x0, y0], [x0 + 30, y0 + 10]],
            "barcol": [255, 10],
            "phases": [int(rng.integers(0, 100)), int(rng.integers(150, 255))],
            "vox_size": float(rng.uniform(0.01, 2.0)),
            "data_type": "twophase",
            "crop": [0, 0, 90, 90],
        }
    path.write_text(json.dumps(doc))
    return path


def data_anns_file(path: Path, names: list[str]) -> Path:
    doc = {str(i + 1): {"name": n, "data_type": "two-phase", "brief_descr": f"record {i}", "keywords": "a, b",
                        "category": "metal", "element": "Fe", "technique": "SEM", "long desc": "text " * 20,
                        "contributor": "bench", "organisation": "bench"} for i, n in enumerate(names)}
    path.write_text(json.dumps(doc))
    return path


def timed_import(template: Path, work: Path, fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (this process) of ``fn(library)`` on fresh copies."""
    wall, cpu = [], []
    for _ in range(repeat):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(template, work)
        lib = Library(work)
        t, c = time.perf_counter(), time.process_time()
        fn(lib)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)).save(buf, "PNG")
        raw = buf.getvalue()

        empty = d / "empty"
        Library(empty)
        # DoITPoMS ids are 1..10000: more records than that name ids twice, so spread them
        # over files of at most 9,999 records each, imported one after another.
        n, chunks = args.records, []
        for k in range(0, n, 9999):
            ids = list(range(1, min(9999, n - k) + 1))
            chunks.append(microlib_file(d / f"pending{k}.json", ids, seed=k))

        def pending(lib):
            for c in chunks:
                lib.import_microlib_anns(c)
        t = timed_import(empty, d / "w", pending, args.repeat)
        rows.append((f"MicroLib annotation file, {n:,} records, all pending", t, n))

        with_entries = d / "entries"
        lib = Library(with_entries)
        ids = list(range(1, args.entries + 1))
        with lib._db() as con:  # set-up only: many entries in one transaction
            for did in ids:
                lib._insert_entry(con, lib._prepare_entry(raw, source="doitpoms", doitpoms_id=did))
        applied = microlib_file(d / "applied.json", ids, seed=99)
        t = timed_import(with_entries, d / "w", lambda lib: lib.import_microlib_anns(applied), args.repeat)
        rows.append((f"MicroLib annotation file, {len(ids):,} records applied to entries", t, len(ids)))

        names = [f"microstructure{did:03d}" for did in ids]
        da = data_anns_file(d / "data_anns.json", names)
        t = timed_import(with_entries, d / "w", lambda lib: lib.import_data_anns(da), args.repeat)
        rows.append((f"data_anns.json, {len(ids):,} records updating entries", t, len(ids)))

    print(f"load average at the start: {load:.1f} (on {os.cpu_count()} cores)")
    print("| import | wall | records/s (wall) | CPU | records/s (CPU) |")
    print("|---|---|---|---|---|")
    for what, (wall, cpu), count in rows:
        print(f"| {what} | {wall:.2f} s | {count / wall:,.0f} | {cpu:.2f} s | {count / cpu:,.0f} |")


if __name__ == "__main__":
    main()

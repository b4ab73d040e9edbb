"""The wizard's saves and the live entry model: what one edit and one event cost.

    .venv/bin/python bench/bench_workflow.py [--size 1024] [--entries 200]

Each wizard edit is one ``workflow.<step>.save`` (one transaction, files staged
first); every panel then re-reads on the model's event. Prints a markdown table
(median of repeats) for docs/benchmarks.md. The GUI part runs the real window
on Qt's offscreen platform: from a commit made by another process to the
window's event, and one visible panel's re-read.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from microlib_gui.core.library import Library
from microlib_gui.core.workflow import crop, history, scalebar, segment

from bench_store import timed  # noqa: E402 - bench/ is the script's folder


def micrograph(size: int) -> bytes:
    rng = np.random.default_rng(0)
    f = ndi.gaussian_filter(rng.standard_normal((size, size)), size / 60)
    img = np.where(f > 0, 200, 70).astype(np.uint8)
    img[-size // 12:-size // 24, -size // 3:-size // 24] = 255  # a white bar
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def gui_rows(root: Path, eid: int) -> list[tuple[str, str]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from microlib_gui.gui.session import create_window
    from microlib_gui.gui.settings import make_settings

    app = QApplication.instance() or QApplication([])
    win = create_window(root, make_settings(), add_demo_if_empty=False)
    win.show()
    win.go_to_step("segment")
    app.processEvents()
    panel = win.panels["segment"]
    lat, reread = [], []
    for k in range(5):
        seen = []
        win.ctx.entry_changed.connect(lambda _i: seen.append(time.perf_counter()))
        code = ("import sys; from microlib_gui.core.library import Library; from microlib_gui.core.workflow import crop;"
                f"crop.save(Library(sys.argv[1]), {eid}, (0, 0, {400 + k}, 400), 0)")
        subprocess.run([sys.executable, "-c", code, str(root)], check=True)
        done = time.perf_counter()
        while not seen:
            app.processEvents()
        lat.append(seen[0] - done)
        win.ctx.entry_changed.disconnect()
        win.ctx.entry_changed.connect(lambda _id: win.refresh_steps())
        reread.append(timed(panel.reload, repeat=3))
    win.close()
    return [("commit by another process → window's event (poll every 500 ms)", f"{1000 * statistics.median(lat):.0f} ms"),
            ("Segment panel re-read (400² crop: gray, sharpen cache hit, histogram, overlay)",
             f"{1000 * statistics.median(reread):.1f} ms")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--entries", type=int, default=200)
    ap.add_argument("--no-gui", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        lib = Library(Path(d) / "lib")
        png = micrograph(args.size)
        eid = lib.add_entry(png, source="local").id
        for _ in range(args.entries - 1):
            lib.add_entry(micrograph(64), source="local")
        s = args.size
        boxes = iter([(0, 0, s - 2 - k, s) for k in range(100)])
        rows.append((f"crop.save (a new box; {s}² original)", timed(lambda: crop.save(lib, eid, next(boxes), 0))))
        rows.append(("crop.save, the same box again (nothing written)",
                     timed(lambda: crop.save(lib, eid, (0, 0, s - 2, s), 0))))
        ts = iter(np.linspace(100, 160, 100))
        rows.append((f"segment.save (thresholds → _segmented.png, {s}² crop, sharpened)",
                     timed(lambda: segment.save(lib, eid, thresholds=[float(next(ts))], deblur_sigma=1.0))))
        tols = iter(range(5, 60))
        rows.append(("scalebar.save (tolerance → _mask.png in the cropped frame)",
                     timed(lambda: scalebar.save(lib, eid, scalebar.changes_for(colour=[255.0], tol=next(tols),
                                                                                bar_box=(s // 2, s - s // 8, s, s))))))
        rows.append(("history.undo + redo (labels or mask re-derived)",
                     timed(lambda: (history.undo(lib, eid), history.redo(lib, eid)))))
        rows.append((f"entry_signature ({args.entries} entries)", timed(lambda: lib.entry_signature(eid), 50)))
        rows.append((f"entries_signature ({args.entries} entries)", timed(lambda: lib.entries_signature(), 50)))
        w = lib.watch()
        rows.append(("ChangeWatcher.changed() (PRAGMA data_version), nothing new", timed(w.changed, 200)))
        table = [(k, f"{1000 * v:.2f} ms") for k, v in rows]
        if not args.no_gui:
            table += gui_rows(lib.root, eid)
    print("| operation | time |\n|---|---|")
    for k, v in table:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()

"""DoITPoMS client speed against a local stand-in site (no network needed).

Serves 900 synthetic record pages in the site's structure plus JPEGs made from
the shared raw-like micrographs, then measures:

* a cold search: crawl the browse pages and fetch all 900 records (4 at a time);
* search latency over the 900 cached records (text, and text + filters);
* bulk import throughput (record + large image + library entry per micrograph).

Usage: python bench/bench_doitpoms.py [--records 900] [--imports 50] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_site():
    spec = importlib.util.spec_from_file_location("doitpoms_site", REPO / "tests" / "fixtures" / "doitpoms" / "site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=900)
    ap.add_argument("--imports", type=int, default=50)
    ap.add_argument("--gui", action="store_true", help="also time the Browse panel (offscreen Qt)")
    ap.add_argument("--data", default=os.environ.get("MICROLIB_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    args = ap.parse_args()

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request

    from microlib_gui.core.doitpoms import Cache, Client
    from microlib_gui.core.doitpoms.importer import import_micrographs
    from microlib_gui.core.jobs import run_inline

    site_mod = load_site()
    ids = list(range(1000, 1000 + args.records))
    site = site_mod.FakeSite(site_mod.make_jpegs(Path(args.data) / "rawlike"), synthetic_ids=ids)
    srv = make_server("127.0.0.1", 0, Request.application(site.handler), threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}/miclib/"
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        client = Client(base, cache=Cache(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        res = client.search("")
        cold = time.perf_counter() - t0
        n = len(res.records)
        print(f"cold search (crawl + fetch {n} records, 4 at a time): {cold:.2f} s = {n / cold:.0f} records/s")

        def timed(fn, reps=20):
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                out = fn()
                ts.append(time.perf_counter() - t)
            return statistics.median(ts) * 1000, out

        ms, out = timed(lambda: client.search("steel ferrite", fetch=False))
        print(f"search 'steel ferrite' over {n} cached records: median {ms:.1f} ms ({len(out.records)} hits)")
        ms, out = timed(lambda: client.search("", category="metal", technique="SEM", element="Fe", fetch=False))
        print(f"search with category+technique+element filters: median {ms:.1f} ms ({len(out.records)} hits)")
        ms, out = timed(lambda: client.search("eutectic"))
        print(f"search 'eutectic' with fetch=True, listing fresh in cache (no requests): median {ms:.1f} ms")
        offline = Client(base, cache=Cache(Path(tmp) / "cache"), offline=True)
        ms, out = timed(lambda: offline.search("alumina"))
        print(f"offline search 'alumina' (new client, same cache): median {ms:.1f} ms ({len(out.records)} hits)")

        from microlib_gui.core.library import Library

        lib = Library(Path(tmp) / "lib")
        sel = ids[: args.imports]
        t0 = time.perf_counter()
        out = run_inline(import_micrographs, {"library": str(lib.root), "ids": sel, "client": client})
        dt = time.perf_counter() - t0
        print(f"import {len(out['added'])} micrographs (record cached, image downloaded, ~320 px JPEG): "
              f"{dt:.2f} s = {len(out['added']) / dt:.1f} per s")
        lib2 = Library(Path(tmp) / "lib2")
        t0 = time.perf_counter()
        out = run_inline(import_micrographs, {"library": str(lib2.root), "ids": sel, "client": client})
        dt = time.perf_counter() - t0
        print(f"import the same {len(out['added'])} again into a new library (all cached): "
              f"{dt:.2f} s = {len(out['added']) / dt:.1f} per s")
        if args.gui:
            gui_reload(Path(tmp) / "cache", lib)
    srv.shutdown()


def gui_reload(cache_root: Path, lib) -> None:
    """Time the Browse panel's rebuild of every tile from the cached records (GUI thread work)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["MICROLIB_CACHE"] = str(cache_root)
    os.environ["MICROLIB_DOITPOMS_URL"] = "http://127.0.0.1:9/miclib/"  # never refreshed here
    from PySide6.QtWidgets import QApplication

    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.steps.browse import Panel

    app = QApplication.instance() or QApplication([])
    panel = Panel(AppContext(lib))
    panel.resize(1280, 800)
    panel.show()
    app.processEvents()
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        panel.reload()
        app.processEvents()
        ts.append(time.perf_counter() - t)
    print(f"Browse panel: rebuild {len(panel.model.all)} tiles + repaint: median {statistics.median(ts) * 1000:.0f} ms")
    ts = []
    for text in ("s", "st", "ste", "stee", "steel"):
        t = time.perf_counter()
        panel.search_edit.setText(text)
        panel.apply_filter()
        app.processEvents()
        ts.append(time.perf_counter() - t)
    print(f"Browse panel: filter as you type over {len(panel.model.all)} tiles: median "
          f"{statistics.median(ts) * 1000:.0f} ms per keystroke")
    panel.close()
    panel.deleteLater()
    app.processEvents()


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: Qt objects left to the garbage collector at exit can crash PySide.
    import sys

    sys.stdout.flush()
    os._exit(0)

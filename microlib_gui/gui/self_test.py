"""``microlib-gui --self-test``: prove that this installation (or frozen build) works.

Opens the main window on Qt's xcb platform when a display is there, else the
offscreen platform; loads a demo entry; segments it; renders napari's canvas;
generates a tiny volume from a tiny (untrained) SliceGAN generator; computes its
statistics and writes a JSON report. Exits 0 when every check passed, else 1,
naming each check that failed on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable


def _checks(state: dict) -> list[tuple[str, Callable[[], str]]]:
    import numpy as np

    def qt_app() -> str:
        if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
            # napari's canvas needs OpenGL, which Qt's offscreen platform lacks: prefer Xvfb.
            display = _start_xvfb(state)
            if display:
                os.environ["DISPLAY"] = display
                os.environ["QT_QPA_PLATFORM"] = "xcb"
            else:
                os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance() or QApplication(["microlib-gui"])
        state["app"] = app
        return f"platform {app.platformName()}"

    def main_window() -> str:
        from .session import create_window
        from .settings import make_settings

        root = Path(state["tmp"]) / "library"
        win = create_window(root, make_settings())
        win.show()
        state["app"].processEvents()
        state["window"] = win
        lib = win.ctx.library
        entries = lib.list_entries()
        if len(entries) < 3 or win.entry_combo.count() != len(entries):
            raise RuntimeError(f"demo library has {len(entries)} entries")
        for i in range(len(win.panels)):
            win.go(i)
            state["app"].processEvents()
        img = win.grab().toImage()
        if img.isNull() or img.width() < 100:
            raise RuntimeError("window grab is empty")
        return f"{len(entries)} demo entries, {len(win.panels)} steps"

    def segment_entry() -> str:
        from ..core.images import load_image
        from ..core.segment import segment, volume_fractions

        lib = state["window"].ctx.library
        entry = next(e for e in lib.list_entries() if e.metadata.get("data_type") == "twophase")
        img = load_image(lib.original_path(entry.id))
        seg = segment(img.data, n_phases=2)
        vf = volume_fractions(seg.labels, 2)
        if not 0.05 < vf[0] < 0.95:
            raise RuntimeError(f"implausible volume fractions {vf}")
        state["labels2d"] = seg.labels
        return f"{entry.name}: volume fractions " + ", ".join(f"{v:.3f}" for v in vf)

    def generate_volume() -> str:
        import torch

        from ..core.slicegan.generate import generate
        from ..core.slicegan.nets import Generator
        from ..core.slicegan.presets import get_preset

        torch.manual_seed(0)
        G = Generator(get_preset("tiny").net_params(2))
        G.eval()
        vol = generate(G, size=32, seed=0, device="cpu")
        if vol.shape != (32, 32, 32) or vol.dtype != np.uint8 or vol.max() > 1:
            raise RuntimeError(f"unexpected volume {vol.shape} {vol.dtype}")
        state["volume"] = vol
        return f"volume {vol.shape}, phase-1 fraction {float(vol.mean()):.3f}"

    def napari_canvas() -> str:
        from .widgets.napari_view import NapariView

        view = NapariView()
        view.resize(600, 450)
        view.show()
        view.set_volume(state.get("volume", (np.indices((32, 32, 32)).sum(0) % 2).astype(np.uint8)))
        view.set_ndisplay(3)
        state["app"].processEvents()
        frame = view.grab_canvas()
        spread = float(np.asarray(frame[..., :3], dtype=np.float32).std())
        view.close_viewer()
        if spread < 1.0:
            raise RuntimeError("the rendered canvas is blank (no OpenGL? run with a display or install Xvfb)")
        return f"rendered {frame.shape[1]}x{frame.shape[0]}, pixel spread {spread:.1f}"

    def statistics() -> str:
        from ..core.stats import compare

        res = compare(state["labels2d"], state["volume"], kind="nphase", r_max=16, tortuosity=False, device="cpu")
        state["stats"] = res
        return "volume-fraction and surface-area errors computed"

    return [("Qt application", qt_app), ("main window with demo library", main_window),
            ("segmentation", segment_entry), ("tiny generator", generate_volume),
            ("napari canvas", napari_canvas), ("statistics", statistics)]


def _start_xvfb(state: dict) -> str | None:
    """Start a private Xvfb when one is installed; returns its DISPLAY or None."""
    import shutil
    import subprocess

    exe = shutil.which("Xvfb")
    if not exe:
        return None
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "+extension", "GLX",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as fh:
        number = fh.readline().strip()
    if not number.isdigit():
        proc.kill()
        return None
    state["xvfb"] = proc
    return f":{number}"


def run_self_test(report_path: str | None = None) -> int:
    tmp = tempfile.mkdtemp(prefix="microlib-selftest-")
    os.environ.setdefault("MICROLIB_SETTINGS", str(Path(tmp) / "settings.ini"))
    state: dict = {"tmp": tmp}
    results = []
    for name, fn in _checks(state):
        t0 = time.perf_counter()
        try:
            detail = fn()
            ok = True
        except Exception as exc:  # noqa: BLE001 - each failure is reported by name
            ok = False
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            state.setdefault("tracebacks", []).append(traceback.format_exc())
        results.append({"check": name, "ok": ok, "detail": detail, "seconds": round(time.perf_counter() - t0, 3)})
        print(f"[{'ok' if ok else 'FAILED'}] {name}: {detail}", file=sys.stderr if not ok else sys.stdout, flush=True)
        if not ok and name in ("Qt application", "main window with demo library"):
            break  # later checks need these
    report = {"passed": all(r["ok"] for r in results), "checks": results,
              "frozen": bool(getattr(sys, "frozen", False)), "python": sys.version.split()[0]}
    path = Path(report_path or Path(tmp) / "self-test.json")
    path.write_text(json.dumps(report, indent=2))
    print(f"report: {path}")
    if "xvfb" in state:
        state["xvfb"].terminate()
    failed = [r["check"] for r in results if not r["ok"]]
    if failed:
        print("self-test FAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    print("self-test passed")
    return 0

"""The Jobs view in a real X server: build two entries, watch them, read a log, retry a failure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_build import make_library

pytestmark = pytest.mark.gui


def _states(view) -> dict[str, str]:
    return {j["entry"]: j["state"] for j in view.jobs}


def test_jobs_view_build_log_retry(qtbot, tmp_path, shared_data, artifacts):
    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.widgets.jobs_view import JobsView

    lib = make_library(tmp_path / "lib", shared_data)
    # Entry 6 will fail: its original image is gone (restored below, then retried).
    original = lib.original_path(6)
    saved = original.read_bytes()
    original.unlink()
    ctx = AppContext(lib)
    ctx.set_entry(1)
    view = JobsView(ctx, refresh_ms=200)
    view.quiet_errors = True
    qtbot.addWidget(view)
    view.resize(1100, 620)
    view.show()
    qtbot.waitExposed(view)
    assert view.summary.text() == "no build jobs yet"

    view.steps_edit.setText("selftest,inpaint")
    view.parallel_spin.setValue(2)
    view.build_btn.click()
    try:
        qtbot.waitUntil(lambda: _states(view) == {"microstructure001": "done", "microstructure006": "failed"},
                        timeout=90_000)
    except Exception:
        pytest.fail(f"{view.summary.text()} {view.jobs} {view._workers}")
    assert "1 done" in view.summary.text() and "1 failed" in view.summary.text()
    row = [j["entry"] for j in view.jobs].index("microstructure006")
    assert "selftest" in view.table.item(row, 5).text()  # the message names the failing step
    # The log of the done entry, shown on selection.
    view.select_entry(1)
    qtbot.waitUntil(lambda: "inpaint: done" in view.log_view.toPlainText(), timeout=5000)
    assert view.retry_btn.isEnabled() is False
    view.select_entry(6)
    qtbot.waitUntil(lambda: "Traceback" in view.log_view.toPlainText(), timeout=5000)
    assert view.retry_btn.isEnabled()
    path = artifacts / "jobs_view_failed.png"
    view.grab().save(str(path))
    assert view.table.item(row, 1).foreground().color().name() == "#d64545"  # failed: red
    assert "no such file" in view.log_title.text() + view.log_view.toPlainText()

    # Fix the cause, retry: the entry's job runs again with its build's options and ends done.
    original.write_bytes(saved)
    view.retry_btn.click()
    qtbot.waitUntil(lambda: _states(view) == {"microstructure001": "done", "microstructure006": "done"},
                    timeout=90_000)
    assert lib.entry_file(6, "_inpainted.png").exists()
    view.select_entry(6)
    qtbot.wait(300)
    path = artifacts / "jobs_view_done.png"
    view.grab().save(str(path))
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    green = (img[..., 0] < 90) & (img[..., 1] > 130) & (img[..., 2] < 110)  # the unselected "done" cell
    assert green.sum() > 20
    assert "2 done" in view.summary.text()
    view.stop()

"""The main window in a real X server: walk every wizard step on a demo entry."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, demo_library, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    from microlib_gui.gui.app import create_window, make_settings

    win = create_window(demo_library.root, make_settings())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def _grab(widget, path):
    widget.grab().save(str(path))
    arr = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    return arr


def test_walk_every_step(window, qtbot, artifacts):
    from microlib_gui.core.steps import STEPS

    assert window.entry_combo.count() == 4
    assert window.ctx.entry_id == 10001
    for i, step in enumerate(STEPS):
        window.go(i)
        qtbot.wait(50)
        assert window.stack.currentWidget() is window.panels[step]
        assert window.back_btn.isEnabled() == (i > 0)
        assert window.next_btn.isEnabled() == (i < len(STEPS) - 1)
        _grab(window, artifacts / f"main_step_{i + 1}_{step}.png")
    # Back/Next buttons drive the wizard too
    window.back_btn.click()
    assert window.current_index() == len(STEPS) - 2
    window.go(0)
    arr = _grab(window, artifacts / "main_window.png")
    assert arr.std() > 5  # not a blank window
    assert "Two-phase" in window.entry_combo.currentText()


def test_entry_selector_and_step_marks(window, qtbot):
    lib = window.ctx.library
    window.entry_combo.setCurrentIndex(2)
    assert window.ctx.entry_id == 10003
    with qtbot.waitSignal(window.ctx.entry_changed, timeout=5000):  # the live model sees the commit
        lib.set_step_status(10003, "crop", "done")
    assert window.step_list.item(1).text().startswith("✔")
    assert "demo entry" in window.entry_info.text()


def test_open_bad_image_shows_one_line_dialog(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert window.open_image(str(bad)) is None
    assert shown == ["bad.png: not a PNG, JPEG or TIFF image"]
    assert window.entry_combo.count() == 4  # nothing added, nothing lost


def test_open_good_image_adds_and_selects_entry(window, tmp_path):
    a = (np.random.default_rng(0).random((128, 128)) * 255).astype(np.uint8)
    p = tmp_path / "mine.png"
    Image.fromarray(a).save(p)
    eid = window.open_image(str(p))
    assert eid is not None and window.ctx.entry_id == eid
    assert window.entry_combo.count() == 5


def test_geometry_and_last_library_remembered(qtbot, demo_library, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "s.ini"))
    monkeypatch.delenv("MICROLIB_HOME", raising=False)  # else it takes precedence over the last library
    from microlib_gui.gui.app import choose_library_path, create_window, make_settings

    win = create_window(demo_library.root, make_settings())
    qtbot.addWidget(win)
    win.show()
    win.resize(1111, 777)
    qtbot.wait(50)
    win.close()
    settings = make_settings()
    assert choose_library_path(None, settings) == demo_library.root
    win2 = create_window(demo_library.root, settings)
    qtbot.addWidget(win2)
    assert win2.width() == 1111 and win2.height() == 777


def test_the_window_fits_a_laptop_screen_on_every_step(qtbot, demo_library, tmp_path, monkeypatch):
    """A 1366 x 768 screen leaves about 700 px for a window under its title bar and a task bar:
    no step may make the window's least size larger (the Train step's settings once needed 886)."""
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "s.ini"))
    from microlib_gui.gui.app import create_window, make_settings

    win = create_window(demo_library.root, make_settings())
    qtbot.addWidget(win)
    win.show()
    for i in range(win.step_list.count()):
        win.step_list.setCurrentRow(i)
        qtbot.wait(20)
        hint = win.minimumSizeHint()
        assert hint.height() <= 700 and hint.width() <= 1340, (win.step_list.item(i).text(), hint)
    win.resize(1340, 700)
    qtbot.waitUntil(lambda: win.height() == 700)


def test_import_export_annotations_from_menu(window, shared_data, tmp_path):
    window.import_annotations(str(shared_data / "microlib-prelabelled_anns.json"))
    assert len(window.ctx.library.pending_annotations()) == 79
    window.export_annotations(str(tmp_path))
    assert (tmp_path / "data_anns.json").exists() and (tmp_path / "microlib_anns.json").exists()


def test_jobs_view_opens_in_a_dock(window, qtbot, artifacts):
    window.show_jobs()
    qtbot.wait(100)
    assert window.jobs_dock.isVisible() and window.jobs_view is not None
    window.grab().save(str(artifacts / "main_window_jobs.png"))


def test_close_with_kept_training_exits_without_waiting(window, monkeypatch):
    import microlib_gui.gui.main_window as mw

    exits = []
    monkeypatch.setattr(mw, "exit_now", exits.append)
    window.panels["train"].detach_on_exit = True  # as after "Keep running" in the close dialog
    window.close()
    assert exits == [0]


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/PID/stat, or None when there is no such process.

    The state tells a live process (R running, S sleeping, D in I/O) from a zombie
    (Z: it has exited and waits to be reaped), which ``os.kill(pid, 0)`` cannot.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": the command name may hold spaces
    return fields[0], int(fields[1])


@contextlib.contextmanager
def _subreaper():
    """Orphans of our children come to this process (Linux), so a test can see and reap them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ok = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    try:
        yield ok
    finally:
        if ok:
            libc.prctl(36, 0, 0, 0, 0)


APP_THAT_KEEPS_ITS_WORKER = """
import sys, time
from pathlib import Path
from microlib_gui.core.jobs import ProcessJob
from microlib_gui.gui.main_window import exit_now
job = ProcessJob("microlib_gui.core.jobs:_selftest_sleep", {"seconds": 60}).start()
end = time.monotonic() + 60
while job.last_progress is None and time.monotonic() < end:  # the worker is really at work
    job.poll()
    time.sleep(0.05)
Path(sys.argv[1]).write_text(str(job.pid))
exit_now(0)
"""


def test_a_worker_process_outlives_an_app_that_exits_without_waiting(tmp_path):
    """What "Keep running" relies on: the training process goes on after the app's os._exit."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    with _subreaper() as reaper, open(tmp_path / "app.log", "wb") as log:
        # No pipe the worker could inherit: waiting for the app is waiting for the app alone.
        t0 = time.monotonic()
        app = subprocess.Popen([sys.executable, "-c", APP_THAT_KEEPS_ITS_WORKER, str(pid_file)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            assert app.wait(timeout=45) == 0, (tmp_path / "app.log").read_text()
        finally:
            if app.poll() is None:
                app.kill()
        assert time.monotonic() - t0 < 45  # it left well before its 60 s worker would have ended
        pid = int(pid_file.read_text())
        try:
            state = _proc_state(pid)
            assert state is not None, "the worker died with the app"
            assert state[0] in "RSD", f"the worker is not alive after the app left (state {state[0]})"
            if reaper:
                assert state[1] == os.getpid()  # orphaned: its parent, the app, has gone
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if reaper:
                with contextlib.suppress(ChildProcessError):  # not ours if the app reaped it
                    os.waitpid(pid, 0)  # ours now: reaped, no zombie left by the test
    assert _proc_state(pid) is None or not reaper


def test_a_finished_worker_process_leaves_no_zombie(window, qtbot):
    """A process job run from the window: once finished, its process is reaped, not left a zombie."""
    from microlib_gui.core.jobs import DONE, _selftest_sleep

    handle = window.ctx.jobs.start(_selftest_sleep, {"seconds": 0.3}, process=True)
    with qtbot.waitSignal(handle.finished, timeout=60000) as sig:
        pass
    assert sig.args[0].state == DONE
    pid = handle.pid
    # Reaped in the background: the state goes from running to gone, never stays Z.
    qtbot.waitUntil(lambda: _proc_state(pid) is None, timeout=10000)


def test_windows_and_dialogs_open_within_the_screen(window, qtbot):
    """The first-run window, the user guide and the library report open no larger than the screen
    (on a 768 px laptop the guide's 760 px and the window's 820 px ran off it)."""
    from PySide6.QtWidgets import QDialog

    from microlib_gui.gui.widgets.screen_fit import SCREEN_SHARE, resize_within_screen

    free = window.screen().availableGeometry()
    probe = QDialog(window)
    qtbot.addWidget(probe)
    resize_within_screen(probe, 5000, 5000)  # far larger than any screen: clamped to a share of it
    assert probe.width() == int(free.width() * SCREEN_SHARE) and probe.height() == int(free.height() * SCREEN_SHARE)
    resize_within_screen(probe, 640, 480)  # what fits is kept
    assert (probe.width(), probe.height()) == (640, 480)
    window.show_guide()
    window.show_report()
    for dlg in (window.guide_dialog, window.report_dialog):
        qtbot.waitUntil(dlg.isVisible)
        assert dlg.width() <= free.width() and dlg.height() <= free.height() * SCREEN_SHARE, dlg
        dlg.close()

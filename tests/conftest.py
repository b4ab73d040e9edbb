"""Shared fixtures.

``shared_data``: the real data folder ``../shared/data`` beside the checkout (or
``$MICROLIB_SHARED_DATA``). Tests needing it skip with a reason when it is absent,
except under ``MICROLIB_REQUIRE_SHARED=1`` (CI), where absence fails.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import multiprocessing
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "_artifacts"


def shared_data_path() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def pytest_sessionfinish(session, exitstatus):
    """Leave the test process without interpreter teardown, as the app does.

    Once every report is written, CPython's final garbage collection can abort the
    process (``none_dealloc``, exit 134) inside Qt, OpenGL or other C extensions that
    free objects in arbitrary order; that turned a green run red once. The handler is
    registered last, so it runs first among the exit handlers, after pytest has
    restored its output capture and printed the summary.
    """
    atexit.register(_exit_without_teardown, int(exitstatus))


def _exit_without_teardown(code: int) -> None:
    for child in multiprocessing.active_children():  # no orphans from a test that failed
        child.terminate()
        child.join(5)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@pytest.fixture(autouse=True, scope="session")
def _private_user_folders(tmp_path_factory):
    """Tests never touch the user's settings, cache or default library, nor the live site."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("user")
    mp.setenv("MICROLIB_CACHE", str(base / "cache"))
    mp.setenv("MICROLIB_SETTINGS", str(base / "settings.ini"))
    mp.setenv("MICROLIB_HOME", str(base / "library"))
    mp.setenv("MICROLIB_DOITPOMS_URL", "http://127.0.0.1:9/miclib/")  # closed port: offline at once
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_path()
    if not (path / "README.md").exists():
        msg = f"shared test data not found at {path}"
        if os.environ.get("MICROLIB_REQUIRE_SHARED") == "1":
            pytest.fail(msg + " (MICROLIB_REQUIRE_SHARED=1)")
        pytest.skip(msg)
    return path


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: two busy cores shared with other work stall otherwise."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def library(tmp_path):
    """An empty library in a temporary folder."""
    from microlib_gui.core.library import Library

    return Library(tmp_path / "lib")


@pytest.fixture
def demo_library(tmp_path):
    """A library holding the demo catalog."""
    from microlib_gui.core.demo import ensure_demo_entries
    from microlib_gui.core.library import Library

    lib = Library(tmp_path / "demo-lib")
    ensure_demo_entries(lib)
    return lib


@pytest.fixture
def artifacts() -> Path:
    """Folder for screenshots and other files a person should look at after a run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# -- the stand-in DoITPoMS site (tests/fixtures/doitpoms/site.py) on a local HTTP server ------------
def load_doitpoms_site_module():
    """The fixture site's module (it lives beside its pages, not in a package)."""
    spec = importlib.util.spec_from_file_location("doitpoms_site", REPO / "tests/fixtures/doitpoms/site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def doitpoms_jpegs(shared_data):
    """Large and thumbnail JPEGs of the fixture records, made from ``rawlike/raw*.png``."""
    return load_doitpoms_site_module().make_jpegs(shared_data / "rawlike")


@pytest.fixture
def make_doitpoms_site(doitpoms_jpegs):
    """``make(**FakeSite options)`` → a running stand-in site with ``.base_url`` and ``.server``."""
    from pytest_httpserver import HTTPServer

    mod = load_doitpoms_site_module()
    servers = []

    def make(**options):
        site = mod.FakeSite(doitpoms_jpegs, **options)
        srv = HTTPServer(host="127.0.0.1", threaded=True)  # a slow answer must not hold up a retry
        srv.start()
        srv.expect_request(re.compile(r"^/miclib/.*")).respond_with_handler(site.handler)
        site.base_url = srv.url_for("/miclib/")
        site.server = srv
        servers.append(srv)
        return site

    yield make
    for srv in servers:
        srv.clear()
        if srv.is_running():
            srv.stop()


@pytest.fixture
def library_window(qtbot, tmp_path, monkeypatch):
    """Open the main window (1400 x 900, shown) on a library: ``win = library_window(lib)``, with
    settings of this test's own. Panels are told the window closes at the end."""
    made = []
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))

    def open_window(lib):
        from microlib_gui.gui.session import create_window
        from microlib_gui.gui.settings import make_settings

        win = create_window(lib.root, make_settings(), add_demo_if_empty=False)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        qtbot.waitExposed(win)
        made.append(win)
        return win

    yield open_window
    for win in made:
        for p in win.panels.values():
            getattr(p, "confirm_close", lambda: True)()


@pytest.fixture
def local_entry_window(library_window, tmp_path):
    """The main window on a new library of one local entry made from an image file:
    ``win = local_entry_window(path)``."""
    from microlib_gui.core.library import Library

    def open_window(image):
        lib = Library(tmp_path / "lib")
        lib.add_entry(image, source="local")
        return library_window(lib)

    return open_window

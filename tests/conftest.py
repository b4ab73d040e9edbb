"""Shared fixtures.

``shared_data``: the real data folder ``../shared/data`` beside the checkout (or
``$MICROLIB_SHARED_DATA``). Tests needing it skip with a reason when it is absent,
except under ``MICROLIB_REQUIRE_SHARED=1`` (CI), where absence fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "_artifacts"


def shared_data_path() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


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
def library(tmp_path):
    """An empty library in a temporary folder."""
    from microlib_gui.core.store import Library

    return Library(tmp_path / "lib")


@pytest.fixture
def demo_library(tmp_path):
    """A library holding the demo catalog."""
    from microlib_gui.core.demo import ensure_demo_entries
    from microlib_gui.core.store import Library

    lib = Library(tmp_path / "demo-lib")
    ensure_demo_entries(lib)
    return lib


@pytest.fixture
def artifacts() -> Path:
    """Folder for screenshots and other files a person should look at after a run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

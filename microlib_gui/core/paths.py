"""Where things live: the default library folder, resources, shared test data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_DIR_NAME = "MicroLibStudio"


def default_library_path() -> Path:
    """``$MICROLIB_HOME`` if set, else ``<user data dir>/MicroLibStudio/library``."""
    env = os.environ.get("MICROLIB_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False)) / "library"


def resources_dir() -> Path:
    """The ``resources/`` folder (beside the package, or inside a frozen build)."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def docs_dir() -> Path:
    """The user guide (``README.md`` and ``docs/*.md``): beside the package, or inside a frozen build."""
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) / "docs" if frozen else Path(__file__).resolve().parents[2] / "docs"

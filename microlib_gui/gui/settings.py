"""Where the app keeps its settings, and the library it opens on start.

Kept apart from :mod:`.app` so that panels (the Browse step saves its DoITPoMS
address here) and the self-test can use them without importing the entry point.
"""

from __future__ import annotations

import os
from pathlib import Path


def make_settings():
    """QSettings, or an INI file named by ``$MICROLIB_SETTINGS`` (tests, portable installs)."""
    from PySide6.QtCore import QSettings

    path = os.environ.get("MICROLIB_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("MicroLibStudio", "MicroLib Studio")


def choose_library_path(arg: str | None, settings) -> Path:
    """The library to open: ``arg``, else ``$MICROLIB_HOME``, else the last one opened, else the default."""
    from ..core.paths import default_library_path

    if arg:
        return Path(arg)
    if os.environ.get("MICROLIB_HOME"):
        return default_library_path()
    last = settings.value("library/last")
    if last and Path(str(last)).is_dir():
        return Path(str(last))
    return default_library_path()

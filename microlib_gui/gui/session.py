"""Opening a library in a main window: what ``microlib-gui`` and its self-test both do."""

from __future__ import annotations

from pathlib import Path


def create_window(library_path: Path, settings, add_demo_if_empty: bool = True):
    """Open (or create) the library and build the main window; raises MicrolibError.

    An empty library gets the embedded demo catalog (``add_demo_if_empty``).
    """
    from ..core.demo import ensure_demo_entries
    from ..core.library import Library
    from .main_window import MainWindow

    lib = Library(library_path)
    if add_demo_if_empty and not lib.list_entries():
        ensure_demo_entries(lib)
    return MainWindow(lib, settings)

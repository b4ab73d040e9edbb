"""``microlib-gui``: start MicroLib Studio.

Library chosen by, in order: ``--library PATH``, ``$MICROLIB_HOME``, the last library
opened (remembered in QSettings), the default folder in the user's data dir
(:mod:`.settings`). An empty library gets the embedded demo catalog on first start
(:mod:`.session`). This module is the entry point only: nothing in the package imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import APP_NAME, __version__
from .session import create_window
from .settings import choose_library_path, make_settings

# Re-exported: scripts and tests open windows through the entry point's names too.
__all__ = ["main", "create_window", "choose_library_path", "make_settings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microlib-gui", description=f"{APP_NAME} desktop app")
    parser.add_argument("--library", metavar="PATH", help="library folder to open")
    parser.add_argument("--demo", action="store_true",
                        help="open the embedded demo library (kept apart from your own library)")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    parser.add_argument("--self-test", action="store_true", help="run the built-in self-test and exit")
    parser.add_argument("--self-test-report", metavar="FILE", help="where the self-test writes its JSON report")
    args = parser.parse_args(argv)

    if args.self_test:
        from .self_test import run_self_test

        code = run_self_test(args.self_test_report)
        # The verdict is written and printed; skip interpreter teardown, where OpenGL
        # drivers and Qt can crash while destroying contexts in arbitrary order.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    from PySide6.QtWidgets import QApplication, QMessageBox

    from ..core.errors import MicrolibError

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("MicroLibStudio")
    app.setApplicationVersion(__version__)
    _apply_style(app)
    settings = make_settings()
    if args.demo:
        from ..core.paths import default_library_path

        path = Path(args.library) if args.library else default_library_path().parent / "demo-library"
    else:
        path = choose_library_path(args.library, settings)
    try:
        window = create_window(path, settings)
    except MicrolibError as exc:
        QMessageBox.critical(None, APP_NAME, str(exc))
        return 2
    window.show()
    return app.exec()


def _apply_style(app) -> None:
    from ..core.paths import resources_dir

    qss = resources_dir() / "style.qss"
    if qss.exists():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.exit(main())

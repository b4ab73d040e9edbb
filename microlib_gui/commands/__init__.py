"""CLI subcommands, one module per area; each defines ``register(subparsers)``."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from types import ModuleType
from typing import Any, Iterator


def iter_command_modules() -> Iterator[ModuleType]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def open_library(args, create: bool = True, readonly: bool = False):
    """The library named by ``--library``, else ``$MICROLIB_HOME``/the default folder.

    ``readonly``: for commands that only read (list, show, export, status): an
    existing library is opened read-only, so one on a read-only disk still works.
    """
    from pathlib import Path

    from ..core.library import DB_NAME, Library
    from ..core.paths import default_library_path

    path = Path(args.library) if getattr(args, "library", None) else default_library_path()
    if readonly and (path.expanduser() / DB_NAME).is_file():
        return Library(path, readonly=True)
    return Library(path, create=create)


def emit(args, obj: Any, text: str | None = None) -> None:
    """Print ``obj`` as JSON under ``--json``, else ``text`` (or a readable dump)."""
    if getattr(args, "json", False):
        json.dump(obj, sys.stdout, indent=2, default=_jsonable)
        sys.stdout.write("\n")
    else:
        print(text if text is not None else json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def add_json_flag(p) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")

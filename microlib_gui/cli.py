"""The ``microlib`` command: every GUI action has a twin here, over the same core.

Subcommands live in :mod:`microlib_gui.commands`, one module per area, each with a
``register(subparsers)`` function; they are found automatically. A command
function takes the parsed args and returns an exit code.

Errors: a :class:`~microlib_gui.core.errors.MicrolibError` prints its one-line
reason on stderr and exits 2; anything unexpected prints one line too (exit 1),
with the traceback only under ``--debug`` or ``MICROLIB_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .commands import iter_command_modules
from .core.errors import MicrolibError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microlib",
        description="MicroLib Studio: curate micrographs and turn them into 3D microstructures.",
    )
    parser.add_argument("--version", action="version", version=f"microlib {__version__}")
    parser.add_argument("--library", metavar="PATH",
                        help="library folder (default: $MICROLIB_HOME or the user data folder)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in iter_command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    debug = args.debug or os.environ.get("MICROLIB_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except MicrolibError as exc:
        print(f"microlib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("microlib: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the user gets one line, not a traceback
        if debug:
            raise
        text = " ".join(str(exc).split())[:200]
        print(f"microlib: internal error: {type(exc).__name__}: {text} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

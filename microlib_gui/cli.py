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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong and where to look), exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="microlib",
        description="MicroLib Studio: curate micrographs and turn them into 3D microstructures.",
    )
    parser.add_argument("--version", action="version", version=f"microlib {__version__}")
    parser.add_argument("--library", metavar="PATH",
                        help="library folder (default: $MICROLIB_HOME or the user data folder)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    if not debug:
        # Libraries' own warnings about a bad file would add lines to our one-line answer.
        import logging
        import warnings

        logging.getLogger("tifffile").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
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
    except MemoryError:
        print("microlib: error: out of memory: try a smaller volume or batch, or fewer jobs at once",
              file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, file too large, permission denied, ...
        print(f"microlib: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the user gets one line, not a traceback
        if debug:
            raise
        text = " ".join(str(exc).split())[:200]
        if "out of memory" in text.lower():  # torch.OutOfMemoryError (GPU) and friends
            print("microlib: error: out of memory on the device: try a smaller volume or batch, "
                  "or --device cpu", file=sys.stderr)
            return 2
        print(f"microlib: internal error: {type(exc).__name__}: {text} (run with --debug for details)",
              file=sys.stderr)
        return 1


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error while reading or writing files."""
    import errno

    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"not enough disk space to write{where or ' the output'}; nothing partial was kept"
    if exc.errno == errno.EFBIG:
        return f"file too large for this file system or quota{where}; nothing partial was kept"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}"
    return f"{exc.strerror or type(exc).__name__}{where}"


if __name__ == "__main__":
    sys.exit(main())

"""Parsers of the command line's own notations (boxes, points, phase lists, numbers), and one-line usage errors.

These read what a user types after an option (``--crop 10,10,400,300``) and say
in one line what is wrong with it, naming the option. They belong to the command
line, not to the engines: the engines take numbers.

Every number typed on the command line goes through :func:`number` (one number,
as an argparse ``type=``) or :func:`parse_numbers` (a comma list): it must be
finite (no ``nan``, ``inf`` or ``1e400``), written in ASCII digits, and inside the
option's range, so nothing past the parser sees a value no engine was written for.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from ..core.errors import MicrolibError

#: Largest pixel coordinate accepted (beyond the side of any image the library opens).
MAX_COORD = 1_000_000
#: Longest scale bar accepted, in µm (a metre: beyond any micrograph's bar).
MAX_UM = 1e6
#: Largest DoITPoMS micrograph number (the library numbers local entries from 10001).
DOITPOMS_ID_MAX = 10_000
#: Largest entry id SQLite can hold (its INTEGER is 64-bit signed).
MAX_ENTRY_ID = 2**63 - 1
#: Seeds: every random generator in use accepts 0..2**32-1 (NumPy's legacy seeding needs below 2**32).
MAX_SEED = 2**32 - 1
#: Counts of iterations, steps, frames: large enough for any real run, small enough for every integer type.
MAX_COUNT = 10**9


class ArgumentError(MicrolibError):
    """An option's value cannot be read (the CLI prints it on one line and exits 2)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), like every other error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        where = self.prog.removeprefix("microlib").strip()
        print(f"microlib: error: {where + ': ' if where else ''}{' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)


# -- numbers ---------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _bound(side: str, v: float, is_open: bool) -> str:
    if side == "lo":
        return f"{'above' if is_open else 'at least'} {_fmt(v)}"
    return f"{'below' if is_open else 'at most'} {_fmt(v)}"


def read_number(text, what: str, lo: float | None = None, hi: float | None = None, *, integer: bool = False,
                lo_open: bool = False, hi_open: bool = False) -> float | int:
    """One number typed by the user, checked; raises :class:`ArgumentError` naming ``what``.

    Parameters
    ----------
    text : what was typed (a str; numbers pass through for callers that already hold one)
    what : the option, for the message (``--tolerance``)
    lo, hi : the range (inclusive unless ``lo_open`` / ``hi_open``); None: unbounded that side
    integer : a whole number (``12``, not ``12.5`` or ``1e3``)
    """
    kind = "a whole number" if integer else "a number"
    s = str(text).strip()
    if not s.isascii():  # int() and float() read ``١٢`` and full-width digits; people mean something else
        raise ArgumentError(f"{what} {text!r}: expected {kind} in ASCII digits")
    try:
        v = int(s) if integer else float(s)
    except ValueError:
        raise ArgumentError(f"{what} {text!r}: expected {kind}") from None
    if not integer and not math.isfinite(v):
        raise ArgumentError(f"{what} {text!r}: expected a finite number")
    low = lo is not None and (v <= lo if lo_open else v < lo)
    high = hi is not None and (v >= hi if hi_open else v > hi)
    if low or high:
        side = _bound("lo", lo, lo_open) if low else _bound("hi", hi, hi_open)
        both = f" (in {_fmt(lo)}..{_fmt(hi)})" if lo is not None and hi is not None else ""
        raise ArgumentError(f"{what} {text!r}: expected {kind} {side}{both}")
    return v


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False,
           lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type=`` for one checked number (argparse names the option in the message)."""

    def parse(text: str):
        try:
            return read_number(text, "", lo, hi, integer=integer, lo_open=lo_open, hi_open=hi_open)
        except ArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc).strip()) from None

    parse.__name__ = "whole number" if integer else "number"
    return parse


def whole(lo: int | None = 0, hi: int | None = MAX_COUNT) -> Callable[[str], int]:
    """An argparse ``type=`` for a whole number in ``lo..hi``."""
    return number(lo, hi, integer=True)  # type: ignore[return-value]


#: ``type=`` for counts that must be at least 1 (iterations, batch sizes, frames, ...).
count = whole(1, MAX_COUNT)
#: ``type=`` for random seeds.
seed = whole(0, MAX_SEED)


def doitpoms_id(text: str) -> int:
    """``type=`` for a DoITPoMS micrograph number (1..10000: local entries are numbered above)."""
    return whole(1, DOITPOMS_ID_MAX)(text)


doitpoms_id.__name__ = "DoITPoMS id"


def check_entry_key(text: str, what: str = "ENTRY") -> str:
    """An ENTRY typed by the user: an id, ``microstructureNNN`` or ``doitpoms:N`` (the text, checked).

    The number in it must be ASCII digits within what an entry id can be, so a lookup
    never asks the database for a number it cannot hold; any other text passes
    unchanged (the library says it names no entry).
    """
    s = str(text).strip()
    for prefix, hi in (("doitpoms:", DOITPOMS_ID_MAX), ("microstructure", MAX_ENTRY_ID), ("", MAX_ENTRY_ID)):
        digits = s[len(prefix):]
        if s.startswith(prefix) and digits and (digits.isdigit() or digits.isdecimal()):
            try:
                read_number(digits, "", 1, hi, integer=True)
            except ArgumentError as exc:
                raise ArgumentError(f"{what} {text!r}: {str(exc).strip().split(': ', 1)[-1]}") from None
            return s
    return s


def entry_key(text: str) -> str:
    """``type=`` for ENTRY arguments (see :func:`check_entry_key`)."""
    try:
        return check_entry_key(text, "")
    except ArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


entry_key.__name__ = "entry"


def parse_numbers(text, what: str, n: int | tuple[int, ...] | None = None, lo: float | None = None,
                  hi: float | None = None, *, expected: str = "") -> list[float]:
    """A comma list of finite numbers in ``lo..hi``; ``n``: how many (or which counts) are allowed.

    The message names the option, the whole value and the part that is wrong.
    """
    parts = str(text).split(",")
    counts = (n,) if isinstance(n, int) else n
    if counts is not None and len(parts) not in counts:
        raise ArgumentError(f"{what} {text!r}: expected {expected or f'{counts[0]} numbers'}")
    vals = []
    for part in parts:
        try:
            vals.append(read_number(part, "", lo, hi))
        except ArgumentError as exc:
            why = str(exc).strip()
            raise ArgumentError(f"{what} {text!r}: " + (f"expected {expected} ({why})" if expected else why)) from None
    return vals


def _pixels(text, what: str, n: int, expected: str) -> list[int]:
    return [int(v) for v in parse_numbers(text, what, n, 0, MAX_COORD, expected=expected)]


def parse_box(text: str, what: str = "--crop") -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` → ints (a one-line reason when malformed)."""
    shape = "x0,y0,x1,y1 with x1 > x0 and y1 > y0"
    vals = _pixels(text, what, 4, shape)
    if vals[2] <= vals[0] or vals[3] <= vals[1]:
        raise ArgumentError(f"{what} {text!r}: expected {shape}")
    return tuple(vals)  # type: ignore[return-value]


def parse_point(text: str, what: str = "--pick") -> tuple[int, int]:
    """``"X,Y"`` → ints."""
    vals = _pixels(text, what, 2, "X,Y")
    return vals[0], vals[1]


def parse_points(text: str, what: str = "--ends") -> tuple[tuple[int, int], tuple[int, int]]:
    """``"X0,Y0,X1,Y1"`` → two points."""
    vals = _pixels(text, what, 4, "X0,Y0,X1,Y1")
    return (vals[0], vals[1]), (vals[2], vals[3])


def parse_thresholds(text: str, what: str = "--thresholds") -> list[float]:
    """``"T1[,T2...]"`` → grey levels 0-255."""
    try:
        return parse_numbers(text, what, None, 0, 255)
    except ArgumentError:
        raise ArgumentError(f"{what} {text!r}: expected grey levels 0-255 like 120 or 80,170") from None


def parse_phases_arg(text: str) -> dict:
    """``auto`` | ``auto:N`` | ``G1,G2[,...]`` → keyword arguments for :func:`~microlib_gui.core.segment.segment`."""
    from ..core.segment import MAX_PHASES

    s = str(text).strip().lower()
    if s == "auto":
        return {}
    if s.startswith("auto:"):
        try:
            n = read_number(s[5:], "--phases", integer=True)
        except ArgumentError:
            raise ArgumentError(f"--phases {text!r}: expected auto:N with N a whole number") from None
        if not 2 <= n <= MAX_PHASES:
            raise ArgumentError(f"--phases {text!r}: N must be 2..{MAX_PHASES}")
        return {"n_phases": int(n)}
    try:
        levels = [read_number(v, "--phases", 0, 255) for v in s.split(",") if v.strip()]
    except ArgumentError:
        raise ArgumentError(f"--phases {text!r}: expected auto, auto:N or grey levels 0..255 like 70,200") from None
    if not levels:
        raise ArgumentError(f"--phases {text!r}: expected auto, auto:N or grey levels 0..255 like 70,200")
    return {"phases": levels}


def parse_auto(text: str | None, what: str = "--auto") -> int | None:
    """``--auto`` (None: estimate the number of phases) or ``--auto:N`` / ``--auto N``."""
    from ..core.segment import MAX_PHASES

    if text is None or text == "":
        return None
    try:
        n = read_number(str(text).lstrip(":"), what, integer=True)
    except ArgumentError:
        raise ArgumentError(f"{what} {text!r}: expected a number of phases 2..{MAX_PHASES}") from None
    if not 2 <= n <= MAX_PHASES:
        raise ArgumentError(f"{what} {text!r}: the number of phases must be 2..{MAX_PHASES}")
    return int(n)


def parse_fields(pairs: list[str], what: str = "FIELD=VALUE") -> dict[str, str | list[str]]:
    """``["keywords=steel, pearlite", "technique=SEM"]`` → an entry record's fields, checked.

    Lists (keywords, category, element) are comma-separated. A pair without ``=``, an
    unknown or read-only field, a field given twice or a bad value: one line naming it.
    """
    from ..core.annotations import split_list
    from ..core.workflow import details

    out: dict[str, str | list[str]] = {}
    for pair in pairs:
        name, sep, value = str(pair).partition("=")
        if not sep:
            raise ArgumentError(f"{what} {str(pair)[:40]!r}: expected FIELD=VALUE "
                                f"(fields: {', '.join(details.EDITABLE)})")
        key = details.field_name(name)
        if key in out:
            raise ArgumentError(f"{what}: field {key!r} is given twice")
        out[key] = details.check_value(key, split_list(value) if key in details.LIST_FIELDS else value)
    return out

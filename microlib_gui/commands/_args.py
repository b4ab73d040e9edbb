"""Parsers of the command line's own notations (boxes, points, phase lists), and one-line usage errors.

These read what a user types after an option (``--crop 10,10,400,300``) and say
in one line what is wrong with it. They belong to the command line, not to the
engines: the engines take numbers.
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import MicrolibError


class ArgumentError(MicrolibError):
    """An option's value cannot be read (the CLI prints it on one line and exits 2)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), like every other error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        print(f"microlib: error: {self.prog.removeprefix('microlib ')}: {message}", file=sys.stderr)
        sys.exit(2)


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError:
        return []


def parse_box(text: str, what: str = "--crop") -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` → ints (a one-line reason when malformed)."""
    vals = [int(v) for v in _numbers(text)]
    if len(vals) != 4 or vals[2] <= vals[0] or vals[3] <= vals[1]:
        raise ArgumentError(f"{what} {text!r}: expected x0,y0,x1,y1 with x1 > x0 and y1 > y0")
    return tuple(vals)  # type: ignore[return-value]


def parse_point(text: str, what: str = "--pick") -> tuple[int, int]:
    """``"X,Y"`` → ints."""
    vals = [int(v) for v in _numbers(text)]
    if len(vals) != 2:
        raise ArgumentError(f"{what} {text!r}: expected X,Y")
    return vals[0], vals[1]


def parse_points(text: str, what: str = "--ends") -> tuple[tuple[int, int], tuple[int, int]]:
    """``"X0,Y0,X1,Y1"`` → two points."""
    vals = [int(v) for v in _numbers(text)]
    if len(vals) != 4:
        raise ArgumentError(f"{what} {text!r}: expected X0,Y0,X1,Y1")
    return (vals[0], vals[1]), (vals[2], vals[3])


def parse_thresholds(text: str, what: str = "--thresholds") -> list[float]:
    """``"T1[,T2...]"`` → grey levels 0-255."""
    vals = _numbers(text)
    if not vals or any(not 0 <= v <= 255 for v in vals):
        raise ArgumentError(f"{what} {text!r}: expected grey levels 0-255 like 120 or 80,170")
    return vals


def parse_phases_arg(text: str) -> dict:
    """``auto`` | ``auto:N`` | ``G1,G2[,...]`` → keyword arguments for :func:`~microlib_gui.core.segment.segment`."""
    from ..core.segment import MAX_PHASES

    s = str(text).strip().lower()
    if s == "auto":
        return {}
    if s.startswith("auto:"):
        try:
            n = int(s[5:])
        except ValueError:
            raise ArgumentError(f"--phases {text!r}: expected auto:N with N a whole number") from None
        if not 2 <= n <= MAX_PHASES:
            raise ArgumentError(f"--phases {text!r}: N must be 2..{MAX_PHASES}")
        return {"n_phases": n}
    try:
        levels = [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise ArgumentError(f"--phases {text!r}: expected auto, auto:N or grey levels like 70,200") from None
    if any(not 0 <= v <= 255 for v in levels):
        raise ArgumentError(f"--phases {text!r}: grey levels must lie in 0..255")
    return {"phases": levels}


def parse_auto(text: str | None, what: str = "--auto") -> int | None:
    """``--auto`` (None: estimate the number of phases) or ``--auto:N`` / ``--auto N``."""
    from ..core.segment import MAX_PHASES

    if text is None or text == "":
        return None
    try:
        n = int(str(text).lstrip(":"))
    except ValueError:
        raise ArgumentError(f"{what} {text!r}: expected a number of phases 2..{MAX_PHASES}") from None
    if not 2 <= n <= MAX_PHASES:
        raise ArgumentError(f"{what} {text!r}: the number of phases must be 2..{MAX_PHASES}")
    return n

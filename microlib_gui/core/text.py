"""Text entering the library: valid Unicode, in NFC, without control characters.

Everything the library stores must be writable again to a UTF-8 file (an
export) and printable on a terminal. JSON allows strings that are not: a
``"\\udc80"`` escape decodes to a lone surrogate, which no UTF-8 file can hold.
Every key, name and value entering the library passes :func:`clean_value`
(the store's JSON columns are written through it), so what was accepted can
always be exported again.

The rules:

- a lone surrogate (U+D800..U+DFFF) is refused;
- a control character (Unicode category Cc) is refused, except tab, newline and
  carriage return inside values (a long description has lines);
- text is normalised to NFC, so ``"é"`` typed two ways is one key; two keys of one
  object that become the same text are refused;
- numbers are finite (JSON has no NaN), values are JSON's own types, nested at most
  :data:`MAX_DEPTH` levels.

``lossy=True`` is for text the program gathers itself (file names from the
disk, which may hold undecodable bytes; run parameters): what would be refused
becomes U+FFFD instead (a number that is not finite becomes null).
"""

from __future__ import annotations

import json
import math
import numbers
import unicodedata
from typing import Any

from .errors import MicrolibError, StoreError

REPLACEMENT = "\ufffd"
MAX_DEPTH = 64  # no annotation or metadata value is nested deeper (as user JSON, core.userjson)
_VALUE_CONTROLS_OK = frozenset("\t\n\r")
_ENCODER = json.JSONEncoder(allow_nan=False)  # made once: json.dumps with options builds one per call


def show(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message: surrogates and control characters as ``\\uXXXX`` escapes."""
    out = []
    for ch in text[:limit]:
        cp = ord(ch)
        out.append(f"\\u{cp:04x}" if 0xD800 <= cp <= 0xDFFF or unicodedata.category(ch) == "Cc" else ch)
    return "'" + "".join(out) + ("…" if len(text) > limit else "") + "'"


class _Bad(Exception):
    """A value refused: the reason, and the keys leading to it (added on the way out)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason, self.path = reason, []

    def message(self, what: str) -> str:
        where = "".join(f": {show(k, 30)}" for k in reversed(self.path))
        return f"{what}{where}: {self.reason}"


def _text(text: str, key: bool, lossy: bool) -> str:
    if text.isascii() and text.isprintable():
        return text  # the common case, nothing to look at
    out = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            bad = "is not valid Unicode text (a lone surrogate U+%04X at character %d)" % (cp, i + 1)
        elif unicodedata.category(ch) == "Cc" and (key or ch not in _VALUE_CONTROLS_OK):
            bad = "holds a control character (U+%04X at character %d)" % (cp, i + 1)
        else:
            out.append(ch)
            continue
        if not lossy:
            raise _Bad(f"{'key ' if key else ''}{show(text)} {bad}")
        out.append(REPLACEMENT)
    return unicodedata.normalize("NFC", "".join(out))


def _value(value: Any, lossy: bool, depth: int) -> Any:
    t = type(value)
    if t is str:
        return value if value.isascii() and value.isprintable() else _text(value, False, lossy)
    if t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        if lossy:
            return None
        raise _Bad(f"{value} is not a finite number (JSON has no NaN or infinity)")
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        raise _Bad(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Bad(f"key {k!r} is not text")
            ck = k if k.isascii() and k.isprintable() else _text(k, True, lossy)
            if ck in out:
                raise _Bad(f"two keys are the same text {show(ck)} (written in two ways)")
            try:
                out[ck] = _value(v, lossy, depth + 1)
            except _Bad as bad:
                bad.path.append(ck)
                raise
        return out
    if isinstance(value, (list, tuple)):
        return [_value(v, lossy, depth + 1) for v in value]
    # subclasses and numpy's scalars, as the plain values they stand for
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return _value(str(value), lossy, depth)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _value(float(value), lossy, depth)
    raise _Bad(f"a {t.__name__} is not a JSON value")


def plain_json(value: Any) -> str | None:
    """``value``'s JSON text when it is all printable ASCII (nothing to clean: the fast path), else None.

    ``json.dumps`` escapes every non-ASCII and control character with a backslash
    (and leaves DEL as it is), so its output without either holds no text that
    :func:`clean_value` would change; at most :data:`MAX_DEPTH` brackets bound the
    nesting. Keys must be checked to be text by the caller (``json.dumps`` writes
    an int key as text).
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        return None
    if "\\" in text or "\x7f" in text or text.count("[") + text.count("{") > MAX_DEPTH:
        return None
    return text


def clean_text(text: str, what: str, *, key: bool = False, lossy: bool = False,
               error: type[MicrolibError] = StoreError) -> str:
    """``text`` checked and in NFC, or ``error`` naming ``what`` and the first bad character.

    ``key``: a key or name (no control character at all); else a value.
    """
    if not isinstance(text, str):
        raise error(f"{what}: expected text, got {type(text).__name__}")
    try:
        return _text(text, key, lossy)
    except _Bad as bad:
        raise error(f"{what} {bad.reason}") from None


def clean_value(value: Any, what: str, *, lossy: bool = False, error: type[MicrolibError] = StoreError) -> Any:
    """A JSON-like value (objects, lists, text, numbers) with every key and text cleaned.

    Returns a copy; ``what`` names the value in messages (``"annotations of
    microstructure012"``), followed by the keys leading to a bad value.
    """
    try:
        return _value(value, lossy, 0)
    except _Bad as bad:
        raise error(bad.message(what)) from None

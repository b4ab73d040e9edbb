"""JSON written by users (annotation files, ``data_anns.json``, option values): one-line errors, bounded nesting.

``json.loads`` of a document nested 200,000 levels deep raises ``RecursionError``
(not a ``ValueError``), and one nested just under Python's recursion limit parses
but breaks whatever walks it afterwards (``json.dumps`` when the store saves it,
a deeper call stack reading it again). :func:`loads` turns both into the
caller's one-line error: nothing a user can send is deeper than
:data:`MAX_DEPTH` levels past this point. MicroLib's own files are 3 or 4
levels deep.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import MicrolibError

#: Deepest nesting of arrays and objects accepted in a user's JSON.
MAX_DEPTH = 64


def depth(obj: Any) -> int:
    """How deeply ``obj`` nests lists and dicts (a scalar: 0), without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in item if isinstance(v, (list, dict)))
    return deepest


def loads(text: str | bytes, name: str, error: type[MicrolibError] = MicrolibError,
          max_depth: int = MAX_DEPTH) -> Any:
    """Parse a user's JSON; malformed or too deeply nested → ``error`` naming ``name``.

    Parameters
    ----------
    text : the document
    name : what it is, for the message (a file name, ``--param x.y``)
    error : the MicrolibError subclass raised
    max_depth : deepest nesting accepted
    """
    too_deep = f"{name}: not accepted: JSON nested more than {max_depth} levels deep"
    try:
        obj = json.loads(text)
    except RecursionError:
        raise error(too_deep) from None
    except json.JSONDecodeError as exc:
        raise error(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{name}: not valid JSON ({exc})") from None
    if depth(obj) > max_depth:
        raise error(too_deep)
    return obj

"""One SQLite transaction per ``with`` block, for the library store and the DoITPoMS index."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def transaction(path: Path, fail: Callable[[str, Exception], Exception],
                pragmas: tuple[str, ...] = (), *, uri: str | None = None,
                begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error.

    ``fail(stage, exc)`` builds the one-line error raised when the database cannot
    be opened (``stage="open"``) or fails during the block (``stage="use"``).
    ``uri`` opens it by an SQLite URI instead (``file:...?mode=ro``: read only), with
    ``begin="BEGIN"`` as a read-only connection cannot take the write lock.
    """
    try:
        con = sqlite3.connect(uri or path, timeout=30, isolation_level=None, uri=uri is not None)
    except sqlite3.Error as exc:
        raise fail("open", exc) from None
    try:
        con.row_factory = sqlite3.Row
        for pragma in pragmas:
            con.execute(f"PRAGMA {pragma}")
        con.execute(begin)
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise fail("use", exc) from None
    finally:
        con.close()

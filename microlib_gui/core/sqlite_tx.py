"""One SQLite transaction per ``with`` block, for the library store and the DoITPoMS index."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def transaction(path: Path, fail: Callable[[str, Exception], Exception],
                pragmas: tuple[str, ...] = ()) -> Iterator[sqlite3.Connection]:
    """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error.

    ``fail(stage, exc)`` builds the one-line error raised when the database cannot
    be opened (``stage="open"``) or fails during the block (``stage="use"``).
    """
    try:
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise fail("open", exc) from None
    try:
        con.row_factory = sqlite3.Row
        for pragma in pragmas:
            con.execute(f"PRAGMA {pragma}")
        con.execute("BEGIN IMMEDIATE")
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

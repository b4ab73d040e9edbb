"""The library database: schema and migrations, one connection per transaction, change detection.

SQLite in WAL mode with every change in a transaction: a process killed at any
moment leaves a database that passes ``PRAGMA integrity_check`` and keeps
everything committed before the kill.

Every JSON column is written by :func:`to_json`, which passes every key and text
through :func:`~microlib_gui.core.text.clean_value` (valid Unicode, NFC, no
control characters): what the library holds can always be exported again.
Every JSON column is read by :func:`from_json`, which names the row of a value
that is not JSON (a database edited by hand) instead of failing deep inside.

A library opened ``readonly`` (the CLI's reading commands) is opened with
``mode=ro``; on a read-only disk where SQLite cannot make its shared-memory
file, as ``immutable`` (nobody can change it there).
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..sqlite_tx import transaction
from ..text import clean_value, plain_json, show

DB_NAME = "library.sqlite"

_MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        doitpoms_id INTEGER UNIQUE,
        metadata TEXT NOT NULL DEFAULT '{}',
        excluded INTEGER NOT NULL DEFAULT 0,
        exclusion_reason TEXT,
        exclusion_note TEXT,
        ann_version INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE step_status (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (entry_id, step)
    );
    CREATE TABLE annotations (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (entry_id, version)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_id INTEGER REFERENCES entries(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        seed INTEGER,
        status TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        timings TEXT NOT NULL DEFAULT '{}',
        files TEXT NOT NULL DEFAULT '[]',
        log TEXT,
        message TEXT
    );
    CREATE TABLE provenance (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        produced_by TEXT NOT NULL,
        run_id INTEGER,
        inputs TEXT NOT NULL DEFAULT '[]',
        params TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        PRIMARY KEY (entry_id, file)
    );
    CREATE TABLE pending_annotations (
        doitpoms_id INTEGER PRIMARY KEY,
        data TEXT NOT NULL,
        source_file TEXT,
        created REAL NOT NULL
    );
    """,
    # version 2: the library's own identity (export folders name it) and run numbers per entry
    """
    CREATE TABLE library_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE runs ADD COLUMN number INTEGER;
    UPDATE runs SET number = (SELECT COUNT(*) FROM runs r2 WHERE r2.entry_id IS runs.entry_id
                              AND r2.kind = runs.kind AND r2.id <= runs.id);
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


MAX_ID = 2**63 - 1  # SQLite's largest INTEGER


def entry_key(entry_id: Any) -> int:
    """``entry_id`` as the database holds it, or :class:`StoreError` ("no entry ...").

    Every method taking an entry id goes through this: an int (numpy's too) or a
    text of ASCII digits, in 1..2**63-1 (SQLite's integers), so an id like
    ``99999999999999999999`` or ``"²"`` (a digit to ``str.isdigit``) is one clear
    line, not an overflow deep in SQLite.
    """
    if isinstance(entry_id, str):
        text = entry_id.strip()
        value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    elif isinstance(entry_id, bool):
        value = None
    else:
        try:
            value = operator.index(entry_id)
        except TypeError:
            value = None
    if value is None or not 0 < value <= MAX_ID:
        shown = show(entry_id) if isinstance(entry_id, str) else str(entry_id)[:40]
        raise StoreError(f"no entry {shown} in this library")
    return value


def to_json(value: Any, what: str, *, lossy: bool = False) -> str:
    """``value`` as the JSON text of a column, its keys and text cleaned first (:mod:`..text`)."""
    text = plain_json(value)
    return text if text is not None else json.dumps(clean_value(value, what, lossy=lossy), allow_nan=False)


def from_json(text: str | None, what: str, kind: type = dict) -> Any:
    """The value of a JSON column, checked to be a ``kind``; :class:`StoreError` naming ``what`` if not."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise StoreError(f"{DB_NAME}: {what} is not valid JSON (was the database edited by hand?)") from None
    if not isinstance(value, kind):
        raise StoreError(f"{DB_NAME}: {what} is not a JSON {'object' if kind is dict else 'list'}")
    return value


def _read_only_disk(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs (Windows)
        return False


def read_only_reason(root: Path) -> str | None:
    """Why a library at ``root`` cannot be written (None: it can)."""
    if _read_only_disk(root):
        return "is on a read-only disk"
    db = root / DB_NAME
    if not os.access(root, os.W_OK | os.X_OK) or (db.exists() and not os.access(db, os.W_OK)):
        return "is not writable by you"
    return None


class ChangeWatcher:
    """Tells whether the library database was committed to since the last :meth:`changed` call.

    Holds one read connection and asks SQLite's ``PRAGMA data_version``, which
    changes when any other connection commits: every write of the app goes
    through its own connection, so every write is seen, whoever made it.
    """

    def __init__(self, db_path: Path, uri: str | None = None):
        self._con = sqlite3.connect(uri or db_path, check_same_thread=False, uri=uri is not None)
        self._version = self._read()

    def _read(self) -> int | None:
        try:
            return self._con.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None

    def changed(self) -> bool:
        v = self._read()
        if v == self._version:
            return False
        self._version = v
        return True

    def close(self) -> None:
        self._con.close()


class DatabaseMixin:
    """The connection, the schema, the library's identity and change detection."""

    root: Path
    readonly: bool = False
    _uri: str | None = None  # an SQLite URI when opened read-only

    # -- connection -------------------------------------------------------
    def _db(self):
        """A connection in a transaction: committed on success, rolled back on error."""
        def fail(stage: str, exc: Exception) -> StoreError:
            if stage == "open":
                return StoreError(f"cannot open {self.root / DB_NAME}: {exc}")
            if self.readonly and "readonly" in str(exc):
                return StoreError(f"{self.root} is open read-only: nothing can be changed")
            return StoreError(f"library database error: {exc}")

        if self._uri is not None:
            return transaction(self.root / DB_NAME, fail, ("busy_timeout = 30000",), uri=self._uri, begin="BEGIN")
        return transaction(self.root / DB_NAME, fail, ("foreign_keys = ON", "busy_timeout = 30000"))

    def _open_readonly(self) -> None:
        """Open for reading only: nothing is created, migrated or cleaned up."""
        db = self.root / DB_NAME
        base = db.as_uri() + "?mode=ro"
        for uri in (base, base + "&immutable=1"):
            try:
                con = sqlite3.connect(uri, uri=True, timeout=30)
                try:
                    version = con.execute("PRAGMA user_version").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.OperationalError:
                # No shared-memory file and none can be made (a read-only disk). Immutable
                # reads the main file only, so only when no write-ahead log holds changes.
                wal = db.with_name(DB_NAME + "-wal")
                if uri is base and not (wal.exists() and wal.stat().st_size > 0):
                    continue
                raise StoreError(f"{db} cannot be read here: its latest changes are in {wal.name}, which "
                                 "SQLite cannot read on a read-only disk; open it once where it can be written"
                                 ) from None
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{db} is not a valid library database: {exc}") from None
            break
        if version > SCHEMA_VERSION:
            raise StoreError(f"library schema version {version} is newer than this app supports "
                             f"({SCHEMA_VERSION}); update MicroLib Studio")
        if version < SCHEMA_VERSION:
            raise StoreError(f"library schema version {version} is older than this app's ({SCHEMA_VERSION}): "
                             "open it once where it can be written (any command that changes it) to update it")
        self.readonly, self._uri = True, uri

    def _migrate(self) -> None:
        try:
            con = sqlite3.connect(self.root / DB_NAME, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.root / DB_NAME}: {exc}") from None
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"library schema version {version} is newer than this app supports ({SCHEMA_VERSION}); "
                    "update MicroLib Studio"
                )
            for v in range(version, SCHEMA_VERSION):
                con.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _MIGRATIONS[v].split(";"):
                        if stmt.strip():
                            con.execute(stmt)
                    con.execute(f"PRAGMA user_version = {v + 1}")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            if version < SCHEMA_VERSION or not con.execute(
                    "SELECT 1 FROM library_info WHERE key = 'uuid'").fetchone():
                import uuid

                con.execute("INSERT OR IGNORE INTO library_info (key, value) VALUES ('uuid', ?)", (uuid.uuid4().hex,))
        except sqlite3.DatabaseError as exc:
            why = read_only_reason(self.root)
            if why is not None:
                raise StoreError(f"{self.root} {why}: this needs to change the library; reading commands "
                                 "(microlib library list, show, export) open it read-only") from None
            raise StoreError(f"{self.root / DB_NAME} is not a valid library database: {exc}") from None
        finally:
            con.close()

    @property
    def uuid(self) -> str:
        """This library's identity (random, made when it was created): exports record it."""
        with self._db() as con:
            return con.execute("SELECT value FROM library_info WHERE key = 'uuid'").fetchone()[0]

    @property
    def schema_version(self) -> int:
        with self._db() as con:
            return con.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result ('ok' when healthy)."""
        with self._db() as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0]

    # -- change detection (the GUI's live entry model) ---------------------------------
    def entry_signature(self, entry_id: int) -> tuple | None:
        """A value that changes whenever anything recorded about the entry does (None: no such entry)."""
        with self._db() as con:
            row = con.execute(
                "SELECT e.updated, e.ann_version, e.metadata, e.excluded, e.exclusion_reason, "
                "(SELECT group_concat(step || '=' || status, ',') FROM step_status WHERE entry_id = e.id), "
                "(SELECT COUNT(*) || ':' || COALESCE(MAX(created), 0) FROM provenance WHERE entry_id = e.id), "
                "(SELECT group_concat(id || status || COALESCE(finished, ''), ',') FROM runs WHERE entry_id = e.id) "
                "FROM entries e WHERE e.id = ?", (entry_key(entry_id),)).fetchone()
        return None if row is None else tuple(row)

    def entries_signature(self) -> tuple:
        """A value that changes when entries are added, removed, renamed or (un)excluded."""
        with self._db() as con:
            return tuple(con.execute("SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(id * (excluded + 1)), 0), "
                                     "group_concat(json_extract(metadata, '$.brief_descr'), '|') FROM entries"
                                     ).fetchone())

    def watch(self) -> ChangeWatcher:
        """A cheap check for commits by anyone (this process, the build, the CLI) since the last check."""
        return ChangeWatcher(self.root / DB_NAME, self._uri)


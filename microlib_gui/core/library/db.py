"""The library database: schema and migrations, one connection per transaction, change detection.

SQLite in WAL mode with every change in a transaction: a process killed at any
moment leaves a database that passes ``PRAGMA integrity_check`` and keeps
everything committed before the kill.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreError
from ..sqlite_tx import transaction

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


class ChangeWatcher:
    """Tells whether the library database was committed to since the last :meth:`changed` call.

    Holds one read connection and asks SQLite's ``PRAGMA data_version``, which
    changes when any other connection commits: every write of the app goes
    through its own connection, so every write is seen, whoever made it.
    """

    def __init__(self, db_path: Path):
        self._con = sqlite3.connect(db_path, check_same_thread=False)
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

    # -- connection -------------------------------------------------------
    def _db(self):
        """A connection in a transaction: committed on success, rolled back on error."""
        def fail(stage: str, exc: Exception) -> StoreError:
            if stage == "open":
                return StoreError(f"cannot open {self.root / DB_NAME}: {exc}")
            return StoreError(f"library database error: {exc}")

        return transaction(self.root / DB_NAME, fail, ("foreign_keys = ON", "busy_timeout = 30000"))

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
        con = sqlite3.connect(self.root / DB_NAME)
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()


    # -- change detection (the GUI's live entry model) ---------------------------------
    def entry_signature(self, entry_id: int) -> tuple | None:
        """A value that changes whenever anything recorded about the entry does (None: no such entry)."""
        with self._db() as con:
            row = con.execute(
                "SELECT e.updated, e.ann_version, e.metadata, e.excluded, e.exclusion_reason, "
                "(SELECT group_concat(step || '=' || status, ',') FROM step_status WHERE entry_id = e.id), "
                "(SELECT COUNT(*) || ':' || COALESCE(MAX(created), 0) FROM provenance WHERE entry_id = e.id), "
                "(SELECT group_concat(id || status || COALESCE(finished, ''), ',') FROM runs WHERE entry_id = e.id) "
                "FROM entries e WHERE e.id = ?", (int(entry_id),)).fetchone()
        return None if row is None else tuple(row)

    def entries_signature(self) -> tuple:
        """A value that changes when entries are added, removed, renamed or (un)excluded."""
        with self._db() as con:
            return tuple(con.execute("SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(id * (excluded + 1)), 0), "
                                     "group_concat(json_extract(metadata, '$.brief_descr'), '|') FROM entries"
                                     ).fetchone())

    def watch(self) -> ChangeWatcher:
        """A cheap check for commits by anyone (this process, the build, the CLI) since the last check."""
        return ChangeWatcher(self.root / DB_NAME)


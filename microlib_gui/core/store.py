"""The library store: one folder holding ``library.sqlite`` and one folder per entry.

Layout (MicroLib's dataset layout)::

    LIBRARY/
      library.sqlite                 entries, annotations, runs, provenance
      microstructure001/
        microstructure001_original.png
        microstructure001_inpainted.png
        microstructure001.tif
        microstructure001_Gen.pt, _params.data, ...

Consistency: SQLite in WAL mode with every change in a transaction; every file
written to a temporary name and renamed when complete (:mod:`.atomic`). A process
killed at any moment leaves a library that passes ``PRAGMA integrity_check`` and
keeps everything committed before the kill.

Entry ids are the number in the folder name: a DoITPoMS micrograph keeps its
DoITPoMS id (``microstructure001`` is DoITPoMS micrograph 1, as in MicroLib);
local and demo entries get numbers from :data:`LOCAL_ID_START` up so they never
collide with DoITPoMS ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_path, atomic_write_bytes, atomic_write_json, clean_stale_temps
from .errors import ImageError, StoreError
from .sqlite_tx import transaction
from .steps import DONE, STALE, STEPS, TODO

DB_NAME = "library.sqlite"
LOCAL_ID_START = 10001
SOURCES = ("doitpoms", "local", "demo")

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


@dataclass
class Entry:
    """One micrograph in the library (a row of ``entries`` plus its step statuses)."""

    id: int
    name: str
    source: str
    doitpoms_id: int | None
    metadata: dict[str, Any]
    excluded: bool
    exclusion_reason: str | None
    exclusion_note: str | None
    steps: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        descr = self.metadata.get("brief_descr") or self.metadata.get("title") or ""
        return f"{self.name} — {descr}" if descr else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "doitpoms_id": self.doitpoms_id,
            "metadata": self.metadata,
            "excluded": self.excluded,
            "exclusion_reason": self.exclusion_reason,
            "exclusion_note": self.exclusion_note,
            "steps": self.steps,
        }


@dataclass
class StagedFile:
    """A file a step writes into its entry (see :meth:`Library.complete_step`).

    Give ``data`` (bytes) or ``writer``, a callable writing the file at the path it is given.
    ``inputs`` are suffixes of the entry files it was made from (provenance).
    """

    suffix: str
    data: bytes | None = None
    writer: Any = None
    inputs: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    produced_by: str | None = None
    run_id: int | None = None


@dataclass
class StepChange:
    """What a step's save changed: the annotations now current, the keys and files that
    differ, and the steps it made stale."""

    step: str | None
    annotations: dict[str, Any]
    ann_changed: set[str]
    files_changed: set[str]
    stale: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.ann_changed or self.files_changed or self.stale)


def _stage(target: Path, f: StagedFile) -> Path:
    """Write ``f`` to a temporary file beside ``target`` (fsynced) and return its path."""
    import tempfile

    from .atomic import _fsync_file

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + target.stem + "-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        if f.writer is not None:
            f.writer(tmp_path)
        elif f.data is not None:
            tmp_path.write_bytes(f.data)
        else:
            raise ValueError("a staged file needs data or a writer")
        _fsync_file(tmp_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path


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


def entry_name(entry_id: int) -> str:
    return f"microstructure{entry_id:03d}"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Library:
    """A library folder. Cheap to create; every method opens its own connection,
    so one ``Library`` may be used from several threads and processes at once."""

    def __init__(self, root: str | os.PathLike, create: bool = True):
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a library folder")
        if not (self.root / DB_NAME).exists():
            if not create:
                raise StoreError(f"{self.root} is not a MicroLib Studio library (no {DB_NAME})")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create library folder {self.root}: {exc.strerror}") from None
        self._migrate()
        clean_stale_temps(self.root)

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

    # -- entries ----------------------------------------------------------
    def entry_dir(self, entry_id: int) -> Path:
        return self.root / entry_name(int(entry_id))

    def entry_file(self, entry_id: int, suffix: str) -> Path:
        """Path of ``microstructureNNN<suffix>``, e.g. suffix ``"_original.png"`` or ``".tif"``."""
        if "/" in suffix or "\\" in suffix or ".." in suffix:
            raise StoreError(f"invalid file suffix {suffix!r}")
        return self.entry_dir(entry_id) / (entry_name(int(entry_id)) + suffix)

    def add_entry(
        self,
        original: bytes | str | os.PathLike,
        source: str = "local",
        doitpoms_id: int | None = None,
        metadata: dict[str, Any] | None = None,
        entry_id: int | None = None,
    ) -> Entry:
        """Add a micrograph. ``original`` is the raw file (bytes or path), stored untouched.

        The image is validated first (:func:`~.images.load_image_bytes`), so a bad
        file raises :class:`ImageError` and nothing is written.
        """
        from .images import load_image_bytes

        if source not in SOURCES:
            raise StoreError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
        if doitpoms_id is not None and not (isinstance(doitpoms_id, int) and 0 < doitpoms_id < LOCAL_ID_START):
            raise StoreError(f"DoITPoMS id {doitpoms_id!r} is out of range (1..{LOCAL_ID_START - 1})")
        if entry_id is not None and not (isinstance(entry_id, int) and 0 < entry_id < 10**7):
            raise StoreError(f"entry id {entry_id!r} is out of range")
        if isinstance(original, (str, os.PathLike)):
            p = Path(original)
            try:
                raw = p.read_bytes()
            except FileNotFoundError:
                raise ImageError(f"{p.name}: no such file") from None
            except OSError as exc:
                raise ImageError(f"{p.name}: cannot be read ({exc.strerror or exc})") from None
            src_name = p.name
        else:
            raw = bytes(original)
            src_name = None  # bytes from a download or the demo catalog: no file name to keep
        img = load_image_bytes(raw, name=src_name or "image")
        meta = dict(metadata or {})
        if src_name:
            meta.setdefault("original_filename", src_name)
        meta.setdefault("width", int(img.shape[1]))
        meta.setdefault("height", int(img.shape[0]))
        meta.setdefault("image_kind", img.kind)
        meta.setdefault("source_format", img.source_format)
        ext = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}[img.source_format]
        now = time.time()
        with self._db() as con:
            if doitpoms_id is not None:
                row = con.execute("SELECT id FROM entries WHERE doitpoms_id = ?", (int(doitpoms_id),)).fetchone()
                if row:
                    raise StoreError(f"DoITPoMS micrograph {doitpoms_id} is already entry {entry_name(row['id'])}")
                entry_id = int(doitpoms_id)
            if entry_id is None:
                row = con.execute("SELECT MAX(id) FROM entries WHERE id >= ?", (LOCAL_ID_START,)).fetchone()
                entry_id = max(LOCAL_ID_START, (row[0] or 0) + 1)
            elif con.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone():
                raise StoreError(f"entry {entry_name(entry_id)} already exists")
            meta["original_file"] = entry_name(entry_id) + "_original" + ext
            # File first (atomic), then the row: a kill between leaves an orphan file,
            # never a row pointing at a missing file.
            target = self.entry_file(entry_id, "_original" + ext)
            atomic_write_bytes(target, raw)
            con.execute(
                "INSERT INTO entries (id, name, source, doitpoms_id, metadata, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry_id, entry_name(entry_id), source, doitpoms_id, json.dumps(meta), now, now),
            )
            con.executemany(
                "INSERT INTO step_status (entry_id, step, status, updated) VALUES (?, ?, ?, ?)",
                [(entry_id, s, DONE if s == "browse" else TODO, now) for s in STEPS],
            )
            self._record_provenance(con, entry_id, target, "import", inputs=[], params={"source": source})
        if doitpoms_id is not None:
            self.apply_pending_annotations(entry_id)
        return self.get_entry(entry_id)

    def get_entry(self, entry_id: int) -> Entry:
        with self._db() as con:
            row = con.execute("SELECT * FROM entries WHERE id = ?", (int(entry_id),)).fetchone()
            if row is None:
                raise StoreError(f"no entry {entry_id} in this library")
            steps = {
                r["step"]: r["status"]
                for r in con.execute("SELECT step, status FROM step_status WHERE entry_id = ?", (row["id"],))
            }
        return self._entry_from_row(row, steps)

    def find_entry(self, key: str | int) -> Entry:
        """Look an entry up by id (``12``), name (``microstructure012``) or ``doitpoms:12``."""
        text = str(key).strip()
        if text.startswith("microstructure") and text[len("microstructure"):].isdigit():
            return self.get_entry(int(text[len("microstructure"):]))
        if text.startswith("doitpoms:") and text[9:].isdigit():
            with self._db() as con:
                row = con.execute("SELECT id FROM entries WHERE doitpoms_id = ?", (int(text[9:]),)).fetchone()
            if row is None:
                raise StoreError(f"no entry for DoITPoMS micrograph {text[9:]}")
            return self.get_entry(row["id"])
        if text.isdigit():
            return self.get_entry(int(text))
        raise StoreError(f"{text!r} is not an entry id or name")

    def list_entries(self, include_excluded: bool = True) -> list[Entry]:
        with self._db() as con:
            rows = con.execute("SELECT * FROM entries ORDER BY id").fetchall()
            statuses: dict[int, dict[str, str]] = {}
            for r in con.execute("SELECT entry_id, step, status FROM step_status"):
                statuses.setdefault(r["entry_id"], {})[r["step"]] = r["status"]
        out = [self._entry_from_row(r, statuses.get(r["id"], {})) for r in rows]
        return [e for e in out if include_excluded or not e.excluded]

    @staticmethod
    def _entry_from_row(row: sqlite3.Row, steps: dict[str, str]) -> Entry:
        return Entry(
            id=row["id"],
            name=row["name"],
            source=row["source"],
            doitpoms_id=row["doitpoms_id"],
            metadata=json.loads(row["metadata"]),
            excluded=bool(row["excluded"]),
            exclusion_reason=row["exclusion_reason"],
            exclusion_note=row["exclusion_note"],
            steps={s: steps.get(s, TODO) for s in STEPS},
        )

    def update_metadata(self, entry_id: int, changes: dict[str, Any]) -> Entry:
        with self._db() as con:
            row = con.execute("SELECT metadata FROM entries WHERE id = ?", (int(entry_id),)).fetchone()
            if row is None:
                raise StoreError(f"no entry {entry_id} in this library")
            meta = json.loads(row["metadata"])
            meta.update(changes)
            con.execute(
                "UPDATE entries SET metadata = ?, updated = ? WHERE id = ?", (json.dumps(meta), time.time(), entry_id)
            )
        return self.get_entry(entry_id)

    def set_excluded(self, entry_id: int, reason: str | None, note: str = "") -> Entry:
        """Exclude an entry for one of MicroLib's reasons (``reason=None`` includes it again)."""
        from .steps import EXCLUSION_REASONS

        if reason is not None and reason not in EXCLUSION_REASONS:
            raise StoreError(f"unknown exclusion reason {reason!r} (one of: {', '.join(EXCLUSION_REASONS)})")
        with self._db() as con:
            cur = con.execute(
                "UPDATE entries SET excluded = ?, exclusion_reason = ?, exclusion_note = ?, updated = ? WHERE id = ?",
                (int(reason is not None), reason, note or None, time.time(), int(entry_id)),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no entry {entry_id} in this library")
        return self.get_entry(entry_id)

    def set_step_status(self, entry_id: int, step: str, status: str) -> None:
        if step not in STEPS or status not in (TODO, DONE, STALE):
            raise StoreError(f"invalid step status {step}={status}")
        with self._db() as con:
            con.execute(
                "INSERT INTO step_status (entry_id, step, status, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(entry_id, step) DO UPDATE SET status = excluded.status, updated = excluded.updated",
                (int(entry_id), step, status, time.time()),
            )

    def mark_later_steps_stale(self, entry_id: int, step: str) -> None:
        """A change in ``step`` makes every done step after it stale."""
        later = STEPS[STEPS.index(step) + 1 :]
        with self._db() as con:
            con.executemany(
                "UPDATE step_status SET status = ?, updated = ? WHERE entry_id = ? AND step = ? AND status = ?",
                [(STALE, time.time(), int(entry_id), s, DONE) for s in later],
            )

    def delete_entry(self, entry_id: int) -> None:
        """Remove an entry's row and its folder."""
        import shutil

        with self._db() as con:
            cur = con.execute("DELETE FROM entries WHERE id = ?", (int(entry_id),))
            if cur.rowcount == 0:
                raise StoreError(f"no entry {entry_id} in this library")
        shutil.rmtree(self.entry_dir(entry_id), ignore_errors=True)

    def original_path(self, entry_id: int) -> Path:
        entry = self.get_entry(entry_id)
        return self.entry_dir(entry_id) / entry.metadata["original_file"]

    # -- annotations (one row per edit; undo/redo move a pointer) ----------
    def get_annotations(self, entry_id: int) -> dict[str, Any]:
        with self._db() as con:
            return self._current_annotations(con, int(entry_id))

    @staticmethod
    def _current_annotations(con: sqlite3.Connection, entry_id: int) -> dict[str, Any]:
        row = con.execute("SELECT ann_version FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise StoreError(f"no entry {entry_id} in this library")
        if row["ann_version"] == 0:
            return {}
        ann = con.execute(
            "SELECT data FROM annotations WHERE entry_id = ? AND version = ?", (entry_id, row["ann_version"])
        ).fetchone()
        return json.loads(ann["data"]) if ann else {}

    def set_annotations(self, entry_id: int, changes: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Record an edit: the current annotations updated with ``changes`` (or replaced).

        Values are validated (:func:`.annotations.validate_annotations`); a bad value
        raises :class:`AnnotationError` and nothing is written. Redo history past
        the current version is dropped, as in any editor.
        """
        from .annotations import validate_annotations

        entry_id = int(entry_id)
        with self._db() as con:
            current = {} if replace else self._current_annotations(con, entry_id)
            new = validate_annotations({**current, **changes})
            version = con.execute("SELECT ann_version FROM entries WHERE id = ?", (entry_id,)).fetchone()[0]
            con.execute("DELETE FROM annotations WHERE entry_id = ? AND version > ?", (entry_id, version))
            con.execute(
                "INSERT INTO annotations (entry_id, version, data, created) VALUES (?, ?, ?, ?)",
                (entry_id, version + 1, json.dumps(new), time.time()),
            )
            con.execute("UPDATE entries SET ann_version = ?, updated = ? WHERE id = ?", (version + 1, time.time(), entry_id))
        return new

    def undo_annotations(self, entry_id: int) -> dict[str, Any] | None:
        """Step back one edit; returns the annotations now current, or None if nothing to undo."""
        return self._move_annotation_pointer(int(entry_id), -1)

    def redo_annotations(self, entry_id: int) -> dict[str, Any] | None:
        return self._move_annotation_pointer(int(entry_id), +1)

    def _move_annotation_pointer(self, entry_id: int, delta: int) -> dict[str, Any] | None:
        with self._db() as con:
            version = con.execute("SELECT ann_version FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if version is None:
                raise StoreError(f"no entry {entry_id} in this library")
            target = version[0] + delta
            top = con.execute("SELECT MAX(version) FROM annotations WHERE entry_id = ?", (entry_id,)).fetchone()[0] or 0
            if target < 0 or target > top:
                return None
            con.execute("UPDATE entries SET ann_version = ? WHERE id = ?", (target, entry_id))
            return self._current_annotations(con, entry_id)

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

    def watch(self) -> "ChangeWatcher":
        """A cheap check for commits by anyone (this process, the build, the CLI) since the last check."""
        return ChangeWatcher(self.root / DB_NAME)

    # -- a step's save: one transaction ------------------------------------------
    def complete_step(
        self,
        entry_id: int,
        step: str | None,
        *,
        annotations: dict[str, Any] | None = None,
        files: list[StagedFile] | tuple[StagedFile, ...] = (),
        remove: tuple[str, ...] | list[str] = (),
        status: str | None = DONE,
        move_history: int = 0,
        run: dict[str, Any] | None = None,
    ) -> StepChange:
        """Save what one step made, in one transaction, and mark stale what depends on it.

        ``annotations`` are changes to the current annotations (validated; a
        value equal to the current one changes nothing). ``move_history`` -1/+1
        moves the undo pointer instead (Undo/Redo); the caller stages the
        files derived from the annotations it moves to. ``files`` are written
        atomically (staged first, renamed into place inside the transaction)
        with their provenance; ``remove`` names files that no longer apply.
        ``status`` is the step's new status (None: leave it). ``run`` (``kind``,
        ``params``, ``status``, ``timings``, ``files``, ``seed``) records a finished
        run in the same transaction. Done steps that
        read something that actually changed become stale, following
        :mod:`microlib_gui.core.workflow.steps`. Nothing changes when nothing
        differs, so saving the same value twice emits no event.
        """
        from .annotations import validate_annotations
        from .workflow.steps import changed_keys, stale_steps

        entry_id = int(entry_id)
        if step is not None and step not in STEPS:
            raise StoreError(f"unknown step {step!r}")
        staged: list[tuple[StagedFile, Path, Path, str]] = []
        try:
            for f in files:  # the slow part (encoding, hashing) happens before the transaction
                target = self.entry_file(entry_id, f.suffix)
                tmp = _stage(target, f)
                staged.append((f, target, tmp, sha256_file(tmp)))
            with self._db() as con:
                row = con.execute("SELECT ann_version FROM entries WHERE id = ?", (entry_id,)).fetchone()
                if row is None:
                    raise StoreError(f"no entry {entry_id} in this library")
                version = row["ann_version"]
                current = self._current_annotations(con, entry_id)
                new = current
                if move_history:
                    top = con.execute("SELECT MAX(version) FROM annotations WHERE entry_id = ?",
                                      (entry_id,)).fetchone()[0] or 0
                    target_v = version + move_history
                    if not 0 <= target_v <= top:
                        raise StoreError("nothing to " + ("undo" if move_history < 0 else "redo"))
                    con.execute("UPDATE entries SET ann_version = ? WHERE id = ?", (target_v, entry_id))
                    new = self._current_annotations(con, entry_id)
                elif annotations:
                    new = validate_annotations({**current, **annotations})
                    if changed_keys(current, new):
                        con.execute("DELETE FROM annotations WHERE entry_id = ? AND version > ?", (entry_id, version))
                        con.execute("INSERT INTO annotations (entry_id, version, data, created) VALUES (?, ?, ?, ?)",
                                    (entry_id, version + 1, json.dumps(new), time.time()))
                        con.execute("UPDATE entries SET ann_version = ? WHERE id = ?", (version + 1, entry_id))
                ann_changed = changed_keys(current, new)
                files_changed: set[str] = set()
                for f, target, tmp, sha in staged:
                    old = con.execute("SELECT sha256 FROM provenance WHERE entry_id = ? AND file = ?",
                                      (entry_id, target.name)).fetchone()
                    if target.exists() and old is not None and old["sha256"] == sha and sha256_file(target) == sha:
                        continue  # the same bytes again: nothing to write, nothing stale
                    files_changed.add(f.suffix)
                    os.replace(tmp, target)
                    self._record_provenance(con, entry_id, target, f.produced_by or step or "edit",
                                            [self.entry_file(entry_id, i) for i in f.inputs], f.params, f.run_id,
                                            sha=sha)
                for suffix in remove:
                    target = self.entry_file(entry_id, suffix)
                    if target.exists():
                        files_changed.add(suffix)
                        target.unlink()
                    con.execute("DELETE FROM provenance WHERE entry_id = ? AND file = ?", (entry_id, target.name))
                now = time.time()
                statuses = {r["step"]: r["status"] for r in
                            con.execute("SELECT step, status FROM step_status WHERE entry_id = ?", (entry_id,))}
                status_changed = False
                if step is not None and status is not None and statuses.get(step) != status:
                    if status not in (TODO, DONE, STALE):
                        raise StoreError(f"invalid step status {step}={status}")
                    con.execute(
                        "INSERT INTO step_status (entry_id, step, status, updated) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(entry_id, step) DO UPDATE SET status = excluded.status, updated = excluded.updated",
                        (entry_id, step, status, now))
                    status_changed = True
                stale = [s for s in stale_steps(step, ann_changed, files_changed) if statuses.get(s) == DONE]
                con.executemany("UPDATE step_status SET status = ?, updated = ? WHERE entry_id = ? AND step = ?",
                                [(STALE, now, entry_id, s) for s in stale])
                if run is not None:
                    number = con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id = ? AND kind = ?",
                                         (entry_id, run["kind"])).fetchone()[0]
                    con.execute(
                        "INSERT INTO runs (entry_id, kind, params, seed, status, started, finished, timings, files, "
                        "number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry_id, run["kind"], json.dumps(run.get("params") or {}), run.get("seed"),
                         run.get("status", "done"), run.get("started", now), now, json.dumps(run.get("timings") or {}),
                         json.dumps(run.get("files") or []), number))
                if ann_changed or files_changed or status_changed or stale or run is not None:
                    con.execute("UPDATE entries SET updated = ? WHERE id = ?", (now, entry_id))
        finally:
            for _f, _t, tmp, _s in staged:
                if tmp.exists():
                    tmp.unlink()
        return StepChange(step, new, ann_changed, files_changed, stale)

    def annotations_at(self, entry_id: int, move: int) -> dict[str, Any] | None:
        """The annotations Undo (-1) or Redo (+1) would make current, or None when there is nothing."""
        with self._db() as con:
            row = con.execute("SELECT ann_version FROM entries WHERE id = ?", (int(entry_id),)).fetchone()
            if row is None:
                raise StoreError(f"no entry {entry_id} in this library")
            target = row["ann_version"] + move
            if target == 0:
                has = con.execute("SELECT 1 FROM annotations WHERE entry_id = ?", (int(entry_id),)).fetchone()
                return {} if has else None
            ann = con.execute("SELECT data FROM annotations WHERE entry_id = ? AND version = ?",
                              (int(entry_id), target)).fetchone()
            return json.loads(ann["data"]) if ann else None

    # -- files and provenance ---------------------------------------------
    def write_file(
        self,
        entry_id: int,
        suffix: str,
        data: bytes | None = None,
        *,
        writer=None,
        produced_by: str,
        inputs: list[str] | None = None,
        params: dict[str, Any] | None = None,
        run_id: int | None = None,
    ) -> Path:
        """Write ``microstructureNNN<suffix>`` atomically and record its provenance.

        Give either ``data`` (bytes) or ``writer``, a callable that writes the file
        at the temporary path it is given (for numpy/tifffile/torch writers).
        ``inputs`` are suffixes of the entry files it was made from.
        """
        target = self.entry_file(entry_id, suffix)
        with atomic_path(target) as tmp:
            if writer is not None:
                writer(tmp)
            elif data is not None:
                tmp.write_bytes(data)
            else:
                raise ValueError("write_file needs data or writer")
        input_paths = [self.entry_file(entry_id, s) for s in (inputs or [])]
        with self._db() as con:
            self._record_provenance(con, int(entry_id), target, produced_by, input_paths, params or {}, run_id)
        return target

    def _record_provenance(self, con, entry_id, target: Path, produced_by, inputs, params, run_id=None,
                           sha: str | None = None) -> None:
        inputs_rec = [
            {"file": p.name, "sha256": sha256_file(p) if p.exists() else None} for p in (Path(i) for i in inputs)
        ]
        con.execute(
            "INSERT INTO provenance (entry_id, file, sha256, produced_by, run_id, inputs, params, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(entry_id, file) DO UPDATE SET "
            "sha256 = excluded.sha256, produced_by = excluded.produced_by, run_id = excluded.run_id, "
            "inputs = excluded.inputs, params = excluded.params, created = excluded.created",
            (entry_id, target.name, sha or sha256_file(target), produced_by, run_id, json.dumps(inputs_rec),
             json.dumps(params), time.time()),
        )

    def provenance(self, entry_id: int) -> list[dict[str, Any]]:
        with self._db() as con:
            rows = con.execute("SELECT * FROM provenance WHERE entry_id = ? ORDER BY created", (int(entry_id),)).fetchall()
        return [
            {**dict(r), "inputs": json.loads(r["inputs"]), "params": json.loads(r["params"])} for r in rows
        ]

    def is_stale(self, entry_id: int, file_suffix: str) -> bool:
        """True if the file is missing, changed since recorded, or made from inputs that changed."""
        target = self.entry_file(entry_id, file_suffix)
        if not target.exists():
            return True
        with self._db() as con:
            row = con.execute(
                "SELECT sha256, inputs FROM provenance WHERE entry_id = ? AND file = ?", (int(entry_id), target.name)
            ).fetchone()
        if row is None or sha256_file(target) != row["sha256"]:
            return True
        for inp in json.loads(row["inputs"]):
            p = self.entry_dir(entry_id) / inp["file"]
            if not p.exists() or sha256_file(p) != inp["sha256"]:
                return True
        return False

    # -- runs ---------------------------------------------------------------
    def start_run(self, entry_id: int | None, kind: str, params: dict[str, Any], seed: int | None = None,
                  log: str | None = None) -> int:
        """Record a run; its ``number`` counts this entry's runs of ``kind`` from 1."""
        with self._db() as con:
            number = con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id IS ? AND kind = ?",
                                 (entry_id, kind)).fetchone()[0]
            cur = con.execute(
                "INSERT INTO runs (entry_id, kind, params, seed, status, started, log, number) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, kind, json.dumps(params), seed, "running", time.time(), log, number),
            )
            return int(cur.lastrowid)

    def next_run_number(self, entry_id: int | None, kind: str) -> int:
        """The number :meth:`start_run` will give this entry's next run of ``kind``."""
        with self._db() as con:
            return con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id IS ? AND kind = ?",
                               (entry_id, kind)).fetchone()[0]

    def finish_run(self, run_id: int, status: str, timings: dict[str, float] | None = None,
                   files: list[str] | None = None, message: str | None = None) -> None:
        with self._db() as con:
            con.execute(
                "UPDATE runs SET status = ?, finished = ?, timings = ?, files = ?, message = ? WHERE id = ?",
                (status, time.time(), json.dumps(timings or {}), json.dumps(files or []), message, int(run_id)),
            )

    def reopen_run(self, run_id: int, params: dict[str, Any] | None = None) -> None:
        """Mark a stopped run running again (it is resumed in its own folder, under its own number)."""
        with self._db() as con:
            if params is not None:
                con.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(params), int(run_id)))
            con.execute("UPDATE runs SET status = 'running', finished = NULL, message = NULL WHERE id = ?",
                        (int(run_id),))

    def runs(self, entry_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM runs WHERE 1=1", []
        if entry_id is not None:
            q += " AND entry_id = ?"
            args.append(int(entry_id))
        if kind is not None:
            q += " AND kind = ?"
            args.append(kind)
        with self._db() as con:
            rows = con.execute(q + " ORDER BY id", args).fetchall()
        return [
            {**dict(r), "params": json.loads(r["params"]), "timings": json.loads(r["timings"]),
             "files": json.loads(r["files"])}
            for r in rows
        ]

    # -- import / export ------------------------------------------------------
    def export_data_anns(self, path: str | os.PathLike, entries: list[int] | None = None) -> Path:
        """Write the dataset-level ``data_anns.json`` in MicroLib's schema."""
        from .annotations import entry_to_data_anns

        chosen = [e for e in self.list_entries(include_excluded=False) if entries is None or e.id in entries]
        doc = {}
        for i, e in enumerate(chosen, start=1):
            doc[str(i)] = entry_to_data_anns(e, self.get_annotations(e.id))
        return atomic_write_json(path, doc)

    def import_data_anns(self, path: str | os.PathLike) -> int:
        """Apply a ``data_anns.json`` to entries with matching names; returns how many changed."""
        from .annotations import read_data_anns

        changed = 0
        for name, meta, data_type in read_data_anns(path):
            try:
                entry = self.find_entry(name)
            except StoreError:
                continue
            self.update_metadata(entry.id, meta)
            if data_type:
                self.set_annotations(entry.id, {"data_type": data_type})
            changed += 1
        return changed

    # -- MicroLib's per-image annotation file -------------------------------
    def import_microlib_anns(self, path: str | os.PathLike, images_dir: str | os.PathLike | None = None
                             ) -> dict[str, list[int]]:
        """Import a MicroLib annotation file (``microlib-prelabelled_anns.json`` format).

        Annotations for micrographs already in the library are applied at once.
        With ``images_dir``, micrographs found there by the file name in
        ``data_path`` are added as entries first. The rest are kept as pending and
        applied when that DoITPoMS micrograph is added later.

        Returns ``{"applied": [...], "added": [...], "pending": [...]}`` (DoITPoMS ids).
        """
        from .annotations import read_microlib_anns

        records = read_microlib_anns(path)  # validates the whole file before any write
        result: dict[str, list[int]] = {"applied": [], "added": [], "pending": []}
        existing = {e.doitpoms_id: e.id for e in self.list_entries() if e.doitpoms_id is not None}
        for did, ann in records:
            if did not in existing and images_dir is not None:
                img = Path(images_dir) / Path(ann["data_path"]).name
                if img.exists():
                    self.add_entry(img, source="doitpoms", doitpoms_id=did)
                    existing[did] = did
                    result["added"].append(did)
            if did in existing:
                self.set_annotations(existing[did], ann)
                result["applied"].append(did)
            else:
                with self._db() as con:
                    con.execute(
                        "INSERT INTO pending_annotations (doitpoms_id, data, source_file, created) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(doitpoms_id) DO UPDATE SET data = excluded.data, source_file = excluded.source_file",
                        (did, json.dumps(ann), Path(path).name, time.time()),
                    )
                result["pending"].append(did)
        return result

    def pending_annotations(self) -> dict[int, dict[str, Any]]:
        with self._db() as con:
            rows = con.execute("SELECT doitpoms_id, data FROM pending_annotations ORDER BY doitpoms_id").fetchall()
        return {r["doitpoms_id"]: json.loads(r["data"]) for r in rows}

    def apply_pending_annotations(self, entry_id: int) -> bool:
        """Apply pending imported annotations to a DoITPoMS entry; True if there were any."""
        entry = self.get_entry(entry_id)
        if entry.doitpoms_id is None:
            return False
        with self._db() as con:
            row = con.execute("SELECT data FROM pending_annotations WHERE doitpoms_id = ?",
                              (entry.doitpoms_id,)).fetchone()
        if row is None:
            return False
        self.set_annotations(entry_id, json.loads(row["data"]))
        with self._db() as con:
            con.execute("DELETE FROM pending_annotations WHERE doitpoms_id = ?", (entry.doitpoms_id,))
        return True

    def export_microlib_anns(self, path: str | os.PathLike) -> Path:
        """Write every annotated entry (and pending imports) in MicroLib's annotation format.

        Keys imported from a MicroLib file are kept; other entries are keyed by id.
        """
        from .annotations import to_microlib_ann

        doc: dict[str, Any] = {}
        rows: list[tuple[int, dict[str, Any]]] = []
        for e in self.list_entries():
            ann = self.get_annotations(e.id)
            if ann:
                ann.setdefault("data_path", e.metadata.get("original_file", ""))
                rows.append((e.doitpoms_id or e.id, ann))
        rows.extend(self.pending_annotations().items())
        for sort_id, ann in sorted(rows, key=lambda r: r[0]):
            doc[str(ann.get("microlib_key", sort_id))] = to_microlib_ann(ann)
        return atomic_write_json(path, doc)

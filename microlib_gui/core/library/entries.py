"""Entries: adding a micrograph, looking entries up, metadata, exclusion, step statuses.

Entry ids are the number in the folder name: a DoITPoMS micrograph keeps its
DoITPoMS id (``microstructure001`` is DoITPoMS micrograph 1, as in MicroLib);
local and demo entries get numbers from :data:`LOCAL_ID_START` up so they never
collide with DoITPoMS ids.

Every method taking an entry id reads it with :func:`~.db.entry_key`; every
metadata value and note is cleaned on the way in (:mod:`..text`).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import StoreError
from ..steps import DONE, STALE, STEPS, TODO
from ..text import clean_text, clean_value, show
from . import layout as L
from .db import entry_key, from_json, to_json

LOCAL_ID_START = 10001
SOURCES = ("doitpoms", "local", "demo")


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



def entry_name(entry_id: int) -> str:
    return f"microstructure{entry_id:03d}"


_KEY = re.compile(r"(?:(microstructure)|(doitpoms:))?([0-9]+)", re.ASCII)


@dataclass
class PreparedEntry:
    """A micrograph checked and ready to be added (:meth:`EntriesMixin._prepare_entry`): nothing written yet."""

    raw: bytes | None  # None: read again from ``path`` when written (checked against ``sha256``)
    source: str
    doitpoms_id: int | None
    entry_id: int | None
    metadata: dict[str, Any]
    ext: str
    name: str  # the file it came from, for messages
    path: Path | None = None
    sha256: str | None = None


class EntriesMixin:
    """Entries and their rows: add, get, find, list, metadata, exclusion, step statuses, delete."""

    root: Path

    # -- entries ----------------------------------------------------------
    def entry_dir(self, entry_id: int) -> Path:
        return self.root / entry_name(entry_key(entry_id))

    def entry_file(self, entry_id: int, suffix: str) -> Path:
        """Path of ``microstructureNNN<suffix>``, e.g. suffix ``"_original.png"`` or ``".tif"``."""
        if "/" in suffix or "\\" in suffix or ".." in suffix:
            raise StoreError(f"invalid file suffix {suffix!r}")
        return self.entry_dir(entry_id) / (entry_name(entry_key(entry_id)) + suffix)

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
        file raises :class:`ImageError` and nothing is written. Annotations imported
        earlier for this DoITPoMS micrograph are applied in the same transaction.
        """
        prepared = self._prepare_entry(original, source, doitpoms_id, metadata, entry_id)
        with self._db() as con:
            new_id = self._insert_entry(con, prepared)
        return self.get_entry(new_id)

    def _prepare_entry(self, original, source: str = "local", doitpoms_id: int | None = None,
                       metadata: dict[str, Any] | None = None, entry_id: int | None = None,
                       keep_bytes: bool = True) -> PreparedEntry:
        """Everything :meth:`add_entry` checks before writing: the image decoded, the metadata cleaned.

        ``keep_bytes=False`` (a file): keep only its hash, so checking many images first
        holds one in memory at a time; :meth:`_insert_entry` reads it again.
        """
        from ..images import load_image_bytes, read_image_file

        if source not in SOURCES:
            raise StoreError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
        if doitpoms_id is not None and not (isinstance(doitpoms_id, int) and 0 < doitpoms_id < LOCAL_ID_START):
            raise StoreError(f"DoITPoMS id {doitpoms_id!r} is out of range (1..{LOCAL_ID_START - 1})")
        if entry_id is not None and not (isinstance(entry_id, int) and 0 < entry_id < 10**7):
            raise StoreError(f"entry id {entry_id!r} is out of range")
        meta = clean_value(dict(metadata or {}), "metadata")
        if isinstance(original, (str, os.PathLike)):
            p = Path(original)
            raw = read_image_file(p)
            # a file name is kept as a note: undecodable bytes in it are shown as U+FFFD
            src_name = clean_text(p.name, "file name", key=True, lossy=True)
        else:
            raw = bytes(original)
            src_name = None  # bytes from a download or the demo catalog: no file name to keep
        img = load_image_bytes(raw, name=src_name or "image")
        if src_name:
            meta.setdefault("original_filename", src_name)
        meta.setdefault("width", int(img.shape[1]))
        meta.setdefault("height", int(img.shape[0]))
        meta.setdefault("image_kind", img.kind)
        meta.setdefault("source_format", img.source_format)
        ext = L.ORIGINAL_EXT[img.source_format]
        if not keep_bytes and isinstance(original, (str, os.PathLike)):
            return PreparedEntry(None, source, doitpoms_id, entry_id, meta, ext, src_name or "image",
                                 Path(original), hashlib.sha256(raw).hexdigest())
        return PreparedEntry(raw, source, doitpoms_id, entry_id, meta, ext, src_name or "image")

    def _insert_entry(self, con: sqlite3.Connection, p: PreparedEntry) -> int:
        """Write a prepared entry's original and its rows in the open transaction; returns its id.

        The file is written first (atomic), then the rows: a kill between leaves an
        orphan file, never a row pointing at a missing file.
        """
        entry_id = p.entry_id
        if p.doitpoms_id is not None:
            row = con.execute("SELECT id FROM entries WHERE doitpoms_id = ?", (p.doitpoms_id,)).fetchone()
            if row:
                raise StoreError(f"DoITPoMS micrograph {p.doitpoms_id} is already entry {entry_name(row['id'])}")
            entry_id = p.doitpoms_id
        if entry_id is None:
            row = con.execute("SELECT MAX(id) FROM entries WHERE id >= ?", (LOCAL_ID_START,)).fetchone()
            entry_id = max(LOCAL_ID_START, (row[0] or 0) + 1)
        elif con.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone():
            raise StoreError(f"entry {entry_name(entry_id)} already exists")
        meta = {**p.metadata, "original_file": entry_name(entry_id) + "_original" + p.ext}
        now = time.time()
        raw = p.raw
        if raw is None:
            from ..images import read_image_file

            raw = read_image_file(p.path)
            if hashlib.sha256(raw).hexdigest() != p.sha256:
                raise StoreError(f"{p.name} changed while it was being imported: nothing was imported")
        target = self.entry_file(entry_id, "_original" + p.ext)
        atomic_write_bytes(target, raw)
        con.execute(
            "INSERT INTO entries (id, name, source, doitpoms_id, metadata, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry_id, entry_name(entry_id), p.source, p.doitpoms_id, to_json(meta, "metadata"), now, now),
        )
        con.executemany(
            "INSERT INTO step_status (entry_id, step, status, updated) VALUES (?, ?, ?, ?)",
            [(entry_id, s, DONE if s == "browse" else TODO, now) for s in STEPS],
        )
        self._record_provenance(con, entry_id, target, "import", inputs=[], params={"source": p.source})
        if p.doitpoms_id is not None:
            self._apply_pending(con, entry_id, p.doitpoms_id)
        return entry_id

    def get_entry(self, entry_id: int) -> Entry:
        entry_id = entry_key(entry_id)
        with self._db() as con:
            row = con.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise StoreError(f"no entry {entry_id} in this library")
            steps = {
                r["step"]: r["status"]
                for r in con.execute("SELECT step, status FROM step_status WHERE entry_id = ?", (row["id"],))
            }
        return self._entry_from_row(row, steps)

    def find_entry(self, key: str | int) -> Entry:
        """Look an entry up by id (``12``), name (``microstructure012``) or ``doitpoms:12``.

        ASCII digits only: ``"²"`` is a digit to ``str.isdigit`` but names nothing.
        """
        if not isinstance(key, str):
            return self.get_entry(key)
        text = key.strip()
        m = _KEY.fullmatch(text)
        if m is None:
            raise StoreError(f"{show(text)} is not an entry id or name (an id, microstructureNNN or doitpoms:N)")
        if m.group(2):
            did = m.group(3)
            if len(did) <= 12:
                with self._db() as con:
                    row = con.execute("SELECT id FROM entries WHERE doitpoms_id = ?", (int(did),)).fetchone()
                if row is not None:
                    return self.get_entry(row["id"])
            raise StoreError(f"no entry for DoITPoMS micrograph {did[:40]}")
        return self.get_entry(m.group(3))

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
            metadata=from_json(row["metadata"], f"the metadata of entry {row['name']}"),
            excluded=bool(row["excluded"]),
            exclusion_reason=row["exclusion_reason"],
            exclusion_note=row["exclusion_note"],
            steps={s: steps.get(s, TODO) for s in STEPS},
        )

    def update_metadata(self, entry_id: int, changes: dict[str, Any]) -> Entry:
        entry_id = entry_key(entry_id)
        with self._db() as con:
            self._update_metadata(con, entry_id, changes)
        return self.get_entry(entry_id)

    @staticmethod
    def _update_metadata(con: sqlite3.Connection, entry_id: int, changes: dict[str, Any]) -> bool:
        """Merge ``changes`` into the entry's metadata in the open transaction; True if anything differs."""
        row = con.execute("SELECT name, metadata FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise StoreError(f"no entry {entry_id} in this library")
        old = from_json(row["metadata"], f"the metadata of entry {row['name']}")
        meta = {**old, **clean_value(dict(changes), f"metadata of {row['name']}")}
        if meta == old:
            return False
        con.execute("UPDATE entries SET metadata = ?, updated = ? WHERE id = ?",
                    (to_json(meta, f"metadata of {row['name']}"), time.time(), entry_id))
        return True

    def set_excluded(self, entry_id: int, reason: str | None, note: str = "") -> Entry:
        """Exclude an entry for one of MicroLib's reasons (``reason=None`` includes it again)."""
        from ..steps import EXCLUSION_REASONS

        if reason is not None and reason not in EXCLUSION_REASONS:
            raise StoreError(f"unknown exclusion reason {show(reason)} (one of: {', '.join(EXCLUSION_REASONS)})")
        entry_id = entry_key(entry_id)
        note = clean_text(note or "", "exclusion note")
        with self._db() as con:
            cur = con.execute(
                "UPDATE entries SET excluded = ?, exclusion_reason = ?, exclusion_note = ?, updated = ? WHERE id = ?",
                (int(reason is not None), reason, note or None, time.time(), entry_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no entry {entry_id} in this library")
        return self.get_entry(entry_id)

    def set_step_status(self, entry_id: int, step: str, status: str) -> None:
        if step not in STEPS or status not in (TODO, DONE, STALE):
            raise StoreError(f"invalid step status {show(str(step))}={show(str(status))}")
        with self._db() as con:
            con.execute(
                "INSERT INTO step_status (entry_id, step, status, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(entry_id, step) DO UPDATE SET status = excluded.status, updated = excluded.updated",
                (entry_key(entry_id), step, status, time.time()),
            )

    def delete_entry(self, entry_id: int) -> None:
        """Remove an entry's row and its folder."""
        import shutil

        entry_id = entry_key(entry_id)
        with self._db() as con:
            cur = con.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
            if cur.rowcount == 0:
                raise StoreError(f"no entry {entry_id} in this library")
        shutil.rmtree(self.entry_dir(entry_id), ignore_errors=True)

    def original_path(self, entry_id: int) -> Path:
        entry = self.get_entry(entry_id)
        name = entry.metadata.get("original_file")
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise StoreError(f"library.sqlite: entry {entry.name} names no original file")
        return self.entry_dir(entry.id) / name

"""Entries: adding a micrograph, looking entries up, metadata, exclusion, step statuses.

Entry ids are the number in the folder name: a DoITPoMS micrograph keeps its
DoITPoMS id (``microstructure001`` is DoITPoMS micrograph 1, as in MicroLib);
local and demo entries get numbers from :data:`LOCAL_ID_START` up so they never
collide with DoITPoMS ids.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import ImageError, StoreError
from ..steps import DONE, STALE, STEPS, TODO

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



class EntriesMixin:
    """Entries and their rows: add, get, find, list, metadata, exclusion, step statuses, delete."""

    root: Path

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
        from ..images import load_image_bytes

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
        from ..steps import EXCLUSION_REASONS

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


"""Annotations with undo: one row per edit; Undo and Redo move the entry's pointer."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ..errors import StoreError


class HistoryMixin:
    """An entry's annotations: the current version, edits, the undo pointer."""

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
        from ..annotations import validate_annotations

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


"""Annotations with undo: one row per edit; Undo and Redo move the entry's pointer."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..errors import StoreError
from .db import entry_key, from_json, to_json


def _ann_what(entry_id: int, version: int) -> str:
    return f"annotations (version {version}) of entry {entry_id}"


class HistoryMixin:
    """An entry's annotations: the current version, edits, the undo pointer."""

    # -- annotations (one row per edit; undo/redo move a pointer) ----------
    def get_annotations(self, entry_id: int) -> dict[str, Any]:
        with self._db() as con:
            return self._current_annotations(con, entry_key(entry_id))

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
        return from_json(ann["data"], _ann_what(entry_id, row["ann_version"])) if ann else {}

    def current_annotations_many(self) -> dict[int, dict[str, Any]]:
        """Every entry's current annotations (entry id → annotations; none: absent), in one query."""
        with self._db() as con:
            rows = con.execute("SELECT e.id, e.ann_version, a.data FROM entries e JOIN annotations a "
                               "ON a.entry_id = e.id AND a.version = e.ann_version").fetchall()
        return {r[0]: from_json(r[2], _ann_what(r[0], r[1])) for r in rows}

    def set_annotations(self, entry_id: int, changes: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Record an edit: the current annotations updated with ``changes`` (or replaced).

        Values are validated (:func:`.annotations.validate_annotations`); a bad value
        raises :class:`AnnotationError` and nothing is written. Redo history past
        the current version is dropped, as in any editor.
        """
        entry_id = entry_key(entry_id)
        with self._db() as con:
            _old, new = self._set_annotations(con, entry_id, changes, replace)
        return new

    def _set_annotations(self, con: sqlite3.Connection, entry_id: int, changes: dict[str, Any],
                         replace: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """Record an edit in the open transaction; returns (previous, now current) annotations."""
        from ..annotations import validate_annotations

        row = con.execute(
            "SELECT e.ann_version, a.data, (SELECT MAX(version) FROM annotations WHERE entry_id = e.id) "
            "FROM entries e LEFT JOIN annotations a ON a.entry_id = e.id AND a.version = e.ann_version "
            "WHERE e.id = ?", (entry_id,)).fetchone()
        if row is None:
            raise StoreError(f"no entry {entry_id} in this library")
        version, top = row[0], row[2] or 0
        current = from_json(row[1], _ann_what(entry_id, version)) if version and row[1] is not None else {}
        new = validate_annotations({**({} if replace else current), **changes})
        now = time.time()
        if top > version:  # the redo branch goes, as in any editor
            con.execute("DELETE FROM annotations WHERE entry_id = ? AND version > ?", (entry_id, version))
        con.execute("INSERT INTO annotations (entry_id, version, data, created) VALUES (?, ?, ?, ?)",
                    (entry_id, version + 1, to_json(new, _ann_what(entry_id, version + 1)), now))
        con.execute("UPDATE entries SET ann_version = ?, updated = ? WHERE id = ?", (version + 1, now, entry_id))
        return current, new

    def _set_annotations_many(self, con: sqlite3.Connection, edits: list[tuple[int, dict[str, Any]]],
                              now: float | None = None) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
        """Many edits in the open transaction, each already validated, with the steps they make
        stale marked (as an import's); an edit that changes no value records nothing (the same
        file imported again adds no Undo step).

        Reads every entry's state in a few queries and writes with ``executemany``: a bulk
        import spends its time on the records, not on one round trip per statement.
        Returns ``(entry_id, previous, now current)`` per edit.
        """
        from ..workflow.steps import changed_keys
        from .transaction import stale_after_import

        now = now or time.time()
        ids = sorted({eid for eid, _ in edits})
        state: dict[int, tuple[int, int, dict[str, Any]]] = {}
        done: dict[int, set[str]] = {}
        for i in range(0, len(ids), 500):  # SQLite allows 999 parameters a statement
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for eid, version, data, top in con.execute(
                    "SELECT e.id, e.ann_version, a.data, (SELECT MAX(version) FROM annotations WHERE entry_id = e.id) "
                    "FROM entries e LEFT JOIN annotations a ON a.entry_id = e.id AND a.version = e.ann_version "
                    f"WHERE e.id IN ({marks})", chunk):
                current = from_json(data, _ann_what(eid, version)) if version and data is not None else {}
                state[eid] = (version, top or 0, current)
            for eid, step in con.execute(f"SELECT entry_id, step FROM step_status WHERE status = 'done' "
                                         f"AND entry_id IN ({marks})", chunk):
                done.setdefault(eid, set()).add(step)
        deletes, inserts, updates, stale = [], [], [], []
        out = []
        for eid, changes in edits:
            if eid not in state:
                raise StoreError(f"no entry {eid} in this library")
            version, top, current = state[eid]
            new = {**current, **changes}
            changed = changed_keys(current, new)
            out.append((eid, current, new))
            if not changed and current.keys() == new.keys():
                continue
            if top > version:
                deletes.append((eid, version))
            inserts.append((eid, version + 1, to_json(new, _ann_what(eid, version + 1)), now))
            updates.append((version + 1, now, eid))
            stale += [("stale", now, eid, st) for st in stale_after_import(changed) if st in done.get(eid, ())]
            state[eid] = (version + 1, version + 1, new)
        con.executemany("DELETE FROM annotations WHERE entry_id = ? AND version > ?", deletes)
        con.executemany("INSERT INTO annotations (entry_id, version, data, created) VALUES (?, ?, ?, ?)", inserts)
        con.executemany("UPDATE entries SET ann_version = ?, updated = ? WHERE id = ?", updates)
        con.executemany("UPDATE step_status SET status = ?, updated = ? WHERE entry_id = ? AND step = ?", stale)
        return out

    def undo_annotations(self, entry_id: int) -> dict[str, Any] | None:
        """Step back one edit; returns the annotations now current, or None if nothing to undo."""
        return self._move_annotation_pointer(entry_key(entry_id), -1)

    def redo_annotations(self, entry_id: int) -> dict[str, Any] | None:
        return self._move_annotation_pointer(entry_key(entry_id), +1)

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
        entry_id = entry_key(entry_id)
        with self._db() as con:
            row = con.execute("SELECT ann_version FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise StoreError(f"no entry {entry_id} in this library")
            target = row["ann_version"] + move
            if target == 0:
                has = con.execute("SELECT 1 FROM annotations WHERE entry_id = ?", (entry_id,)).fetchone()
                return {} if has else None
            ann = con.execute("SELECT data FROM annotations WHERE entry_id = ? AND version = ?",
                              (entry_id, target)).fetchone()
            return from_json(ann["data"], _ann_what(entry_id, target)) if ann else None

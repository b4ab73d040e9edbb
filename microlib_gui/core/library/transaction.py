"""A step's save: files staged, then one transaction for annotations, files, status and run."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..steps import DONE, STALE, STEPS, TODO
from .db import entry_key, to_json
from .provenance import StagedFile, _stage, sha256_file


def stale_after_import(ann_changed: set[str]) -> list[str]:
    """Steps made stale when annotations are imported (no step ran): those reading a changed value,
    and those writing one into a file (their file was made from the old value)."""
    from ..workflow.steps import TABLE, stale_steps, step_of_keys

    if not ann_changed:
        return []
    readers = stale_steps(None, ann_changed, set())
    writers = [s for s in step_of_keys(set(ann_changed)) if TABLE[s].writes_files]
    return [s for s in STEPS if s in readers or s in writers]


def mark_stale(con: sqlite3.Connection, entry_id: int, step: str | None, ann_changed: set[str],
               files_changed: set[str], now: float | None = None) -> list[str]:
    """Mark stale, in the open transaction, the done steps that read what changed; returns them."""
    from ..workflow.steps import stale_steps

    if not ann_changed and not files_changed:
        return []
    steps = stale_steps(step, ann_changed, files_changed)
    if not steps:
        return []
    done = {r[0] for r in con.execute("SELECT step FROM step_status WHERE entry_id = ? AND status = ?",
                                      (entry_id, DONE))}
    stale = [s for s in steps if s in done]
    con.executemany("UPDATE step_status SET status = ?, updated = ? WHERE entry_id = ? AND step = ?",
                    [(STALE, now or time.time(), entry_id, s) for s in stale])
    return stale


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



class TransactionMixin:
    """:meth:`complete_step`: how every wizard step saves."""

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
        from ..annotations import validate_annotations
        from ..workflow.steps import changed_keys

        entry_id = entry_key(entry_id)
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
                                    (entry_id, version + 1, to_json(new, f"annotations of entry {entry_id}"), time.time()))
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
                stale = mark_stale(con, entry_id, step, ann_changed, files_changed, now)
                if run is not None:
                    number = con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id = ? AND kind = ?",
                                         (entry_id, run["kind"])).fetchone()[0]
                    con.execute(
                        "INSERT INTO runs (entry_id, kind, params, seed, status, started, finished, timings, files, "
                        "number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry_id, run["kind"], to_json(run.get("params") or {}, "run parameters", lossy=True),
                         run.get("seed"), run.get("status", "done"), run.get("started", now), now,
                         to_json(run.get("timings") or {}, "run timings", lossy=True),
                         to_json(run.get("files") or [], "run files", lossy=True), number))
                if ann_changed or files_changed or status_changed or stale or run is not None:
                    con.execute("UPDATE entries SET updated = ? WHERE id = ?", (now, entry_id))
        finally:
            for _f, _t, tmp, _s in staged:
                if tmp.exists():
                    tmp.unlink()
        return StepChange(step, new, ann_changed, files_changed, stale)


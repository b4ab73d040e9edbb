"""Runs: one row per training, generation or build run, numbered from 1 per entry and kind."""

from __future__ import annotations

import time
from typing import Any

from ..text import clean_text
from .db import entry_key, from_json, to_json


def _eid(entry_id: int | None) -> int | None:
    return None if entry_id is None else entry_key(entry_id)


def _note(text: str | None, what: str) -> str | None:
    # a log path or a message the program made: shown again, so kept printable
    return None if text is None else clean_text(str(text), what, lossy=True)


class RunsMixin:
    """Start, number, finish, reopen and list runs."""

    # -- runs ---------------------------------------------------------------
    def start_run(self, entry_id: int | None, kind: str, params: dict[str, Any], seed: int | None = None,
                  log: str | None = None) -> int:
        """Record a run; its ``number`` counts this entry's runs of ``kind`` from 1."""
        entry_id = _eid(entry_id)
        with self._db() as con:
            number = con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id IS ? AND kind = ?",
                                 (entry_id, kind)).fetchone()[0]
            cur = con.execute(
                "INSERT INTO runs (entry_id, kind, params, seed, status, started, log, number) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, kind, to_json(params, f"{kind} run parameters", lossy=True), seed, "running", time.time(),
                 _note(log, "log"), number),
            )
            return int(cur.lastrowid)

    def next_run_number(self, entry_id: int | None, kind: str) -> int:
        """The number :meth:`start_run` will give this entry's next run of ``kind``."""
        with self._db() as con:
            return con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE entry_id IS ? AND kind = ?",
                               (_eid(entry_id), kind)).fetchone()[0]

    def finish_run(self, run_id: int, status: str, timings: dict[str, float] | None = None,
                   files: list[str] | None = None, message: str | None = None) -> None:
        with self._db() as con:
            con.execute(
                "UPDATE runs SET status = ?, finished = ?, timings = ?, files = ?, message = ? WHERE id = ?",
                (status, time.time(), to_json(timings or {}, "run timings", lossy=True), to_json(files or [], "run files", lossy=True),
                 _note(message, "run message"), int(run_id)),
            )

    def reopen_run(self, run_id: int, params: dict[str, Any] | None = None) -> None:
        """Mark a stopped run running again (it is resumed in its own folder, under its own number)."""
        with self._db() as con:
            if params is not None:
                con.execute("UPDATE runs SET params = ? WHERE id = ?",
                            (to_json(params, "run parameters", lossy=True), int(run_id)))
            con.execute("UPDATE runs SET status = 'running', finished = NULL, message = NULL WHERE id = ?",
                        (int(run_id),))

    def runs(self, entry_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM runs WHERE 1=1", []
        if entry_id is not None:
            q += " AND entry_id = ?"
            args.append(entry_key(entry_id))
        if kind is not None:
            q += " AND kind = ?"
            args.append(kind)
        with self._db() as con:
            rows = con.execute(q + " ORDER BY id", args).fetchall()
        return [
            {**dict(r), "params": from_json(r["params"], f"the parameters of run {r['id']}"),
             "timings": from_json(r["timings"], f"the timings of run {r['id']}"),
             "files": from_json(r["files"], f"the files of run {r['id']}", list)}
            for r in rows
        ]


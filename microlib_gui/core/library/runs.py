"""Runs: one row per training, generation or build run, numbered from 1 per entry and kind."""

from __future__ import annotations

import json
import time
from typing import Any


class RunsMixin:
    """Start, number, finish, reopen and list runs."""

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


"""Entry files and their provenance: staging, atomic writes, hashes, staleness.

Every file is written to a temporary name and renamed when complete
(:mod:`..atomic`); its SHA-256, producer and inputs are recorded so a file made
from inputs that changed since is known to be stale.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import _fsync_file, atomic_path, temp_file
from .db import entry_key, from_json, to_json


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


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stage(target: Path, f: StagedFile) -> Path:
    """Write ``f`` to a temporary file beside ``target`` (fsynced) and return its path."""
    tmp_path = temp_file(target)  # made as any new file: the umask applies, the name is short
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


class ProvenanceMixin:
    """Writing entry files with their provenance, and telling whether one is stale."""

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
            self._record_provenance(con, entry_key(entry_id), target, produced_by, input_paths, params or {}, run_id)
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
            (entry_id, target.name, sha or sha256_file(target), produced_by, run_id,
             to_json(inputs_rec, f"inputs of {target.name}", lossy=True),
             to_json(params, f"parameters of {target.name}", lossy=True), time.time()),
        )

    def provenance(self, entry_id: int) -> list[dict[str, Any]]:
        with self._db() as con:
            rows = con.execute("SELECT * FROM provenance WHERE entry_id = ? ORDER BY created",
                               (entry_key(entry_id),)).fetchall()
        return [
            {**dict(r), "inputs": from_json(r["inputs"], f"the inputs of {r['file']}", list),
             "params": from_json(r["params"], f"the parameters of {r['file']}")} for r in rows
        ]

    def is_stale(self, entry_id: int, file_suffix: str) -> bool:
        """True if the file is missing, changed since recorded, or made from inputs that changed."""
        target = self.entry_file(entry_id, file_suffix)
        if not target.exists():
            return True
        with self._db() as con:
            row = con.execute(
                "SELECT sha256, inputs FROM provenance WHERE entry_id = ? AND file = ?", (entry_key(entry_id), target.name)
            ).fetchone()
        if row is None or sha256_file(target) != row["sha256"]:
            return True
        for inp in from_json(row["inputs"], f"the inputs of {target.name}", list):
            p = self.entry_dir(entry_id) / inp["file"]
            if not p.exists() or sha256_file(p) != inp["sha256"]:
                return True
        return False


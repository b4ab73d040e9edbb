"""Where a build keeps its state: plain JSON files beside the library database.

::

    LIBRARY/builds/<build_id>/
      build.json                   options of the build (executor, steps, params)
      microstructureNNN.job.json   written by the submitter: spec, executor, job id
      microstructureNNN.result.json  written by the worker: state of each step
      slurm/                       submitit's folder (SLURM builds)
    LIBRARY/microstructureNNN/logs/build-<build_id>.log   the worker's log

The two writers never share a file (submitter: ``.job.json``; worker:
``.result.json``), every write is atomic, and the finished work itself lives in
the store (files with provenance, the ``runs`` table), so a build killed at any
moment can be read back, reconciled and resumed.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json

# Job states shown to the user.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, UNAVAILABLE, SKIPPED = (
    "queued", "running", "done", "failed", "cancelled", "unavailable", "skipped")
FINAL = (DONE, FAILED, CANCELLED, UNAVAILABLE)
ACTIVE = (QUEUED, RUNNING)

BUILDS_DIR = "builds"


def new_build_id() -> str:
    """Sortable by time (to the microsecond: two builds in one second keep their order), unique across
    machines: ``20261124-153012-123456-a1b2``."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1e6) % 1_000_000:06d}-" + \
        secrets.token_hex(2)


def builds_root(library_root) -> Path:
    return Path(library_root) / BUILDS_DIR


def build_dir(library_root, build_id: str) -> Path:
    if not build_id or "/" in build_id or build_id.startswith("."):
        raise ValueError(f"bad build id {build_id!r}")
    return builds_root(library_root) / build_id


def job_path(library_root, build_id: str, entry_name: str) -> Path:
    return build_dir(library_root, build_id) / f"{entry_name}.job.json"


def result_path(library_root, build_id: str, entry_name: str) -> Path:
    return build_dir(library_root, build_id) / f"{entry_name}.result.json"


def log_path(library_root, build_id: str, entry_name: str) -> Path:
    return Path(library_root) / entry_name / "logs" / f"build-{build_id}.log"


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if absent or unreadable (e.g. mid-copy on NFS)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_json(path, obj)


def update_json(path: Path, **changes: Any) -> dict[str, Any]:
    """Read-modify-write of a file only one process writes."""
    obj = read_json(path) or {}
    obj.update(changes)
    obj["updated"] = time.time()
    write_json(path, obj)
    return obj


@dataclass
class EntryJob:
    """The state of one entry's job in one build, as the Jobs view and ``build status`` show it."""

    entry_id: int
    entry: str
    build_id: str
    executor: str
    state: str
    steps: list[str]
    step: str | None = None  # the step running, failed or unavailable
    step_states: dict[str, str] = field(default_factory=dict)
    message: str = ""
    log: str | None = None
    external_id: str | None = None  # local pid or SLURM job id
    submitted: float | None = None
    updated: float | None = None
    scheduler_log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_library(library_root):
    """Open an existing library (workers, status readers and the Jobs view never create one)."""
    from ..library import Library

    return Library(library_root, create=False)


def list_builds(library_root) -> list[str]:
    root = builds_root(library_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "build.json").exists())


def pid_alive(pid: int | None, marker: str | None = "microlib_gui.core.build") -> bool:
    """True if process ``pid`` runs and (where /proc tells) its command line holds ``marker``.

    The marker guards against a reused pid; None checks only that the process lives.
    """
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{int(pid)}")
    if proc.is_dir():
        try:
            if (proc / "stat").read_text().split(")")[-1].split()[0] == "Z":
                return False  # a zombie: finished, not yet reaped
            return marker is None or marker.encode() in (proc / "cmdline").read_bytes()
        except OSError:
            return False
    return True

"""Bulk import of DoITPoMS micrographs into a library, as a resumable job.

:func:`import_micrographs` is a job function (:mod:`..jobs` conventions): run it
with ``run_inline`` (CLI) or ``ThreadJob`` (GUI). For each id it reads the full
record, downloads the large image (kept only when complete and decodable) and
adds a library entry with the record as metadata.

Resuming: the ids still to do are kept in a small journal in the cache folder,
one per library. A job cancelled or killed part-way leaves the journal behind;
:func:`pending_import` returns those ids, and running the import again skips
what is already in the library and reuses every image already downloaded.
A failure of one micrograph (404, repeated 5xx, corrupt image) is recorded and
the rest goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..errors import MicrolibError
from ..library import Library
from .cache import Cache
from .client import Client, DoitpomsError, NotFoundError, OfflineError, ServerError


def _journal_path(cache: Cache, library_root: Path) -> Path:
    key = hashlib.sha1(str(Path(library_root).resolve()).encode("utf-8")).hexdigest()[:16]
    return cache.root / "imports" / f"{key}.json"


def pending_import(library_root: str | Path, cache: Cache | None = None) -> list[int]:
    """Ids of an earlier import into ``library_root`` that did not finish (empty if none)."""
    path = _journal_path(cache or Cache(), Path(library_root))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [int(i) for i in doc.get("ids", [])]
    except (OSError, ValueError, TypeError):
        return []


def _save_journal(path: Path, library_root: Path, ids: list[int]) -> None:
    if ids:
        atomic_write_json(path, {"library": str(library_root), "ids": ids})
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def import_one(client: Client, lib: Library, doitpoms_id: int) -> int:
    """Add micrograph ``doitpoms_id`` to ``lib``; returns the new entry id."""
    rec = client.record(doitpoms_id)
    raw = client.large_image(doitpoms_id)
    entry = lib.add_entry(raw, source="doitpoms", doitpoms_id=doitpoms_id, metadata=rec.library_metadata())
    return entry.id


def import_micrographs(ctx, library: str, ids: list[int], base_url: str | None = None,
                       cache_dir: str | None = None, offline: bool = False, client: Client | None = None,
                       ) -> dict[str, Any]:
    """Job function: import DoITPoMS micrographs ``ids`` into the library at ``library``.

    Parameters
    ----------
    ctx : JobContext
    library : str
        Library folder.
    ids : list of int
        DoITPoMS micrograph ids, in the order to import them.
    base_url, cache_dir, offline
        Used to make a :class:`Client` when ``client`` is not given.
    client : Client, optional
        A client to share (the GUI passes its own; not for process jobs).

    Returns
    -------
    dict
        ``added`` (ids), ``skipped`` (already in the library), ``failed`` ({id: reason})
        and ``offline`` (whether the server could not be reached).
    """
    lib = Library(library)
    if client is None:
        client = Client(base_url, cache=Cache(cache_dir) if cache_dir else None, offline=offline)
    journal = _journal_path(client.cache, lib.root)
    have = {e.doitpoms_id for e in lib.list_entries() if e.doitpoms_id is not None}
    wanted = list(dict.fromkeys(int(i) for i in ids))
    skipped = [i for i in wanted if i in have]
    todo = [i for i in wanted if i not in have]
    remaining = list(todo)
    _save_journal(journal, lib.root, remaining)
    added: list[int] = []
    failed: dict[int, str] = {}
    total = len(todo)
    ctx.report(0, total, f"importing {total} micrographs" if total else "nothing to import", force=True)
    for n, did in enumerate(todo, 1):
        ctx.check_cancelled()
        try:
            import_one(client, lib, did)
            added.append(did)
            remaining.remove(did)
        except NotFoundError:
            failed[did] = f"micrograph {did} does not exist"
            remaining.remove(did)
        except (OfflineError, ServerError) as exc:
            failed[did] = str(exc)  # stays in the journal: worth trying again later
        except MicrolibError as exc:  # corrupt image, store refusal, ...
            failed[did] = str(exc)
            remaining.remove(did)
        _save_journal(journal, lib.root, remaining)
        ctx.report(n, total, f"micrograph {did}: " + ("added" if did in added else failed.get(did, "")),
                   scalars={"added": len(added), "failed": len(failed)})
    return {"added": added, "skipped": skipped, "failed": failed, "offline": client.offline,
            "pending": remaining}


__all__ = ["import_micrographs", "import_one", "pending_import", "DoitpomsError"]

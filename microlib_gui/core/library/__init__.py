"""The library store: one folder holding ``library.sqlite`` and one folder per entry.

Layout (MicroLib's dataset layout)::

    LIBRARY/
      library.sqlite                 entries, annotations, runs, provenance
      microstructure001/
        microstructure001_original.png
        microstructure001_inpainted.png
        microstructure001.tif
        microstructure001_Gen.pt, _params.data, ...

Consistency: SQLite in WAL mode with every change in a transaction; every file
written to a temporary name and renamed when complete (:mod:`..atomic`). A process
killed at any moment leaves a library that passes ``PRAGMA integrity_check`` and
keeps everything committed before the kill.

:class:`Library` is one class built from one part per concern, all sharing one
connection helper (``_db``): :mod:`.db` (schema, connection, change detection),
:mod:`.entries`, :mod:`.history` (annotations and Undo), :mod:`.provenance`
(entry files), :mod:`.runs`, :mod:`.transaction` (a step's save) and
:mod:`.interchange` (MicroLib's files in and out). :mod:`.layout` declares every
entry file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import clean_stale_temps
from ..errors import StoreError
from .db import DB_NAME, SCHEMA_VERSION, ChangeWatcher, DatabaseMixin
from .entries import LOCAL_ID_START, SOURCES, EntriesMixin, Entry, entry_name
from .history import HistoryMixin
from .interchange import InterchangeMixin
from .provenance import ProvenanceMixin, StagedFile, sha256_file
from .runs import RunsMixin
from .transaction import StepChange, TransactionMixin

__all__ = [
    "DB_NAME", "LOCAL_ID_START", "SCHEMA_VERSION", "SOURCES", "ChangeWatcher", "Entry", "Library",
    "StagedFile", "StepChange", "entry_name", "sha256_file",
]


class Library(DatabaseMixin, EntriesMixin, HistoryMixin, ProvenanceMixin, RunsMixin, TransactionMixin,
              InterchangeMixin):
    """A library folder. Cheap to create; every method opens its own connection,
    so one ``Library`` may be used from several threads and processes at once.

    ``readonly``: open an existing library for reading only (on a read-only disk, or
    for commands that only read): nothing is created, migrated or cleaned, and any
    write is refused with one line.
    """

    def __init__(self, root: str | os.PathLike, create: bool = True, readonly: bool = False):
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a library folder")
        if readonly:
            if not (self.root / DB_NAME).is_file():
                raise StoreError(f"{self.root} is not a MicroLib Studio library (no {DB_NAME})")
            self._open_readonly()
            return
        if not (self.root / DB_NAME).exists():
            if not create:
                raise StoreError(f"{self.root} is not a MicroLib Studio library (no {DB_NAME})")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create library folder {self.root}: {exc.strerror}") from None
        self._migrate()
        clean_stale_temps(self.root)

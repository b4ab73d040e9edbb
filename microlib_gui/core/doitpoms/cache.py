"""On-disk cache of DoITPoMS pages and images, and a local index of records seen.

Layout (under ``$MICROLIB_CACHE`` or the user cache dir)::

    doitpoms/
      files/full_record.php_id=12          page bytes as downloaded
      files/micrographs/large/000012.jpg   images (only complete, decodable ones)
      index.sqlite                         parsed records, for offline search

Files are keyed by their path relative to the base URL, so a mirror of the
site shares the cache with the original. Every write is atomic.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import platformdirs

from ..sqlite_tx import transaction
from ..atomic import atomic_write_bytes
from ..errors import MicrolibError
from ..paths import APP_DIR_NAME
from .parse import Record

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def default_cache_root() -> Path:
    """``$MICROLIB_CACHE`` if set, else the user cache dir of the app."""
    env = os.environ.get("MICROLIB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_DIR_NAME, appauthor=False))


class CacheError(MicrolibError):
    """The cache folder cannot be used."""


class Cache:
    """Pages, images and the record index of the DoITPoMS client."""

    def __init__(self, root: str | os.PathLike | None = None):
        base = Path(root) if root is not None else default_cache_root()
        self.root = base / "doitpoms"
        self.files = self.root / "files"
        try:
            self.files.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache folder {self.root}: {exc.strerror}") from None
        self._lock = threading.Lock()
        self._init_index()

    # -- files ----------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """Where the file for ``key`` (a path relative to the base URL) lives."""
        parts = [p for p in key.replace("\\", "/").split("/") if p]
        safe = [_SAFE.sub("_", p.replace("?", "_").replace("&", "_")) for p in parts]
        safe = [p for p in safe if p not in (".", "..")] or ["index"]
        return self.files.joinpath(*safe)

    def get(self, key: str, max_age_s: float | None = None) -> bytes | None:
        """Cached bytes of ``key``; None if absent or older than ``max_age_s``."""
        path = self.path_for(key)
        try:
            if max_age_s is not None and time.time() - path.stat().st_mtime >= max_age_s:
                return None
            return path.read_bytes()
        except OSError:
            return None

    def has(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def put(self, key: str, data: bytes) -> Path:
        return atomic_write_bytes(self.path_for(key), data)

    # -- record index ---------------------------------------------------------
    def _db(self):
        def fail(stage: str, exc: Exception) -> CacheError:
            if stage == "open":
                return CacheError(f"cannot open the DoITPoMS index in {self.root}: {exc}")
            return CacheError(f"DoITPoMS index error ({exc}); delete {self.root} to rebuild it")

        return transaction(self.root / "index.sqlite", fail)

    def _init_index(self) -> None:
        try:
            con = sqlite3.connect(self.root / "index.sqlite", timeout=30)
            try:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, data TEXT NOT NULL, "
                            "fetched REAL NOT NULL)")
                con.execute("CREATE TABLE IF NOT EXISTS listed (id INTEGER PRIMARY KEY, brief TEXT NOT NULL, "
                            "thumb TEXT NOT NULL DEFAULT '', seen REAL NOT NULL)")
                con.commit()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"DoITPoMS index in {self.root} is unusable ({exc}); delete it to rebuild") from None

    def put_record(self, rec: Record) -> None:
        with self._db() as con:
            con.execute("INSERT OR REPLACE INTO records (id, data, fetched) VALUES (?, ?, ?)",
                        (rec.id, json.dumps(rec.to_dict()), time.time()))

    def get_record(self, doitpoms_id: int) -> Record | None:
        with self._db() as con:
            row = con.execute("SELECT data FROM records WHERE id = ?", (int(doitpoms_id),)).fetchone()
        return Record.from_dict(json.loads(row[0])) if row else None

    def record_ids(self) -> set[int]:
        with self._db() as con:
            return {r[0] for r in con.execute("SELECT id FROM records")}

    def records(self) -> list[Record]:
        """Every record in the index, by id."""
        with self._db() as con:
            rows = con.execute("SELECT data FROM records ORDER BY id").fetchall()
        return [Record.from_dict(json.loads(r[0])) for r in rows]

    def put_listed(self, items) -> None:
        """Remember micrographs seen on browse pages (id, caption, thumbnail URL)."""
        now = time.time()
        with self._db() as con:
            con.executemany(
                "INSERT INTO listed (id, brief, thumb, seen) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET brief = CASE WHEN excluded.brief != '' THEN excluded.brief ELSE brief END, "
                "thumb = CASE WHEN excluded.thumb != '' THEN excluded.thumb ELSE thumb END, seen = excluded.seen",
                [(i.id, i.brief_descr, i.thumb, now) for i in items],
            )

    def listed(self) -> dict[int, str]:
        """Micrographs seen on browse pages: id → caption."""
        with self._db() as con:
            return {r[0]: r[1] for r in con.execute("SELECT id, brief FROM listed ORDER BY id")}

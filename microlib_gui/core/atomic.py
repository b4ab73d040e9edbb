"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A reader (or a process restarted after ``kill -9``) sees either the old file or the
complete new one, never a partial file.

The temporary file is made like any new file (mode ``0666`` less the umask, so a
library shared through a group stays readable by colleagues; ``tempfile.mkstemp``
would make it ``0600``) and its name is short whatever the target's (a valid
255-byte file name must not fail because its temporary name is longer).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

TEMP_PREFIX = ".tmp-"
#: At most this much of the target's stem and suffix goes into a temporary name.
_STEM_CHARS, _SUFFIX_CHARS = 24, 16


def temp_file(target: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``target`` and return its path.

    Named ``.tmp-<stem, shortened>-<8 random hex><suffix>``: the suffix is the
    target's (writers that pick a format from the extension still work), the
    whole name at most 5 + 24 + 1 + 8 + 16 characters. Created with ``O_EXCL``
    and mode ``0666``, so the umask applies as to any file the user makes.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = _temp_name(target, suffix)
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"no free temporary name beside {target}")


def temp_dir(target: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary folder beside ``target`` (named as :func:`temp_file`, mode ``0777``
    less the umask; ``tempfile.mkdtemp`` would make it ``0700``) and return its path."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = _temp_name(target, suffix)
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name beside {target}")


def _temp_name(target: Path, suffix: str | None) -> Path:
    suffix = target.suffix if suffix is None else suffix
    if len(suffix) > _SUFFIX_CHARS:
        suffix = ""  # not an extension any writer knows
    stem = target.name[: len(target.name) - len(target.suffix)] if target.suffix else target.name
    return target.parent / f"{TEMP_PREFIX}{stem[:_STEM_CHARS]}-{secrets.token_hex(4)}{suffix}"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success.

    The temporary name keeps the target's suffix (so writers that pick a format
    from the extension still work) and starts with ``.tmp-`` so that unfinished
    files are easy to recognise and clean up (:func:`temp_file`).
    """
    target = Path(target)
    tmp_path = temp_file(target, suffix)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename itself durable; not supported everywhere.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean_stale_temps(folder: str | os.PathLike, older_than_s: float = 3600.0) -> int:
    """Remove ``.tmp-*`` leftovers of writes killed mid-way; return how many.

    Only temporaries untouched for ``older_than_s`` go: another process (a build
    job, the GUI) may be writing one right now.
    """
    import time

    n = 0
    cutoff = time.time() - older_than_s
    for p in Path(folder).rglob(".tmp-*"):
        with contextlib.suppress(OSError):
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                n += 1
    return n

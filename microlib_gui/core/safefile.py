"""Opening the files a user names: regular files only, their size checked before reading.

A path given as an image, mask, annotation file, latent, model file or volume
may be a named pipe (reading it waits for a writer forever), a device or a link
to one (``/dev/zero`` never ends), a folder, or a file far larger than anything
the app can use. Readers of user files go through :func:`open_regular_file` or
:func:`read_regular_file`: the path must name a regular file (checked with
``stat`` before opening, so nothing else is even opened), it is opened without
blocking (``O_NONBLOCK``), ``fstat`` on the open file must agree (the path may
have been swapped meanwhile), and its size must be within the caller's limit —
all before the first byte is read. At most ``max_bytes`` are ever read, so a
file that grows while it is read cannot take more either.

Every refusal is the caller's error class with a one-line reason naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import MicrolibError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def fmt_bytes(n: float) -> str:
    """``1536`` → ``1.5 KB``; ``3 << 30`` → ``3.2 GB`` (powers of 1000, as file managers show)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"  # not reached


def _refuse_kind(st: os.stat_result, name: str, what: str, error: type[MicrolibError]) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise error(f"{name}: is {kind}, not {what}")
    raise error(f"{name}: is not a regular file, not {what}")


def _refuse_size(size: int, max_bytes: int | None, name: str, what: str, error: type[MicrolibError]) -> None:
    if max_bytes is not None and size > max_bytes:
        raise error(f"{name}: {fmt_bytes(size)} is over the {fmt_bytes(max_bytes)} limit for {what}")


def _os_error(exc: OSError, name: str, error: type[MicrolibError]) -> MicrolibError:
    if exc.errno == errno.ENOENT:
        return error(f"{name}: no such file")
    if exc.errno == errno.ELOOP:
        return error(f"{name}: a loop of symbolic links")
    return error(f"{name}: cannot be read ({exc.strerror or exc})")


def check_regular_file(path: str | os.PathLike, max_bytes: int | None = None, what: str = "a file",
                       error: type[MicrolibError] = MicrolibError) -> os.stat_result:
    """``stat`` of ``path`` (links followed) when it is a regular file of at most ``max_bytes``.

    For the rare reader that must be given a path rather than an open file; prefer
    :func:`open_regular_file`.
    """
    name = Path(path).name or str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, name, error) from None
    _refuse_kind(st, name, what, error)
    _refuse_size(st.st_size, max_bytes, name, what, error)
    return st


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike, max_bytes: int | None = None, what: str = "a file",
                      error: type[MicrolibError] = MicrolibError) -> Iterator[BinaryIO]:
    """Open a user's file for reading (binary, buffered) once it is known to be safe to read.

    Parameters
    ----------
    path : path-like
    max_bytes : int, optional
        Largest size accepted.
    what : str
        What the file should be, for messages: ``"an image"``, ``"a latent"``, ...
    error : MicrolibError subclass
        Raised with the one-line reason.
    """
    name = Path(path).name or str(path)
    check_regular_file(path, max_bytes, what, error)  # nothing but a regular file is even opened
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _os_error(exc, name, error) from None
    try:
        st = os.fstat(fd)
        _refuse_kind(st, name, what, error)  # swapped for something else since the stat
        _refuse_size(st.st_size, max_bytes, name, what, error)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def read_regular_file(path: str | os.PathLike, max_bytes: int, what: str = "a file",
                      error: type[MicrolibError] = MicrolibError) -> bytes:
    """The bytes of a user's file: a regular file of at most ``max_bytes`` (see :func:`open_regular_file`)."""
    name = Path(path).name or str(path)
    with open_regular_file(path, max_bytes, what, error) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise _os_error(exc, name, error) from None
    _refuse_size(len(data), max_bytes, name, what, error)  # it grew while being read
    return data


def check_output_file(path: str | os.PathLike, what: str = "the output", error: type[MicrolibError] = MicrolibError,
                      replaces_folder=None) -> Path:
    """Refuse an output path that cannot take the file, before any work is done for it.

    Refused: an existing folder (unless ``replaces_folder(path)`` says it is one the
    output replaces, e.g. an earlier Zarr array), pipe, device or socket; a path
    below a file; a folder that cannot be written in. Folders still missing are
    fine (writers make them). Returns ``path`` as a :class:`Path`.
    """
    path = Path(path)
    name = path.name or str(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a path below a file is told below
        st = None
    except OSError as exc:
        raise error(f"{name}: cannot be written ({exc.strerror or exc})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not (stat.S_ISDIR(st.st_mode) and replaces_folder is not None and replaces_folder(path)):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise error(f"{name}: is {kind}; give a file name for {what}")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise error(f"{name}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{name}: permission denied: cannot write in {parent}")
    return path

"""Small helpers the step modules share: the original's suffix, PNG bytes."""

from __future__ import annotations

import functools
import io

import numpy as np


def original_suffix(library, entry_id: int) -> str:
    """``_original.png`` (or .jpg/.tif): the suffix of the entry's imported file."""
    return library.original_path(entry_id).name[len(library.entry_file(entry_id, "").name):]


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def original_image(library, entry_id: int) -> np.ndarray:
    """The entry's original micrograph as float32 [0, 1] (gray or RGB); shared: never modify it.

    Originals are never modified, so the last few decoded are kept: panels
    re-read the entry on every event without decoding the file again.
    """
    path = library.original_path(entry_id)
    try:
        st = path.stat()
    except OSError:
        st = None
    key = (str(path), st.st_mtime_ns, st.st_size) if st else (str(path), None, None)
    return _decoded(key)


@functools.lru_cache(maxsize=4)
def _decoded(key) -> np.ndarray:
    from ..images import load_image

    return load_image(key[0]).data

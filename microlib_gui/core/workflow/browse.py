"""Browse step: adding micrographs, importing annotation files, excluding entries.

The library-level actions of the wizard's first step, shared by the Browse
panel, the main window's File menu and ``microlib library ...``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import userjson
from ..annotations import MAX_FILE_BYTES
from ..errors import AnnotationError
from ..safefile import read_regular_file


def exclude(library, entry_ids, reason: str | None, note: str = "") -> list[int]:
    """Exclude entries for one of MicroLib's reasons (``reason=None`` includes them again)."""
    done = []
    for eid in entry_ids:
        library.set_excluded(int(eid), reason, note)
        done.append(int(eid))
    return done


def annotation_file_kind(path: str | os.PathLike) -> str:
    """``"data_anns"`` (MicroLib's dataset-level file) or ``"microlib_anns"`` (per-image annotations)."""
    path = Path(path)
    try:
        # a regular file of bounded size only: a named pipe would block, /dev/zero never end
        text = read_regular_file(path, MAX_FILE_BYTES, "an annotation file", AnnotationError).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path.name}: cannot be read as JSON ({exc})") from None
    doc = userjson.loads(text, path.name, AnnotationError)  # too deep: refused before any import reads it
    first = next(iter(doc.values()), {}) if isinstance(doc, dict) and doc else {}
    return "data_anns" if isinstance(first, dict) and "name" in first and "data_path" not in first else "microlib_anns"


def import_annotations(library, path: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> dict:
    """Import either kind of annotation file; returns what happened, with a line for people (``text``)."""
    if annotation_file_kind(path) == "data_anns":
        n = library.import_data_anns(path)
        return {"kind": "data_anns", "updated": n, "text": f"updated {n} entries from {Path(path).name}"}
    res = library.import_microlib_anns(path, images_dir=images_dir)
    return {"kind": "microlib_anns", **res,
            "text": f"{len(res['applied'])} applied, {len(res['added'])} entries added, {len(res['pending'])} "
                    "pending (applied when those micrographs are imported)"}

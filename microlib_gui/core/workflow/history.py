"""Undo and Redo of annotation edits, with the files those annotations give.

Moving the undo pointer changes annotations; the steps that own them re-derive
their files from the annotations moved to (``_segmented.png``, ``_mask.png``),
in the same transaction as the move, so the saved files never keep an undone
value.
"""

from __future__ import annotations

from . import scalebar, segment
from .steps import changed_keys, step_of_keys

#: Steps whose files are derived from their annotations alone.
_DERIVED = {"segment": segment.staged_files, "scalebar": scalebar.staged_files}


def can_move(library, entry_id: int, move: int) -> bool:
    return library.annotations_at(entry_id, move) is not None


def move(library, entry_id: int, move: int):
    """Undo (``move=-1``) or Redo (``+1``) one annotation edit; None when there is nothing to move to."""
    target = library.annotations_at(entry_id, move)
    if target is None:
        return None
    current = library.get_annotations(entry_id)
    touched = step_of_keys(changed_keys(current, target))
    files, remove = [], []
    for step in touched:
        if step in _DERIVED:
            f, r = _DERIVED[step](library, entry_id, target)
            files += f
            remove += r
    return library.complete_step(entry_id, touched[0] if touched else None, move_history=move, files=files,
                                 remove=remove, status=None)


def undo(library, entry_id: int):
    return move(library, entry_id, -1)


def redo(library, entry_id: int):
    return move(library, entry_id, +1)

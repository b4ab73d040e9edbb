"""The step table: what each wizard step reads and writes, and so what a change makes stale.

A step is stale when something it read has changed since it was done. The table
names, per step, the annotation keys and entry files it reads and those it
writes; :func:`stale_steps` follows it from what changed (an unchanged value
changes nothing), step by step: a step made stale will write new outputs when
redone, so what reads those is stale too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..annotations import RECORD_FIELDS
from ..library import layout as L
from ..steps import STEPS


@dataclass(frozen=True)
class StepIO:
    reads_ann: frozenset[str] = frozenset()
    reads_files: frozenset[str] = frozenset()
    writes_ann: frozenset[str] = frozenset()
    writes_files: frozenset[str] = frozenset()


def _io(reads_ann=(), reads_files=(), writes_ann=(), writes_files=()) -> StepIO:
    return StepIO(frozenset(reads_ann), frozenset(f.suffix for f in reads_files), frozenset(writes_ann),
                  frozenset(f.suffix for f in writes_files))


GEOMETRY = ("crop", "rotation")
SEGMENTATION = ("thresholds", "phases", "n_phases", "deblur_sigma", "segment_method", "data_type",
                "background", "background_mode")
BAR_MASK = ("barbox", "barcol", "bar_colour", "bar_tolerance", "bar_pick", "no_bar")
#: What the labels and the mask are made from (how they were chosen — auto or by hand, the click — is not).
LABELS_FROM = ("thresholds", "phases", "deblur_sigma", "data_type", "background")
MASK_FROM = ("barbox", "barcol", "bar_colour", "bar_tolerance", "no_bar")
BAR_SCALE = ("bar_ends", "bar_length_px", "bar_value_um", "vox_size", "scale_source")
TRAINED = L.TRAINED
#: The entry's record (description, keywords, ...: :mod:`.details`), edited in the Browse step; no step reads it.
DETAILS = RECORD_FIELDS

TABLE: dict[str, StepIO] = {
    "browse": _io(writes_ann=DETAILS),
    "crop": _io(writes_ann=GEOMETRY),
    "segment": _io(reads_ann=GEOMETRY, writes_ann=SEGMENTATION, writes_files=[L.SEGMENTED]),
    # The mask is drawn on the original and stored in the cropped frame: it follows the crop, not the phases.
    "scalebar": _io(reads_ann=GEOMETRY, writes_ann=BAR_MASK + BAR_SCALE, writes_files=[L.MASK]),
    "inpaint": _io(reads_ann=GEOMETRY + LABELS_FROM + MASK_FROM, reads_files=[L.SEGMENTED, L.MASK],
                   writes_files=[L.INPAINTED, L.INPAINT_GIF]),
    "train": _io(reads_ann=("data_type",), reads_files=[L.INPAINTED], writes_files=TRAINED),
    "inspect": _io(reads_files=[L.INPAINTED, *TRAINED], writes_files=[L.VOLUME, L.STATS_JSON, L.STATS_PNG]),
    "export": _io(reads_ann=BAR_SCALE + ("data_type",),
                  reads_files=[L.INPAINTED, L.INPAINT_GIF, *TRAINED, L.VOLUME, L.MOVIE, L.LONG_PNG],
                  writes_files=[L.EXPORT_MANIFEST, L.MOVIE, L.LONG_PNG]),
}
assert set(TABLE) == set(STEPS)


def changed_keys(old: dict, new: dict) -> set[str]:
    """Annotation keys whose value differs (a key set to None counts as absent)."""
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def stale_steps(step: str | None, ann_changed: set[str], files_changed: set[str]) -> list[str]:
    """Steps (other than ``step``) made stale by these changes, in wizard order."""
    ann, files = set(ann_changed), set(files_changed)
    out: list[str] = []
    for s in STEPS:
        if s == step:
            continue
        io = TABLE[s]
        if io.reads_ann & ann or io.reads_files & files:
            out.append(s)
            # Redone, it writes new outputs: what reads them is stale too.
            ann |= io.writes_ann
            files |= io.writes_files
    return out


def step_of_keys(keys: set[str]) -> list[str]:
    """The steps whose annotations are among ``keys`` (what an undo or redo touched)."""
    return [s for s in STEPS if TABLE[s].writes_ann & keys]

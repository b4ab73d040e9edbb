"""Details: an entry's record as MicroLib's ``data_anns.json`` holds it, edited in the Browse step.

The record has data_anns' fields — ``name``, ``data_type``, ``brief_descr``,
``keywords``, ``category``, ``element``, ``technique``, ``long_desc`` (MicroLib's
``"long desc"``), ``contributor``, ``organisation`` — plus the ``original_filename``
of a local image. A DoITPoMS entry's metadata holds what DoITPoMS says (its
prefill); an edit is an annotation over it, saved with one
:meth:`~microlib_gui.core.library.Library.complete_step`, so Undo/Redo take it
back like any other edit. No step reads the record: an edit makes nothing stale.

``name`` (the entry's folder), ``data_type`` (the Segment step's choice) and
``original_filename`` (the file it was added from) are shown, not edited here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..annotations import RECORD_FIELDS, RECORD_LIST_FIELDS, entry_record, validate_annotations
from ..errors import AnnotationError, MicrolibError
from ..text import clean_text

STEP = "browse"
#: Every field of the record, in data_anns' order, then the original file name.
FIELDS = ("name", "data_type", *RECORD_FIELDS, "original_filename")
#: The fields :func:`save` changes.
EDITABLE = RECORD_FIELDS
LIST_FIELDS = RECORD_LIST_FIELDS
#: Fields written on one line (the long description may have several).
_ONE_LINE = tuple(f for f in RECORD_FIELDS if f not in RECORD_LIST_FIELDS and f != "long_desc")
#: Other spellings a person may type: MicroLib's own key, the DoITPoMS page's labels.
ALIASES = {"long desc": "long_desc", "long_descr": "long_desc", "description": "brief_descr",
           "keyword": "keywords", "categories": "category", "elements": "element",
           "organization": "organisation"}
_READ_ONLY = {
    "name": "it is the entry's folder name (microstructureNNN)",
    "data_type": "the Segment step sets it (two-phase, n-phase, grayscale or colour)",
    "original_filename": "it is the name of the file the entry was added from",
}


class DetailsError(MicrolibError):
    """A record field or value that cannot be saved (unknown field, bad text, a read-only field)."""


@dataclass
class Details:
    """What the Details editor shows: the record, the prefill under it and which fields are edited."""

    entry_id: int
    record: dict  #: every field of :data:`FIELDS`; lists as lists
    prefill: dict  #: the editable fields as the entry's metadata has them (DoITPoMS, or an import)
    edited: frozenset[str]  #: fields whose value is an edit over the prefill
    source: str  #: "doitpoms", "local" or "demo"


def field_name(name: str) -> str:
    """The record's name for ``name`` (``"long desc"`` → ``long_desc``); :class:`DetailsError` if none."""
    key = str(name).strip()
    key = ALIASES.get(key.lower(), key.lower())
    if key in EDITABLE:
        return key
    if key in _READ_ONLY:
        raise DetailsError(f"field {name!r} cannot be set: {_READ_ONLY[key]}")
    raise DetailsError(f"unknown field {str(name)[:40]!r} (one of: {', '.join(EDITABLE)})")


def inputs(library, entry_id: int) -> Details:
    """The entry's record: its metadata's values (DoITPoMS's, for a DoITPoMS entry) under the edits."""
    entry = library.get_entry(entry_id)
    ann = library.get_annotations(entry.id)
    record = entry_record(entry, ann)
    prefill = entry_record(entry, {})
    edited = frozenset(f for f in EDITABLE if ann.get(f) is not None)
    return Details(entry.id, record, {f: prefill[f] for f in EDITABLE}, edited, entry.source)


def records(library) -> dict[int, dict]:
    """Every entry's record (entry id → record), read in a few queries (the Browse list's search)."""
    anns = library.current_annotations_many()
    return {e.id: entry_record(e, anns.get(e.id, {})) for e in library.list_entries()}


def check_value(field: str, value) -> str | list[str]:
    """``value`` for ``field`` checked: text (:mod:`..text`'s rules) or, for a list field, a list of texts.

    Surrounding spaces go; a list drops empty items. Raises :class:`DetailsError` in one line.
    """
    if field in LIST_FIELDS:
        if not isinstance(value, (list, tuple)):
            raise DetailsError(f"field {field!r} takes a list of texts (comma-separated on the command line)")
        items = [_text(field, v, one_line=True) for v in value]
        return [v for v in items if v]
    return _text(field, value, one_line=field in _ONE_LINE)


def _text(field: str, value, one_line: bool) -> str:
    if not isinstance(value, str):
        raise DetailsError(f"field {field!r} takes text, not {type(value).__name__}")
    text = clean_text(value, f"field {field!r}", error=DetailsError).strip()
    if one_line and ("\n" in text or "\r" in text):
        raise DetailsError(f"field {field!r} is one line of text (only long_desc may have several)")
    return text


def save(library, entry_id: int, **fields):
    """Save edits of the record (``brief_descr="..."``, ``keywords=[...]``, ...) as one undoable edit.

    A value equal to the prefill drops the edit (the DoITPoMS value shows again);
    an unchanged value adds no Undo step. Unknown or read-only fields and bad
    values raise :class:`DetailsError` and nothing is saved.
    """
    changes = {}
    for name, value in fields.items():
        key = field_name(name)
        changes[key] = check_value(key, value)
    if not changes:
        raise DetailsError("nothing to save: give at least one field (" + ", ".join(EDITABLE) + ")")
    prefill = inputs(library, entry_id).prefill
    edits = {k: (None if v == prefill[k] else v) for k, v in changes.items()}
    try:
        validate_annotations(edits)
    except AnnotationError as exc:
        raise DetailsError(str(exc)) from None
    return library.complete_step(entry_id, STEP, annotations=edits, status=None)

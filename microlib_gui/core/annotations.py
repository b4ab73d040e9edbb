"""Per-entry annotations: schema, validation, MicroLib's file formats.

An entry's annotations are a flat JSON object. Keys shared with MicroLib's
annotation file keep MicroLib's names and meaning so files round-trip:

``crop``        [x0, y0, x1, y1] in pixels of the original (MicroLib: optional)
``barbox``      [[x0, y0], [x1, y1]] box around the scale bar and its label
``barcol``      [grey 0-255, tolerance x 2550] of the bar, or null
``phases``      grey levels 0-255 of each phase (thresholds halfway between)
``vox_size``    µm per pixel
``data_type``   "twophase", "nphase", "grayscale" or "colour"

MicroLib Studio adds: ``rotation`` (degrees), ``thresholds`` (explicit grey
levels), ``n_phases``, ``segment_method``, ``bar_pick`` [x, y], ``bar_tolerance``,
``bar_ends`` [[x, y], [x, y]], ``bar_length_px``, ``bar_value_um``,
``microlib_key`` and ``data_path`` (kept from an imported MicroLib file).

The entry's record (MicroLib's ``data_anns.json`` descriptors, :data:`RECORD_FIELDS`:
``brief_descr``, ``keywords``, ... ``organisation``) is edited as annotations too,
over what the entry's metadata holds from DoITPoMS (:func:`entry_record`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from . import userjson
from .errors import AnnotationError
from .text import clean_text, clean_value, plain_json, show

DATA_TYPES = ("twophase", "nphase", "grayscale", "colour")
MAX_COORD = 1_000_000  # no micrograph is a million pixels wide
MAX_PHASES = 16
MAX_FILE_BYTES = 512 * 1024 * 1024  # an annotation file of a million records is ~200 MB
#: DoITPoMS micrograph ids (the store's range for them: local entries start at 10001)
DOITPOMS_IDS = range(1, 10001)

# MicroLib's data_anns.json descriptors, in its order.
DATA_ANNS_FIELDS = (
    "name", "data_type", "brief_descr", "keywords", "category", "element",
    "technique", "long desc", "contributor", "organisation",
)
#: The descriptive part of an entry's record (annotation keys; MicroLib's ``"long desc"`` is
#: ``long_desc``), editable in the Browse step and by ``microlib library set``. A DoITPoMS
#: entry's metadata holds the values read from DoITPoMS; an annotation overrides one.
RECORD_LIST_FIELDS = ("keywords", "category", "element")
RECORD_FIELDS = ("brief_descr", "keywords", "category", "element", "technique", "long_desc", "contributor",
                 "organisation")
MAX_RECORD_TEXT = 20_000  # the longest DoITPoMS "further information" is a few thousand characters
MAX_RECORD_ITEMS = 200
MAX_RECORD_ITEM = 500


def _num(v: Any, key: str, lo: float = -MAX_COORD, hi: float = MAX_COORD) -> float:
    t = type(v)  # exact types: bool is an int to isinstance
    if t is int or (t is float and math.isfinite(v)):  # an int as it is: math.isfinite(10**400) overflows
        if lo <= v <= hi:
            return v
        raise AnnotationError(f"annotation {key!r}: {_short(v)} is outside {lo}..{hi}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        raise AnnotationError(f"annotation {key!r}: expected a number, got {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise AnnotationError(f"annotation {key!r}: {_short(v)} is outside {lo}..{hi}")
    return v


def _short(v: float) -> str:
    text = str(v)
    return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} digits)"


def _num_list(v: Any, key: str, n: int | None = None, lo: float = -MAX_COORD, hi: float = MAX_COORD,
              max_len: int = 64) -> list:
    if not isinstance(v, (list, tuple)):
        raise AnnotationError(f"annotation {key!r}: expected a list, got {json.dumps(v)[:40]}")
    if (n is not None and len(v) != n) or len(v) > max_len:
        raise AnnotationError(f"annotation {key!r}: expected {n} values, got {len(v)}")
    return [_num(x, key, lo, hi) for x in v]


def validate_annotations(ann: dict[str, Any]) -> dict[str, Any]:
    """Check types and ranges; return a clean copy or raise :class:`AnnotationError`."""
    if not isinstance(ann, dict):
        raise AnnotationError("annotations must be a JSON object")
    # every key and text valid Unicode in NFC (exportable again), numbers finite
    if not (all(type(k) is str for k in ann) and plain_json(ann) is not None):
        ann = clean_value(ann, "annotations", error=AnnotationError)
    out: dict[str, Any] = {}
    for key, v in ann.items():
        if len(key) > 64:
            raise AnnotationError(f"annotation key {show(key)} is not a short string")
        if v is None:
            out[key] = None
            continue
        if key == "crop":
            x0, y0, x1, y1 = _num_list(v, key, 4, 0)
            if x1 <= x0 or y1 <= y0:
                raise AnnotationError("annotation 'crop': x1, y1 must be greater than x0, y0")
            out[key] = [int(x0), int(y0), int(x1), int(y1)]
        elif key in ("barbox", "bar_ends"):
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise AnnotationError(f"annotation {key!r}: expected [[x0, y0], [x1, y1]]")
            out[key] = [[int(c) for c in _num_list(p, key, 2)] for p in v]
        elif key == "barcol":
            out[key] = [int(c) if float(c).is_integer() else c for c in _num_list(v, key, None, 0, 1e6, 8)]
        elif key in ("phases", "thresholds"):
            vals = _num_list(v, key, None, 0, 65535, MAX_PHASES)
            out[key] = [int(x) if float(x).is_integer() else x for x in vals]
        elif key == "vox_size":
            out[key] = _num(v, key, 0, 1e6)
            if out[key] == 0:
                raise AnnotationError("annotation 'vox_size': must be greater than 0")
        elif key == "rotation":
            out[key] = _num(v, key, -360, 360)
        elif key == "n_phases":
            out[key] = int(_num(v, key, 1, MAX_PHASES))
        elif key in ("bar_tolerance", "bar_length_px", "bar_value_um"):
            out[key] = _num(v, key, 0, MAX_COORD)
        elif key == "bar_pick":
            out[key] = [int(c) for c in _num_list(v, key, 2, 0)]
        elif key in RECORD_FIELDS:
            out[key] = _record_value(key, v)
        elif key == "data_type":
            if v == "two-phase":
                v = "twophase"
            if v not in DATA_TYPES:
                raise AnnotationError(f"annotation 'data_type': {str(v)[:20]!r} is not one of {', '.join(DATA_TYPES)}")
            out[key] = v
        else:
            # Free-form extras (method names, file names, provenance notes): JSON scalars,
            # short strings or small lists only.
            size = len(v) if isinstance(v, str) and v.isascii() else len(json.dumps(v))
            if size > 10_000:
                raise AnnotationError(f"annotation {key!r}: value too large ({size} bytes)")
            out[key] = v
    return out


def _record_value(key: str, v: Any) -> Any:
    """A record field's value checked: text for the text fields, a list of short texts for the lists."""
    if key in RECORD_LIST_FIELDS:
        if (not isinstance(v, (list, tuple)) or len(v) > MAX_RECORD_ITEMS
                or not all(isinstance(x, str) and len(x) <= MAX_RECORD_ITEM for x in v)):
            raise AnnotationError(f"annotation {key!r}: expected a list of at most {MAX_RECORD_ITEMS} texts of at "
                                  f"most {MAX_RECORD_ITEM} characters")
        return list(v)
    if not isinstance(v, str) or len(v) > MAX_RECORD_TEXT:
        raise AnnotationError(f"annotation {key!r}: expected text of at most {MAX_RECORD_TEXT} characters")
    return v


# -- reading an annotation file -----------------------------------------------------
def read_json_file(path: str | os.PathLike) -> Any:
    """The JSON document in ``path``, or :class:`AnnotationError` with one line saying why not.

    Only a regular file of at most :data:`MAX_FILE_BYTES` is read (:mod:`.safefile`:
    a FIFO would block, ``/dev/zero`` never ends); a UTF-8 byte-order mark is allowed; an
    object naming one key twice is refused (JSON parsers keep only the last one,
    so the other record would be dropped without a word); so is nesting deeper
    than the parser's stack (what parses is bounded by :func:`validate_annotations`).
    """
    from .safefile import read_regular_file

    path = Path(path)
    raw = read_regular_file(path, MAX_FILE_BYTES, "an annotation file", AnnotationError)
    try:
        doc = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path.name}: not UTF-8 text (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                              ) from None
    except RecursionError:
        doc = None
    except _DuplicateKey as exc:
        raise AnnotationError(f"{path.name}: the key {show(exc.args[0])} appears twice in one object "
                              "(only one could be kept)") from None
    except ValueError as exc:  # a number of more than 4300 digits, ...
        raise AnnotationError(f"{path.name}: not valid JSON ({' '.join(str(exc).split())[:80]})") from None
    if doc is None:  # deeper than the parser's stack; what it parsed is bounded by validate_annotations
        raise AnnotationError(f"{path.name}: not accepted: JSON nested more than {userjson.MAX_DEPTH} levels deep")
    return doc


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _v in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


# -- MicroLib's per-image annotation file (microlib-prelabelled_anns.json) ----------
_DP_ID = re.compile(r"([0-9]+)\.\w+$", re.ASCII)


def doitpoms_id_from_data_path(data_path: str) -> int | None:
    """The DoITPoMS id a ``data_path`` names (``.../000012.png`` is 12), or None.

    ASCII digits only, and only ids in :data:`DOITPOMS_IDS`: a number beyond them
    names no DoITPoMS micrograph.
    """
    m = _DP_ID.search(str(data_path))
    if not m or len(m.group(1)) > 12:
        return None
    did = int(m.group(1))
    return did if did in DOITPOMS_IDS else None


#: The name a library gives an entry's original (``microstructure10001_original.png``): what an
#: export writes as the ``data_path`` of an entry imported from no MicroLib file.
_ENTRY_FILE = re.compile(r"microstructure([0-9]{1,12})_original\.\w+", re.ASCII)
#: Entry ids a store can hold (DoITPoMS ids, then local and demo entries from 10001).
ENTRY_IDS = range(1, 10**7)


def entry_id_from_data_path(data_path: str) -> int | None:
    """The entry id a ``data_path`` names by the library's file name, or None.

    The file name (after the last ``/`` or ``\\``) must be ``microstructure`` + ASCII
    digits + ``_original`` + an extension, as an export writes it:
    ``microstructure10001_original.png`` is entry 10001, ``microstructure012_original.tif``
    entry 12 (a DoITPoMS micrograph's entry id is its DoITPoMS id).
    """
    m = _ENTRY_FILE.fullmatch(re.split(r"[/\\]", str(data_path))[-1])
    if m is None:
        return None
    eid = int(m.group(1))
    return eid if eid in ENTRY_IDS else None


def read_microlib_anns(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """Parse a MicroLib annotation file into ``(micrograph, annotations)`` pairs.

    ``micrograph`` is a DoITPoMS id (1..10000) or, for a local entry's record,
    its entry id (from 10001). A ``data_path`` naming an entry's original
    (:func:`entry_id_from_data_path`) gives that entry's id (a DoITPoMS
    micrograph's entry id is its DoITPoMS id); any other ``data_path`` must end
    in a DoITPoMS id (:func:`doitpoms_id_from_data_path`).

    Every entry is validated; one bad entry refuses the whole file with a reason
    naming it, so a half-applied import cannot happen. Two records naming the
    same micrograph are refused too (one would silently replace the other).
    """
    path = Path(path)
    doc = read_json_file(path)
    if not isinstance(doc, dict):
        raise AnnotationError(f"{path.name}: expected a JSON object of entries")
    out = []
    seen: dict[int, str] = {}
    for key, rec in doc.items():
        key = clean_text(key, f"{path.name}: entry key", key=True, error=AnnotationError)
        if not isinstance(rec, dict):
            raise AnnotationError(f"{path.name}: entry {show(key)} is not an object")
        dp = rec.get("data_path")
        if not isinstance(dp, str):
            raise AnnotationError(f"{path.name}: entry {show(key)} has no data_path")
        did = entry_id_from_data_path(dp) or doitpoms_id_from_data_path(dp)
        if did is None:
            raise AnnotationError(f"{path.name}: entry {show(key)}: cannot read a DoITPoMS micrograph id "
                                  f"({DOITPOMS_IDS.start}..{DOITPOMS_IDS.stop - 1}) or an entry's file name "
                                  f"(microstructureNNN_original.png) from {show(dp, 60)}")
        if did in seen:
            what = f"micrograph {did}" if did in DOITPOMS_IDS else f"entry microstructure{did:03d}"
            raise AnnotationError(f"{path.name}: entries {show(seen[did])} and {show(key)} both name {what}")
        seen[did] = key
        try:
            ann = validate_annotations({**rec, "microlib_key": key})
        except AnnotationError as exc:
            raise AnnotationError(f"{path.name}: entry {show(key)}: {exc}") from None
        out.append((did, ann))
    return out


MICROLIB_ANN_KEYS = ("data_path", "barbox", "barcol", "phases", "vox_size", "data_type", "crop")


def to_microlib_ann(ann: dict[str, Any]) -> dict[str, Any]:
    """The subset of our annotations MicroLib's annotation file holds, in its key order."""
    return {k: ann[k] for k in MICROLIB_ANN_KEYS if k in ann}


# -- dataset-level data_anns.json ---------------------------------------------------------
def split_list(text: str) -> list[str]:
    """``"a, b,,c "`` → ``["a", "b", "c"]``: how MicroLib's file (and a person) writes a list."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def entry_record(entry, ann: dict[str, Any]) -> dict[str, Any]:
    """An entry's record: data_anns' fields (``long_desc`` for ``"long desc"``) plus ``original_filename``.

    The descriptive fields are the entry's stored metadata (what DoITPoMS says, for
    a DoITPoMS entry) with its annotations' edits over them; lists are lists
    (a metadata value imported as ``"a, b"`` is split). ``name`` is the entry's
    folder name, ``data_type`` the Segment step's; ``original_filename`` the file a
    local image was added from ("" when none).
    """
    m = entry.metadata
    rec: dict[str, Any] = {"name": entry.name, "data_type": ann.get("data_type") or m.get("data_type") or ""}
    for f in RECORD_FIELDS:
        v = ann[f] if ann.get(f) is not None else m.get(f)
        if f in RECORD_LIST_FIELDS:
            rec[f] = [str(x) for x in v] if isinstance(v, (list, tuple)) else split_list(v or "")
        else:
            rec[f] = "" if v is None else str(v)
    rec["original_filename"] = str(m.get("original_filename") or "")
    return rec


def entry_to_data_anns(entry, ann: dict[str, Any]) -> dict[str, Any]:
    """One record of MicroLib's ``data_anns.json`` for a store entry (lists comma-separated).

    ``original_filename`` follows MicroLib's fields when the entry has one (a local image).
    """
    rec = entry_record(entry, ann)
    dtype = rec["data_type"]
    out = {"name": rec["name"], "data_type": "two-phase" if dtype == "twophase" else dtype}
    for f in DATA_ANNS_FIELDS[2:]:
        key = "long_desc" if f == "long desc" else f
        out[f] = _join(rec[key])
    if rec["original_filename"]:
        out["original_filename"] = rec["original_filename"]
    return out


def _join(v: Any) -> str:
    return ", ".join(v) if isinstance(v, (list, tuple)) else str(v)


def read_data_anns(path: str | os.PathLike) -> list[tuple[str, dict[str, Any], str | None]]:
    """``(name, metadata, data_type)`` of every record of a ``data_anns.json``, all validated.

    The metadata holds the fields the record has (lists split at commas, ``long_desc``
    for ``"long desc"``, ``original_filename`` when not empty). One bad record refuses
    the whole file, naming it; so do two records of one name.
    """
    path = Path(path)
    doc = read_json_file(path)
    if not isinstance(doc, dict):
        raise AnnotationError(f"{path.name}: expected a JSON object")
    out = []
    seen: dict[str, str] = {}
    for key, rec in doc.items():
        key = clean_text(key, f"{path.name}: record key", key=True, error=AnnotationError)
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise AnnotationError(f"{path.name}: record {show(key)} has no name")
        name = clean_text(rec["name"].strip(), f"{path.name}: record {show(key)}: name", key=True,
                          error=AnnotationError)
        if name in seen:
            raise AnnotationError(f"{path.name}: records {show(seen[name])} and {show(key)} both name {show(name)}")
        seen[name] = key
        meta = {}
        for f in (*DATA_ANNS_FIELDS[2:], "original_filename"):
            if f not in rec:  # a field the file leaves out is left as it is
                continue
            val = rec[f]
            if isinstance(val, list) and f in RECORD_LIST_FIELDS and all(isinstance(x, str) for x in val):
                val = ", ".join(val)  # a list written as JSON's: read as MicroLib's text
            if not isinstance(val, str) or len(val) > MAX_RECORD_TEXT:
                raise AnnotationError(f"{path.name}: record {show(key)}: field {f!r} must be a short string")
            if not (val.isascii() and val.isprintable()):  # else nothing to clean (the common case)
                val = clean_text(val, f"{path.name}: record {show(key)}: field {f!r}", error=AnnotationError)
            field_name = "long_desc" if f == "long desc" else f
            if f == "original_filename" and not val:
                continue  # an entry added from bytes names no file: keep the one this library knows
            meta[field_name] = split_list(val) if field_name in RECORD_LIST_FIELDS else val
        dt = rec.get("data_type") or None
        if dt is not None:
            if not isinstance(dt, str):
                raise AnnotationError(f"{path.name}: record {show(key)}: data_type must be a string")
            try:
                dt = validate_annotations({"data_type": dt})["data_type"]
            except AnnotationError as exc:
                raise AnnotationError(f"{path.name}: record {show(key)}: {exc}") from None
        out.append((name, meta, dt))
    return out

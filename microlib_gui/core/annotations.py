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
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from .errors import AnnotationError

DATA_TYPES = ("twophase", "nphase", "grayscale", "colour")
MAX_COORD = 1_000_000  # no micrograph is a million pixels wide
MAX_PHASES = 16

# MicroLib's data_anns.json descriptors, in its order.
DATA_ANNS_FIELDS = (
    "name", "data_type", "brief_descr", "keywords", "category", "element",
    "technique", "long desc", "contributor", "organisation",
)


def _num(v: Any, key: str, lo: float = -MAX_COORD, hi: float = MAX_COORD) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AnnotationError(f"annotation {key!r}: expected a number, got {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise AnnotationError(f"annotation {key!r}: {v} is outside {lo}..{hi}")
    return v


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
    out: dict[str, Any] = {}
    for key, v in ann.items():
        if not isinstance(key, str) or len(key) > 64:
            raise AnnotationError(f"annotation key {str(key)[:40]!r} is not a short string")
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
        elif key == "data_type":
            if v == "two-phase":
                v = "twophase"
            if v not in DATA_TYPES:
                raise AnnotationError(f"annotation 'data_type': {str(v)[:20]!r} is not one of {', '.join(DATA_TYPES)}")
            out[key] = v
        else:
            # Free-form extras (method names, file names, provenance notes): JSON scalars,
            # short strings or small lists only.
            blob = json.dumps(v)
            if len(blob) > 10_000:
                raise AnnotationError(f"annotation {key!r}: value too large ({len(blob)} bytes)")
            out[key] = v
    return out


# -- MicroLib's per-image annotation file (microlib-prelabelled_anns.json) ----------
_DP_ID = re.compile(r"(\d+)\.\w+$")


def doitpoms_id_from_data_path(data_path: str) -> int | None:
    m = _DP_ID.search(str(data_path))
    return int(m.group(1)) if m else None


def read_microlib_anns(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """Parse a MicroLib annotation file into ``(doitpoms_id, annotations)`` pairs.

    Every entry is validated; one bad entry refuses the whole file with a reason
    naming it, so a half-applied import cannot happen.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path.name}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{path.name}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise AnnotationError(f"{path.name}: cannot be read ({exc.strerror})") from None
    if not isinstance(doc, dict):
        raise AnnotationError(f"{path.name}: expected a JSON object of entries")
    out = []
    for key, rec in doc.items():
        if not isinstance(rec, dict):
            raise AnnotationError(f"{path.name}: entry {key!r} is not an object")
        dp = rec.get("data_path")
        if not isinstance(dp, str):
            raise AnnotationError(f"{path.name}: entry {key!r} has no data_path")
        did = doitpoms_id_from_data_path(dp)
        if did is None:
            raise AnnotationError(f"{path.name}: entry {key!r}: cannot read a micrograph id from {dp!r}")
        try:
            ann = validate_annotations({**rec, "microlib_key": str(key)})
        except AnnotationError as exc:
            raise AnnotationError(f"{path.name}: entry {key!r}: {exc}") from None
        out.append((did, ann))
    return out


MICROLIB_ANN_KEYS = ("data_path", "barbox", "barcol", "phases", "vox_size", "data_type", "crop")


def to_microlib_ann(ann: dict[str, Any]) -> dict[str, Any]:
    """The subset of our annotations MicroLib's annotation file holds, in its key order."""
    return {k: ann[k] for k in MICROLIB_ANN_KEYS if k in ann}


# -- dataset-level data_anns.json ---------------------------------------------------------
def entry_to_data_anns(entry, ann: dict[str, Any]) -> dict[str, Any]:
    """One record of MicroLib's ``data_anns.json`` for a store entry."""
    m = entry.metadata
    dtype = ann.get("data_type") or m.get("data_type") or ""
    return {
        "name": entry.name,
        "data_type": "two-phase" if dtype == "twophase" else dtype,
        "brief_descr": m.get("brief_descr", ""),
        "keywords": _join(m.get("keywords", "")),
        "category": _join(m.get("category", "")),
        "element": _join(m.get("element", "")),
        "technique": m.get("technique", ""),
        "long desc": m.get("long_desc", ""),
        "contributor": m.get("contributor", ""),
        "organisation": m.get("organisation", ""),
    }


def _join(v: Any) -> str:
    return ", ".join(v) if isinstance(v, (list, tuple)) else str(v)


def read_data_anns(path: str | os.PathLike) -> Iterable[tuple[str, dict[str, Any], str | None]]:
    """Yield ``(name, metadata, data_type)`` from a ``data_anns.json``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{path.name}: cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise AnnotationError(f"{path.name}: expected a JSON object")
    for key, rec in doc.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise AnnotationError(f"{path.name}: record {key!r} has no name")
        meta = {}
        for f in DATA_ANNS_FIELDS[2:]:
            val = rec.get(f, "")
            if not isinstance(val, str) or len(val) > 20_000:
                raise AnnotationError(f"{path.name}: record {key!r}: field {f!r} must be a short string")
            meta["long_desc" if f == "long desc" else f] = val
        dt = rec.get("data_type") or None
        if dt is not None and not isinstance(dt, str):
            raise AnnotationError(f"{path.name}: record {key!r}: data_type must be a string")
        yield rec["name"], meta, dt

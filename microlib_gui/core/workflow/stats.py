"""Statistics (in the Inspect step): the training image against the generated volume.

Compares ``_inpainted.png`` with ``.tif`` (:func:`microlib_gui.core.stats.compare`)
and keeps the result as ``_stats.json`` and its figure ``_stats.png``, with
provenance naming both inputs. A volume whose phase fractions were matched to the
image (``--match-vf``) adds ``calibration``: the fractions before and after. :func:`saved` reads the stored result back —
what the Stats tab shows when an entry is opened, also after a restart — and
says whether it still describes the entry's current image and volume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..library import layout as L
from ..stats.metrics import StatsError
from . import generate
from .generate import file_sha, known_sha

STEP = "inspect"
#: What the statistics compare: the training image and the volume.
READS = (L.INPAINTED.suffix, L.VOLUME.suffix)
_RESULT_KEYS = {"kind", "image2d", "volume3d", "errors", "flag"}


@dataclass
class StatsInputs:
    ready: bool
    reason: str  #: why not ready ('' when ready)
    image: Path
    volume: Path
    warning: str = ""  #: e.g. the volume is from an earlier generator
    stamps: dict[str, str | None] | None = None  #: sha256 of each input when read


def inputs(library, entry_id: int) -> StatsInputs:
    """The two files to compare, and whether both are there."""
    img = library.entry_file(entry_id, L.INPAINTED.suffix)
    vol = library.entry_file(entry_id, L.VOLUME.suffix)
    if not img.exists():
        return StatsInputs(False, f"no {img.name}: do the Inpaint step first", img, vol)
    if not vol.exists():
        return StatsInputs(False, f"no {vol.name}: generate a volume first", img, vol)
    state = generate.volume_state(library, entry_id)
    warning = "" if state.current else f"the volume is not current: {state.reason}"
    return StatsInputs(True, "", img, vol, warning)


def job(ctx, image: str | Path, volume: str | Path, **compare_kw) -> dict:
    """Job function: :func:`~microlib_gui.core.stats.compare` of two files (JSON-able, finite or None).

    Reports each stage (reading, then :func:`~microlib_gui.core.stats.compare.stage_names`)
    and stops between stages when the job is cancelled.
    """
    return _compare_files(ctx, image, volume, extra_stages=0, **compare_kw)[0]


def _compare_files(ctx, image, volume, extra_stages: int = 0, **compare_kw) -> tuple[dict, int, int]:
    """Compare, reporting ``reading`` + the comparison's stages + ``extra_stages`` (the caller's);
    returns ``(result, steps done, total steps)``."""
    from ..stats.compare import compare, finite_or_none, load_pair, stage_names

    ctx.report(0, 0, "reading the training image and the volume", force=True)
    img, vol, kind = load_pair(image, volume)
    total = 1 + len(stage_names(kind, compare_kw.get("tortuosity", True))) + extra_stages

    def progress(step: int, _n: int, message: str) -> None:
        ctx.check_cancelled()
        ctx.report(1 + step, total, message, force=message in stage_names(kind, True))

    result = finite_or_none(compare(img, vol, kind=kind, progress=progress, **compare_kw))
    return result, total - extra_stages, total


def _params(compare_kw: dict) -> dict:
    return {k: v for k, v in compare_kw.items() if isinstance(v, (int, float, str, bool, type(None)))}


def save(library, entry_id: int, result: dict, inputs: StatsInputs, params: dict):
    """Store ``_stats.json`` and ``_stats.png`` in one transaction (the Inspect step's status is left).

    Refuses when the image or the volume changed while the statistics were
    computed: the stored result would describe files the entry no longer has.
    """
    from ..report import entry_figure
    from ..library import StagedFile

    if inputs.stamps is not None and any(file_sha(p) != inputs.stamps.get(str(p))
                                         for p in (inputs.image, inputs.volume)):
        raise StatsError("the training image or the volume changed while the statistics were computed: "
                         "compute them again")
    name = library.entry_dir(entry_id).name
    result = {**result, "entry": {"id": int(entry_id), "name": name}}
    cal = calibration(library, entry_id, result)
    if cal:
        result["calibration"] = cal
        # matched already: the advice to match is moot
        result["flag"]["advice"] = [a for a in result["flag"].get("advice", []) if "--match-vf" not in a]
    text = json.dumps(result, indent=1) + "\n"
    png = entry_figure(result, None, title=name)
    p = _params(params)
    files = [StagedFile(L.STATS_JSON.suffix, text.encode("utf-8"), inputs=list(READS), params=p, produced_by="stats"),
             StagedFile(L.STATS_PNG.suffix, png, inputs=list(READS), params=p, produced_by="stats")]
    library.complete_step(entry_id, STEP, files=files, status=None)
    return result


def calibration(library, entry_id: int, result: dict) -> dict | None:
    """How the volume's phase fractions were matched (``microlib generate --match-vf``), with the
    raw figures: ``raw_vf`` (before the offsets) and its error against the 2D image, beside
    the calibrated volume's own in ``result``. None for a volume generated without it."""
    from ..stats.compare import rel_error

    cal = generate.volume_state(library, entry_id).params.get("calibration")
    if not cal or result.get("kind") != "nphase":
        return None
    vf2 = result["image2d"]["volume_fraction"]
    return {**cal, "raw_volume_fraction_error": [rel_error(a, b) for a, b in zip(vf2, cal.get("raw_vf") or [])]}


def run_job(ctx, library_root: str, entry_id: int, **compare_kw) -> dict:
    """Job function: read the inputs, compare, :func:`save` (GUI thread, build, report, CLI)."""
    from ..library import Library

    lib = Library(library_root, create=False)
    return compute(lib, entry_id, ctx=ctx, **compare_kw)


def compute(library, entry_id: int, ctx=None, on_progress=None, **compare_kw) -> dict:
    """Compare and store, inline; returns the result with ``entry``.

    ``ctx`` (a job's context) or ``on_progress`` (a callback taking
    :class:`~microlib_gui.core.jobs.Progress` events, the CLI's) hears each stage;
    a cancelled job stops before anything is saved. The generator's training
    (:func:`training_info`) goes into the flag's likely causes.
    """
    import threading

    from ..jobs import JobContext

    inp = inputs(library, entry_id)
    if not inp.ready:
        raise StatsError(f"{library.entry_dir(entry_id).name}: {inp.reason}")
    inp.stamps = {str(p): file_sha(p) for p in (inp.image, inp.volume)}
    if ctx is None:
        ctx = JobContext(on_progress or (lambda p: None), threading.Event())
    kw = {"training": training_info(library, entry_id), **compare_kw}
    result, step, total = _compare_files(ctx, inp.image, inp.volume, extra_stages=1, **kw)
    ctx.check_cancelled()  # the last moment to stop: from here on the result is saved
    ctx.report(step, total, SAVING, force=True)
    saved_result = save(library, entry_id, result, inp, compare_kw)
    ctx.report(total, total, "statistics saved", force=True)
    return saved_result


#: The message of the last stage, drawing the figure and saving (a job past it is not stopped).
SAVING = "drawing the figure and saving"


def training_info(library, entry_id: int) -> dict | None:
    """How the generator that made the entry's volume was trained, for the flag's likely causes.

    ``{"iteration", "preset", "preset_iters", "full_preset", "full_iters", "converged", "layers"}``
    from the generator's provenance and its ``_meta.json`` (written by training; ``layers``:
    "resize" when it names resize layers, else "transpose");
    None when the volume is not the current generator's or nothing records it.
    """
    from ..slicegan.nets import upsampling
    from ..slicegan.presets import PRESETS

    gen = library.entry_file(entry_id, L.GENERATOR.suffix)
    if not gen.exists() or not generate.volume_state(library, entry_id).current:
        return None
    prov = next((p for p in library.provenance(entry_id) if p["file"] == gen.name), None) or {}
    params = prov.get("params") or {}
    try:
        meta = json.loads(library.entry_file(entry_id, L.GEN_META.suffix).read_text("utf-8"))
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    # a run stopped by its convergence check keeps an earlier generator (the best check's):
    # the iterations it trained for are what says whether it was trained long enough
    iteration = meta.get("trained_iterations", params.get("iteration", meta.get("iteration")))
    stopped = meta.get("stop_reason") in ("converged", "plateau") or meta.get("converged_at") is not None
    preset = params.get("preset") or meta.get("preset")
    if iteration is None and preset is None:
        return None
    known = PRESETS.get(preset) if isinstance(preset, str) else None
    kinds = meta.get("trained_layers") or meta.get("g_layers")  # (g_layers: files of the version before)
    layers = upsampling(kinds) if isinstance(kinds, list) else "transpose"
    return {"layers": layers, "iteration": None if iteration is None else int(iteration), "preset": preset,
            "preset_iters": known.iters if known else None, "full_preset": "microlib",
            "full_iters": PRESETS["microlib"].iters,
            "converged": bool(stopped or meta.get("converged") or params.get("converged"))}


@dataclass
class SavedStats:
    """The stored statistics of an entry."""

    result: dict[str, Any] | None  #: None when there are none (or they cannot be read)
    current: bool  #: made from the entry's current image and volume
    reason: str = ""  #: why not current, or why there are none


def saved(library, entry_id: int) -> SavedStats:
    """The entry's ``_stats.json``, and whether its image and volume are the ones the entry has now."""
    path = library.entry_file(entry_id, L.STATS_JSON.suffix)
    if not path.exists():
        return SavedStats(None, False, "no statistics yet")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return SavedStats(None, False, f"{path.name} cannot be read: compute the statistics again")
    if not isinstance(result, dict) or not _RESULT_KEYS <= set(result):
        return SavedStats(None, False, f"{path.name} is not a statistics result: compute them again")
    # Other writers (an older build) may leave out who the entry is.
    result.setdefault("entry", {"id": int(entry_id), "name": library.entry_dir(entry_id).name})
    rows = library.provenance(entry_id)
    prov = next((p for p in rows if p["file"] == path.name), None)
    if prov is None or file_sha(path) != prov["sha256"]:
        return SavedStats(result, False, "nothing records what these statistics were computed from")
    recorded = {i["file"]: i.get("sha256") for i in prov["inputs"]}
    for suffix in READS:
        p = library.entry_file(entry_id, suffix)
        if recorded.get(p.name) is None or recorded[p.name] != known_sha(p, rows):
            what = "volume" if suffix == L.VOLUME.suffix else "training image"
            return SavedStats(result, False, f"computed from an earlier {what}")
    return SavedStats(result, True)

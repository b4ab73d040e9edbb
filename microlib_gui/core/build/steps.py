"""The build's step table: one function per pipeline step.

A step function is ``step_fn(library_root, entry_id, params) -> list[str]``,
returning the names of the entry files it wrote. A step the wizard also has
(inpaint, train, ...) calls that step's :mod:`microlib_gui.core.workflow` module
— its ``inputs``, its job function and its ``save`` —, so the build makes the
same files as the wizard and marks stale what the wizard would; the build itself
only orders, schedules and records. Modules are imported lazily, inside the
step function, so that

* a SLURM job imports only what its steps need, and
* a step whose engine is not part of this version raises :class:`StepUnavailable`:
  the build reports it as "unavailable" and stops that entry's pipeline there,
  rather than pretending the step ran.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MicrolibError
from ..library import layout as L

log = logging.getLogger("microlib.build")

#: The pipeline, in order: what ``microlib build`` runs for an entry by default.
PIPELINE: tuple[str, ...] = ("inpaint", "train", "generate", "stats", "media", "export")
#: Diagnostic step, run only when asked for (``--steps selftest``).
DIAGNOSTIC: tuple[str, ...] = ("selftest",)
ALL_STEPS: tuple[str, ...] = DIAGNOSTIC + PIPELINE

#: The wizard step (core.steps.STEPS) a build step belongs to: its workflow save sets that step's
#: status, a stale one is redone, and outputs the wizard made count as done (see runner.step_done).
WIZARD_STEP: dict[str, str] = {"inpaint": "inpaint", "train": "train", "generate": "inspect", "stats": "inspect",
                               "export": "export"}


class BuildError(MicrolibError):
    """A build could not be planned, submitted or run (bad options, no such entry, ...)."""


class StepUnavailable(MicrolibError):
    """The engine a step needs is not part of this version (yet)."""


def _module(module: str, step: str):
    """Import ``module``, or raise :class:`StepUnavailable` when it is not part of this version."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the engine itself being absent makes a step unavailable; a missing
        # dependency inside an existing engine is a real failure.
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise StepUnavailable(f"{step}: its engine {module} is not part of this version") from None
        raise


def _engine(module: str, attr: str, step: str) -> Any:
    """Import ``module`` and return ``module.attr``, or raise :class:`StepUnavailable`."""
    fn = getattr(_module(module, step), attr, None)
    if fn is None:
        raise StepUnavailable(f"{step}: engine {module} has no {attr}() the build can call")
    return fn


def _library(root):
    from .state import open_library

    return open_library(root)


def _progress_logger(step: str) -> Callable:
    """An ``on_progress`` callback writing at most one line per 10% to the build log."""
    last = [-1]

    def show(p) -> None:
        tenth = int(10 * p.fraction)
        if tenth != last[0]:
            last[0] = tenth
            scal = " ".join(f"{k}={v:.4g}" for k, v in list(p.scalars.items())[:4])
            log.info("%s: %3d%% %s %s", step, 10 * tenth, p.message, scal)

    return show


# -- selftest -----------------------------------------------------------------
def step_selftest(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Diagnostic: load the entry's original image and write its grey-level histogram.

    Writes ``microstructureNNN_selftest.json`` (image size, kind, 256-bin
    histogram of the grey image, mean, standard deviation, Otsu threshold). It
    checks that a worker can open the library, read the entry's image, compute
    with numpy/scikit-image and write through the store: everything a real step
    needs, in well under a second.
    """
    from skimage.filters import threshold_otsu

    from ..images import load_image

    lib = _library(library_root)
    entry = lib.get_entry(entry_id)
    img = load_image(lib.original_path(entry_id))
    gray = np.asarray(img.gray(), dtype=np.float32)
    bins = int(params.get("bins", 256))
    if not 2 <= bins <= 4096:
        raise BuildError(f"selftest: bins must be 2..4096, got {bins}")
    hist, _ = np.histogram(gray, bins=bins, range=(0.0, 1.0))
    report = {
        "entry": entry.name,
        "shape": list(gray.shape),
        "kind": img.kind,
        "bins": bins,
        "histogram": hist.astype(int).tolist(),
        "mean": float(gray.mean()),
        "std": float(gray.std()),
        "otsu": float(threshold_otsu(gray)) if gray.min() < gray.max() else float(gray.min()),
    }
    log.info("selftest: %s %dx%d mean %.3f otsu %.3f", entry.name, gray.shape[1], gray.shape[0],
             report["mean"], report["otsu"])
    out = lib.write_file(entry_id, L.SELFTEST.suffix, (json.dumps(report) + "\n").encode(),
                         produced_by="build:selftest", inputs=[entry.metadata["original_file"][len(entry.name):]],
                         params=params)
    return [out.name]


# -- inpaint ------------------------------------------------------------------
def step_inpaint(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Remove the scale bar from the training image → ``_inpainted.png``, as the Inpaint step does.

    The image and the mask come from :func:`microlib_gui.core.workflow.inpaint.inputs`
    (the segmented crop, or the gray crop for an entry kept grayscale; the bar in
    the same frame, from the scale-bar annotations), and the result is saved by
    the workflow's ``save`` (or ``save_without_bar`` when no bar is in the frame):
    the build, the wizard and ``microlib entry inpaint`` make the same file.
    ``params``: ``method`` (``"fast"`` or ``"gan"``, default ``"fast"``) and the
    options of :func:`microlib_gui.core.inpaint.inpaint_job` (``iters``, ...).
    """
    wf = _module("microlib_gui.core.workflow.inpaint", "inpaint")
    from ..jobs import run_inline

    lib = _library(library_root)
    inp = wf.inputs(lib, entry_id)
    opts = {"method": "fast", **params}
    if inp.mask is None:
        log.info("inpaint: no scale bar in the frame; the %s is the training image as it is", inp.description)
        wf.save_without_bar(lib, entry_id, inp)
    else:
        log.info("inpaint: %s, %d masked pixels", inp.description, int(inp.mask.sum()))
        res = run_inline(wf.job, {**opts, "inputs": inp}, on_progress=_progress_logger("inpaint"))
        log.info("inpaint: %s, %s region(s)", res.get("method"), res.get("regions"))
        wf.save(lib, entry_id, res, inp, opts)
    return [lib.entry_file(entry_id, f.suffix).name for f in (L.INPAINTED, L.INPAINT_GIF)
            if lib.entry_file(entry_id, f.suffix).exists()]


step_inpaint.engine = ("microlib_gui.core.workflow.inpaint", "save")


# -- train / generate / stats / media / export ------------------------------------------
def _need(lib, entry_id: int, suffix: str, step: str, made_by: str) -> Path:
    path = lib.entry_file(entry_id, suffix)
    if not path.exists():
        raise BuildError(f"{step}: {path.name} is missing; run the {made_by} step first")
    return path


def step_train(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Train SliceGAN on ``_inpainted.png`` and publish ``_Gen.pt``, ``_params.data``, ``_Disc.pt``.

    A training run of :mod:`microlib_gui.core.workflow.train`, as the Train step
    makes it: folder ``microstructureNNN/train/run-NNN/``, a row in the runs
    table, published into the entry when it completes. A run of the same settings
    that was stopped or killed (a cancelled build, a job past its time limit) is
    continued from its last checkpoint instead of starting again.
    ``params``: the options of :func:`microlib_gui.core.slicegan.train.train`
    (``preset`` — ``"microlib"`` or ``"tiny"`` —, ``iters``, ``device``, ``seed``, ...).
    """
    wf = _module("microlib_gui.core.workflow.train", "train")
    from ..jobs import CANCELLED, DONE, FAILED, Finished, JobCancelled, run_inline

    lib = _library(library_root)
    inp = wf.inputs(lib, entry_id)
    if not inp.ready:
        raise BuildError(f"train: {inp.reason}")
    settings = wf.run_params(inp, **{"preset": "microlib", **params})
    wf.recover_runs(lib, entry_id)  # a run left "running" by a killed job becomes stopped, so resumable
    run = wf.resumable_run(lib, entry_id, settings)
    if run is not None:
        log.info("train: resuming run %d at iteration %d of %s", run.number, run.iteration, settings.get("iters"))
        run = wf.resume(lib, run, iters=settings.get("iters") if int(settings.get("iters") or 0) > run.iteration
                        else None)
    else:
        run = wf.new_run(lib, entry_id, settings)
        log.info("train: run %d in %s", run.number, run.out)
    try:
        res = run_inline(wf.job, wf.job_params(run), on_progress=_progress_logger("train"))
    except BaseException as exc:  # stopped (a signal) or failed: the run keeps its checkpoint
        stopped = isinstance(exc, JobCancelled) or not isinstance(exc, Exception)
        msg = "stopped by a signal (cancel or time limit)" if stopped else " ".join(str(exc).split())[:300]
        wf.finish(lib, entry_id, run, Finished(CANCELLED if stopped else FAILED, error=msg))
        raise
    run = wf.finish(lib, entry_id, run, Finished(DONE, result=res))
    if run.status != "done" or not lib.entry_file(entry_id, L.GENERATOR.suffix).exists():
        raise BuildError(f"train: run {run.number} {run.status}" + (f": {run.message}" if run.message else ""))
    log.info("train: run %d, %d iterations in %.1f s", run.number, run.iteration, res.get("seconds", 0.0))
    return [lib.entry_file(entry_id, f.suffix).name for f in L.TRAINED
            if lib.entry_file(entry_id, f.suffix).exists()]


step_train.engine = ("microlib_gui.core.workflow.train", "resumable_run")


def step_generate(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Generate the entry's volume ``microstructureNNN.tif`` from ``_Gen.pt``, as the Inspect step does.

    :mod:`microlib_gui.core.workflow.generate`: its ``inputs``, job and ``save``
    (the volume records the generator it came from). ``params``: ``size`` (voxels
    a side), ``periodic``, ``seed``, ``device``.
    """
    wf = _module("microlib_gui.core.workflow.generate", "generate")
    from ..jobs import run_inline

    lib = _library(library_root)
    inp = wf.inputs(lib, entry_id)
    if not inp.ready:
        raise BuildError(f"generate: {inp.reason}")
    res = run_inline(wf.run_job, {**params, "library_root": str(lib.root), "entry_id": int(entry_id)},
                     on_progress=_progress_logger("generate"))
    log.info("generate: volume %s from %s", res.get("shape"), (res.get("generator") or {}).get("text"))
    return [Path(res["path"]).name]


step_generate.engine = ("microlib_gui.core.workflow.generate", "run_job")


def step_stats(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Compare the training image with the generated volume: ``_stats.json`` and ``_stats.png``.

    :func:`microlib_gui.core.workflow.stats.compute`, as the Inspect step's Stats
    tab does: volume fractions, surface areas, two-point correlations (and, with
    ``tortuosity``, tortuosity factors), their 2D-vs-3D errors and the 5% flag.
    ``params``: ``tortuosity`` (default False: slow on a CPU), ``r_max``, ``device``.
    """
    wf = _module("microlib_gui.core.workflow.stats", "stats")
    lib = _library(library_root)
    inp = wf.inputs(lib, entry_id)
    if not inp.ready:
        raise BuildError(f"stats: {inp.reason}")
    if inp.warning:
        log.warning("stats: %s", inp.warning)
    wf.compute(lib, entry_id, **{"tortuosity": False, **params})
    return [lib.entry_file(entry_id, f.suffix).name for f in (L.STATS_JSON, L.STATS_PNG)]


step_stats.engine = ("microlib_gui.core.workflow.stats", "compute")


def step_media(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Render the rotation movie ``.mp4`` and the rotation-and-erosion strip ``_long.png`` of the volume.

    ``params``: ``n_frames`` (default 72), ``size`` (movie frame side, default 320).
    """
    load_volume = _engine("microlib_gui.core.media", "load_volume", "media")
    from ..media import write_long_png, write_rotation_movie

    lib = _library(library_root)
    vol = load_volume(_need(lib, entry_id, L.VOLUME.suffix, "media", "generate"))
    n_frames, size = int(params.get("n_frames", 72)), int(params.get("size", 320))
    mp4 = lib.write_file(entry_id, L.MOVIE.suffix,
                         writer=lambda tmp: write_rotation_movie(vol, tmp, n_frames=n_frames, size=size),
                         produced_by="build:media", inputs=[L.VOLUME.suffix], params=params)
    strip = lib.write_file(entry_id, L.LONG_PNG.suffix, writer=lambda tmp: write_long_png(vol, tmp),
                           produced_by="build:media", inputs=[L.VOLUME.suffix], params=params)
    return [mp4.name, strip.name]


step_media.engine = ("microlib_gui.core.media", "load_volume")


def step_export(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Export the entry in MicroLib's dataset layout, as the Export step does.

    :func:`microlib_gui.core.workflow.export.export` into ``params["out"]``
    (default: the library's own ``LIBRARY/export``), with ``data_anns.json``;
    a folder holding another library's entry is not overwritten unless
    ``params["overwrite"]``. The entry's ``_export.json`` says what was exported
    where, and its provenance names the exported files, so the step is redone
    when one changes. ``params``: ``out``, ``media`` (render a missing movie and
    strip; default False), ``n_frames``, ``overwrite``.
    """
    wf = _module("microlib_gui.core.workflow.export", "export")
    lib = _library(library_root)
    out = Path(params.get("out") or wf.default_folder(lib))
    (res,) = wf.export(lib, [int(entry_id)], out, media=bool(params.get("media", False)),
                       n_frames=int(params.get("n_frames", 72)), overwrite=bool(params.get("overwrite", False)))
    failed = [i for i in res.items if i.status == "failed"]
    if failed:
        raise BuildError(f"export: {failed[0].name}: {failed[0].detail}")
    log.info("export: %s", res.folder)
    return [lib.entry_file(entry_id, L.EXPORT_MANIFEST.suffix).name]


step_export.engine = ("microlib_gui.core.workflow.export", "export")


# -- engines still being written: resolved at run time -------------------------
def _delegated(step: str, module: str, attr: str) -> Callable:
    """A step whose engine provides ``attr(library_root, entry_id, params) -> files``.

    The engine owns its outputs (it writes them through the store); the build
    only orders, schedules and records the work.
    """

    def step_fn(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
        fn = _engine(module, attr, step)
        files = fn(library_root, int(entry_id), dict(params))
        return [Path(str(f)).name for f in (files or [])]

    step_fn.engine = (module, attr)
    step_fn.__name__ = f"step_{step}"
    step_fn.__doc__ = f"{step}: delegates to ``{module}.{attr}`` (unavailable while that engine is absent)."
    return step_fn


#: Step name → (function, default params). Tests and benchmarks pass tiny params.
STEP_TABLE: dict[str, tuple[Callable, dict[str, Any]]] = {
    "selftest": (step_selftest, {"bins": 256}),
    "inpaint": (step_inpaint, {"method": "fast"}),
    "train": (step_train, {"preset": "microlib"}),
    "generate": (step_generate, {}),
    "stats": (step_stats, {"tortuosity": False}),
    "media": (step_media, {"n_frames": 72}),
    "export": (step_export, {}),
}


def parse_steps(text: str | list[str] | None) -> list[str]:
    """``"inpaint,train"`` (or a list) → validated step names in pipeline order; None → the pipeline."""
    if text is None:
        return list(PIPELINE)
    items = text.split(",") if isinstance(text, str) else [s for t in text for s in str(t).split(",")]
    names = [s.strip() for s in items if s.strip()]
    bad = [s for s in names if s not in STEP_TABLE]
    if bad:
        raise BuildError(f"unknown step {bad[0]!r} (steps: {', '.join(ALL_STEPS)})")
    if not names:
        raise BuildError("no steps given")
    return [s for s in ALL_STEPS if s in names]


def step_params(step: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Default params of ``step`` updated with ``overrides``."""
    return {**STEP_TABLE[step][1], **(overrides or {})}

"""The build's step table: one function per pipeline step.

A step function is ``step_fn(library_root, entry_id, params) -> list[str]``: it
reads what it needs from the entry, runs its engine and writes its outputs through
:meth:`~microlib_gui.core.store.Library.write_file` (atomic, with provenance),
returning the names of the files written. Engines are imported lazily, inside the
step function, so that

* a SLURM job imports only what its steps need, and
* a step whose engine is not part of this version raises :class:`StepUnavailable`:
  the build reports it as "unavailable" and stops that entry's pipeline there,
  rather than pretending the step ran.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MicrolibError

log = logging.getLogger("microlib.build")

#: The pipeline, in order: what ``microlib build`` runs for an entry by default.
PIPELINE: tuple[str, ...] = ("inpaint", "train", "generate", "stats", "media", "export")
#: Diagnostic step, run only when asked for (``--steps selftest``).
DIAGNOSTIC: tuple[str, ...] = ("selftest",)
ALL_STEPS: tuple[str, ...] = DIAGNOSTIC + PIPELINE

#: The wizard step (core.steps.STEPS) a build step completes, where there is one.
WIZARD_STEP: dict[str, str] = {"inpaint": "inpaint", "train": "train", "stats": "inspect", "export": "export"}


class BuildError(MicrolibError):
    """A build could not be planned, submitted or run (bad options, no such entry, ...)."""


class StepUnavailable(MicrolibError):
    """The engine a step needs is not part of this version (yet)."""


def _engine(module: str, attr: str, step: str) -> Any:
    """Import ``module`` and return ``module.attr``, or raise :class:`StepUnavailable`."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the engine itself being absent makes a step unavailable; a missing
        # dependency inside an existing engine is a real failure.
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise StepUnavailable(f"{step}: its engine {module} is not part of this version") from None
        raise
    fn = getattr(mod, attr, None)
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
    out = lib.write_file(entry_id, "_selftest.json", (json.dumps(report) + "\n").encode(),
                         produced_by="build:selftest", inputs=[entry.metadata["original_file"][len(entry.name):]],
                         params=params)
    return [out.name]


# -- inpaint ------------------------------------------------------------------
#: Image to inpaint, first one present: the segmented labels, else the original.
INPAINT_INPUTS = ("_segmented.png", "_labels.png", "_cropped.png")


def _inpaint_sources(lib, entry_id: int) -> tuple[str, str | None]:
    entry = lib.get_entry(entry_id)
    image = next((s for s in INPAINT_INPUTS if lib.entry_file(entry_id, s).exists()),
                 entry.metadata["original_file"][len(entry.name):])
    mask = "_mask.png" if lib.entry_file(entry_id, "_mask.png").exists() else None
    return image, mask


def step_inpaint(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Remove the scale bar: inpaint ``_mask.png`` in the entry's image → ``_inpainted.png``.

    The image is the segmented label image when the Segment step wrote one, else
    the original. Without a mask (no scale bar) the image is kept as it is.
    ``params``: ``method`` (``"fast"`` or ``"gan"``, default ``"fast"``) and the
    options of :func:`microlib_gui.core.inpaint.inpaint_job` (``iters``, ...).
    """
    inpaint_job = _engine("microlib_gui.core.inpaint", "inpaint_job", "inpaint")
    from ..images import save_png
    from ..jobs import run_inline

    lib = _library(library_root)
    image_sfx, mask_sfx = _inpaint_sources(lib, entry_id)
    image_path = lib.entry_file(entry_id, image_sfx)
    opts = {"method": "fast", **params}
    if mask_sfx is None:
        log.info("inpaint: no scale-bar mask; the image is used as it is")
        data = image_path.read_bytes()
        if image_path.suffix.lower() != ".png":
            from PIL import Image

            buf = io.BytesIO()
            Image.open(image_path).save(buf, format="PNG")
            data = buf.getvalue()
        out = lib.write_file(entry_id, "_inpainted.png", data, produced_by="build:inpaint", inputs=[image_sfx],
                             params={**opts, "method": "none"})
        return [out.name]
    res = run_inline(inpaint_job, {**opts, "image": image_path, "mask": lib.entry_file(entry_id, mask_sfx)},
                     on_progress=_progress_logger("inpaint"))
    log.info("inpaint: %s, %s region(s)", res.get("method"), res.get("regions"))
    out = lib.write_file(entry_id, "_inpainted.png", writer=lambda tmp: save_png(tmp, res["output"]),
                         produced_by="build:inpaint", inputs=[image_sfx, mask_sfx], params=opts)
    return [out.name]


step_inpaint.engine = ("microlib_gui.core.inpaint", "inpaint_job")


# -- train / generate / media / export ------------------------------------------------
#: data_type annotation → SliceGAN image type.
IMTYPE = {"twophase": "nphase", "nphase": "nphase", "grayscale": "grayscale", "colour": "colour"}


def _need(lib, entry_id: int, suffix: str, step: str, made_by: str) -> Path:
    path = lib.entry_file(entry_id, suffix)
    if not path.exists():
        raise BuildError(f"{step}: {path.name} is missing; run the {made_by} step first")
    return path


def step_train(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Train SliceGAN on ``_inpainted.png`` and publish ``_Gen.pt``, ``_params.data``, ``_Disc.pt``.

    ``params``: the options of :func:`microlib_gui.core.slicegan.train.train`
    (``preset`` — ``"microlib"`` or ``"tiny"`` —, ``iters``, ``device``, ``seed``,
    ...). The run folder ``microstructureNNN/train-<hash>/`` is named by the
    params and the training image, so a job killed mid-training resumes from its
    last checkpoint when the build is run again.
    """
    import hashlib

    train = _engine("microlib_gui.core.slicegan.train", "train", "train")
    publish = _engine("microlib_gui.core.export", "publish_training", "train")
    from ..jobs import run_inline
    from ..store import sha256_file

    lib = _library(library_root)
    image = _need(lib, entry_id, "_inpainted.png", "train", "inpaint")
    opts = {"preset": "microlib", **params}
    if "imtype" not in opts:
        opts["imtype"] = IMTYPE.get(str(lib.get_annotations(entry_id).get("data_type")), "auto")
    key = hashlib.sha256((json.dumps(opts, sort_keys=True) + sha256_file(image)).encode()).hexdigest()[:12]
    run_dir = lib.entry_dir(entry_id) / f"train-{key}"
    resume = (run_dir / "checkpoint.pt").exists()
    if resume:
        log.info("train: resuming %s from its checkpoint", run_dir.name)
    res = run_inline(train, {**opts, "images": [str(image)], "out": str(run_dir), "resume": resume},
                     on_progress=_progress_logger("train"))
    log.info("train: %s iterations in %.1f s", res.get("iteration"), res.get("seconds", 0.0))
    return [p.name for p in publish(lib, entry_id, run_dir)]


def step_generate(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Generate the entry's volume ``microstructureNNN.tif`` from ``_Gen.pt``.

    ``params``: ``size`` (voxels a side), ``periodic``, ``seed``, ``device``
    (see :func:`microlib_gui.core.export.generate_entry_volume`).
    """
    gen = _engine("microlib_gui.core.export", "generate_entry_volume", "generate")
    from ..jobs import run_inline

    lib = _library(library_root)
    _need(lib, entry_id, "_Gen.pt", "generate", "train")
    res = run_inline(gen, {**params, "library_root": str(lib.root), "entry_id": int(entry_id)},
                     on_progress=_progress_logger("generate"))
    log.info("generate: volume %s", res.get("shape"))
    return [Path(res["path"]).name]


def step_media(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Render the rotation movie ``.mp4`` and the rotation-and-erosion strip ``_long.png`` of the volume.

    ``params``: ``n_frames`` (default 72), ``size`` (movie frame side, default 320).
    """
    load_volume = _engine("microlib_gui.core.media", "load_volume", "media")
    from ..media import write_long_png, write_rotation_movie

    lib = _library(library_root)
    vol = load_volume(_need(lib, entry_id, ".tif", "media", "generate"))
    n_frames, size = int(params.get("n_frames", 72)), int(params.get("size", 320))
    mp4 = lib.write_file(entry_id, ".mp4", writer=lambda tmp: write_rotation_movie(vol, tmp, n_frames=n_frames,
                                                                                   size=size),
                         produced_by="build:media", inputs=[".tif"], params=params)
    strip = lib.write_file(entry_id, "_long.png", writer=lambda tmp: write_long_png(vol, tmp),
                           produced_by="build:media", inputs=[".tif"], params=params)
    return [mp4.name, strip.name]


def step_export(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Export the entry in MicroLib's dataset layout to ``params["out"]`` (default ``LIBRARY/export``).

    Writes the entry's ``_export.json`` (what was exported where), whose
    provenance names the exported files, so the step is redone when one changes.
    """
    export_entry = _engine("microlib_gui.core.export", "export_entry", "export")
    lib = _library(library_root)
    out = Path(params.get("out") or (lib.root / "export"))
    res = export_entry(lib, int(entry_id), out, media=bool(params.get("media", False)))
    failed = [i for i in res.items if i.status == "failed"]
    if failed:
        raise BuildError(f"export: {failed[0].name}: {failed[0].detail}")
    name = lib.get_entry(entry_id).name
    inputs = [i.name[len(name):] for i in res.items
              if i.status != "missing" and i.name.startswith(name) and lib.entry_file(entry_id, i.name[len(name):]).exists()]
    doc = res.to_dict()
    doc["folder"] = str(res.folder)
    manifest = lib.write_file(entry_id, "_export.json", (json.dumps(doc, indent=1) + "\n").encode(),
                              produced_by="build:export", inputs=inputs, params=params)
    return [manifest.name]


def step_stats(library_root, entry_id: int, params: dict[str, Any]) -> list[str]:
    """Compare the training image with the generated volume: ``_stats.json`` and ``_stats.png``.

    Volume fractions, surface areas, two-point correlations (and, with
    ``tortuosity``, tortuosity factors), their 2D-vs-3D errors and the 5% flag,
    as :func:`microlib_gui.core.report.write_entry_report` stores them.
    ``params``: ``tortuosity`` (default False: slow on a CPU), ``r_max``, ``device``.
    """
    write_entry_report = _engine("microlib_gui.core.report", "write_entry_report", "stats")
    lib = _library(library_root)
    _need(lib, entry_id, "_inpainted.png", "stats", "inpaint")
    _need(lib, entry_id, ".tif", "stats", "generate")
    write_entry_report(lib, entry_id, recompute=True, **{"tortuosity": False, **params})
    return [lib.entry_file(entry_id, s).name for s in ("_stats.json", "_stats.png")]


step_stats.engine = ("microlib_gui.core.report", "write_entry_report")
step_train.engine = ("microlib_gui.core.slicegan.train", "train")
step_generate.engine = ("microlib_gui.core.export", "generate_entry_volume")
step_media.engine = ("microlib_gui.core.media", "load_volume")
step_export.engine = ("microlib_gui.core.export", "export_entry")


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

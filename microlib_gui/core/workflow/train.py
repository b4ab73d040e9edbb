"""Train step: the life of a SliceGAN training run, from its folder to the entry's generator.

A run lives in ``microstructureNNN/train/run-NNN/`` (numbered from 1 per entry,
:func:`~microlib_gui.core.library.layout.run_dir_name`) with a row in the
library's runs table. The folder holds what :func:`microlib_gui.core.slicegan.train.train`
writes (``run.json``, ``checkpoint.pt``, ``slicegan_Gen.pt`` ...) and what the
job records as it goes (:func:`job`): ``curves.jsonl`` (the losses of each
progress report and, with ``converge`` on, the errors of each convergence check:
``vf_error``, ``sa_error``, ``s2_error``), ``samples.npz`` (the latest sample slices),
``train.log`` and ``worker.pid``. So a run shows its own curves, sample slices and log, also
after a restart, and a reopened app can tell a run still
training in the background from one that ended while it was closed
(:func:`recover_runs`).

The lifecycle::

    run = new_run(library, entry_id, params)          # folder + row, status "running"
    result = job(ctx, **job_params(run))               # in its own process (GUI) or inline
    run = finish(library, entry_id, run, finished)     # done / stopped / failed

A run that completes is published into the entry (:func:`publish`: ``_Gen.pt``,
``_params.data``, ``_Disc.pt`` in one :meth:`~microlib_gui.core.library.Library.complete_step`,
so Inspect and Export become stale through the step table). A *stopped* run is
not: it keeps its checkpoint and is continued by :func:`resume` (same number,
folder and curves) or published on request. Nothing here imports Qt.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MicrolibError
from ..library import layout as L
from ..library import StagedFile

STEP = "train"
RUN_KIND = "train"
#: Files of a run folder besides those the trainer writes (its ``run.json``, ``checkpoint.pt``).
CURVES, LOG, PID = "curves.jsonl", "train.log", "worker.pid"
#: the latest sample slices of a run (uint8 arrays ``slice_x``, ``slice_y``, ``slice_z``)
SAMPLES = "samples.npz"
_SAMPLE_KEYS = ("slice_x", "slice_y", "slice_z")
_SAMPLE_MAX_BYTES = 16 << 20  # per slice, checked before a slice is read (the file is not trusted)
RUN_JSON, CHECKPOINT = "run.json", "checkpoint.pt"  # as core.slicegan.train names them
GEN_SUFFIX = "_Gen.pt"

#: data_type annotation → SliceGAN image type.
IMTYPE = {"twophase": "nphase", "nphase": "nphase", "grayscale": "grayscale", "colour": "colour"}

#: Settings that make two runs the same training (what :func:`resumable_run` compares); the number
#: of iterations, the device and the report intervals may differ.
MATCH_KEYS = ("images", "preset", "seed", "imtype", "augment", "ema", "critic_axes", "converge", "g_layers")

#: CPU runs estimated longer than this get advice and a question before they start.
LONG_CPU_RUN_S = 12 * 3600

#: Measured seconds per generator iteration (docs/benchmarks.md): on one H100, and on the CPU
#: as core-seconds (2-core development machine, shared with other work), scaled by the cores here.
MEASURED_SPEED = {"microlib": {"cuda": 0.047, "cpu_core_s": 240.0}, "tiny": {"cuda": 0.01, "cpu_core_s": 0.8},
                  # 2-core development machine, 1500 iterations in 18-19 CPU minutes (benchmarks.md),
                  # and 2 % more with resize layers (bench/draft_layers_speed.py)
                  "draft": {"cpu_core_s": 0.78}}


class TrainError(MicrolibError):
    """A training run cannot be started, resumed or published (one-line reason)."""


# -- inputs -------------------------------------------------------------------------------
@dataclass
class TrainInputs:
    """What the Train step reads for one entry."""

    images: list[str]  #: training image paths (the entry's ``_inpainted.png``)
    imtype: str  #: SliceGAN image type from the ``data_type`` annotation ("auto" when unknown)
    inputs: list[str]  #: suffixes of the entry files they are (provenance)
    ready: bool
    reason: str = ""  #: one line for the user when not ready


def inputs(library, entry_id: int) -> TrainInputs:
    """The training image and type of an entry, and whether training can start."""
    path = library.entry_file(entry_id, L.INPAINTED.suffix)
    imtype = IMTYPE.get(str(library.get_annotations(entry_id).get("data_type")), "auto")
    if not path.exists():
        return TrainInputs([], imtype, [], False, "The Inpaint step must be done first: this entry has no "
                                                  "inpainted training image yet")
    if library.get_entry(entry_id).steps.get("inpaint") == "stale":
        return TrainInputs([str(path)], imtype, [L.INPAINTED.suffix], False,
                           "The Inpaint step is out of date (an earlier step changed): redo it first")
    return TrainInputs([str(path)], imtype, [L.INPAINTED.suffix], True)


def run_params(inp: TrainInputs, **settings) -> dict[str, Any]:
    """Training settings for :func:`new_run`: ``settings`` (preset, iters, device, seed, augment, ...)
    over the entry's image and type."""
    from ..slicegan.presets import get_preset

    params = {"images": list(inp.images), "imtype": inp.imtype, "preset": "microlib", "device": "auto", "seed": 0}
    params.update({k: v for k, v in settings.items() if v is not None})
    if params.get("imtype") in (None, "auto"):
        params["imtype"] = inp.imtype
    params.setdefault("iters", get_preset(params["preset"]).iters)
    return params


# -- runs ---------------------------------------------------------------------------------
@dataclass
class Run:
    """One training run of an entry, as the store and its folder say."""

    id: int
    entry_id: int
    number: int
    out: Path
    params: dict[str, Any]
    status: str  #: running | done | stopped | failed
    iteration: int  #: iterations trained (running: the latest report)
    total: int  #: iterations asked for
    message: str | None = None
    started: float | None = None
    finished: float | None = None
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def has_checkpoint(self) -> bool:
        return (self.out / CHECKPOINT).exists()

    @property
    def resumable(self) -> bool:
        """Stopped (or failed) before its end, with a checkpoint to continue from."""
        return self.status in ("stopped", "failed") and self.has_checkpoint and self.iteration < self.total

    @property
    def has_generator(self) -> bool:
        return any(self.out.glob("*" + GEN_SUFFIX))

    @property
    def label(self) -> str:
        """``run 1 · done · 5000 it`` (and why it ended, when it did not finish)."""
        text = f"run {self.number} · {self.status} · {self.iteration} it"
        if self.status != "done":
            text += f" of {self.total}"
        return text + (f" · {self.message}" if self.message else "")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_curve_step(out: Path) -> int:
    pts = curves_of(out)
    return pts[-1][0] if pts else 0


def _run(row: dict) -> Run:
    out = Path(row["params"]["out"])
    params = {k: v for k, v in row["params"].items() if k != "out"}
    state = _read_json(out / RUN_JSON)
    timings = row.get("timings") or {}
    total = int(params.get("iters") or state.get("preset", {}).get("iters") or 0)
    if row["status"] == "running":
        iteration = max(int(state.get("iteration") or 0), _last_curve_step(out))
    else:
        iteration = int(timings.get("iteration") or state.get("iteration") or 0)
    return Run(id=int(row["id"]), entry_id=int(row["entry_id"]), number=int(row.get("number") or row["id"]), out=out, params=params,
               status=row["status"], iteration=iteration, total=total, message=row.get("message"),
               started=row.get("started"), finished=row.get("finished"), timings=timings)


def runs(library, entry_id: int) -> list[Run]:
    """The entry's training runs, oldest first."""
    return [_run(r) for r in library.runs(entry_id, kind=RUN_KIND) if r["params"].get("out")]


def get_run(library, entry_id: int, run_id: int) -> Run | None:
    return next((r for r in runs(library, entry_id) if r.id == int(run_id)), None)


def _norm_images(images) -> list[str]:
    return [str(Path(p).resolve()) for p in images or []]


def resumable_run(library, entry_id: int, params: dict | None = None) -> Run | None:
    """The latest run that can be continued; with ``params``, one trained with the same settings
    (:data:`MATCH_KEYS`) — how the build picks up a run that was interrupted."""
    for run in reversed(runs(library, entry_id)):
        if not run.resumable:
            continue
        if params is None:
            return run
        if params.get("iters") is not None and int(params["iters"]) <= run.iteration:
            continue
        ok = all(_norm_images(params.get(k)) == _norm_images(run.params.get(k)) if k == "images"
                 else params.get(k) == run.params.get(k) for k in MATCH_KEYS)
        if ok:
            return run
    return None


def new_run(library, entry_id: int, params: dict[str, Any]) -> Run:
    """Make the next run of the entry: its folder ``train/run-NNN/`` and its row (status running).

    ``params`` are :func:`microlib_gui.core.slicegan.train.train`'s options
    (``images``, ``preset``, ``iters``, ``device``, ``seed``, ``imtype``, ...;
    see :func:`run_params`).
    """
    if not params.get("images"):
        raise TrainError("no training image: do the Inpaint step first")
    number = library.next_run_number(entry_id, RUN_KIND)
    out = library.entry_dir(entry_id) / L.RUNS_DIR / L.run_dir_name(number)
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out.parent.name}/{out.name} already holds files of a run the library does not "
                         "know: move it away to start a new run")
    out.mkdir(parents=True, exist_ok=True)
    # Until the worker writes its own pid, this process answers for the run (see recover_runs).
    (out / PID).write_text(str(os.getpid()))
    full = {k: v for k, v in params.items() if k not in ("out", "resume")}
    run_id = library.start_run(entry_id, RUN_KIND, {**full, "out": str(out)}, seed=full.get("seed"),
                               log=str(out / LOG))
    run = get_run(library, entry_id, run_id)
    _log(out, f"started run {run.number} ({full.get('preset')}, {full.get('iters')} iterations, "
              f"device {full.get('device', 'auto')}, seed {full.get('seed', 0)})")
    return run


def resume(library, run: Run, iters: int | None = None) -> Run:
    """Continue a stopped run in its own folder, under its own number (``iters``: a new total)."""
    if not run.resumable:
        raise TrainError(f"run {run.number} cannot be resumed: "
                         + ("it has no checkpoint" if not run.has_checkpoint else f"it is {run.status}"))
    params = dict(run.params)
    # where training continues: the checkpoint's iteration (run.json, written after it, lags by
    # one save when a kill lands between the two)
    at = _checkpoint_iteration(run.out)
    if iters is not None:
        if int(iters) <= at:
            raise TrainError(f"run {run.number} is at iteration {at}: give more iterations to resume")
        params["iters"] = int(iters)
    (run.out / PID).write_text(str(os.getpid()))
    # points reported after the checkpoint are trained again: the curves continue from it
    _trim_curves(run.out, at)
    library.reopen_run(run.id, {**params, "out": str(run.out)})
    _log(run.out, f"resumed run {run.number} at iteration {at} of {params.get('iters')}")
    return get_run(library, run.entry_id, run.id)


def _checkpoint_iteration(out: Path) -> int:
    """The iteration ``out``'s checkpoint holds (run.json's when it cannot be read)."""
    import torch

    try:  # mapped, not read: only the iteration is wanted
        return int(torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True, mmap=True)["iteration"])
    except Exception:  # noqa: BLE001 - a damaged checkpoint: the trainer says so when it loads it
        return int(_read_json(out / RUN_JSON).get("iteration") or 0)


def job_params(run: Run) -> dict[str, Any]:
    """The parameters of :func:`job` for ``run`` (continuing it when it has a checkpoint)."""
    return {**run.params, "out": str(run.out), "resume": run.has_checkpoint}


# -- the job ------------------------------------------------------------------------------
class _Recorder:
    """The job context, also writing each report's losses to ``curves.jsonl`` and ``train.log``."""

    def __init__(self, ctx, out: Path):
        self._ctx, self._out = ctx, out

    @property
    def cancelled(self) -> bool:
        return self._ctx.cancelled

    def check_cancelled(self) -> None:
        self._ctx.check_cancelled()

    def report(self, step, total, message="", scalars=None, images=None, force=False) -> None:
        if scalars:
            with open(self._out / CURVES, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}}) + "\n")
            _log(self._out, f"iteration {step}/{total} " + " ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
        elif message.startswith(("converged", "stopped at")):  # the trainer's last word when it stops early
            _log(self._out, message)
        if images:
            _write_samples(self._out, images)
        self._ctx.report(step, total, message, scalars=scalars, images=images, force=force)


def _write_samples(out: Path, images: dict) -> None:
    """Keep the latest sample slices in the run folder (atomically: a reader never sees half a file)."""
    import io

    import numpy as np

    from ..atomic import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in images.items() if k in _SAMPLE_KEYS})
    atomic_write_bytes(out / SAMPLES, buf.getvalue())


def _trim_curves(out: Path, upto: int) -> None:
    """Drop points after ``upto`` (reported after the checkpoint a resumed run continues from)."""
    path = out / CURVES
    if not path.exists():
        return
    keep = [ln for ln in path.read_text("utf-8").splitlines() if _step_of(ln) is not None and _step_of(ln) <= upto]
    path.write_text("".join(ln + "\n" for ln in keep), "utf-8")


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def job(ctx, out: str, resume: bool = False, **params) -> dict:
    """Job function: train into the run folder ``out`` with :func:`microlib_gui.core.slicegan.train.train`,
    recording curves, log and the worker's pid there."""
    from ..slicegan.train import train_job

    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    (out_p / PID).write_text(str(os.getpid()))
    return train_job(_Recorder(ctx, out_p), out=str(out_p), resume=resume, **params)


def train_inline(library, entry_id: int, params: dict[str, Any], on_progress=None, cancel_event=None,
                 resume_matching: bool = True) -> Run:
    """Train the entry in this thread (CLI, build): continue the stopped run with the same settings
    (:func:`resumable_run`) or start a new one, then :func:`finish` it. Returns the finished run."""
    from ..jobs import CANCELLED, DONE, FAILED, Finished, JobCancelled, _describe, run_inline

    run = resumable_run(library, entry_id, params) if resume_matching else None
    run = resume(library, run, iters=params.get("iters")) if run is not None else new_run(library, entry_id, params)
    try:
        res = run_inline(job, job_params(run), on_progress=on_progress, cancel_event=cancel_event)
        fin = Finished(DONE, result=res)
    except JobCancelled:
        fin = Finished(CANCELLED)
    except Exception as exc:  # noqa: BLE001 - recorded on the run, then raised for the caller
        msg, details = _describe(exc)
        finish(library, entry_id, run, Finished(FAILED, error=msg, details=details))
        raise
    return finish(library, entry_id, run, fin)


# -- the end of a run -----------------------------------------------------------------------
def _log(out: Path, line: str) -> None:
    try:
        with open(Path(out) / LOG, "a", encoding="utf-8") as fh:
            fh.write(time.strftime("%H:%M:%S ") + line + "\n")
    except OSError:
        pass


def finish(library, entry_id: int, run: Run, finished) -> Run:
    """Record how ``run`` ended (a :class:`~microlib_gui.core.jobs.Finished` event).

    Done: the generator is published into the entry. Stopped: nothing is
    published; the checkpoint stays for :func:`resume` or :func:`publish`.
    """
    from ..jobs import CANCELLED, DONE

    status = {DONE: "done", CANCELLED: "stopped"}.get(finished.state, "failed")
    res = finished.result if isinstance(finished.result, dict) else {}
    state = _read_json(run.out / RUN_JSON)
    iteration = int(res.get("iteration") or state.get("iteration") or 0)
    msg = finished.error or ""
    if status == "failed" and "out of memory" in msg.lower():
        msg = ("out of memory while training: try the Tiny network or a smaller batch, "
               "or train on the CPU (Device → CPU)")
    timings = {k: v for k, v in (("seconds", res.get("seconds")), ("s_per_iter", res.get("s_per_iter")),
                                 ("iteration", iteration), ("total", run.total),
                                 ("device", state.get("device"))) if v is not None}
    files: list[str] = []
    if status == "done":
        try:
            publish(library, entry_id, _replace(run, status=status, iteration=iteration))
            files = [library.entry_file(entry_id, f.suffix).name for f in L.TRAINED]
        except MicrolibError as exc:
            msg = str(exc)
    library.finish_run(run.id, status, timings=timings, files=files, message=msg or None)
    conv = "" if state.get("converged_at") is None else \
        f" (converged; the generator of the best check, iteration {state.get('best_iteration')})"
    _log(run.out, status + (f" at iteration {iteration} of {run.total}" if status != "done" else
                            f": {iteration} iterations{conv}") + (f": {msg}" if msg else "")
         + ("; published into the entry" if files else ""))
    if finished.details:
        _log(run.out, finished.details)
    return get_run(library, entry_id, run.id)


def _replace(run: Run, **changes) -> Run:
    from dataclasses import replace

    return replace(run, **changes)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def is_alive(run: Run) -> bool:
    """The process answering for a running run (its worker, or the app that made it) is alive."""
    try:
        return _pid_alive(int((run.out / PID).read_text()))
    except (OSError, ValueError):
        return False


def recover_runs(library, entry_id: int, skip: set[int] | frozenset = frozenset()) -> list[Run]:
    """Finish the runs left "running" by an app that was closed, from their ``run.json``.

    A run whose pid file names a live process is still training (in the
    background) and is left alone, as are the run ids in ``skip`` (this app's
    own jobs). A run that reached its total is done and published; one that
    did not is stopped and, like any stopped run, not published.
    """
    out = []
    for run in runs(library, entry_id):
        if run.status != "running" or run.id in skip or is_alive(run):
            continue
        state = _read_json(run.out / RUN_JSON)
        it = int(state.get("iteration") or 0)
        # converged: it stopped before its total, and is done
        ended = (run.total and it >= run.total) or state.get("converged_at") is not None or state.get("stop_reason")
        status = "done" if ended and run.has_generator else "stopped"
        files: list[str] = []
        message = "ended while the app was closed"
        if status == "done":
            try:
                publish(library, entry_id, _replace(run, status=status, iteration=it))
                files = [library.entry_file(entry_id, f.suffix).name for f in L.TRAINED]
            except MicrolibError as exc:
                message = str(exc)
        library.finish_run(run.id, status, timings={"iteration": it, "total": run.total}, files=files,
                           message=message)
        _log(run.out, f"{status} at iteration {it} of {run.total} ({message})")
        out.append(get_run(library, entry_id, run.id))
    return out


# -- publishing ---------------------------------------------------------------------------
def _gen_meta(run: Run) -> dict:
    from ..slicegan.fileformat import META_SUFFIX

    gens = sorted(run.out.glob("*" + GEN_SUFFIX))
    if not gens:
        return {}
    return _read_json(gens[0].with_name(gens[0].name[: -len(GEN_SUFFIX)] + META_SUFFIX))


def publish(library, entry_id: int, run: Run):
    """Copy the run's generator into the entry (``_Gen.pt``, ``_params.data``, ``_meta.json``, and
    ``_Disc.pt``, the x critic, from the checkpoint) in one transaction; step Train done.

    The files' provenance names the run number, iteration and total, which
    :func:`generator_info` reads back. Returns the :class:`~microlib_gui.core.library.StepChange`.
    """
    from ..slicegan.fileformat import META_SUFFIX, PARAMS_SUFFIX

    gens = sorted(run.out.glob("*" + GEN_SUFFIX))
    if not gens:
        raise TrainError(f"run {run.number} has no generator yet (it stopped before its first checkpoint)")
    stem = gens[0].name[: -len(GEN_SUFFIX)]
    iteration = int(_gen_meta(run).get("iteration") or run.iteration)
    state = _read_json(run.out / RUN_JSON)
    prov = {"run": run.number, "run_id": run.id, "iteration": iteration, "total": run.total,
            "preset": run.params.get("preset"), "seed": run.params.get("seed")}
    if state.get("convergence"):  # the best check's generator: say how far the run went
        prov.update(trained=int(state.get("iteration") or run.iteration), converged_at=state.get("converged_at"))
    inputs = [L.INPAINTED.suffix] if library.entry_file(entry_id, L.INPAINTED.suffix).exists() else []

    def staged(suffix: str, **kw) -> StagedFile:
        return StagedFile(suffix, inputs=inputs, params=prov, produced_by=STEP, run_id=run.id, **kw)

    files = [staged(L.GENERATOR.suffix, data=gens[0].read_bytes())]
    for entry_file, src_suffix in ((L.PARAMS, PARAMS_SUFFIX), (L.GEN_META, META_SUFFIX)):
        src = run.out / (stem + src_suffix)
        if src.exists():
            files.append(staged(entry_file.suffix, data=src.read_bytes()))
    ck = run.out / CHECKPOINT
    if ck.exists():
        import torch

        try:
            critic = torch.load(ck, map_location="cpu", weights_only=True)["D"][0]
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint: say so, publish nothing
            raise TrainError(f"run {run.number}: cannot read the critic from {ck.name} "
                             f"({' '.join(str(exc).split())[:100]})") from None
        files.append(staged(L.CRITIC.suffix, writer=lambda tmp: torch.save(critic, tmp)))
    change = library.complete_step(entry_id, STEP, files=files)
    _log(run.out, f"published into the entry (iteration {iteration} of {run.total})")
    return change


def generator_info(library, entry_id: int) -> dict | None:
    """Where the entry's published generator came from, or None when it has none.

    ``{"run": number or None, "run_id", "iteration", "total", "partial": bool, "text"}``;
    ``text`` is for people: "run 2, stopped at iteration 20 of 5000" or "run 1, 5000 iterations".
    """
    gen = library.entry_file(entry_id, L.GENERATOR.suffix)
    if not gen.exists():
        return None
    prov = next((p for p in library.provenance(entry_id) if p["file"] == gen.name), None) or {}
    params = prov.get("params") or {}
    number, iteration, total = params.get("run"), params.get("iteration"), params.get("total")
    run_id = params.get("run_id") or prov.get("run_id")
    if number is None and run_id is not None:  # published before runs were numbered this way
        row = next((r for r in library.runs(entry_id, kind=RUN_KIND) if r["id"] == run_id), None)
        if row is not None:
            number = row.get("number")
            total = total or row["params"].get("iters")
    if iteration is None:
        meta = _read_json(library.entry_file(entry_id, L.GEN_META.suffix))
        iteration = meta.get("iteration")
    trained, converged_at = params.get("trained"), params.get("converged_at")
    reached = trained if trained is not None else iteration
    partial = bool(reached is not None and total and int(reached) < int(total) and converged_at is None)
    where = f"run {number}, " if number is not None else ""
    best = "" if trained is None or iteration == trained else f" (the best check's, iteration {iteration})"
    if iteration is None:
        text = f"{where}trained generator"
    elif converged_at is not None:
        text = f"{where}converged at iteration {converged_at}{best}"
    elif trained is not None and not partial:
        text = f"{where}{trained} iterations{best}"
    elif partial:
        text = f"{where}stopped at iteration {reached} of {total}"
    else:
        text = f"{where}{iteration} iterations"
    return {"run": number, "run_id": run_id, "iteration": iteration, "total": total, "partial": partial,
            "text": text}


# -- what a run shows -------------------------------------------------------------------------
def curves_of(out: Path) -> list[tuple[int, dict[str, float]]]:
    """(iteration, scalars) of each progress report recorded in a run folder, in order."""
    path = Path(out) / CURVES
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError:
        return []
    points: dict[int, dict[str, float]] = {}
    for ln in lines:
        try:
            rec = json.loads(ln)
            step = int(rec.pop("step"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line being written, or damaged: the others still show
        points[step] = rec
    return sorted(points.items())


def curves(run: Run) -> list[tuple[int, dict[str, float]]]:
    """The run's own loss curves: (iteration, scalars) per progress report."""
    return curves_of(run.out)


def sample_slices(run: Run) -> dict:
    """The run's latest sample slices (``slice_x``, ``slice_y``, ``slice_z``: uint8, (H, W) or (H, W, 3)),
    as its last progress report gave them; {} when there are none or the file is not one of ours."""
    import zipfile

    import numpy as np

    path = run.out / SAMPLES
    try:
        # opened as a zip first: np.load would also read a bare .npy, of whatever size it declares
        with zipfile.ZipFile(path) as zf:
            if any(i.file_size > _SAMPLE_MAX_BYTES for i in zf.infolist()):
                return {}
        with np.load(path, allow_pickle=False) as npz:
            out = {k: npz[k] for k in _SAMPLE_KEYS if k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, EOFError):
        return {}
    return {k: a for k, a in out.items()
            if a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) and min(a.shape[:2]) > 0}


def log_text(run: Run) -> str:
    try:
        return (run.out / LOG).read_text("utf-8", errors="replace")
    except OSError:
        return ""


# -- time estimates ---------------------------------------------------------------------------
def estimate_seconds(preset: str, iters: int, cuda: bool, measured_s_per_iter: float | None = None) -> float | None:
    """Rough time for ``iters`` iterations: this library's measured speed if known, else our measured
    speeds (H100; CPU core-seconds divided by the cores here), else from the network's FLOPs."""
    if measured_s_per_iter:
        return measured_s_per_iter * iters
    cores = max(1, min(os.cpu_count() or 1, 32))
    key = "cuda" if cuda else "cpu_core_s"
    known = MEASURED_SPEED.get(preset, {})
    if key in known:
        return iters * known[key] / (1 if cuda else cores)
    try:
        from ..slicegan.presets import get_preset

        flops = get_preset(preset).iteration_flops(2)
        rate = 240e12 if cuda else 40e9 * cores  # sustained FLOP/s measured with the microlib preset
        return flops * iters / rate
    except Exception:  # noqa: BLE001
        return None


def measured_speed(library, preset: str, cuda: bool) -> float | None:
    """s/iteration of the library's latest finished run with this preset on this kind of device."""
    want = "cuda" if cuda else "cpu"
    for r in reversed(library.runs(kind=RUN_KIND)):
        t = r.get("timings") or {}
        if r["params"].get("preset") == preset and t.get("s_per_iter") and t.get("device", want) == want:
            return float(t["s_per_iter"])
    return None

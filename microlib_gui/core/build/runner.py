"""The worker side of a build: run one entry's steps, skipping what is done.

:func:`run_entry_job` is what every executor runs, once per entry: in a local
subprocess (``python -m microlib_gui.core.build.worker``) or in a SLURM job
(submitit pickles a reference to it; the node imports this package). It reads its
spec from the build folder, so the same job can be resubmitted after a crash and
carries on from the first step not done.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import traceback
from typing import Any

from ..errors import MicrolibError
from ..library import layout as L
from ..steps import DONE as STEP_DONE
from ..steps import STALE as STEP_STALE
from . import state as st
from .steps import STEP_TABLE, WIZARD_STEP, StepUnavailable

log = logging.getLogger("microlib.build")

#: Outputs of steps that can also be made interactively in the wizard: a step done
#: there (wizard status "done", outputs not stale) counts as done for the build.
WIZARD_OUTPUTS: dict[str, tuple[str, ...]] = {"inpaint": (L.INPAINTED.suffix,), "train": (L.GENERATOR.suffix,)}


class _Terminated(BaseException):
    """SIGTERM (cancel, scancel, time limit) inside a worker."""


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if not str(k).startswith("_")}


def run_kind(step: str) -> str:
    return f"build:{step}"


def step_done(lib, entry_id: int, step: str, params: dict[str, Any]) -> tuple[bool, str]:
    """Is ``step`` done for the entry with these params? Returns ``(done, why)``.

    Not done when the wizard step it completes is stale (something it reads
    changed since, by the step table). Done when the last successful build run
    of the step had the same params and every file it wrote is present and not
    stale by provenance (unchanged, made from inputs that have not changed
    since) — or the wizard made the step's outputs interactively and they are
    not stale.
    """
    entry = lib.get_entry(entry_id)
    wiz = WIZARD_STEP.get(step)
    if wiz and entry.steps.get(wiz) == STEP_STALE:
        return False, f"the {wiz} step is stale"
    runs = [r for r in lib.runs(entry_id, kind=run_kind(step)) if r["status"] == st.DONE]
    if runs:
        last = runs[-1]
        if _clean(last["params"]) != _clean(params):
            return False, "parameters changed"
        files = last["files"]
        stale = [f for f in files if not f.startswith(entry.name) or lib.is_stale(entry_id, f[len(entry.name):])]
        if files and not stale:
            return True, f"done in run {last['id']}"
        return False, f"{stale[0]} missing or stale" if stale else "no files recorded"
    outs = WIZARD_OUTPUTS.get(step)
    if outs and wiz and entry.steps.get(wiz) == STEP_DONE and not any(lib.is_stale(entry_id, s) for s in outs):
        return True, "done in the wizard"
    return False, "not done"


def _attach_log(path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def run_entry_job(library_root: str, build_id: str, entry_id: int) -> str:
    """Run the steps of one entry's job in build ``build_id``; returns its final state.

    Every step becomes a row of the library's ``runs`` table (kind
    ``build:<step>``, its params, log path, files, one-line message); the step
    saves its own work through :mod:`microlib_gui.core.workflow` (files, step
    status, what becomes stale), as the wizard does. A step that
    is already done is skipped; a step whose engine is absent ends the job as
    ``unavailable``; a failing step ends it as ``failed`` with the traceback in the
    entry's log. Work finished before a failure or a kill stays in the library.
    """
    from ..library import entry_name

    name = entry_name(int(entry_id))
    spec = st.read_json(st.job_path(library_root, build_id, name))
    if spec is None:
        raise MicrolibError(f"build {build_id}: no job spec for {name}")
    res_path = st.result_path(library_root, build_id, name)
    logfile = st.log_path(library_root, build_id, name)
    handler = _attach_log(logfile)
    prev_term = None
    try:
        prev_term = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (e.g. a test running it inline in a thread)
        pass
    states = {s: st.QUEUED for s in spec["steps"]}
    result = {"state": st.RUNNING, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
              "step": None, "step_states": states, "message": "", "log": str(logfile)}
    if os.environ.get("SLURM_JOB_ID"):
        result["slurm_job_id"] = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"])
    st.write_json(res_path, {**result, "updated": time.time()})
    log.info("build %s: %s, steps %s on %s (pid %d)", build_id, name, ",".join(spec["steps"]),
             result["host"], os.getpid())
    final, message, run_id = st.DONE, "", None
    lib = st.open_library(library_root)
    redone = False  # once a step is redone, every later step is redone too
    try:
        for step in spec["steps"]:
            params = spec["params"].get(step, {})
            if not redone:
                done, why = step_done(lib, entry_id, step, params)
                if done:
                    log.info("%s: skipped (%s)", step, why)
                    states[step] = st.SKIPPED
                    st.update_json(res_path, step_states=states)
                    continue
                log.info("%s: runs (%s)", step, why)
            redone = True
            states[step] = st.RUNNING
            run_id = lib.start_run(entry_id, run_kind(step), {**params, "_build": build_id}, log=str(logfile))
            st.update_json(res_path, step=step, step_states=states, run_id=run_id)
            t0 = time.monotonic()
            fn = STEP_TABLE[step][0]
            try:
                files = fn(library_root, int(entry_id), dict(params))
            except StepUnavailable as exc:
                lib.finish_run(run_id, st.UNAVAILABLE, message=str(exc))
                log.warning("%s: unavailable: %s", step, exc)
                states[step], final, message = st.UNAVAILABLE, st.UNAVAILABLE, str(exc)
                break
            except Exception as exc:  # noqa: BLE001 - recorded, one line for the user
                msg = str(exc) if isinstance(exc, MicrolibError) else f"{type(exc).__name__}: {exc}"
                msg = " ".join(msg.split())[:300]
                log.error("%s: failed: %s\n%s", step, msg, traceback.format_exc())
                lib.finish_run(run_id, st.FAILED, timings={"total_s": time.monotonic() - t0}, message=msg)
                states[step], final = st.FAILED, st.FAILED
                message = msg if msg.startswith(step + ":") else f"{step}: {msg}"
                break
            dt = time.monotonic() - t0
            lib.finish_run(run_id, st.DONE, timings={"total_s": dt}, files=list(files))
            run_id = None
            log.info("%s: done in %.1f s, wrote %s", step, dt, ", ".join(files) or "nothing")
            states[step] = st.DONE
            st.update_json(res_path, step_states=states)
        else:
            message = "all steps done"
    except _Terminated:
        if run_id is not None:
            lib.finish_run(run_id, st.CANCELLED, message="stopped by a signal (cancel or time limit)")
        cur = next((s for s, v in states.items() if v == st.RUNNING), None)
        if cur:
            states[cur] = st.CANCELLED
        final, message = st.CANCELLED, "stopped by a signal (cancel or time limit)"
        log.warning("stopped by SIGTERM")
    finally:
        st.update_json(res_path, state=final, step_states=states, message=message, finished=time.time(),
                       step=next((s for s, v in states.items() if v in (st.FAILED, st.UNAVAILABLE, st.CANCELLED)),
                                 None))
        log.info("build %s: %s %s %s", build_id, name, final, message)
        log.removeHandler(handler)
        handler.close()
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)
    return final


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()

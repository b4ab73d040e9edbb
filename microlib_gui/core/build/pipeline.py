"""Plan, start, watch, cancel and retry builds over library entries.

A build is a job per entry; each job runs that entry's steps in order
(:mod:`.runner`) and skips the steps already done by provenance. Typical use::

    opts = BuildOptions(steps=["inpaint", "train"], executor="slurm", partition="gpu")
    plan = plan_build(lib, select_entries(lib, all_curated=True), opts)
    build_id = start_build(lib, plan, opts)        # local: runs; slurm: submits
    wait_build(lib, build_id)                      # slurm: watch squeue + result files
    entry_jobs(lib)                                # latest job of every entry
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..steps import DONE as STEP_DONE
from . import executors as ex
from . import state as st
from .runner import run_entry_job, step_done
from .steps import PIPELINE, STEP_TABLE, BuildError, StepUnavailable, _engine, step_params


@dataclass
class BuildOptions:
    """How to build: which steps with which params, where, with what resources."""

    steps: list[str] = field(default_factory=lambda: list(PIPELINE))
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-step overrides
    executor: str = "local"
    max_parallel: int = 1
    gpus_per_job: int = 1  # SLURM request; local jobs use a GPU when there is one
    cpus_per_job: int = 4
    mem_gb: float | None = None
    partition: str | None = None
    time_limit_min: int = 240
    retry_failed: bool = False
    slurm_extra: dict[str, str] = field(default_factory=dict)
    python: str | None = None  # interpreter on the SLURM nodes (default: this one)

    def __post_init__(self) -> None:
        if self.executor not in ex.EXECUTORS:
            raise BuildError(f"unknown executor {self.executor!r} (one of {', '.join(ex.EXECUTORS)})")
        if int(self.max_parallel) < 1:
            raise BuildError("--max-parallel must be at least 1")
        if int(self.gpus_per_job) < 0 or int(self.cpus_per_job) < 1:
            raise BuildError("GPUs per job must be >= 0 and CPUs per job >= 1")
        unknown = [s for s in self.params if s not in STEP_TABLE]
        if unknown:
            raise BuildError(f"parameters given for unknown step {unknown[0]!r}")

    def params_for(self, step: str) -> dict[str, Any]:
        return step_params(step, self.params.get(step))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PlanItem:
    """What a build would do for one entry."""

    entry_id: int
    entry: str
    run: list[str]  # steps the job will run
    done: dict[str, str]  # steps skipped as done, with why
    skip_reason: str = ""  # non-empty: no job for this entry
    unavailable: str = ""  # the first step to run whose engine is absent

    @property
    def action(self) -> str:
        return "skip" if self.skip_reason else "run"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action}


# -- choosing entries -------------------------------------------------------------
def is_curated(entry, annotations: dict[str, Any]) -> bool:
    """Annotated and not excluded: segment and scale-bar steps done, or a data type set."""
    if entry.excluded:
        return False
    steps_done = entry.steps.get("segment") == STEP_DONE and entry.steps.get("scalebar") == STEP_DONE
    return bool(steps_done or annotations.get("data_type"))


def select_entries(lib, entries: list[str] | None = None, all_curated: bool = False) -> list[int]:
    """Entry ids from ``--entries`` (ids, names, ``doitpoms:N``) or every curated entry."""
    if entries and all_curated:
        raise BuildError("give either --entries or --all-curated, not both")
    if entries:
        ids = []
        for key in entries:
            for part in str(key).split(","):
                if part.strip():
                    eid = lib.find_entry(part.strip()).id
                    if eid not in ids:
                        ids.append(eid)
        return ids
    if all_curated:
        return [e.id for e in lib.list_entries(include_excluded=False) if is_curated(e, lib.get_annotations(e.id))]
    raise BuildError("say which entries to build: --entries ID [ID ...] or --all-curated")


def step_available(step: str) -> tuple[bool, str]:
    """Whether the engine of ``step`` is importable here (without running anything)."""
    fn = STEP_TABLE[step][0]
    engine = getattr(fn, "engine", None)
    if engine is None:
        return True, ""
    try:
        _engine(engine[0], engine[1], step)
    except StepUnavailable as exc:
        return False, str(exc)
    return True, ""


# -- planning ---------------------------------------------------------------------
def plan_build(lib, entry_ids: list[int], options: BuildOptions) -> list[PlanItem]:
    """What a build would do: per entry, the steps to run and those already done.

    An entry gets no job when all its steps are done, when a job for it is
    already queued or running, or when its last job failed and
    ``options.retry_failed`` is off.
    """
    latest = latest_jobs(lib)
    items = []
    for eid in entry_ids:
        entry = lib.get_entry(eid)
        run, done = [], {}
        for step in options.steps:
            if not run:
                is_done, why = step_done(lib, eid, step, options.params_for(step))
                if is_done:
                    done[step] = why
                    continue
            run.append(step)
        item = PlanItem(eid, entry.name, run, done)
        prev = latest.get(eid)
        if not run:
            item.skip_reason = "up to date"
        elif prev is not None and prev.state in st.ACTIVE:
            item.skip_reason = f"already {prev.state} in build {prev.build_id}"
        elif prev is not None and prev.state == st.FAILED and not options.retry_failed:
            item.skip_reason = f"failed in build {prev.build_id} ({prev.message}); use --retry-failed"
        for step in run:
            ok, why = step_available(step)
            if not ok:
                item.unavailable = why
                break
        items.append(item)
    return items


# -- starting ---------------------------------------------------------------------
def start_build(lib, plan: list[PlanItem], options: BuildOptions,
                on_change: Callable[[int, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> str | None:
    """Write the build's job specs and hand them to the executor; returns the build id.

    ``local`` runs the jobs here and returns when they have all ended; ``slurm``
    submits a job array and returns at once (see :func:`wait_build`). Returns
    None when the plan has nothing to run.
    """
    todo = [p for p in plan if p.action == "run"]
    if not todo:
        return None
    root = str(lib.root)
    build_id = st.new_build_id()
    st.write_json(st.build_dir(root, build_id) / "build.json", {
        "build_id": build_id, "created": time.time(), "options": options.to_dict(),
        "entries": [p.entry_id for p in todo], "host": socket.gethostname(), "pid": os.getpid(),
    })
    for p in todo:
        st.write_json(st.job_path(root, build_id, p.entry), {
            "build_id": build_id, "entry_id": p.entry_id, "entry": p.entry, "executor": options.executor,
            "steps": p.run, "params": {s: options.params_for(s) for s in p.run}, "submitted": time.time(),
            "host": socket.gethostname(), "log": str(st.log_path(root, build_id, p.entry)),
        })
    jobs = [(p.entry_id, p.entry) for p in todo]
    if options.executor == "local":
        ex.run_local(root, build_id, jobs, options.max_parallel, on_change=on_change, should_stop=should_stop)
    else:
        ids = ex.submit_slurm(root, build_id, jobs, options.to_dict())
        for eid, name in jobs:
            st.update_json(st.job_path(root, build_id, name), external_id=ids[eid])
            if on_change:
                on_change(eid, "submitted")
    return build_id


def run_build_inline(lib, entry_ids: list[int], options: BuildOptions) -> str | None:
    """Run a build's jobs one after another in this process (tests, debugging; no executor)."""
    plan = plan_build(lib, entry_ids, options)
    todo = [p for p in plan if p.action == "run"]
    if not todo:
        return None
    build_id = st.new_build_id()
    root = str(lib.root)
    st.write_json(st.build_dir(root, build_id) / "build.json", {
        "build_id": build_id, "created": time.time(), "options": {**options.to_dict(), "executor": "inline"},
        "entries": [p.entry_id for p in todo], "host": socket.gethostname(), "pid": os.getpid()})
    for p in todo:
        st.write_json(st.job_path(root, build_id, p.entry), {
            "build_id": build_id, "entry_id": p.entry_id, "entry": p.entry, "executor": "inline", "steps": p.run,
            "params": {s: options.params_for(s) for s in p.run}, "submitted": time.time(),
            "host": socket.gethostname(), "pid": os.getpid()})
        run_entry_job(root, build_id, p.entry_id)
    return build_id


# -- status -----------------------------------------------------------------------
def _job_state(root: str, build_id: str, job: dict[str, Any], res: dict[str, Any] | None,
               slurm: dict[str, tuple[str, str]] | None, orchestrator_alive: bool) -> tuple[str, str]:
    """State and message of one job from its spec, its result file and the scheduler."""
    here = job.get("host") == socket.gethostname()
    if res and res.get("state") in st.FINAL:
        return res["state"], res.get("message", "")
    if job.get("cancelled"):
        return st.CANCELLED, "cancelled"
    executor = job.get("executor")
    if executor == "slurm":
        jid = job.get("external_id")
        if slurm is None or not jid:
            return (st.RUNNING if res else st.QUEUED), "" if slurm is not None else "squeue unavailable"
        if jid in slurm:
            sstate, reason = slurm[jid]
            if sstate in ex.SLURM_PENDING:
                return st.QUEUED, f"SLURM {sstate.lower()} ({reason})" if reason and reason != "None" else ""
            if sstate in ex.SLURM_RUNNING or sstate == "COMPLETED":
                return st.RUNNING, ""
            if sstate in ex.SLURM_CANCELLED:
                return st.CANCELLED, f"SLURM job {jid} cancelled"
            return st.FAILED, f"SLURM job {jid} ended {sstate}" + (f" ({reason})" if reason and reason != "None" else "")
        return st.FAILED, (f"SLURM job {jid} left the queue without reporting "
                           "(killed, out of time or out of memory?); see its log")
    # local / inline: judge by process ids on the machine that ran them
    if not here:
        return (st.RUNNING if res else st.QUEUED), ""
    if res:
        if st.pid_alive(res.get("pid"), marker=None if executor == "inline" else "microlib_gui.core.build"):
            return st.RUNNING, ""
        return st.FAILED, "the worker stopped without reporting (killed?); see its log"
    if job.get("pid"):
        if st.pid_alive(job["pid"]):
            return st.RUNNING, "starting"
        return st.FAILED, "the worker stopped before it started its steps; see its log"
    if orchestrator_alive:
        return st.QUEUED, ""
    return st.CANCELLED, "the build stopped before this job started"


def _reconcile(lib, root: str, build_id: str, name: str, res: dict[str, Any] | None, state: str, msg: str) -> None:
    """Record a job found dead (or cancelled) as final, and close its open run, so later reads agree."""
    run_id = (res or {}).get("run_id")
    if run_id is not None:
        open_runs = [r for r in lib.runs() if r["id"] == run_id and r["status"] == st.RUNNING]
        if open_runs:
            lib.finish_run(run_id, state, message=msg)
    steps = dict((res or {}).get("step_states", {}))
    for s, v in steps.items():
        if v == st.RUNNING:
            steps[s] = state
    st.update_json(st.result_path(root, build_id, name), state=state, message=msg, step_states=steps,
                   finished=time.time())


def entry_jobs(lib, build_id: str | None = None, reconcile: bool = True) -> list[st.EntryJob]:
    """The jobs of build ``build_id``, or the latest job of every entry ever built."""
    root = str(lib.root)
    builds = [build_id] if build_id else st.list_builds(root)
    records: list[tuple[str, dict, dict | None, dict]] = []
    for b in builds:
        bdir = st.build_dir(root, b)
        meta = st.read_json(bdir / "build.json") or {}
        for jp in sorted(bdir.glob("*.job.json")):
            job = st.read_json(jp)
            if job:
                name = jp.name[: -len(".job.json")]
                records.append((b, job, st.read_json(st.result_path(root, b, name)), meta))
    if not build_id:  # keep the latest build of each entry
        latest: dict[int, tuple] = {}
        for rec in records:
            latest[rec[1]["entry_id"]] = rec  # builds are listed oldest first
        records = sorted(latest.values(), key=lambda r: r[1]["entry_id"])
    pending_slurm = [r[1].get("external_id") for r in records
                     if r[1].get("executor") == "slurm" and not (r[2] and r[2].get("state") in st.FINAL)]
    slurm = ex.squeue_states([j for j in pending_slurm if j]) if pending_slurm else {}
    out = []
    for b, job, res, meta in records:
        orch_alive = meta.get("host") == socket.gethostname() and st.pid_alive(meta.get("pid"), marker=None)
        state, msg = _job_state(root, b, job, res, slurm, orch_alive)
        name = job["entry"]
        if reconcile and state in st.FINAL and not (res and res.get("state") in st.FINAL) and (
                res is not None or state != st.CANCELLED or job.get("cancelled")):
            _reconcile(lib, root, b, name, res, state, msg)
        steps = dict((res or {}).get("step_states") or {s: st.QUEUED for s in job.get("steps", [])})
        sched_log = None
        if job.get("executor") == "slurm" and job.get("external_id"):
            sched_log = str(ex.slurm_log_paths(root, b, job["external_id"])[1])
        out.append(st.EntryJob(
            entry_id=int(job["entry_id"]), entry=name, build_id=b, executor=job.get("executor", "?"), state=state,
            steps=list(job.get("steps", [])), step=(res or {}).get("step"), step_states=steps, message=msg,
            log=job.get("log") or str(st.log_path(root, b, name)), external_id=job.get("external_id"),
            submitted=job.get("submitted"), updated=(res or job).get("updated"), scheduler_log=sched_log,
        ))
    return out


def latest_jobs(lib) -> dict[int, st.EntryJob]:
    return {j.entry_id: j for j in entry_jobs(lib)}


def wait_build(lib, build_id: str, poll_s: float = 2.0, timeout_s: float | None = None,
               on_change: Callable[[st.EntryJob], None] | None = None) -> list[st.EntryJob]:
    """Watch a build until every job has ended (or ``timeout_s``); returns the jobs' last states."""
    end = None if timeout_s is None else time.monotonic() + timeout_s
    seen: dict[int, tuple[str, str | None]] = {}
    while True:
        jobs = entry_jobs(lib, build_id)
        for j in jobs:
            key = (j.state, j.step)
            if seen.get(j.entry_id) != key:
                seen[j.entry_id] = key
                if on_change:
                    on_change(j)
        if all(j.state in st.FINAL for j in jobs):
            return jobs
        if end is not None and time.monotonic() > end:
            return jobs
        time.sleep(poll_s)


# -- cancel and retry ---------------------------------------------------------------
def cancel_jobs(lib, entry_ids: list[int] | None = None) -> list[st.EntryJob]:
    """Cancel the queued or running latest jobs of ``entry_ids`` (all when None).

    Local workers get SIGTERM (then SIGKILL); SLURM jobs get ``scancel``. A step
    being run is lost; finished steps stay in the library. Returns the jobs cancelled.
    """
    root = str(lib.root)
    chosen = [j for j in entry_jobs(lib) if j.state in st.ACTIVE and (entry_ids is None or j.entry_id in entry_ids)]
    slurm_ids = []
    for j in chosen:
        jp = st.job_path(root, j.build_id, j.entry)
        job = st.update_json(jp, cancelled=True)
        if j.executor == "slurm":
            slurm_ids.append(j.external_id)
        else:
            res = st.read_json(st.result_path(root, j.build_id, j.entry)) or {}
            pid = res.get("pid") or job.get("pid")
            if pid and job.get("host") == socket.gethostname() and st.pid_alive(pid):
                ex.terminate_group(int(pid))
    if slurm_ids:
        ex.scancel([s for s in slurm_ids if s])
    for j in chosen:
        res = st.read_json(st.result_path(root, j.build_id, j.entry))
        if not (res and res.get("state") in st.FINAL):
            _reconcile(lib, root, j.build_id, j.entry, res, st.CANCELLED, "cancelled")
    return chosen


def options_of(lib, build_id: str) -> BuildOptions:
    """The options a build was started with (to retry its jobs the same way)."""
    meta = st.read_json(st.build_dir(str(lib.root), build_id) / "build.json") or {}
    opts = dict(meta.get("options") or {})
    if opts.get("executor") not in ex.EXECUTORS:
        opts["executor"] = "local"
    known = set(BuildOptions.__dataclass_fields__)
    return BuildOptions(**{k: v for k, v in opts.items() if k in known})

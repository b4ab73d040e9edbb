"""Executors: where an entry's job runs.

* ``local`` — subprocesses on this machine, up to N at once
  (``python -m microlib_gui.core.build.worker``); with several GPUs, the jobs are
  spread over them through ``CUDA_VISIBLE_DEVICES``.
* ``slurm`` — a SLURM job array through submitit, one array task per entry, with
  the GPU/CPU/memory/time/partition requests of the build. State comes from
  ``squeue`` (``sacct`` needs accounting, which many small clusters lack) and the
  result files the jobs write.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import state as st
from .steps import BuildError

EXECUTORS = ("local", "slurm")

#: squeue states meaning the job is still waiting / running / finished.
SLURM_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "RESIZING", "SIGNALING", "STOPPED"}
SLURM_CANCELLED = {"CANCELLED", "REVOKED"}


def package_parent() -> Path:
    """The folder holding the ``microlib_gui`` package (what a worker needs on PYTHONPATH)."""
    return Path(__file__).resolve().parents[3]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    pp = str(package_parent())
    env["PYTHONPATH"] = pp + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


# -- local ----------------------------------------------------------------------
def _gpu_count() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return 0  # the user chose the devices; leave them alone
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def start_local_worker(library_root, build_id: str, entry_id: int, entry_name: str,
                       gpu: int | None = None, threads: int | None = None) -> subprocess.Popen:
    """Start one entry's job as a subprocess in its own session (so it can be cancelled as a group).

    ``threads`` caps the worker's CPU threads (OpenMP/MKL, hence torch) so that
    N jobs at once share the cores instead of fighting over them.
    """
    logfile = st.log_path(library_root, build_id, entry_name)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    extra = {"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {}
    if threads and "OMP_NUM_THREADS" not in os.environ:
        extra.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(logfile, "ab") as out:  # the worker's own stdout/stderr go to the entry log too
        proc = subprocess.Popen(
            [sys.executable, "-m", "microlib_gui.core.build.worker", str(library_root), build_id, str(entry_id)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(library_root),
            env=worker_env(extra), start_new_session=True,
        )
    return proc


def run_local(library_root, build_id: str, jobs: list[tuple[int, str]], max_parallel: int = 1,
              on_change: Callable[[int, str], None] | None = None, should_stop: Callable[[], bool] | None = None,
              poll_s: float = 0.2) -> dict[int, int]:
    """Run ``jobs`` (entry id, entry name) as subprocesses, ``max_parallel`` at once; block until all end.

    ``on_change(entry_id, "started"|"ended")`` is called as jobs start and end.
    ``should_stop()`` returning True stops the build: running jobs are terminated
    (their finished steps stay in the library) and the rest are not started.
    A job whose ``.job.json`` was marked cancelled is not started.
    Returns each started entry's exit code.
    """
    pending = list(jobs)
    running: dict[int, subprocess.Popen] = {}
    codes: dict[int, int] = {}
    gpus = _gpu_count()
    slot = 0
    threads = max(1, (os.cpu_count() or 1) // max(1, int(max_parallel))) if int(max_parallel) > 1 else None
    try:
        while pending or running:
            if should_stop is not None and should_stop():
                for eid, proc in running.items():
                    terminate_group(proc.pid)
                for eid, name in pending:
                    st.update_json(st.job_path(library_root, build_id, name), cancelled=True)
                pending.clear()
            while pending and len(running) < max(1, int(max_parallel)):
                eid, name = pending.pop(0)
                jp = st.job_path(library_root, build_id, name)
                if (st.read_json(jp) or {}).get("cancelled"):
                    continue
                proc = start_local_worker(library_root, build_id, eid, name, gpu=(slot % gpus) if gpus > 1 else None,
                                          threads=threads)
                slot += 1
                st.update_json(jp, external_id=str(proc.pid), pid=proc.pid, started=time.time())
                running[eid] = proc
                if on_change:
                    on_change(eid, "started")
            for eid, proc in list(running.items()):
                code = proc.poll()
                if code is not None:
                    codes[eid] = code
                    del running[eid]
                    if on_change:
                        on_change(eid, "ended")
            time.sleep(poll_s)
    except BaseException:
        # Interrupted (Ctrl-C): stop the workers rather than leave them unwatched.
        for proc in running.values():
            terminate_group(proc.pid)
        for eid, name in pending:
            st.update_json(st.job_path(library_root, build_id, name), cancelled=True)
        raise
    return codes


def terminate_group(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM a worker's process group, then SIGKILL it if it has not ended after ``grace_s``."""
    try:
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        try:
            done_pid, _ = os.waitpid(pid, os.WNOHANG)
            if done_pid == pid:
                return
        except ChildProcessError:  # not our child: poll for it instead
            if not st.pid_alive(pid):
                return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- slurm ----------------------------------------------------------------------
def parse_time_limit(text: str | int | float | None) -> int:
    """``"90"`` (minutes), ``"2:00:00"``, ``"1-12:00:00"``, ``"45m"``, ``"3h"`` → minutes."""
    if text is None or text == "":
        return 240
    if isinstance(text, (int, float)):
        minutes = float(text)
    else:
        t = str(text).strip().lower()
        try:
            if t.endswith("h"):
                minutes = float(t[:-1]) * 60
            elif t.endswith("m"):
                minutes = float(t[:-1])
            elif ":" in t or "-" in t:
                days, _, rest = t.rpartition("-") if "-" in t else ("0", "", t)
                parts = [float(p) for p in rest.split(":")]
                h, m, s = ([0.0] * (3 - len(parts)) + parts) if len(parts) <= 3 else (None, None, None)
                if h is None:
                    raise ValueError
                minutes = float(days or 0) * 1440 + h * 60 + m + s / 60
            else:
                minutes = float(t)
        except ValueError:
            raise BuildError(f"time limit {text!r}: use minutes (90), H:MM:SS, D-HH:MM:SS, 45m or 3h") from None
    if not 1 <= minutes <= 60 * 24 * 365:
        raise BuildError(f"time limit {text!r} is out of range (1 minute to 1 year)")
    return int(round(minutes))


def submit_slurm(library_root, build_id: str, jobs: list[tuple[int, str]], options: dict[str, Any]) -> dict[int, str]:
    """Submit one SLURM array task per entry through submitit; returns entry id → SLURM job id.

    ``options``: ``gpus_per_job``, ``cpus_per_job``, ``mem_gb``, ``partition``,
    ``time_limit_min``, ``max_parallel`` (array parallelism), ``python`` (the
    interpreter on the nodes; default this one), ``slurm_extra`` (more sbatch
    options, e.g. ``{"account": "lab"}``).
    """
    try:
        import submitit
    except ImportError:
        raise BuildError("the slurm executor needs the 'submitit' package (pip install submitit)") from None
    if not jobs:
        return {}
    import shutil

    if shutil.which("sbatch") is None:
        raise BuildError("the slurm executor needs SLURM's sbatch on PATH (run this on a cluster login node)")
    root = Path(library_root).resolve()
    folder = st.build_dir(root, build_id) / "slurm"
    extra_ctor = {"slurm_python": str(options["python"])} if options.get("python") else {}
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", **extra_ctor)
    params: dict[str, Any] = {
        "name": f"microlib-{build_id}",
        "timeout_min": int(options.get("time_limit_min") or 240),
        "cpus_per_task": int(options.get("cpus_per_job") or 1),
        "slurm_array_parallelism": max(1, int(options.get("max_parallel") or len(jobs))),
        # The job runs the same interpreter; make sure it finds this package and the library.
        "slurm_setup": [
            f"export PYTHONPATH={shlex.quote(str(package_parent()))}${{PYTHONPATH:+:$PYTHONPATH}}",
            f"cd {shlex.quote(str(root))}",
        ],
    }
    if int(options.get("gpus_per_job") or 0) > 0:
        params["gpus_per_node"] = int(options["gpus_per_job"])
    if options.get("mem_gb"):
        params["mem_gb"] = float(options["mem_gb"])
    if options.get("partition"):
        params["slurm_partition"] = str(options["partition"])
    if options.get("slurm_extra"):
        params["slurm_additional_parameters"] = dict(options["slurm_extra"])
    ex.update_parameters(**params)
    from .runner import run_entry_job

    n = len(jobs)
    try:
        submitted = ex.map_array(run_entry_job, [str(root)] * n, [build_id] * n, [eid for eid, _ in jobs])
    except Exception as exc:  # noqa: BLE001 - sbatch's refusal, as one line
        text = " ".join(str(exc).split())
        raise BuildError(f"sbatch refused the build: {text[-300:]}") from None
    out = {}
    for (eid, _name), job in zip(jobs, submitted):
        out[eid] = str(job.job_id)
    return out


def slurm_log_paths(library_root, build_id: str, job_id: str) -> tuple[Path, Path]:
    """submitit's stdout/stderr files of SLURM job ``job_id`` (``123_4`` for an array task)."""
    folder = st.build_dir(library_root, build_id) / "slurm"
    return folder / f"{job_id}_0_log.out", folder / f"{job_id}_0_log.err"


def squeue_states(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """SLURM state and reason of each job still known to ``squeue`` (array tasks expanded).

    Jobs no longer listed are absent from the dict. Returns None when squeue
    cannot be asked (not installed, controller down): the state is then unknown,
    and no job must be judged lost from that.
    """
    bases = sorted({j.split("_")[0] for j in job_ids if j})
    if not bases:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(bases)],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:
            return {}  # every one of them has left the queue
        return None
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def scancel(job_ids: list[str]) -> None:
    ids = [j for j in job_ids if j]
    if not ids:
        return
    try:
        out = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"scancel failed: {exc}") from None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise BuildError(f"scancel failed: {' '.join(out.stderr.split())[:200]}")

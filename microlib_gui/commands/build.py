"""``microlib build``: run the pipeline over library entries, here or on a SLURM cluster.

::

    microlib build --all-curated --executor slurm --partition gpu --time-limit 4:00:00
    microlib build --entries 1 12 --steps inpaint,train --param train.preset=tiny --max-parallel 2
    microlib build --entries 1 --steps selftest        # diagnostic: can workers run here/there?
    microlib build status [--json]
    microlib build cancel [--entries ...]
"""

from __future__ import annotations

import json
import sys
import time

from . import add_json_flag, emit
from ._args import entry_key, number, whole


def open_library(args, create: bool = False):
    """The library of ``--library``/``$MICROLIB_HOME``, opened without deleting other
    processes' unfinished temporary files (a build may be writing; see
    :func:`microlib_gui.core.build.state.open_library`)."""
    from pathlib import Path

    from ..core.build.state import open_library as open_quiet
    from ..core.paths import default_library_path

    return open_quiet(Path(args.library) if getattr(args, "library", None) else default_library_path())

ACTIONS = ("run", "status", "cancel")


def register(sub) -> None:
    p = sub.add_parser(
        "build",
        help="run the pipeline (inpaint, train, generate, stats, media, export) over many entries",
        description="A job per entry runs the entry's steps in order, skipping steps already done "
                    "(by provenance), so a build can be stopped and run again at any time. "
                    "ACTION: run (default), status (latest job of every entry), cancel.",
    )
    p.add_argument("action", nargs="?", choices=ACTIONS, default="run", metavar="ACTION",
                   help="run (default), status or cancel")
    p.add_argument("--entries", nargs="+", type=entry_key, metavar="ID", help="entry ids or names (microstructure001, doitpoms:1)")
    p.add_argument("--all-curated", action="store_true",
                   help="every annotated entry that is not excluded (segment and scale bar done, or a data type)")
    p.add_argument("--steps", metavar="S1,S2",
                   help="steps to run (default: inpaint,train,generate,stats,media,export; "
                        "'selftest' is a quick diagnostic)")
    p.add_argument("--param", action="append", default=[], metavar="STEP.KEY=VALUE",
                   help="a step parameter, e.g. train.preset=tiny, train.iters=5000, generate.size=320 "
                        "(VALUE is read as JSON when it can be); repeatable")
    p.add_argument("--executor", choices=("local", "slurm"), default="local")
    p.add_argument("--max-parallel", type=whole(1, 1024), default=1, metavar="N",
                   help="jobs at once (local: subprocesses; slurm: array parallelism)")
    p.add_argument("--gpus-per-job", type=whole(0, 64), default=1, metavar="N",
                   help="SLURM: GPUs per job (default 1; 0: none)")
    p.add_argument("--cpus-per-job", type=whole(1, 4096), default=4, metavar="N",
                   help="SLURM: CPUs per job (default 4)")
    p.add_argument("--mem-gb", type=number(0, 1e5, lo_open=True), default=None, metavar="G",
                   help="SLURM: memory per job")
    p.add_argument("--partition", metavar="P", help="SLURM partition")
    p.add_argument("--time-limit", default="4:00:00", metavar="T",
                   help="SLURM: time per job (minutes, H:MM:SS, D-HH:MM:SS, 45m, 3h; default 4:00:00)")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, e.g. account=mylab or qos=short; repeatable")
    p.add_argument("--python", metavar="PATH", help="SLURM: python on the nodes (default: this one)")
    p.add_argument("--dry-run", action="store_true", help="show what would run, submit nothing")
    p.add_argument("--retry-failed", action="store_true", help="also rebuild entries whose last job failed")
    p.add_argument("--no-wait", action="store_true", help="slurm: return after submitting (watch with 'status')")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_json_flag(p)
    p.set_defaults(func=cmd_build)


def _parse_params(items: list[str]) -> dict[str, dict]:
    from ..core.build import BuildError

    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        step, dot, name = key.partition(".")
        if not (eq and dot and step and name):
            raise BuildError(f"--param {item!r}: expected STEP.KEY=VALUE, e.g. train.iters=100")
        val = _param_value(item, value)
        out.setdefault(step.strip(), {})[name.strip()] = val
    return out


def _param_value(item: str, value: str):
    """VALUE read as JSON when it can be (a number, a list...), else the text; never NaN, infinity or deep."""
    import math

    from ..core.build import BuildError
    from ..core.userjson import depth

    too_deep = False
    try:
        val = json.loads(value)
    except RecursionError:
        val, too_deep = None, True
    except ValueError:
        return value  # not JSON: the text itself
    if too_deep or depth(val) > 8:
        raise BuildError(f"--param {item[:60]!r}: nested too deeply")
    if any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(val)):
        raise BuildError(f"--param {item[:60]!r}: expected finite numbers")
    return val


def _leaves(obj):
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
        else:
            yield o


def _options(args):
    from ..core.build import BuildError, BuildOptions, parse_steps
    from ..core.build.executors import parse_time_limit

    extra = {}
    for item in args.slurm_option:
        k, eq, v = item.partition("=")
        if not (eq and k.strip()):
            raise BuildError(f"--slurm-option {item!r}: expected KEY=VALUE, e.g. account=mylab")
        extra[k.strip()] = v.strip()
    return BuildOptions(steps=parse_steps(args.steps), params=_parse_params(args.param), executor=args.executor,
                        max_parallel=args.max_parallel, gpus_per_job=args.gpus_per_job,
                        cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, partition=args.partition,
                        time_limit_min=parse_time_limit(args.time_limit), retry_failed=args.retry_failed,
                        slurm_extra=extra, python=args.python)


def _say(args, text: str) -> None:
    if not (args.quiet or args.json):
        print(text, file=sys.stderr, flush=True)


def _job_line(j) -> str:
    step = f" [{j.step}]" if j.step else ""
    msg = f": {j.message}" if j.message else ""
    ext = f" ({j.executor} {j.external_id})" if j.external_id else f" ({j.executor})"
    return f"{j.entry:<20} {j.state:<11}{step}{ext}{msg}"


def cmd_build(args) -> int:
    if args.action == "status":
        return cmd_status(args)
    if args.action == "cancel":
        return cmd_cancel(args)
    from ..core.build import FAILED, entry_jobs, plan_build, select_entries, start_build, wait_build

    lib = open_library(args, create=False)
    opts = _options(args)
    plan = plan_build(lib, select_entries(lib, args.entries, args.all_curated), opts)
    lines = []
    for item in plan:
        if item.action == "skip":
            lines.append(f"{item.entry:<20} skip: {item.skip_reason}")
        else:
            done = f" (done: {', '.join(item.done)})" if item.done else ""
            unav = f" — stops at: {item.unavailable}" if item.unavailable else ""
            lines.append(f"{item.entry:<20} run {','.join(item.run)}{done}{unav}")
    if args.dry_run:
        emit(args, {"dry_run": True, "plan": [p.to_dict() for p in plan]}, "\n".join(lines) or "no entries")
        return 0
    for line in lines:
        _say(args, line)

    def started(eid: int, what: str) -> None:
        name = next(p.entry for p in plan if p.entry_id == eid)
        _say(args, f"{time.strftime('%H:%M:%S')} {name} {what}")

    build_id = start_build(lib, plan, opts, on_change=started)
    if build_id is None:
        emit(args, {"build_id": None, "jobs": [], "plan": [p.to_dict() for p in plan]}, "nothing to build")
        return 0
    if opts.executor == "slurm" and not args.no_wait:
        _say(args, f"build {build_id} submitted; watching (Ctrl-C stops watching; the jobs go on)")
        try:
            wait_build(lib, build_id, poll_s=5.0,
                       on_change=lambda j: _say(args, f"{time.strftime('%H:%M:%S')} {_job_line(j)}"))
        except KeyboardInterrupt:
            _say(args, f"stopped watching; 'microlib build status' shows build {build_id}")
            return 130
    jobs = entry_jobs(lib, build_id)
    text = f"build {build_id}\n" + "\n".join(_job_line(j) for j in jobs)
    emit(args, {"build_id": build_id, "jobs": [j.to_dict() for j in jobs]}, text)
    return 1 if any(j.state == FAILED for j in jobs) else 0


def cmd_status(args) -> int:
    from ..core.build import entry_jobs

    lib = open_library(args, create=False)
    jobs = entry_jobs(lib)
    if args.entries:
        wanted = {lib.find_entry(k).id for k in args.entries}
        jobs = [j for j in jobs if j.entry_id in wanted]
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.state] = counts.get(j.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no build jobs yet"
    text = "\n".join([_job_line(j) for j in jobs] + [summary])
    emit(args, {"jobs": [j.to_dict() for j in jobs], "counts": counts}, text)
    return 0


def cmd_cancel(args) -> int:
    from ..core.build import cancel_jobs

    lib = open_library(args, create=False)
    ids = [lib.find_entry(k).id for k in args.entries] if args.entries else None
    jobs = cancel_jobs(lib, ids)
    emit(args, {"cancelled": [j.to_dict() for j in jobs]},
         "\n".join(f"cancelled {j.entry} (build {j.build_id})" for j in jobs) or "no queued or running jobs")
    return 0

"""Build the library at scale: run the pipeline over many entries, locally or on SLURM.

The pipeline of an entry is ``inpaint → train → generate → stats → media →
export`` (:data:`.steps.PIPELINE`), plus the ``selftest`` diagnostic. A build
makes one job per entry; the job runs the entry's steps in order, skipping each
step already done (its last build run had the same parameters and its files are
present and not stale by provenance). Failures are recorded per entry (``runs``
table, a log in the entry folder) and retried on request; finished work is never
lost, and a build stopped at any moment is resumed by building again.

Executors (:mod:`.executors`): ``local`` (subprocesses, N at once) and ``slurm``
(submitit job arrays; state from ``squeue`` and result files).
"""

from .pipeline import (
    BuildOptions,
    PlanItem,
    cancel_jobs,
    entry_jobs,
    is_curated,
    latest_jobs,
    options_of,
    plan_build,
    run_build_inline,
    select_entries,
    start_build,
    step_available,
    wait_build,
)
from .state import ACTIVE, CANCELLED, DONE, FAILED, FINAL, QUEUED, RUNNING, SKIPPED, UNAVAILABLE, EntryJob
from .steps import ALL_STEPS, PIPELINE, STEP_TABLE, BuildError, StepUnavailable, parse_steps, step_params

__all__ = [
    "ACTIVE", "ALL_STEPS", "BuildError", "BuildOptions", "CANCELLED", "DONE", "EntryJob", "FAILED", "FINAL",
    "PIPELINE", "PlanItem", "QUEUED", "RUNNING", "SKIPPED", "STEP_TABLE", "StepUnavailable", "UNAVAILABLE",
    "cancel_jobs", "entry_jobs", "is_curated", "latest_jobs", "options_of", "parse_steps", "plan_build",
    "run_build_inline", "select_entries", "start_build", "step_available", "step_params", "wait_build",
]

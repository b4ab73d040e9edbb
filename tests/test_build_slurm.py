"""``microlib build --executor slurm`` on a real single-node SLURM cluster started by the test.

The cluster (``tests/slurm_cluster.py``) has accounting off, as many small clusters
do: job state comes from ``squeue`` and the result files the jobs write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401 - the fixture
from test_build import TINY, cli, make_library

from microlib_gui.core.build import entry_jobs

SLURM = ["--executor", "slurm", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time-limit", "10"]


def test_slurm_build_two_entries(tmp_path, shared_data, slurm_cluster, capsys):  # noqa: F811
    lib = make_library(tmp_path / "lib", shared_data)
    steps = "selftest,inpaint,train,generate"
    assert cli(lib, "--all-curated", "--steps", steps, "--max-parallel", "2", *SLURM, *TINY) == 0, \
        capsys.readouterr().err + slurm_cluster.log_tail()
    jobs = entry_jobs(lib)
    assert [j.state for j in jobs] == ["done", "done"], [j.message for j in jobs]
    # One array task per entry, run by SLURM (not here): its job id and submitit's log prove it.
    ids = [j.external_id for j in jobs]
    assert len({i.split("_")[0] for i in ids}) == 1 and sorted(i.split("_")[1] for i in ids) == ["0", "1"]
    for j in jobs:
        res = json.loads((lib.root / "builds" / j.build_id / f"{j.entry}.result.json").read_text())
        assert res["slurm_job_id"] == ids[0].split("_")[0]
        assert Path(j.scheduler_log).exists()
        assert "generate: done" in Path(j.log).read_text()
        assert lib.entry_file(j.entry_id, ".tif").exists() and not lib.is_stale(j.entry_id, "_Gen.pt")
        assert [r["status"] for r in lib.runs(j.entry_id) if r["kind"].startswith("build:")] == ["done"] * 4
        (run,) = lib.runs(j.entry_id, kind="train")  # the Train step's run, in train/run-001
        assert run["status"] == "done" and run["params"]["out"].endswith("train/run-001")
    # Building again submits nothing: every step is done.
    capsys.readouterr()
    assert cli(lib, "--all-curated", "--steps", steps, *SLURM, *TINY) == 0
    assert "nothing to build" in capsys.readouterr().out


def test_slurm_cancel_and_status(tmp_path, shared_data, slurm_cluster, capsys):  # noqa: F811
    lib = make_library(tmp_path / "lib", shared_data, ids=("006",))
    long_train = ["--param", "train.preset=tiny", "--param", "train.iters=100000", "--param", "train.device=cpu"]
    assert cli(lib, "--entries", "6", "--steps", "inpaint,train", "--no-wait", *SLURM, *long_train) == 0
    end = time.monotonic() + 90
    while time.monotonic() < end:
        (job,) = entry_jobs(lib, reconcile=False)
        if job.state == "running" and job.step == "train":
            break
        assert job.state in ("queued", "running"), job.message
        time.sleep(0.5)
    else:
        pytest.fail(f"the SLURM job never reached training: {entry_jobs(lib)}")
    capsys.readouterr()
    assert cli(lib, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"running": 1} and status["jobs"][0]["executor"] == "slurm"
    assert cli(lib, "cancel", "--entries", "6") == 0
    # scancel'd: squeue reports it gone or cancelled, and the job says so itself.
    end = time.monotonic() + 60
    while time.monotonic() < end:
        (job,) = entry_jobs(lib)
        res = json.loads((lib.root / "builds" / job.build_id / f"{job.entry}.result.json").read_text())
        if res.get("finished"):
            break
        time.sleep(0.5)
    assert job.state == "cancelled"
    assert job.step_states["inpaint"] == "done"
    assert not lib.is_stale(6, "_inpainted.png")  # finished work stays
    assert lib.runs(6, kind="build:train")[-1]["status"] == "cancelled"

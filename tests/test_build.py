"""``microlib build`` through the local executor: real steps on real micrographs, skip, fail, retry, cancel."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from microlib_gui.cli import main
from microlib_gui.core.build import (
    BuildError, BuildOptions, entry_jobs, is_curated, plan_build, run_build_inline, select_entries, start_build,
)
from microlib_gui.core.build import steps as bsteps
from microlib_gui.core.build.executors import parse_time_limit
from microlib_gui.core.library import Library

# Tiny settings: the real engines, a few seconds of work per entry on a CPU.
TINY = ["--param", "train.preset=tiny", "--param", "train.iters=2", "--param", "train.device=cpu",
        "--param", "generate.size=32", "--param", "generate.device=cpu",
        "--param", "media.n_frames=8", "--param", "media.size=96"]


def make_library(root: Path, shared: Path, ids=("001", "006")) -> Library:
    """Two-phase entries as the wizard leaves them (through core.workflow, as its panels save):
    segmented between the two phase levels, the scale bar masked and measured."""
    from microlib_gui.core.workflow import scalebar as wsb
    from microlib_gui.core.workflow import segment as wseg

    raw = shared / "rawlike"
    manifest = json.loads((raw / "manifest.json").read_text())
    lib = Library(root)
    for did in ids:
        e = lib.add_entry(raw / f"raw{did}.png", source="doitpoms", doitpoms_id=int(did))
        wseg.save(lib, e.id, thresholds=[float(np.mean(manifest[did]["phase_levels"]))])
        bar = manifest[did]["bar"]
        wsb.save(lib, e.id, wsb.changes_for(colour=bar["colour"], tol=10, bar_box=bar["box_xyxy"],
                                            length_px=bar["bar_len_px"], value_um=bar["label_um"]))
    return lib


def cli(lib: Library, *args: str) -> int:
    return main(["--library", str(lib.root), "build", *args])


def test_local_build_runs_pipeline_and_skips_done_work(tmp_path, shared_data, capsys):
    lib = make_library(tmp_path / "lib", shared_data)
    steps = "selftest,inpaint,train,generate,stats,media,export"
    assert cli(lib, "--all-curated", "--steps", steps, "--max-parallel", "2", *TINY) == 0
    out = capsys.readouterr().out
    jobs = entry_jobs(lib)
    assert [j.state for j in jobs] == ["done", "done"], out
    for e in lib.list_entries():
        # Real outputs, each recorded with provenance and a run row.
        inp = lib.entry_file(e.id, "_inpainted.png")
        assert inp.exists() and not lib.is_stale(e.id, "_inpainted.png")
        seg = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(inp))
        assert len(np.unique(seg)) <= 4  # label image stays a label image
        assert lib.entry_file(e.id, "_Gen.pt").exists() and lib.entry_file(e.id, ".tif").exists()
        hist = json.loads(lib.entry_file(e.id, "_selftest.json").read_text())
        assert sum(hist["histogram"]) == hist["shape"][0] * hist["shape"][1]
        kinds = [r["kind"] for r in lib.runs(e.id) if r["status"] == "done" and r["kind"].startswith("build:")]
        assert kinds == ["build:" + s for s in steps.split(",")]
        # Training through the Train step's run lifecycle: run 1 in train/run-001, published.
        (run,) = lib.runs(e.id, kind="train")
        assert run["number"] == 1 and run["status"] == "done"
        assert Path(run["params"]["out"]) == lib.entry_dir(e.id) / "train" / "run-001"
        stats = json.loads(lib.entry_file(e.id, "_stats.json").read_text())
        assert {"flag", "errors", "image2d", "volume3d"} <= stats.keys()
        assert (lib.root / "export" / e.name / f"{e.name}.tif").exists()
        assert lib.entry_file(e.id, ".mp4").stat().st_size > 0
        assert e.steps["inpaint"] == "done" and e.steps["train"] == "done"
        log = Path(jobs[0].log).read_text() if e.id == jobs[0].entry_id else Path(jobs[1].log).read_text()
        assert "train: done" in log
    # Nothing left to do: the plan skips both entries.
    opts = BuildOptions(steps=steps.split(","), params={"train": {"preset": "tiny", "iters": 2, "device": "cpu"},
                                                         "generate": {"size": 32, "device": "cpu"},
                                                         "media": {"n_frames": 8, "size": 96}})
    plan = plan_build(lib, select_entries(lib, all_curated=True), opts)
    assert [p.skip_reason for p in plan] == ["up to date", "up to date"]
    # A changed scale-bar mask makes inpainting and everything after it stale, for that entry only.
    from microlib_gui.core.workflow import scalebar as wsb

    e1 = lib.list_entries()[0]
    change = wsb.save(lib, e1.id, wsb.changes_for(tol=40))
    assert "_mask.png" in change.files_changed and "inpaint" in change.stale
    plan = plan_build(lib, [e.id for e in lib.list_entries()], opts)
    assert plan[0].run == ["inpaint", "train", "generate", "stats", "media", "export"]
    assert plan[0].done.keys() == {"selftest"}
    assert plan[1].skip_reason == "up to date"
    # Changed parameters redo the step too.
    opts.params["generate"]["size"] = 48
    plan = plan_build(lib, [lib.list_entries()[1].id], opts)
    assert plan[0].run == ["generate", "stats", "media", "export"]


def test_failure_is_recorded_and_retried_on_request(tmp_path, shared_data, capsys):
    lib = make_library(tmp_path / "lib", shared_data, ids=("001",))
    # Training without an inpainted image fails with a reason; the log keeps the traceback.
    assert cli(lib, "--entries", "1", "--steps", "train", *TINY) == 1
    (job,) = entry_jobs(lib)
    assert job.state == "failed" and job.step == "train"
    assert "Inpaint step must be done first" in job.message
    assert "Traceback" in Path(job.log).read_text()
    run = lib.runs(1, kind="build:train")[-1]
    assert run["status"] == "failed" and "Inpaint step" in run["message"]
    # Not retried unless asked.
    capsys.readouterr()
    assert cli(lib, "--entries", "1", "--steps", "train", "--dry-run", "--json", *TINY) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan[0]["action"] == "skip" and "--retry-failed" in plan[0]["skip_reason"]
    # Retried on request, with the missing step first: finished work accumulates.
    assert cli(lib, "--entries", "1", "--steps", "inpaint,train", "--retry-failed", *TINY) == 0
    (job,) = entry_jobs(lib)
    assert job.state == "done" and job.step_states == {"inpaint": "done", "train": "done"}
    capsys.readouterr()
    assert cli(lib, "status") == 0
    text = capsys.readouterr().out
    assert "microstructure001" in text and "1 done" in text


def test_status_json_and_unavailable_step(tmp_path, shared_data, capsys, monkeypatch):
    lib = make_library(tmp_path / "lib", shared_data, ids=("006",))
    # An engine that is not part of this version: the step is reported, not faked.
    monkeypatch.setitem(bsteps.STEP_TABLE, "stats",
                        (bsteps._delegated("stats", "microlib_gui.core.no_such_engine", "build_stats"), {}))
    build_id = run_build_inline(lib, [6], BuildOptions(steps=["selftest", "stats", "media"]))
    (job,) = entry_jobs(lib, build_id)
    assert job.state == "unavailable" and job.step == "stats"
    assert job.step_states == {"selftest": "done", "stats": "unavailable", "media": "queued"}
    assert "no_such_engine is not part of this version" in job.message
    assert lib.entry_file(6, "_selftest.json").exists()
    capsys.readouterr()
    assert cli(lib, "status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"unavailable": 1} and doc["jobs"][0]["entry"] == "microstructure006"


def test_cancel_stops_the_worker_and_keeps_finished_steps(tmp_path, shared_data):
    lib = make_library(tmp_path / "lib", shared_data, ids=("001",))
    opts = BuildOptions(steps=["selftest", "inpaint", "train"],
                        params={"train": {"preset": "tiny", "iters": 100000, "device": "cpu"}})
    plan = plan_build(lib, [1], opts)
    t = threading.Thread(target=start_build, args=(lib, plan, opts), daemon=True)
    t.start()
    end = time.monotonic() + 120
    while time.monotonic() < end:
        jobs = entry_jobs(lib, reconcile=False)
        if jobs and jobs[0].step == "train" and jobs[0].state == "running" and lib.runs(1, kind="train"):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"training never started: {entry_jobs(lib)}")
    assert main(["--library", str(lib.root), "build", "cancel"]) == 0
    t.join(60)
    assert not t.is_alive()
    (job,) = entry_jobs(lib)
    assert job.state == "cancelled"
    assert job.step_states["selftest"] == "done" and job.step_states["inpaint"] == "done"
    assert not lib.is_stale(1, "_inpainted.png")  # finished work stays
    assert lib.runs(1, kind="build:train")[-1]["status"] == "cancelled"
    # The training run itself is stopped, not published: it can be resumed.
    (run,) = lib.runs(1, kind="train")
    assert run["status"] == "stopped" and not lib.entry_file(1, "_Gen.pt").exists()


def test_a_killed_training_resumes_from_its_checkpoint(tmp_path, shared_data):
    """SIGKILL (out of memory, a node lost): the next build continues the same run from its checkpoint."""
    import os
    import signal

    lib = make_library(tmp_path / "lib", shared_data, ids=("001",))
    opts = BuildOptions(steps=["inpaint", "train"], params={"train": {"preset": "tiny", "iters": 100000, "device": "cpu",
                                                                      "checkpoint_every": 2}})
    t = threading.Thread(target=start_build, args=(lib, plan_build(lib, [1], opts), opts), daemon=True)
    t.start()
    run_dir = lib.entry_dir(1) / "train" / "run-001"

    def checkpointed() -> int:
        """The iteration a resume would continue from (the checkpoint is replaced atomically)."""
        import torch

        try:
            return int(torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"])
        except (OSError, RuntimeError, KeyError, EOFError):
            return 0

    end = time.monotonic() + 180
    while time.monotonic() < end and checkpointed() < 2:
        time.sleep(0.3)
    assert checkpointed() >= 2, f"no checkpoint: {entry_jobs(lib)}"
    (job,) = entry_jobs(lib, reconcile=False)
    os.killpg(os.getpgid(int(job.external_id)), signal.SIGKILL)
    t.join(60)
    (job,) = entry_jobs(lib)
    assert job.state == "failed" and "killed" in job.message
    # read after the kill: a checkpoint written between the wait and the kill counts (run.json is
    # written after the checkpoint, so it can lag behind it by one when the kill lands between)
    done_at = checkpointed()
    assert done_at >= 2
    more = ["--param", "train.preset=tiny", "--param", f"train.iters={done_at + 5}", "--param", "train.device=cpu"]
    assert cli(lib, "--entries", "1", "--steps", "inpaint,train", "--retry-failed", *more) == 0
    (job,) = entry_jobs(lib)
    assert job.step_states == {"train": "done"}  # inpainting stays done
    (run,) = lib.runs(1, kind="train")  # the same run, continued: no run 2
    assert run["number"] == 1 and run["status"] == "done" and run["params"]["out"] == str(run_dir)
    assert f"resumed run 1 at iteration {done_at}" in (run_dir / "train.log").read_text()
    meta = json.loads(lib.entry_file(1, "_meta.json").read_text())
    assert meta["iteration"] == done_at + 5


def test_entry_selection_and_options(tmp_path, shared_data):
    lib = make_library(tmp_path / "lib", shared_data, ids=("001", "006"))
    extra = lib.add_entry(shared_data / "rawlike" / "raw016.png", source="local")
    assert not is_curated(extra, lib.get_annotations(extra.id))
    assert select_entries(lib, all_curated=True) == [1, 6]
    assert select_entries(lib, ["microstructure006", "doitpoms:1", "6"]) == [6, 1]
    lib.set_excluded(6, "low quality")
    assert select_entries(lib, all_curated=True) == [1]
    with pytest.raises(BuildError, match="--entries"):
        select_entries(lib)
    with pytest.raises(BuildError, match="unknown executor"):
        BuildOptions(executor="kubernetes")
    assert parse_time_limit("2:00:00") == 120 and parse_time_limit("1-00:30:00") == 1470
    assert parse_time_limit("45m") == 45 and parse_time_limit("3h") == 180 and parse_time_limit(90) == 90
    with pytest.raises(BuildError, match="time limit"):
        parse_time_limit("soon")
    # Bad CLI input: one line, exit 2.
    assert main(["--library", str(lib.root), "build", "--entries", "1", "--steps", "bake"]) == 2
    assert main(["--library", str(lib.root), "build", "--entries", "1", "--param", "oops"]) == 2

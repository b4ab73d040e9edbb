"""The training-run lifecycle without a GUI: numbering, stop, resume, publish, recovery (tiny network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from microlib_gui.core.jobs import CANCELLED, DONE, Finished, run_inline
from microlib_gui.core.library import layout as L
from microlib_gui.core.workflow import train as wf


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def entry(library, one_torch_thread):
    """A one-entry library whose entry has a training image."""
    from microlib_gui.core.demo import CATALOG, render_micrograph
    from microlib_gui.core.images import save_png

    raw, labels, _ = render_micrograph(CATALOG[0])
    src = library.root.parent / "micrograph.png"
    save_png(src, raw)
    e = library.add_entry(src, source="local")
    library.set_annotations(e.id, {"data_type": "twophase"})
    return library, e.id, (labels * 255).astype(np.uint8)


def _give_image(lib, eid, img):
    from microlib_gui.core.images import save_png

    lib.write_file(eid, L.INPAINTED.suffix, writer=lambda p: save_png(p, img), produced_by="test")


def _params(lib, eid, iters=4):
    return wf.run_params(wf.inputs(lib, eid), preset="tiny", iters=iters, device="cpu", log_every=1,
                         checkpoint_every=1)


def _stop_after(n):
    cancel = threading.Event()
    return cancel, lambda ev: ev.step >= n and cancel.set()


def test_inputs_say_what_is_missing(entry):
    lib, eid, img = entry
    inp = wf.inputs(lib, eid)
    assert not inp.ready and inp.reason.startswith("The Inpaint step must be done first")
    _give_image(lib, eid, img)
    inp = wf.inputs(lib, eid)
    assert inp.ready and inp.images == [str(lib.entry_file(eid, L.INPAINTED.suffix))]
    assert inp.imtype == "nphase"  # from data_type "twophase"


def test_stop_keeps_the_generator_resume_continues_the_same_run(entry):
    lib, eid, img = entry
    _give_image(lib, eid, img)
    params = _params(lib, eid)
    # a finished first run: published, run 1, folder train/run-001
    first = wf.train_inline(lib, eid, {**params, "iters": 2}, resume_matching=False)
    assert (first.number, first.status, first.iteration) == (1, "done", 2)
    assert first.out == lib.entry_dir(eid) / L.RUNS_DIR / "run-001"
    gen = lib.entry_file(eid, L.GENERATOR.suffix)
    sha = _sha(gen)
    assert wf.generator_info(lib, eid)["text"] == "run 1, 2 iterations"
    lib.set_step_status(eid, "inspect", "done")

    # a second run stopped after 2 of 4: not published, resumable, listed as run 2
    cancel, stop = _stop_after(2)
    run = wf.train_inline(lib, eid, params, on_progress=stop, cancel_event=cancel, resume_matching=False)
    assert (run.number, run.status, run.iteration, run.total) == (2, "stopped", 2, 4)
    assert run.label == "run 2 · stopped · 2 it of 4"
    assert _sha(gen) == sha and wf.generator_info(lib, eid)["text"] == "run 1, 2 iterations"
    assert lib.get_entry(eid).steps["inspect"] == "done"  # nothing changed for Inspect
    assert wf.resumable_run(lib, eid).id == run.id
    assert wf.resumable_run(lib, eid, {**params, "seed": 7}) is None  # other settings: a new run
    assert [s for s, _ in wf.curves(run)] == [1, 2]

    # publishing it on request: Inspect becomes stale, the partial generator says so
    wf.publish(lib, eid, run)
    info = wf.generator_info(lib, eid)
    assert info["partial"] and info["text"] == "run 2, stopped at iteration 2 of 4"
    assert _sha(gen) != sha and lib.get_entry(eid).steps["inspect"] == "stale"

    # Resume: the same row, number and folder; the curves continue
    again = wf.train_inline(lib, eid, params)
    assert (again.id, again.number, again.out, again.status, again.iteration) == (run.id, 2, run.out, "done", 4)
    assert [r.number for r in wf.runs(lib, eid)] == [1, 2]
    assert [s for s, _ in wf.curves(again)] == [1, 2, 3, 4]
    log = wf.log_text(again)
    assert "started run 2" in log and "resumed run 2 at iteration 2 of 4" in log and "done: 4 iterations" in log
    assert wf.generator_info(lib, eid) == {"run": 2, "run_id": run.id, "iteration": 4, "total": 4,
                                           "partial": False, "text": "run 2, 4 iterations"}
    prov = {p["file"]: p for p in lib.provenance(eid)}
    assert prov[gen.name]["params"]["run"] == 2 and prov[gen.name]["run_id"] == run.id
    assert prov[lib.entry_file(eid, L.CRITIC.suffix).name]["produced_by"] == "train"


def test_finish_of_a_stopped_job_publishes_nothing(entry):
    lib, eid, img = entry
    _give_image(lib, eid, img)
    run = wf.new_run(lib, eid, _params(lib, eid))
    cancel, stop = _stop_after(1)
    with pytest.raises(Exception):
        run_inline(wf.job, wf.job_params(run), on_progress=stop, cancel_event=cancel)
    run = wf.finish(lib, eid, run, Finished(CANCELLED))
    assert run.status == "stopped" and run.resumable and run.has_generator
    assert not lib.entry_file(eid, L.GENERATOR.suffix).exists()
    assert lib.get_entry(eid).steps["train"] != "done"


def test_recover_a_run_left_running_by_a_closed_app(entry):
    lib, eid, img = entry
    _give_image(lib, eid, img)
    done = wf.new_run(lib, eid, _params(lib, eid, iters=2))
    run_inline(wf.job, wf.job_params(done))  # trained to the end, but the app closed before finish()
    stopped = wf.new_run(lib, eid, _params(lib, eid))
    cancel, stop = _stop_after(1)
    with pytest.raises(Exception):
        run_inline(wf.job, wf.job_params(stopped), on_progress=stop, cancel_event=cancel)
    # still answered for by a live process (this one): left alone
    assert wf.recover_runs(lib, eid) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    for r in (done, stopped):
        (r.out / wf.PID).write_text(dead)
    got = {r.number: r for r in wf.recover_runs(lib, eid)}
    assert got[1].status == "done" and got[1].iteration == 2
    assert got[2].status == "stopped" and got[2].iteration == 1 and got[2].resumable
    assert wf.generator_info(lib, eid)["run"] == 1  # the completed one is published, the stopped one is not
    assert wf.recover_runs(lib, eid) == []


def test_new_run_refuses_a_folder_it_does_not_know(entry):
    lib, eid, img = entry
    _give_image(lib, eid, img)
    stray = lib.entry_dir(eid) / L.RUNS_DIR / L.run_dir_name(1)
    stray.mkdir(parents=True)
    (stray / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(wf.TrainError, match="move it away"):
        wf.new_run(lib, eid, _params(lib, eid))
    assert lib.runs(eid, kind="train") == []


def test_measured_speed_is_per_device(entry):
    lib, eid, img = entry
    _give_image(lib, eid, img)
    run = wf.new_run(lib, eid, _params(lib, eid, iters=2))
    res = run_inline(wf.job, wf.job_params(run))
    wf.finish(lib, eid, run, Finished(DONE, result=res))
    assert wf.measured_speed(lib, "tiny", cuda=False) == pytest.approx(res["s_per_iter"])
    assert wf.measured_speed(lib, "tiny", cuda=True) is None
    assert json.loads((run.out / "run.json").read_text())["device"] == "cpu"
    assert os.path.exists(run.out / wf.CURVES)


def test_sample_slices_kept_in_the_run_folder_and_read_with_care(tmp_path):
    """The recorder keeps the latest sample slices; a damaged or foreign file reads as none."""
    import io
    import zipfile

    class Ctx:
        cancelled = False

        def report(self, *a, **k):
            pass

    run = wf.Run(id=1, entry_id=1, number=1, out=tmp_path, params={}, status="done", iteration=2, total=10)
    rec = wf._Recorder(Ctx(), tmp_path)
    a = np.arange(64 * 48, dtype=np.uint8).reshape(64, 48)
    rec.report(1, 10, "iteration 1/10", images={"slice_x": a, "slice_y": a.T, "slice_z": a})
    rec.report(2, 10, "iteration 2/10", images={"slice_x": a[::-1], "slice_y": a.T, "slice_z": a})
    got = wf.sample_slices(run)
    assert sorted(got) == ["slice_x", "slice_y", "slice_z"] and np.array_equal(got["slice_x"], a[::-1])
    path = tmp_path / wf.SAMPLES
    path.write_bytes(b"not a zip")
    assert wf.sample_slices(run) == {}
    # an object array (would need pickle to load) and a member over the size limit are refused
    buf = io.BytesIO()
    np.savez(buf, slice_x=np.array([object()], dtype=object))
    path.write_bytes(buf.getvalue())
    assert wf.sample_slices(run) == {}
    buf = io.BytesIO()
    np.savez_compressed(buf, slice_x=np.zeros((4097, 4097), np.uint8))  # 16.8 MB unpacked, 17 kB here
    path.write_bytes(buf.getvalue())
    assert zipfile.ZipFile(path).infolist()[0].file_size > wf._SAMPLE_MAX_BYTES
    assert wf.sample_slices(run) == {}
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary left behind

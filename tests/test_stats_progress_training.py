"""Statistics report their stages and stop when cancelled (nothing saved), and the outlier flag
names an under-trained generator among its likely causes (issue: "Inspect and Segment that respond")."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_workflow_generate_export import curated, gen, publish

from microlib_gui.core.jobs import JobCancelled, JobContext
from microlib_gui.core.library import layout as L
from microlib_gui.core.stats import compare, flag, stage_names, training_cause
from microlib_gui.core.stats.compare import ADVICE
from microlib_gui.core.workflow import stats


def _blobs(shape, seed, thr=0.5):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), 2.0) > thr).astype(np.uint8)


def test_compare_reports_each_stage_in_order():
    seen = []
    compare(_blobs((64, 64), 1), _blobs((24, 24, 24), 2), r_max=8, tau_side=12, device="cpu",
            progress=lambda step, total, msg: seen.append((step, total, msg)))
    names = stage_names("nphase", tortuosity=True)
    starts = [m for _s, _t, m in seen if m in names]
    assert starts == names
    assert [s for s, _t, _m in seen] == sorted(s for s, _t, _m in seen)  # the bar never goes back
    assert seen[-1] == (len(names), len(names), "statistics done")


def test_the_tortuosity_solve_reports_its_iterations(monkeypatch):
    from microlib_gui.core.stats import transport

    monkeypatch.setattr(transport, "SOLVE_CHUNK", 100)
    rng = np.random.default_rng(0)
    vol = (rng.random((16, 16, 16)) > 0.5).astype(np.uint8)  # noise: hundreds of iterations to converge
    iters = []
    chunked = transport.tortuosity(vol, device="cpu", progress=iters.append)
    assert iters and iters == sorted(iters) and iters[0] == 100
    monkeypatch.setattr(transport, "SOLVE_CHUNK", 10 ** 9)
    whole = transport.tortuosity(vol, device="cpu")
    assert chunked["phases"] == whole["phases"]  # the chunks add up to the one solve


def test_undertraining_in_plain_words():
    assert training_cause({"iteration": 300, "preset": "microlib", "preset_iters": 5000}) == (
        "the generator was trained for 300 of the microlib preset's 5000 iterations: train longer")
    tiny = training_cause({"iteration": 2, "preset": "tiny", "preset_iters": 100, "full_iters": 5000})
    assert "tiny preset" in tiny and "microlib preset (5000 iterations)" in tiny
    assert "check preset" in training_cause({"iteration": 300, "preset": "check", "preset_iters": 300})
    assert training_cause({"iteration": 4000, "preset": "microlib", "preset_iters": 5000}) is None
    assert training_cause({"iteration": 1200, "preset": "microlib", "preset_iters": 5000, "converged": True}) is None
    assert training_cause(None) is None


def test_flagged_result_names_undertraining_first_and_only_when_flagged():
    img, vol = _blobs((96, 96), 1), _blobs((24, 24, 24), 2, thr=0.47)  # more phase 1 in 3D: flagged
    short = {"iteration": 300, "preset": "microlib", "preset_iters": 5000}
    res = compare(img, vol, r_max=8, tortuosity=False, device="cpu", training=short)
    assert res["flag"]["flagged"]
    assert res["flag"]["likely_causes"][0].startswith("the generator was trained for 300 of the microlib")
    full = compare(img, vol, r_max=8, tortuosity=False, device="cpu",
                   training={"iteration": 5000, "preset": "microlib", "preset_iters": 5000})
    assert not any("trained" in c for c in full["flag"]["likely_causes"])
    ok = flag({"kind": "grayscale", "errors": {"mean": 0.01, "std": 0.02}}, short)
    assert not ok["flagged"] and ok["likely_causes"] == []
    bad = flag({"kind": "grayscale", "errors": {"mean": 0.2, "std": 0.02}}, short)
    assert bad["flagged"] and "300 of the microlib" in bad["likely_causes"][0]


def test_entry_statistics_know_how_the_generator_was_trained(tmp_path, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)  # the tiny preset, 2 iterations
    gen(lib, eid, size=24)
    info = stats.training_info(lib, eid)
    assert info["iteration"] == 2 and info["preset"] == "tiny" and info["full_iters"] == 5000
    res = stats.compute(lib, eid, r_max=8, tortuosity=False, device="cpu")
    assert res["flag"]["flagged"]  # a two-iteration generator makes noise
    assert "trained with the tiny preset" in res["flag"]["likely_causes"][0]
    # the saved result says so too (what the Stats tab shows after a restart)
    assert "tiny preset" in stats.saved(lib, eid).result["flag"]["likely_causes"][0]


def test_a_cancelled_computation_saves_nothing(tmp_path, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    gen(lib, eid, size=24)
    before = stats.compute(lib, eid, r_max=8, tortuosity=False, device="cpu")
    path = lib.entry_file(eid, L.STATS_JSON.suffix)
    old_bytes, old_prov = path.read_bytes(), lib.provenance(eid)
    cancel = threading.Event()
    seen = []

    def on_progress(ev):
        seen.append(ev.message)
        if ev.message == "surface area":
            cancel.set()  # the user pressed Cancel during this stage

    with pytest.raises(JobCancelled):
        stats.compute(lib, eid, ctx=JobContext(on_progress, cancel), r_max=8, tortuosity=False, device="cpu")
    assert "two-point correlation (2D image)" not in seen  # stopped at the next stage
    assert stats.SAVING not in seen
    assert path.read_bytes() == old_bytes and lib.provenance(eid) == old_prov
    assert stats.saved(lib, eid).result["volume3d"] == before["volume3d"]


def test_cli_prints_the_stages_on_stderr_and_keeps_json_quiet(tmp_path, capsys):
    import json

    import tifffile
    from PIL import Image

    from microlib_gui.cli import main

    Image.fromarray(_blobs((64, 64), 1) * 255).save(tmp_path / "img.png")
    tifffile.imwrite(tmp_path / "vol.tif", _blobs((16, 16, 16), 2) * 255)
    args = ["stats", str(tmp_path / "img.png"), str(tmp_path / "vol.tif"), "--r-max", "6", "--no-tortuosity",
            "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    names = stage_names("nphase", tortuosity=False)
    assert err == [f"[{i}/{len(names)}] {n}" for i, n in enumerate(names)] + [f"[{len(names)}/{len(names)}] "
                                                                              "statistics done"]
    assert main(args + ["--json"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and json.loads(out.out)["kind"] == "nphase"


def test_a_run_stopped_by_its_convergence_check_is_not_called_short(tmp_path, one_torch_thread):
    """A plateau stop keeps the best check's generator, from an earlier iteration than the run
    reached: the flag must judge the iterations trained, and know the run stopped on its check."""
    from microlib_gui.core.workflow import train

    lib, eid = curated(tmp_path / "lib", tmp_path)
    params = train.run_params(train.inputs(lib, eid), preset="tiny", iters=60, seed=0, converge=True,
                              converge_every=2, converge_min_iters=2, converge_plateau=2, converge_tol=1e-9)
    run = train.train_inline(lib, eid, params)
    gen(lib, eid, size=24)
    info = stats.training_info(lib, eid)
    assert info["converged"] is True  # stopped by the check (on a plateau: the tolerance is unreachable)
    assert info["iteration"] == run.iteration < 60, (info, run.iteration)
    assert info["layers"] == "transpose"  # the tiny preset's published layers (no "trained_layers" in its meta)
    assert training_cause({**info, "preset": "microlib", "preset_iters": 5000}) is None


def test_a_draft_generator_is_named_among_the_causes():
    cause = training_cause({"iteration": 3000, "preset": "draft", "preset_iters": 3000, "full_iters": 5000})
    assert cause.startswith("a draft generator") and "microlib preset on a GPU" in cause


def test_a_volume_fraction_flag_offers_matching_with_its_measured_effect():
    from microlib_gui.core.report import flag_text

    img, vol = _blobs((96, 96), 1), _blobs((24, 24, 24), 2, thr=0.47)  # more phase 1 in 3D
    res = compare(img, vol, r_max=8, tortuosity=False, device="cpu")
    assert any("volume fraction" in r for r in res["flag"]["reasons"])
    advice = res["flag"]["advice"]
    assert len(advice) == 2 and "--match-vf" in advice[0] and "another seed" in advice[1]
    assert "To try: put the phase fractions on target" in flag_text(res)
    assert "To try: generate a second volume with another seed" in flag_text(res)
    # a flag on the surface area alone: matching the fractions is no remedy, so not offered
    sa_only = {**res, "errors": {**res["errors"], "volume_fraction": [0.0, 0.0]}}
    fl = flag(sa_only)
    assert fl["flagged"] and fl["advice"] == [ADVICE["another_volume"]]
    # a MicroLib-network generator with the transposed layers: resize layers offered, with their effect
    old = {"iteration": 3000, "preset": "microlib", "preset_iters": 5000, "converged": True, "layers": "transpose"}
    assert flag(sa_only, old)["advice"] == [ADVICE["another_volume"], ADVICE["resize_layers"]]
    assert "--g-layers resize" in ADVICE["resize_layers"] and "3.2 %" in ADVICE["resize_layers"]
    assert flag(sa_only, {**old, "layers": "resize"})["advice"] == [ADVICE["another_volume"]]
    # nothing flagged: no advice
    fine = {**sa_only, "errors": {**sa_only["errors"], "surface_area": 0.0, "two_point": [0.0, 0.0]}}
    assert not flag(fine, old)["flagged"] and flag(fine, old)["advice"] == []

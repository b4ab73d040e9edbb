"""Stopping SliceGAN training when the statistics have converged (issue 22).

The check's torch metrics are core.stats' numpy ones; a ``check``-preset run on the thresholded
Gaussian field of test_training_quality stops once its checks are within a loose tolerance and saves
the best check's generator; with the check off it runs to its cap; a broken trainer (critic never
updated) never meets the tolerance and runs to its cap too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_training_quality import BROKEN, field_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Checks every 25 iterations with a loose target: vf and surface area within 80 %, 2PC within 0.12.
#: On the field image the check preset starts at 170 % surface-area error (iteration 25) and meets
#: this from 50 on (seed 0, one thread: 74, 58, 71 % at 50, 75, 100), so with three checks in a row
#: it stops at 100, and the best check from the minimum (75) on is 75, not the last; within 13 % by
#: 150. The broken trainer (critic never updated) stays at vf 72-74 %, surface area 265-299 %, 2PC
#: 0.43 through 150 iterations (2026-12-01, development machine).
LOOSE = {"converge_every": 25, "converge_min_iters": 75, "converge_patience": 3, "converge_tol": 0.8,
         "converge_s2_tol": 0.12}
CAP = 300


def _labels(shape, n_phases, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    return np.digitize(f, np.quantile(f, np.linspace(0, 1, n_phases + 1)[1:-1])).astype(np.uint8), f


@pytest.mark.parametrize("shape", [(30, 26), (20, 24, 22)])
def test_torch_metrics_are_core_stats_metrics(shape):
    import torch

    from microlib_gui.core.slicegan import convergence as C
    from microlib_gui.core.stats import metrics as M

    lab, f = _labels(shape, 3)
    t = torch.from_numpy(lab)
    assert np.allclose(C.volume_fractions(t, 3).numpy(), M.volume_fraction(lab, 3), rtol=0, atol=1e-6)
    total, axes = C.surface_area(t)
    sa = M.surface_area(lab)
    assert abs(total.item() - sa["total"]) < 1e-6 and np.allclose(axes.numpy(), sa["axes"], rtol=0, atol=1e-6)
    s2 = M.two_point_correlation(lab, r_max=9, n_phases=3)["s2"]
    for k in range(3):
        assert np.allclose(C.two_point(t == k, 9).numpy(), s2[k], rtol=0, atol=1e-6)
    g = ((f - f.min()) / (f.max() - f.min())).astype(np.float32)
    assert np.allclose(C.two_point(torch.from_numpy(g), 9).numpy(), M.intensity_two_point(g, r_max=9)["s2"],
                       rtol=0, atol=1e-6)


def test_sections_pool_the_2d_statistics_of_each_slice():
    import torch

    from microlib_gui.core.slicegan import convergence as C
    from microlib_gui.core.stats import metrics as M

    lab, _ = _labels((18, 20, 22), 2, seed=3)
    for axis in range(3):
        stack = C._sections(torch.from_numpy(lab), axis)
        slices = [np.moveaxis(lab, axis, 0)[i] for i in range(lab.shape[axis])]
        mean_s2 = np.mean([M.two_point_correlation(s, r_max=7, n_phases=2)["s2"][1] for s in slices], 0)
        assert np.allclose(C.two_point(stack == 1, 7, batch_dims=1).numpy(), mean_s2, rtol=0, atol=1e-6)
        sa, _ = C.surface_area(stack, (1, 2))
        diffs = sum(M.surface_area(s)["total"] * (2 * s.size - sum(s.shape)) for s in slices)
        assert abs(sa.item() - diffs / sum(2 * s.size - sum(s.shape) for s in slices)) < 1e-6


def test_check_errors_are_compare_errors():
    """Image vs volume as core.stats.compare scores them (r ≤ 20)."""
    import torch

    from microlib_gui.core.slicegan.convergence import Figures
    from microlib_gui.core.stats.compare import compare

    img, _ = _labels((60, 64), 3, seed=1)
    vol, _ = _labels((40, 44, 42), 3, seed=2)
    onehot = lambda a: torch.from_numpy(np.stack([a == k for k in range(3)]).astype(np.float32))  # noqa: E731
    got = Figures([onehot(img)], "nphase").errors(onehot(vol))
    e = compare(img, vol, tortuosity=False, device="cpu", r_max=20)["errors"]
    assert got["vf_error"] == pytest.approx(max(e["volume_fraction"]), abs=1e-6)
    assert got["sa_error"] == pytest.approx(e["surface_area"], abs=1e-6)
    assert got["s2_error"] == pytest.approx(max(e["two_point"]), abs=1e-6)


def _train(folder: Path, iters: int = CAP, **kw) -> dict:
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.train import train

    folder.mkdir(parents=True, exist_ok=True)
    field_image(folder / "field.png")
    events = []
    res = run_inline(train, {"images": [str(folder / "field.png")], "out": str(folder / "run"), "preset": "check",
                             "iters": iters, "device": "cpu", "seed": 0, "log_every": 50, "checkpoint_every": 100,
                             **kw}, on_progress=events.append)
    return {**res, "events": events}


def _check_errors_of_saved_generator(run: Path, volumes: int = 1) -> dict:
    """The check's errors recomputed from the generator file (the check's latents and figures)."""
    import torch

    from microlib_gui.core.slicegan.convergence import CHECK_SEED, Figures
    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.generate import load_model
    from microlib_gui.core.slicegan.presets import get_preset

    G, _ = load_model(run)
    meta = json.loads((run / "slicegan_meta.json").read_text())
    s = get_preset("check").converge_latent
    vols = []
    for i in range(volumes):
        z = torch.randn(1, G.params.nz, s, s, s, generator=torch.Generator().manual_seed(CHECK_SEED + i))
        with torch.no_grad():
            vols.append(G.eval()(z)[0])
    cfg = json.loads((run / "run.json").read_text())
    imgs = load_training_images(cfg["images"], cfg["imtype"], min_side=32)
    return meta, Figures([torch.from_numpy(im.data) for im in imgs], "nphase").errors(vols if volumes > 1 else vols[0])


def test_training_stops_when_converged_and_keeps_the_best_check(tmp_path):
    res = _train(tmp_path, converge=True, **LOOSE)
    at = res["converged_at"]
    assert at is not None and at < CAP and res["iteration"] == at, res["convergence"]
    checks = res["convergence"]
    assert [c["iteration"] for c in checks] == list(range(25, at + 1, 25))
    last = checks[-LOOSE["converge_patience"]:]
    assert all(c["vf_error"] <= 0.8 and c["sa_error"] <= 0.8 and c["s2_error"] <= 0.12 for c in last)
    assert checks[0]["sa_error"] > 0.8  # it did learn: the first check was outside the target
    # the kept generator: the best check from converge_min_iters on
    best = min((c for c in checks if c["iteration"] >= LOOSE["converge_min_iters"]),
               key=lambda c: max(c["vf_error"], c["sa_error"]))
    assert res["best_iteration"] == best["iteration"]
    # progress: check lines with the errors, and the stop
    msgs = [ev.message for ev in res["events"] if "vf_error" in ev.scalars]
    assert len(msgs) == len(checks) and msgs[-1].startswith(f"iteration {at}/{CAP} · vf ")
    assert res["events"][-1].message == f"converged at iteration {at}"
    run = tmp_path / "run"
    state = json.loads((run / "run.json").read_text())
    assert state["convergence"] == checks and state["converged_at"] == at
    assert state["best_iteration"] == best["iteration"] and state["iteration"] == at
    # the saved generator is the best check's: its file scores what that check scored
    meta, errors = _check_errors_of_saved_generator(run)
    assert meta["iteration"] == best["iteration"]
    for key in ("vf_error", "sa_error", "s2_error"):
        assert errors[key] == pytest.approx(best[key], abs=1e-6), (key, errors, best)


def test_errors_of_several_volumes_are_those_of_their_mean_figures():
    import torch

    from microlib_gui.core.slicegan.convergence import Figures

    img, _ = _labels((60, 64), 2, seed=1)
    v1, _ = _labels((40, 40, 40), 2, seed=2)
    v2, _ = _labels((40, 40, 40), 2, seed=5)
    onehot = lambda a: torch.from_numpy(np.stack([a == k for k in range(2)]).astype(np.float32))  # noqa: E731
    fig = Figures([onehot(img)], "nphase")
    one = fig.errors(onehot(v1))
    assert fig.errors([onehot(v1), onehot(v1)]) == pytest.approx(one, abs=1e-9)
    both = fig.errors([onehot(v1), onehot(v2)])
    vf_img = np.array([np.mean(img == k) for k in range(2)])
    vf_mean = np.array([(np.mean(v1 == k) + np.mean(v2 == k)) / 2 for k in range(2)])
    assert both["vf_error"] == pytest.approx(np.max(np.abs(vf_img - vf_mean) / vf_img), abs=1e-6)
    assert both != pytest.approx(one, abs=1e-6)


def test_checks_on_several_volumes(tmp_path):
    """converge_volumes=3: each check scores three fixed latents together; the saved generator's
    three check volumes score what its check recorded, and one volume alone scores otherwise."""
    res = _train(tmp_path, iters=50, converge=True, converge_volumes=3,
                 **{**LOOSE, "converge_tol": 1e-6, "converge_every": 25, "converge_min_iters": 25})
    assert json.loads((tmp_path / "run" / "run.json").read_text())["preset"]["converge_volumes"] == 3
    best = next(c for c in res["convergence"] if c["iteration"] == res["best_iteration"])
    _, errors = _check_errors_of_saved_generator(tmp_path / "run", volumes=3)
    for key in ("vf_error", "sa_error", "s2_error"):
        assert errors[key] == pytest.approx(best[key], abs=1e-6), (key, errors, best)
    _, alone = _check_errors_of_saved_generator(tmp_path / "run", volumes=1)
    assert alone != pytest.approx(errors, abs=1e-6)
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan import SliceGANError
    from microlib_gui.core.slicegan.train import train

    with pytest.raises(SliceGANError, match="check volumes"):
        run_inline(train, {"images": [str(tmp_path / "field.png")], "out": str(tmp_path / "bad"), "preset": "check",
                           "device": "cpu", "converge": True, "converge_volumes": 0})
    # the check volume's latent side is a train() option too (recorded; below 1 refused)
    small = _train(tmp_path / "small", iters=25, converge=True, converge_latent=4,
                   **{**LOOSE, "converge_tol": 1e-6, "converge_every": 25, "converge_min_iters": 25})
    assert json.loads((tmp_path / "small" / "run" / "run.json").read_text())["preset"]["converge_latent"] == 4
    assert small["convergence"] and small["convergence"][0] != pytest.approx(res["convergence"][0], abs=1e-6)
    with pytest.raises(SliceGANError, match="latent side"):
        run_inline(train, {"images": [str(tmp_path / "field.png")], "out": str(tmp_path / "bad2"), "preset": "check",
                           "device": "cpu", "converge": True, "converge_latent": 0})


def test_resume_keeps_the_checks(tmp_path):
    """A run ended at its cap (25, target not met) and continued to 50: the list of checks continues."""
    first = _train(tmp_path, iters=25, converge=True, **{**LOOSE, "converge_tol": 1e-6})
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.train import train

    res = run_inline(train, {"images": [], "out": str(tmp_path / "run"), "iters": 50, "resume": True,
                             "device": "cpu"})
    assert [c["iteration"] for c in first["convergence"]] == [25]
    assert [c["iteration"] for c in res["convergence"]] == [25, 50]
    assert res["convergence"][:1] == first["convergence"] and res["converged_at"] is None
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [c["iteration"] for c in state["convergence"]] == [25, 50]


def test_without_the_check_training_runs_to_its_cap(tmp_path):
    res = _train(tmp_path, iters=20, log_every=10)
    assert res["iteration"] == 20 and res["converged_at"] is None and res["convergence"] == []
    assert res["best_iteration"] == 20
    assert not any("vf_error" in ev.scalars for ev in res["events"])
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["convergence"] == [] and state["converged_at"] is None and state["best_iteration"] == 20


def test_a_broken_trainer_does_not_converge(tmp_path, monkeypatch):
    BROKEN["critic_not_updated"](monkeypatch)
    res = _train(tmp_path, iters=100, converge=True, **LOOSE)
    assert res["iteration"] == 100 and res["converged_at"] is None, res["convergence"]
    assert len(res["convergence"]) == 4


def test_cli_prints_the_checks(tmp_path, capsys):
    from microlib_gui.cli import main

    field_image(tmp_path / "field.png")
    assert main(["train", str(tmp_path / "field.png"), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--iters", "6", "--log-every", "3", "--device", "cpu", "--converge"]) == 0
    out = capsys.readouterr()
    assert "iteration 6/6 · vf " in out.err and "% · surface area " in out.err
    assert "not converged within 6 iterations (best at 6): vf " in out.out
    assert main(["train", str(tmp_path / "field.png"), "--out", str(tmp_path / "run2"), "--preset", "tiny",
                 "--iters", "3", "--device", "cpu", "--no-converge"]) == 0
    out = capsys.readouterr()
    assert " · vf " not in out.err and "converged" not in out.out


def _inpainted_entry(root: Path):
    """A library with one entry ready to train (a demo two-phase micrograph, its bar removed)."""
    from microlib_gui.core.demo import CATALOG, render_micrograph
    from microlib_gui.core.images import save_png
    from microlib_gui.core.library import Library
    from microlib_gui.core.workflow import inpaint as wf_inpaint

    lib = Library(root)
    raw, _, _ = render_micrograph(CATALOG[0])
    save_png(root.parent / "micrograph.png", raw)
    e = lib.add_entry(root.parent / "micrograph.png", source="local")
    lib.set_annotations(e.id, {"data_type": "twophase", "thresholds": [float(np.median(raw))]})
    wf_inpaint.save_without_bar(lib, e.id)
    return lib, e.id


def test_entry_train_records_the_checks_in_the_run(tmp_path, capsys):
    from microlib_gui.cli import main
    from microlib_gui.core.slicegan.train import read_run
    from microlib_gui.core.workflow import train as wf

    lib, eid = _inpainted_entry(tmp_path / "lib")
    assert main(["--library", str(lib.root), "entry", "train", str(eid), "--preset", "tiny", "--iters", "4",
                 "--device", "cpu", "--converge", "--quiet"]) == 0
    assert "not converged within 4 iterations (best at 4): vf " in capsys.readouterr().out
    run = wf.runs(lib, eid)[-1]
    assert run.params["converge"] is True and run.status == "done"
    checks = [(it, sc) for it, sc in wf.curves_of(run.out) if "vf_error" in sc]
    state = read_run(run.out)
    assert [it for it, _ in checks] == [c["iteration"] for c in state["convergence"]] == [4]
    assert checks[0][1]["sa_error"] == pytest.approx(state["convergence"][0]["sa_error"])
    assert state["best_iteration"] == 4 and state["converged_at"] is None
    assert wf.generator_info(lib, eid)["text"] == "run 1, 4 iterations"
    # a target met at once (workflow, as the Train step runs it): done before its total, and said so
    params = wf.run_params(wf.inputs(lib, eid), preset="tiny", iters=8, device="cpu", converge=True,
                           converge_every=2, converge_min_iters=2, converge_patience=1, converge_tol=50.0,
                           converge_s2_tol=1.0)
    run = wf.train_inline(lib, eid, params, resume_matching=False)
    assert run.status == "done" and run.iteration == 2 and run.number == 2
    assert read_run(run.out)["converged_at"] == 2 and "converged at iteration 2" in wf.log_text(run)
    info = wf.generator_info(lib, eid)
    assert info["text"] == "run 2, converged at iteration 2" and not info["partial"]


def test_anisotropic_checks_compare_each_image_with_its_sections():
    """Three images: image k against the volume's sections perpendicular to axis k, the worst axis."""
    import torch

    from microlib_gui.core.slicegan.convergence import Figures
    from microlib_gui.core.stats import metrics as M

    imgs = [_labels((40, 44), 2, seed=s)[0] for s in (4, 5, 6)]
    vol, _ = _labels((30, 32, 34), 2, seed=7)
    onehot = lambda a: torch.from_numpy(np.stack([a == k for k in range(2)]).astype(np.float32))  # noqa: E731
    figures = Figures([onehot(im) for im in imgs], "nphase")
    got, per_axis = figures.errors(onehot(vol)), figures.axis_errors(onehot(vol))
    want = {"vf_error": 0.0, "sa_error": 0.0, "s2_error": 0.0}
    for axis, im in enumerate(imgs):
        sections = [np.moveaxis(vol, axis, 0)[i] for i in range(vol.shape[axis])]
        vf_i, vf_v = M.volume_fraction(im, 2), M.volume_fraction(vol, 2)
        pairs = [2 * s.size - sum(s.shape) for s in sections]
        sa_v = sum(M.surface_area(s)["total"] * n for s, n in zip(sections, pairs)) / sum(pairs)
        sa_i = M.surface_area(im)["total"]
        s2_v = [np.mean([M.two_point_correlation(s, r_max=20, n_phases=2)["s2"][k] for s in sections], 0)
                for k in range(2)]
        s2_i = M.two_point_correlation(im, r_max=20, n_phases=2)["s2"]
        n = min(len(s2_i[0]), len(s2_v[0]))
        errs = {"vf_error": max(abs(a - b) / a for a, b in zip(vf_i, vf_v)), "sa_error": abs(sa_i - sa_v) / sa_i,
                "s2_error": max(np.max(np.abs(np.asarray(s2_i[k][:n]) - s2_v[k][:n])) for k in range(2))}
        for key in want:
            assert per_axis[axis][key] == pytest.approx(errs[key], abs=1e-6), (axis, key)
        want = {k: max(want[k], errs[k]) for k in want}
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


@pytest.mark.parametrize("kind", ["anisotropic", "grayscale"])
def test_checks_run_for_three_images_and_for_grayscale(tmp_path, kind):
    from PIL import Image

    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.train import train

    if kind == "anisotropic":
        paths = []
        for s in range(3):
            field_image(tmp_path / f"field{s}.png", side=64, seed=s)
            paths.append(str(tmp_path / f"field{s}.png"))
    else:
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "grey.png")
        paths = [str(tmp_path / "grey.png")]
    res = run_inline(train, {"images": paths, "out": str(tmp_path / "run"), "preset": "tiny", "iters": 2,
                             "device": "cpu", "converge": True, "converge_every": 1, "converge_min_iters": 0,
                             "converge_tol": 1e-9, "log_every": 1, "checkpoint_every": 2})
    assert [c["iteration"] for c in res["convergence"]] == [1, 2] and res["converged_at"] is None
    assert all(0 <= c[k] < 10 for c in res["convergence"] for k in ("vf_error", "sa_error", "s2_error"))

"""Training on the CPU with the tiny preset: progress, cancel/resume, kill -9/resume, image types, CLI."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import tifffile
import torch

from microlib_gui.cli import main
from microlib_gui.core.jobs import DONE, JobCancelled, ProcessJob, run_inline
from microlib_gui.core.slicegan.presets import get_preset
from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.slicegan.train import CHECKPOINT, read_run

TARGET = "microlib_gui.core.slicegan.train:train_job"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def img(shared_data):
    return str(shared_data / "microlib" / "micro001.png")


def _gen_state(run):
    return torch.load(run / "slicegan_Gen.pt", weights_only=True)


def test_progress_cancel_and_resume_match_uninterrupted(tmp_path, img):
    base = dict(images=[img], preset="tiny", iters=4, device="cpu", seed=3, log_every=1, checkpoint_every=10)
    events = []
    r = run_inline(TARGET, {**base, "out": str(tmp_path / "a")}, on_progress=events.append)
    assert r["iteration"] == 4 and [e.step for e in events] == [1, 2, 3, 4]
    ev = events[-1]
    assert {"critic_loss", "wasserstein", "gradient_penalty"} <= set(ev.scalars)
    assert all(np.isfinite(v) for v in ev.scalars.values())
    assert {k: v.shape for k, v in ev.images.items()} == {k: (32, 32) for k in ("slice_x", "slice_y", "slice_z")}
    assert set(np.unique(ev.images["slice_x"])) <= {0, 255}

    # cancel after iteration 2: a checkpoint is kept there; resume finishes the same run
    cancel = threading.Event()
    with pytest.raises(JobCancelled):
        run_inline(TARGET, {**base, "out": str(tmp_path / "b")},
                   on_progress=lambda e: cancel.set() if e.step >= 2 else None, cancel_event=cancel)
    assert read_run(tmp_path / "b")["iteration"] == 2
    with pytest.raises(SliceGANError, match="--resume"):
        run_inline(TARGET, {**base, "out": str(tmp_path / "b")})
    r2 = run_inline(TARGET, {**base, "out": str(tmp_path / "b"), "resume": True})
    assert r2["iteration"] == 4
    a, b = _gen_state(tmp_path / "a"), _gen_state(tmp_path / "b")
    for k in a:  # the seeded, resumed run is the uninterrupted run
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    # another seed gives another generator
    run_inline(TARGET, {**base, "out": str(tmp_path / "c"), "seed": 4, "iters": 1})
    c = _gen_state(tmp_path / "c")
    assert not torch.equal(c["convs.0.weight"], a["convs.0.weight"])


def test_kill_minus_9_then_resume_and_generate(tmp_path, img, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "run"
    job = ProcessJob(TARGET, {"images": [img], "out": str(run), "preset": "tiny", "iters": 400,
                              "device": "cpu", "seed": 0, "checkpoint_every": 2, "log_every": 1}).start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job.poll()
        if (run / CHECKPOINT).exists() and read_run(run)["iteration"] >= 2:
            break
        assert not job.done, job.finished
        time.sleep(0.2)
    job.kill()  # SIGKILL, mid-iteration
    job.join(30)
    fin = job.wait(30)
    assert fin is not None and fin.state != DONE and "killed" in fin.error
    stopped = read_run(run)["iteration"]
    assert 2 <= stopped < 400
    torch.load(run / CHECKPOINT, weights_only=True)  # the checkpoint on disk is whole

    code = main(["train", img, "--out", str(run), "--preset", "tiny", "--iters", str(stopped + 2), "--resume",
                 "--device", "cpu", "--log-every", "1", "--json"])
    out = capsys.readouterr()
    assert code == 0
    assert json.loads(out.out)["iteration"] == stopped + 2
    # the progress bar shows it continued after the checkpoint rather than from zero
    assert f"{stopped + 1}/{stopped + 2}" in out.err and "1/" not in out.err.split("]")[1][:3]
    assert read_run(run)["iteration"] == stopped + 2

    vol = tmp_path / "vol.tif"
    assert main(["generate", str(run), "--size", "40", "--periodic", "x", "--out", str(vol), "--device", "cpu"]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert main(["generate", str(run), "--size", "48,40,20", "--periodic", "x", "--seed", "2", "--out", str(vol),
                 "--device", "cpu", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    v = tifffile.imread(vol)
    assert v.shape == (48, 40, 20) == tuple(meta["shape"]) and v.dtype == np.uint8 and set(np.unique(v)) <= {0, 1}
    assert meta["phases"] == [0, 255]


def test_grayscale_colour_and_anisotropic(tmp_path, shared_data):
    gray = str(shared_data / "microlib" / "micro016.png")
    r = run_inline(TARGET, dict(images=[gray], out=str(tmp_path / "g"), preset="tiny", iters=1, device="cpu"))
    assert read_run(tmp_path / "g")["imtype"] == "grayscale"
    from microlib_gui.core.slicegan.generate import generate, load_model

    G, meta = load_model(r["out"])
    assert meta["imtype"] == "grayscale" and G.params.nc == 1
    assert generate(G, size=20, device="cpu", as_float=True).dtype == np.float32

    rng = np.random.default_rng(0)
    col = (rng.random((80, 90, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(col).save(tmp_path / "c.png")
    r = run_inline(TARGET, dict(images=[str(tmp_path / "c.png")], out=str(tmp_path / "c"), preset="tiny", iters=1,
                                device="cpu"))
    G, meta = load_model(r["out"])
    assert meta["imtype"] == "colour"
    assert generate(G, size=(20, 21, 22), device="cpu").shape == (20, 21, 22, 3)

    three = [str(shared_data / "microlib" / f"micro{n}.png") for n in ("001", "006", "010")]
    run_inline(TARGET, dict(images=three, out=str(tmp_path / "a"), preset="tiny", iters=1, device="cpu"))
    info = read_run(tmp_path / "a")
    assert info["anisotropic"] and info["imtype"] == "nphase"
    ck = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=True)
    assert len(ck["D"]) == 3


def test_cli_bad_input(tmp_path, img, capsys):
    assert main(["train", img, img, "--out", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "one image" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.png"), "--out", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", img, "--out", str(tmp_path / "r"), "--preset", "tiny", "--type", "colour"]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "--size", "32", "--out", str(tmp_path / "v.tif")]) == 2
    err = capsys.readouterr().err
    assert "no generator" in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "z.npy", np.zeros((2, 3)))
    assert main(["generate", str(tmp_path / "x_Gen.pt"), "--latent", str(tmp_path / "z.npy"),
                 "--out", str(tmp_path / "v.tif")]) == 2


def test_moving_average_generator_saved_and_resumed(tmp_path, img):
    base = dict(images=[img], preset="tiny", iters=4, device="cpu", seed=5, log_every=2, checkpoint_every=10,
                ema=0.9)
    run_inline(TARGET, {**base, "out": str(tmp_path / "a")})
    ck = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=True)
    saved = _gen_state(tmp_path / "a")
    # the saved generator is the average, not the last weights
    assert torch.equal(saved["convs.1.weight"], ck["G_ema"]["convs.1.weight"])
    assert not torch.allclose(saved["convs.1.weight"], ck["G"]["convs.1.weight"])
    # its batch-norm statistics were re-estimated for the averaged weights
    assert not torch.allclose(saved["bns.0.running_mean"], ck["G"]["bns.0.running_mean"])
    assert all(torch.isfinite(v.float()).all() for v in saved.values())
    # stop at 2 and resume: the same average as the uninterrupted run
    cancel = threading.Event()
    with pytest.raises(JobCancelled):
        run_inline(TARGET, {**base, "out": str(tmp_path / "b")},
                   on_progress=lambda e: cancel.set() if e.step >= 2 else None, cancel_event=cancel)
    run_inline(TARGET, {**base, "out": str(tmp_path / "b"), "resume": True})
    b = _gen_state(tmp_path / "b")
    for k in saved:
        assert torch.allclose(saved[k].float(), b[k].float(), atol=1e-6), k
    with pytest.raises(SliceGANError, match="--ema"):
        run_inline(TARGET, {**base, "out": str(tmp_path / "c"), "ema": 1.0})


def test_shared_critic_called_once_for_three_axes_gives_the_same_step(shared_data):
    # The generator step batches the three axes' slices into one call of the shared critic;
    # that must give the same update as three calls (the published order).
    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.presets import get_preset
    from microlib_gui.core.slicegan.train import Trainer

    imgs = load_training_images([str(shared_data / "microlib" / "micro001.png")], "auto", min_side=32)
    weights = []
    for three_calls in (False, True):
        torch.manual_seed(0)
        t = Trainer(get_preset("tiny"), imgs, torch.device("cpu"))
        before = t.G.convs[0].weight.detach().clone()
        if three_calls:  # the per-axis path, with the one critic in all three places
            t.anisotropic = True
            t.Ds = [t.Ds[0]] * 3
        t._generator_step()
        weights.append([p.detach().clone() for p in t.G.parameters()])
    for a, b in zip(*weights):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(weights[0][0], before)  # the step did move the generator


def test_joint_critic_axes_option(tmp_path, img):
    base = dict(images=[img], preset="tiny", iters=2, device="cpu", seed=1, log_every=1, checkpoint_every=10)
    events = []
    run_inline(TARGET, {**base, "out": str(tmp_path / "j"), "critic_axes": "joint"}, on_progress=events.append)
    assert all(np.isfinite(v) for e in events for v in e.scalars.values())
    assert read_run(tmp_path / "j")["preset"]["critic_axes"] == "joint"
    run_inline(TARGET, {**base, "out": str(tmp_path / "s")})
    assert read_run(tmp_path / "s")["preset"]["critic_axes"] == "sequential"
    # one update per critic step instead of three: another generator
    assert not torch.allclose(_gen_state(tmp_path / "j")["convs.0.weight"],
                              _gen_state(tmp_path / "s")["convs.0.weight"])
    with pytest.raises(SliceGANError, match="critic-axes"):
        run_inline(TARGET, {**base, "out": str(tmp_path / "x"), "critic_axes": "both"})


def test_critic_steps_and_learning_rate_options(tmp_path, img):
    """The variants bench/quality_study.py measures: recorded in run.json, and they change training."""
    base = dict(images=[img], preset="tiny", iters=2, device="cpu", seed=1, log_every=1, checkpoint_every=10)
    run_inline(TARGET, {**base, "out": str(tmp_path / "v"), "critic_iters": 1, "lr": 3e-4})
    stored = read_run(tmp_path / "v")["preset"]
    assert (stored["critic_iters"], stored["lr"]) == (1, 3e-4)
    run_inline(TARGET, {**base, "out": str(tmp_path / "d")})
    assert not torch.allclose(_gen_state(tmp_path / "v")["convs.0.weight"],
                              _gen_state(tmp_path / "d")["convs.0.weight"])
    for bad in ({"critic_iters": 0}, {"lr": 0.0}):
        with pytest.raises(SliceGANError, match="critic steps"):
            run_inline(TARGET, {**base, "out": str(tmp_path / "x"), **bad})


@pytest.mark.parametrize("channels_last", [False, True])
def test_critic_linear_head_equals_the_convolution(channels_last):
    # MicroLib's last critic layer (4×4 kernel on a 4×4 input) as a matrix product: the same
    # scores, input gradient (adjoint chain) and weight gradients as the published convolution.
    import copy

    from microlib_gui.core.slicegan.nets import Critic

    torch.manual_seed(3)
    ref = Critic(get_preset("microlib").net_params(2)).double()
    ref.linear_head = False
    dot = copy.deepcopy(ref)
    dot.linear_head = True
    x = torch.rand(3, 2, 64, 64, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for D in (ref, dot):
            D.to(memory_format=torch.channels_last)
    assert dot._dot_head((4, 4)) and not ref._dot_head((4, 4))
    res = []
    for D in (ref, dot):
        score, hidden = D.forward_hidden(x)
        g = D.input_gradient([h > 0 for h in hidden], x.shape[-2:], torch.full_like(score, 0.5))
        loss = (score ** 2).sum() + (g ** 2).sum()
        res.append((score, g, torch.autograd.grad(loss, list(D.parameters()))))
    (s0, g0, w0), (s1, g1, w1) = res
    assert s1.shape == s0.shape == (3, 1, 1, 1)
    assert torch.allclose(s1, s0, rtol=1e-12, atol=1e-14)
    assert g1.shape == g0.shape and torch.allclose(g1, g0, rtol=1e-12, atol=1e-14)
    for a, b in zip(w1, w0):
        assert b.abs().max() > 0 and torch.allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("option", ["linear_head", "subpixel", "s2d"])
def test_trainer_options_with_the_same_arithmetic_train_alike(shared_data, option):
    # whole iterations (critic steps and a generator step) with the critic's last layer as a
    # matrix product, the generator's layers as sub-pixel convolutions or the critic's first
    # layer on space-to-depth input (the CUDA defaults), against the published layers
    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.train import Trainer

    imgs = load_training_images([str(shared_data / "microlib" / "micro001.png")], "auto", min_side=32)
    nets = []
    for on in (False, True):
        torch.manual_seed(0)
        t = Trainer(get_preset("tiny"), imgs, torch.device("cpu"), **{option: on})
        # the option is really in use (the tiny critic's last layer sees 4×4 too)
        assert {"linear_head": t.Ds[0]._dot_head((4, 4)), "subpixel": t.G.subpixel,
                "s2d": t.Ds[0].s2d_input}[option] is on

        def flat():
            return torch.cat([p.detach().double().flatten() for p in [*t.Ds[0].parameters(), *t.G.parameters()]])

        start = flat()
        t.step()
        t.step()
        nets.append((start, flat()))
    (s0, a), (s1, b) = nets
    assert torch.equal(s0, s1)
    # Adam turns float32 rounding in tiny gradients into whole steps, so compare the updates:
    # they must agree to a few per cent (a wrong gradient gives a different direction)
    assert (a - b).norm() < 0.03 * (a - s0).norm()


def test_adjoint_gradient_penalty_equals_double_backpropagation():
    # The penalty's input gradient from the ReLU masks (first-order autograd only) must give the
    # same penalty and the same weight gradients as the published double backpropagation.
    from microlib_gui.core.slicegan.nets import Critic
    from microlib_gui.core.slicegan.presets import get_preset

    torch.manual_seed(0)
    D = Critic(get_preset("microlib").net_params(2)).double()
    x = torch.rand(4, 2, 64, 64, dtype=torch.float64)

    xr = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(D(xr).sum(), xr, create_graph=True)
    gp_ref = ((g_ref.flatten(1).norm(dim=1) - 1) ** 2).mean()
    w_ref = torch.autograd.grad(gp_ref, list(D.parameters()))

    score, hidden = D.forward_hidden(x)
    g = D.input_gradient([h > 0 for h in hidden], x.shape[-2:], torch.ones_like(score))
    gp = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    w = torch.autograd.grad(gp, list(D.parameters()))
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    assert abs(gp.item() - gp_ref.item()) < 1e-10 * max(1.0, gp_ref.item())
    for a, b in zip(w, w_ref):
        assert b.abs().max() > 0 and torch.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("critic_axes,s2d", [("sequential", False), ("joint", False), ("sequential", True)])
def test_adjoint_penalty_trains_like_the_published_one(shared_data, critic_axes, s2d):
    # whole critic steps with either penalty, from the same seed: the same weights up to rounding
    from dataclasses import replace

    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.presets import get_preset
    from microlib_gui.core.slicegan.train import Trainer

    imgs = load_training_images([str(shared_data / "microlib" / "micro001.png")], "auto", min_side=32)
    preset = replace(get_preset("tiny"), critic_axes=critic_axes)
    runs = []
    for gp in ("adjoint", "autograd"):
        torch.manual_seed(0)
        t = Trainer(preset, imgs, torch.device("cpu"), gp=gp, s2d=s2d)
        assert t.Ds[0].s2d_input is s2d
        start = [p.detach().clone() for p in t.Ds[0].parameters()]
        stats = [t._critic_step(fake) for fake in t._critic_fakes()[:3]]
        runs.append(([p.detach().clone() for p in t.Ds[0].parameters()], torch.stack(stats)))
    (wa, sa), (wb, sb) = runs
    assert torch.allclose(sa, sb, rtol=1e-4, atol=1e-5)
    assert sa[:, 2].abs().max() > 0  # the penalty is not zero
    for a, b, s in zip(wa, wb, start):
        assert not torch.equal(a, s)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_dihedral_patches_are_symmetries_of_the_same_crops(shared_data):
    from microlib_gui.core.slicegan.data import PatchSampler, load_training_images

    img = load_training_images([str(shared_data / "microlib" / "micro006.png")], "auto", min_side=32)[0]
    s = PatchSampler(img, 32, torch.device("cpu"))
    plain = s.sample(64, torch.Generator().manual_seed(5))
    aug = s.sample(64, torch.Generator().manual_seed(5), dihedral=True)  # same offsets, drawn first
    used = set()
    for p, a in zip(plain, aug):
        syms = [p, p.flip(1), p.flip(2), p.flip(1).flip(2)]
        syms += [x.transpose(1, 2) for x in syms]
        hits = [k for k, x in enumerate(syms) if torch.equal(x, a)]
        assert hits, "an augmented patch is not a symmetry of its crop"
        used.add(hits[0])
    assert len(used) >= 5  # many of the 8 symmetries occur


def test_cli_augment_recorded_and_changes_training(tmp_path, img):
    args = ["--preset", "tiny", "--iters", "2", "--device", "cpu", "--seed", "2"]
    assert main(["train", img, "--out", str(tmp_path / "a"), "--augment", *args]) == 0
    assert main(["train", img, "--out", str(tmp_path / "p"), *args]) == 0
    assert main(["train", img, "--out", str(tmp_path / "n"), "--no-augment", *args]) == 0
    assert read_run(tmp_path / "a")["preset"]["augment"] is True
    assert read_run(tmp_path / "p")["preset"]["augment"] is False  # the tiny preset's default
    assert read_run(tmp_path / "n")["preset"]["augment"] is False
    assert get_preset("microlib").augment  # MicroLib's network: on by default (docs/slicegan.md)
    # the critic saw other (flipped/transposed) patches: another generator
    assert not torch.allclose(_gen_state(tmp_path / "a")["convs.0.weight"],
                              _gen_state(tmp_path / "p")["convs.0.weight"])

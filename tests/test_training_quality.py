"""Training quality in CI: a small preset learns a simple two-phase structure on the CPU, and a
broken trainer fails the same check.

The image is made here: a thresholded Gaussian random field (white noise blurred with σ = 2 px,
256 px, phase 1 the top 35 %). A 2D section of the 3D field thresholded the same way has the same
statistics, so an isotropic volume matching the image exists, and its features (about 5 px across)
fit the 32 px field of view of the ``check`` preset (the tiny network at 10x the learning rate, two
critic steps per generator step, weights' moving average 0.99). The test trains it for 300
iterations (one torch thread), generates a 128³ volume from the saved generator, and compares it
with the image (:func:`microlib_gui.core.stats.compare`): relative volume-fraction and surface-area
errors, and the largest absolute difference of the two-point correlation curves (r ≤ 20 px).

Bounds (measured with this recipe 2026-12-01, one thread per run; the table is in
docs/slicegan.md, "Quality check in CI"). Good trainer: seeds 0-9 on a 16-core CPU at 250-400
iterations, volume fraction 0.1-5.0 %, surface area 0.4-11.5 %, two-point correlation
0.011-0.029; seeds 0-2 on the 2-core development machine at 300: 3.3/6.6/1.2 %, 10.8/2.9/12.2 %,
0.013/0.032/0.012. Broken trainers after 300 iterations (both machines): every critic's slices
perpendicular to x (``AXES`` wrong): volume fraction 2 % but surface area 189 % and two-point
correlation 0.19; the critic never updated: volume fraction 67 %, surface area 260 %; the
critic's loss sign flipped: one phase everywhere (volume fraction 186 %, surface area 100 %).
The bounds sit 1.5-2x above the worst good run and several times below every broken one:

    volume fraction ≤ 10 %, surface area ≤ 20 %, two-point correlation ≤ 0.05

(before 300 iterations the good runs had not all settled: at 200, three of seven seeds were still
above 30 % surface-area error).

The test of the test runs the same body with the trainer broken by monkeypatching one thing of it
(nothing in the production code exists for this): ``AXES`` (slices along the wrong axis: the
one-line bug that passes the volume fraction and only the surface area and the two-point
correlation catch) and the critic's update (a step that leaves the critic as initialised).

``python tests/test_training_quality.py --seeds 0,1,2 [--broken wrong_axis]`` prints the errors
of more seeds (how the bounds were measured).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

#: Largest errors a good trainer may have (see the module docstring for the measurements).
BOUNDS = {"volume_fraction": 0.10, "surface_area": 0.20, "two_point": 0.05}
ITERS = 300
VOLUME_SIDE = 128
R_MAX = 20

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def field_image(path: Path, side: int = 256, sigma: float = 2.0, vf: float = 0.35, seed: int = 0) -> np.ndarray:
    """A thresholded Gaussian random field written as a black/white PNG; returns its labels."""
    from PIL import Image
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((side, side)), sigma, mode="wrap")
    lab = (f > np.quantile(f, 1 - vf)).astype(np.uint8)
    Image.fromarray(lab * 255).save(path)
    return lab


def train_and_score(folder: Path, seed: int = 0, iters: int = ITERS) -> dict:
    """Train the ``check`` preset on :func:`field_image`, generate, compare; the errors of phase 1."""
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.generate import generate, load_model
    from microlib_gui.core.slicegan.train import train
    from microlib_gui.core.stats.compare import compare

    folder.mkdir(parents=True, exist_ok=True)
    lab = field_image(folder / "field.png")
    t0 = time.monotonic()
    run_inline(train, {"images": [str(folder / "field.png")], "out": str(folder / "run"), "preset": "check",
                       "iters": iters, "device": "cpu", "seed": seed, "log_every": 100, "checkpoint_every": iters})
    seconds = time.monotonic() - t0
    G, _meta = load_model(folder / "run")
    vol = generate(G, size=VOLUME_SIDE, seed=2, device="cpu")
    c = compare(lab, vol, tortuosity=False, device="cpu", r_max=R_MAX)
    e = c["errors"]
    return {"volume_fraction": e["volume_fraction"][1], "surface_area": e["surface_area"],
            "two_point": e["two_point"][1], "vf2d": c["image2d"]["volume_fraction"][1],
            "vf3d": c["volume3d"]["volume_fraction"][1], "sa2d": c["image2d"]["surface_area"],
            "sa3d": c["volume3d"]["surface_area"], "train_seconds": seconds}


def quality_failures(score: dict) -> list[str]:
    """The bounds a result breaks, as readable lines (empty: the generator passes)."""
    return [f"{k.replace('_', ' ')} error {score[k]:.3f} > {bound}" for k, bound in BOUNDS.items()
            if not score[k] <= bound]


# -- broken trainers (test-only monkeypatches) ---------------------------------------------------
def _slices_along_x_only(monkeypatch):
    """The axis table wrong: the critic sees slices perpendicular to x in place of y and z too."""
    from microlib_gui.core.slicegan import train as T

    monkeypatch.setattr(T, "AXES", (T.AXES[0],) * 3)


def _critic_not_updated(monkeypatch):
    """The critic's update does nothing: the critic stays as initialised."""
    import torch

    from microlib_gui.core.slicegan import train as T

    monkeypatch.setattr(T.Trainer, "_critic_update", lambda self, D, opt, real, fake, fake_gp: torch.zeros(3))


def _critic_loss_sign_flipped(monkeypatch):
    """The critic trained to score generated slices as real and real patches as generated."""
    from microlib_gui.core.slicegan import train as T

    update = T.Trainer._critic_update
    monkeypatch.setattr(T.Trainer, "_critic_update",
                        lambda self, D, opt, real, fake, fake_gp: update(self, D, opt, fake_gp.float(), real, real))


BROKEN = {"wrong_axis": _slices_along_x_only, "critic_not_updated": _critic_not_updated,
          "critic_loss_flipped": _critic_loss_sign_flipped}


# -- the tests ---------------------------------------------------------------------------------------
def test_small_preset_reproduces_a_two_phase_image(tmp_path):
    score = train_and_score(tmp_path)
    assert abs(score["vf2d"] - 0.35) < 1e-3  # the image is what the bounds were measured on
    assert quality_failures(score) == [], score


@pytest.mark.parametrize("broken, fails", [("wrong_axis", "surface area"), ("critic_not_updated", "volume fraction")])
def test_the_quality_check_fails_for_a_broken_trainer(tmp_path, monkeypatch, broken, fails):
    BROKEN[broken](monkeypatch)
    score = train_and_score(tmp_path)
    failures = quality_failures(score)
    assert any(f.startswith(fails) for f in failures), score


def _main(argv=None) -> None:
    import argparse
    import tempfile

    import torch

    ap = argparse.ArgumentParser(description="errors of the quality check for several seeds")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iters", type=int, default=ITERS)
    ap.add_argument("--broken", choices=sorted(BROKEN))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    if a.broken:
        BROKEN[a.broken](mp)
    with tempfile.TemporaryDirectory() as tmp:
        for s in (int(v) for v in a.seeds.split(",")):
            sc = train_and_score(Path(tmp) / f"seed{s}", seed=s, iters=a.iters)
            print(f"seed {s}: vf {100 * sc['volume_fraction']:.1f} %, surface area {100 * sc['surface_area']:.1f} %, "
                  f"2PC {sc['two_point']:.3f}, {sc['train_seconds']:.0f} s training; "
                  f"{'; '.join(quality_failures(sc)) or 'passes'}", flush=True)
    mp.undo()


if __name__ == "__main__":
    _main()

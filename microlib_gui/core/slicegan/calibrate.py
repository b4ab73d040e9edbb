"""Phase fractions on target: per-phase offsets on the generator's logits before the argmax.

An n-phase generator labels each voxel with the phase of its largest logit. Adding an offset
``b_k`` to phase k's logit before the argmax moves only voxels where phases nearly tie, so the
structure stays the generator's while the phase fractions move. :func:`fit_offsets` finds the
offsets that give target fractions on a sample of logits; :func:`calibrate` draws that sample
from the volume that is about to be generated (the same plan: size, seed or latent, periodic
axes), so for volumes up to :data:`SAMPLE_VOXELS` the fitted offsets give the target fractions
on the volume itself (up to the sample's stride).

Two phases: phase 1 wins where ``l1 − l0 > b0 − b1``, so the offset is a quantile of the
logit difference. n phases: phase k wins where ``l_k + b_k > max_{j≠k}(l_j + b_j)``, so each
offset given the others is again a quantile; the fit sweeps the phases until every fraction is
within ``tol`` (raising one offset only takes voxels from the others, which makes the sweeps
settle).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import SliceGANError

#: Voxels of the volume whose logits make the sample (the whole volume up to this many).
SAMPLE_VOXELS = 2 ** 25
#: Logit vectors kept at most (the volume is read with a stride above this).
MAX_SAMPLES = 2 ** 22


def fractions(logits: np.ndarray, offsets=None) -> np.ndarray:
    """Share of each phase in ``argmax(logits + offsets)`` over a (C, N) sample."""
    x = np.asarray(logits, dtype=np.float32)
    if offsets is not None:
        x = x + np.asarray(offsets, dtype=np.float32)[:, None]
    lab = np.argmax(x, axis=0)
    return np.bincount(lab, minlength=x.shape[0])[: x.shape[0]] / lab.size


def _check_target(target, n: int) -> np.ndarray:
    t = np.asarray(target, dtype=np.float64).ravel()
    if t.size != n:
        raise SliceGANError(f"{t.size} target phase fractions for a generator of {n} phases")
    if not np.all(np.isfinite(t)) or t.min() < 0 or t.sum() <= 0:
        raise SliceGANError("target phase fractions must be numbers of at least 0, not all 0")
    return t / t.sum()


def fit_offsets(logits: np.ndarray, target, tol: float = 1e-4, max_sweeps: int = 200) -> np.ndarray:
    """Offsets ``b`` (C,) with ``fractions(logits, b)`` equal to ``target`` (within ``tol``).

    Parameters
    ----------
    logits : ndarray (C, N)
        Logits of N voxels (a generated sample).
    target : sequence of C floats
        Phase fractions to reach (normalised to sum 1); a phase at 0 gets none of the voxels.
    tol : float
        Largest difference of a phase's fraction from its target.

    Returns
    -------
    ndarray (C,) float64, ``b[0] == 0`` (only differences matter).
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise SliceGANError("fitting phase offsets needs logits of at least two phases, shape (C, N)")
    C, N = x.shape
    t = _check_target(target, C)
    b = np.zeros(C)
    for _ in range(max_sweeps):
        for k in range(C):
            others = np.delete(x, k, axis=0) + np.delete(b, k)[:, None]
            d = x[k] - others.max(axis=0)  # phase k wins where d + b_k > 0 (ties go to the others)
            want = int(round(t[k] * N))
            if want <= 0:
                b[k] = -d.max() - 1.0
            elif want >= N:
                b[k] = -d.min() + 1.0
            else:  # the threshold halfway between the want-th and (want+1)-th largest d
                part = np.partition(d, (N - want - 1, N - want))
                b[k] = -0.5 * (part[N - want - 1] + part[N - want])
        if np.max(np.abs(fractions(x, b) - t)) <= tol:
            break
    return b - b[0]


def sample_logits(runner, plan, max_block_voxels: int, sample_voxels: int | None = None,
                  max_samples: int | None = None, progress=None) -> tuple[np.ndarray, int, int]:
    """Logits of the plan's first blocks (the whole volume up to ``sample_voxels``, default
    :data:`SAMPLE_VOXELS`; at most ``max_samples`` vectors, default :data:`MAX_SAMPLES`) as (C, N).

    Returns the sample, the number of volume voxels it was read from and the stride.
    """
    sample_voxels = SAMPLE_VOXELS if sample_voxels is None else int(sample_voxels)
    max_samples = MAX_SAMPLES if max_samples is None else int(max_samples)
    total = min(math.prod(plan.shape), sample_voxels)
    stride = max(1, math.ceil((total / max_samples) ** (1 / 3)))
    parts, seen = [], 0
    boxes = list(plan.blocks(max_block_voxels))
    for i, box in enumerate(boxes):
        x = runner.logits(plan, box)[:, ::stride, ::stride, ::stride]
        parts.append(x.float().reshape(x.shape[0], -1).cpu().numpy())
        seen += math.prod(b - a for a, b in box)
        if progress:
            progress(i + 1, len(boxes))
        if seen >= sample_voxels:
            break
    return np.concatenate(parts, axis=1), seen, stride


def calibrate(G, target, size=None, periodic=(False, False, False), seed: int = 0, latent=None,
              device: str = "auto", max_block_voxels: int | None = None, precision: str = "auto",
              progress=None) -> dict:
    """Fit per-phase logit offsets so the volume of this request has the ``target`` phase fractions.

    The arguments after ``target`` are those of :func:`.generate.generate_to_file`; pass the
    returned ``offsets`` to it. Returns a JSON-ready dict: ``target_vf``, ``offsets``,
    ``raw_vf`` (the sample's fractions without offsets), ``calibrated_vf`` (with them),
    ``sample_voxels`` (volume voxels sampled), ``stride`` and ``whole_volume``.
    """
    from .generate import DEFAULT_BLOCK_VOXELS, Plan, Runner, _device

    if G.imtype != "nphase":
        raise SliceGANError("matching phase fractions needs an n-phase generator (this one is "
                            f"{G.imtype})")
    t = _check_target(target, G.params.nc)
    dev = _device(device)
    plan = Plan(G, size, periodic, seed, latent)
    budget = max_block_voxels or DEFAULT_BLOCK_VOXELS[dev.type]
    run = Runner(G, dev, precision)
    with torch.no_grad():
        logits, seen, stride = sample_logits(run, plan, budget, progress=progress)
    b = fit_offsets(logits, t)
    return {"target_vf": [float(v) for v in t], "offsets": [float(v) for v in b],
            "raw_vf": [float(v) for v in fractions(logits)], "calibrated_vf": [float(v) for v in fractions(logits, b)],
            "sample_voxels": int(seen), "stride": int(stride), "whole_volume": seen >= math.prod(plan.shape)}


def image_fractions(labels: np.ndarray, n_phases: int) -> list[float]:
    """Phase fractions of a label image (phase k = value k) as the target of :func:`calibrate`."""
    lab = np.asarray(labels)
    counts = np.bincount(lab.ravel().astype(np.int64), minlength=n_phases)
    if counts.size > n_phases:
        raise SliceGANError(f"the image has {counts.size} phases, the generator {n_phases}")
    return [float(c) / lab.size for c in counts]


def training_fractions(paths, phases=None) -> list[float]:
    """Phase fractions of the training image(s) as the trainer encodes them (phase k = the k-th
    grey level, or ``phases``: the generator's grey levels); the mean over three images."""
    from .data import load_training_images

    imgs = load_training_images([str(p) for p in paths], "nphase", min_side=1)
    levels = list(imgs[0].phases) if phases is None else [int(v) for v in phases]
    extra = set(imgs[0].phases) - set(levels)
    if extra:
        raise SliceGANError(f"the training image has grey levels {sorted(extra)} that the generator's phases "
                            f"{levels} do not include")
    fr = np.mean([im.data.reshape(im.nc, -1).mean(axis=1) for im in imgs], axis=0)
    by_level = dict(zip(imgs[0].phases, fr))
    return [float(by_level.get(v, 0.0)) for v in levels]


def run_images(gen_path) -> list[str]:
    """The training images named by the ``run.json`` beside a generator (its run folder)."""
    from pathlib import Path

    from .train import read_run

    folder = Path(gen_path).parent
    if not (folder / "run.json").exists():
        raise SliceGANError(f"{Path(gen_path).name} has no run.json beside it to name its training image: "
                            "give --match-vf IMAGE")
    images = read_run(folder).get("images") or []
    missing = [p for p in images if not Path(p).exists()]
    if not images or missing:
        raise SliceGANError(f"the run's training image {missing[0] if missing else '(none recorded)'} is not there: "
                            "give --match-vf IMAGE")
    return list(images)


def describe(cal: dict) -> str:
    """``phase fractions 0.312/0.688 → 0.350/0.650 (training image 0.350/0.650)``."""
    f = lambda v: "/".join(f"{x:.3f}" for x in v)  # noqa: E731
    return f"phase fractions {f(cal['raw_vf'])} → {f(cal['calibrated_vf'])} (training image {f(cal['target_vf'])})"

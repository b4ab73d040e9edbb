"""Compare a 2D training image with a generated 3D volume, as MicroLib validates SliceGAN.

:func:`compare` returns one JSON-ready dict::

    {"kind": "nphase" | "grayscale", "n_phases": int,
     "image2d": {...metrics...}, "volume3d": {...metrics, tortuosity, percolation...},
     "errors": {"volume_fraction": [per phase], "surface_area": float, "two_point": [per phase]},
     "flag": {"flagged": bool, "threshold": 0.05, "reasons": [...], "likely_causes": [...]}}

Errors are relative, ``|x2D - x3D| / x2D`` (MicroLib's percentage error).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ImageError
from .metrics import (DEFAULT_R_MAX, StatsError, check_labels, grayscale_stats, intensity_two_point,
                      surface_area, two_point_correlation, volume_fraction)

#: MicroLib's outlier line: a relative error above 5%.
ERROR_THRESHOLD = 0.05
#: Phases rarer than this in 2D are left out of the flag (a relative error on a few pixels means little).
MIN_FLAG_VF = 0.01
#: More distinct values than this in a "label" image: treat it as grayscale.
MAX_LABEL_PHASES = 16
#: Per-axis surface areas of the 2D image differing by more than this hint at anisotropy.
ANISOTROPY_LIMIT = 0.10

CAUSES = {
    "representativity": "non-representative micrograph: features too large or too few for their "
                        "statistics to be captured (MicroLib tags 1, 372)",
    "anisotropy": "anisotropic microstructure: no isotropic 3D structure has only these 2D sections, "
                  "e.g. ovals without the smaller sections a sphere would show (MicroLib tags 60, 782)",
    "segmentation": "poor segmentation or uneven exposure of the micrograph (MicroLib tag 612)",
    "undertraining": "an under-trained generator: its run stopped far short of its preset's iterations, "
                     "or it was trained with a small test preset",
}
#: What a user can do about a flag, with its measured effect.
ADVICE = {
    "match_vf": "put the phase fractions on target at generation: 'Match the training image's phase "
                "fractions' in Inspect (microlib generate --match-vf); measured on three MicroLib images "
                "it leaves the surface area about unchanged for small corrections and worsens it for large "
                "ones (docs/benchmarks.md, 'Phase fractions on target')",
    "another_volume": "generate a second volume with another seed and compare it too before retraining: on ten "
                      "MicroLib images, three 320³ volumes of one generator differed by up to 8 points in volume "
                      "fraction and 6 in surface area (docs/benchmarks.md, 'Resize layers in the MicroLib network')",
    "resize_layers": "retrain it: the microlib preset now trains resize layers (Train step, microlib entry train, "
                     "microlib train; --g-layers resize): on ten MicroLib images they gave a mean surface-area "
                     "error of 3.2 % against 4.0 % for the transposed layers, vf 3.5 % against 3.0 %, in 112 s "
                     "against 146 s on an H200 "
                     "(docs/benchmarks.md, 'Resize layers in the MicroLib network')",
}
#: A run that stopped below this share of its preset's iterations counts as under-trained.
UNDERTRAINED_SHARE = 0.5
#: Presets meant for tests and quick checks, not for a library entry.
TEST_PRESETS = ("tiny", "check")


def rel_error(a: float, b: float) -> float | None:
    """``|a - b| / a``; None when ``a`` is 0 (undefined)."""
    return None if a == 0 else float(abs(a - b) / abs(a))


def label_metrics(labels: np.ndarray, n_phases: int, r_max: int | None = DEFAULT_R_MAX,
                  device: str = "cpu") -> dict:
    """Volume fraction, surface area (total and per axis) and S2 of each phase."""
    arr = check_labels(labels)
    return _label_dict(arr, volume_fraction(arr, n_phases), surface_area(arr),
                       two_point_correlation(arr, r_max=r_max, n_phases=n_phases, device=device))


def intensity_metrics(intensity: np.ndarray, r_max: int | None = DEFAULT_R_MAX, device: str = "cpu") -> dict:
    """Histogram, mean, std and S2 of a grayscale image or volume in [0, 1]."""
    f = np.asarray(intensity, dtype=np.float32)
    tpc = intensity_two_point(f, r_max=r_max, device=device)
    return {"shape": list(f.shape), **grayscale_stats(f), "r": tpc["r"], "two_point": [tpc["s2"]]}


def _curve_error(a: list | None, b: list | None) -> float | None:
    """Largest absolute difference of two S2 curves over their common distances."""
    if a is None or b is None:
        return None
    n = min(len(a), len(b))
    return float(np.max(np.abs(np.asarray(a[:n]) - np.asarray(b[:n])))) if n else None


def compare(
    image2d: np.ndarray,
    volume3d: np.ndarray,
    kind: str = "nphase",
    r_max: int | None = DEFAULT_R_MAX,
    tortuosity: bool = True,
    device: str | None = None,
    tau_side: int | None = -1,
    progress: Callable[[int, int, str], None] | None = None,
    training: dict | None = None,
) -> dict:
    """Metrics of the 2D image and the 3D volume, their errors and the 5% flag.

    Parameters
    ----------
    image2d, volume3d : ndarray
        Labels (``kind="nphase"``) or intensities in [0, 1] (``kind="grayscale"``).
    r_max : int or None
        Largest S2 distance (capped at half the shortest side of each).
    tortuosity : bool
        Also solve tortuosity factors of the volume (TauFactor) and percolation.
    device : str, optional
        ``"cuda"``/``"cpu"``; default: a GPU when torch sees one.
    tau_side : int or None
        Cube side for the tortuosity solve (see :func:`.transport.tortuosity`).
    progress : callable, optional
        ``progress(step, total, message)`` at the start of each stage (see
        :func:`stage_names`; ``step`` counts the stages done) and, during the
        tortuosity solve, every few hundred solver iterations. An exception it
        raises (a cancelled job's) stops the comparison.
    training : dict, optional
        How the volume's generator was trained: ``iteration``, ``preset`` and
        ``preset_iters`` (the preset's full length); a flagged result then names
        under-training among the likely causes (see :func:`training_cause`).
    """
    from .transport import default_device, percolating_fraction
    from .transport import tortuosity as solve_tau

    device = device or default_device()
    img, vol = np.asarray(image2d), np.asarray(volume3d)
    if img.ndim != 2:
        raise StatsError(f"the training image must be 2D, got shape {img.shape}")
    if vol.ndim != 3:
        raise StatsError(f"the generated volume must be 3D, got shape {vol.shape}")
    if kind not in ("nphase", "grayscale"):
        raise StatsError(f"unknown kind {kind!r} (nphase or grayscale)")
    stage = _Stages(stage_names(kind, tortuosity), progress)
    if kind == "grayscale":
        return _compare_gray(img, vol, r_max, device, stage, training)
    img, vol = check_labels(img, "image2d"), check_labels(vol, "volume3d")
    n = max(int(img.max()), int(vol.max())) + 1
    if n < 2:
        raise StatsError("the image and the volume hold a single phase: nothing to compare")
    stage("volume fraction")
    vf = volume_fraction(img, n), volume_fraction(vol, n)
    stage("surface area")
    sa = surface_area(img), surface_area(vol)
    stage("two-point correlation (2D image)")
    t2 = two_point_correlation(img, r_max=r_max, n_phases=n, device=device)
    stage("two-point correlation (3D volume)")
    t3 = two_point_correlation(vol, r_max=r_max, n_phases=n, device=device)
    m2, m3 = (_label_dict(a, v, s, t) for a, v, s, t in ((img, vf[0], sa[0], t2), (vol, vf[1], sa[1], t3)))
    if tortuosity:
        stage("tortuosity")
        m3["tortuosity"] = solve_tau(vol, device=device, max_side=tau_side,
                                     progress=lambda it: stage.within(f"tortuosity ({it} solver iterations)"))
    stage("percolation")
    try:
        m3["percolating_fraction"] = percolating_fraction(vol)
    except StatsError:
        if tortuosity:
            raise
        m3["percolating_fraction"] = []  # TauFactor missing: the 2D-vs-3D comparison still stands
    errors = {
        "volume_fraction": [rel_error(a, b) for a, b in zip(m2["volume_fraction"], m3["volume_fraction"])],
        "surface_area": rel_error(m2["surface_area"], m3["surface_area"]),
        "two_point": [_curve_error(a, b) for a, b in zip(m2["two_point"], m3["two_point"])],
    }
    result = {"kind": "nphase", "n_phases": n, "image2d": m2, "volume3d": m3, "errors": errors}
    result["headline_phase"] = headline_phase(m2["volume_fraction"])
    result["flag"] = flag(result, training)
    stage.done()
    return result


def stage_names(kind: str = "nphase", tortuosity: bool = True) -> list[str]:
    """The stages :func:`compare` reports, in order."""
    if kind == "grayscale":
        return ["intensity statistics (2D image)", "intensity statistics (3D volume)"]
    return (["volume fraction", "surface area", "two-point correlation (2D image)",
             "two-point correlation (3D volume)"] + (["tortuosity"] if tortuosity else []) + ["percolation"])


class _Stages:
    """Calls ``progress(step, total, message)``: at each stage's start, within one, and at the end."""

    def __init__(self, names: list[str], progress):
        self.names, self.progress, self.step = names, progress, -1

    def __call__(self, name: str) -> None:
        self.step += 1
        self.within(name)

    def within(self, message: str) -> None:
        if self.progress is not None:
            self.progress(max(self.step, 0), len(self.names), message)

    def done(self) -> None:
        if self.progress is not None:
            self.progress(len(self.names), len(self.names), "statistics done")


def _label_dict(arr: np.ndarray, vf: list, sa: dict, tpc: dict) -> dict:
    """What :func:`label_metrics` returns, from its parts (computed stage by stage)."""
    return {"shape": list(arr.shape), "volume_fraction": vf, "surface_area": sa["total"],
            "surface_area_axes": sa["axes"], "r": tpc["r"], "two_point": tpc["s2"]}


def _compare_gray(img, vol, r_max, device, stage, training=None) -> dict:
    for name, a in (("image2d", img), ("volume3d", vol)):
        if not np.issubdtype(a.dtype, np.floating) or a.min() < 0 or a.max() > 1:
            raise StatsError(f"{name}: grayscale data must be floats in [0, 1]")
    stage("intensity statistics (2D image)")
    m2 = intensity_metrics(img, r_max, device)
    stage("intensity statistics (3D volume)")
    m3 = intensity_metrics(vol, r_max, device)
    errors = {
        "mean": rel_error(m2["mean"], m3["mean"]),
        "std": rel_error(m2["std"], m3["std"]),
        "two_point": [_curve_error(m2["two_point"][0], m3["two_point"][0])],
    }
    result = {"kind": "grayscale", "n_phases": 0, "image2d": m2, "volume3d": m3, "errors": errors}
    result["flag"] = flag(result, training)
    stage.done()
    return result


def headline_phase(vf2d: list[float]) -> int:
    """The phase plotted in library figures: the rarest phase present in 2D."""
    present = [(v, k) for k, v in enumerate(vf2d) if v > 0]
    return min(present)[1] if present else 0


def training_cause(training: dict | None) -> str | None:
    """Under-training in plain words, or None when the generator's training looks complete.

    Parameters
    ----------
    training : dict or None
        ``iteration`` (trained), ``preset`` (its name), ``preset_iters`` (the
        preset's full length) and, optionally, ``full_preset``/``full_iters``
        (the preset a library entry is trained with, and its length);
        ``converged`` true when the run stopped early because its statistics had
        converged (then stopping short is no cause).

    Returns
    -------
    str or None
        E.g. "the generator was trained for 300 of the microlib preset's 5000
        iterations: train longer".
    """
    if not training:
        return None
    it, preset, total = training.get("iteration"), training.get("preset"), training.get("preset_iters")
    full, full_iters = training.get("full_preset") or "microlib", training.get("full_iters")
    if preset in TEST_PRESETS:
        done = f", for {it} iterations" if it is not None else ""
        target = f" ({full_iters} iterations)" if full_iters else ""
        return (f"the generator was trained with the {preset} preset (a small network for tests and quick "
                f"checks){done}: train it with the {full} preset{target}")
    if preset == "draft":
        return (f"a draft generator (the CPU preset: a smaller network, errors up to about 10 %): "
                f"train it with the {full} preset on a GPU for a library entry")
    if training.get("converged"):
        return None  # stopped early because its statistics had converged: not under-trained
    if it is not None and total and int(it) < UNDERTRAINED_SHARE * int(total):
        return (f"the generator was trained for {int(it)} of the {preset or 'its'} preset's {int(total)} "
                "iterations: train longer")
    return None


def flag(result: dict, training: dict | None = None) -> dict:
    """MicroLib's outlier test: any relative error above 5%, with the likely causes.

    ``training`` (see :func:`training_cause`) puts an under-trained generator first
    among the causes of a flagged result: it is the cause a user can check and fix; its
    ``layers`` ("transpose" or "resize": the generator layers trained) can add advice.
    """
    err, reasons, causes, vf_bad = result["errors"], [], [], []
    pct = lambda e: f"{100 * e:.1f}%"  # noqa: E731
    if result["kind"] == "grayscale":
        for key, label in (("mean", "mean intensity"), ("std", "intensity spread")):
            e = err.get(key)
            if e is not None and e > ERROR_THRESHOLD:
                reasons.append(f"{label} differs by {pct(e)} between 2D and 3D")
        if reasons:
            causes = [CAUSES["segmentation"], CAUSES["representativity"]]
    else:
        vf2d = result["image2d"]["volume_fraction"]
        vf_bad = [(k, e) for k, e in enumerate(err["volume_fraction"])
                  if e is not None and vf2d[k] >= MIN_FLAG_VF and e > ERROR_THRESHOLD]
        for k, e in vf_bad:
            reasons.append(f"phase {k} volume fraction differs by {pct(e)} "
                           f"({vf2d[k]:.3f} in 2D, {result['volume3d']['volume_fraction'][k]:.3f} in 3D)")
        sa = err["surface_area"]
        if sa is not None and sa > ERROR_THRESHOLD:
            reasons.append(f"surface area differs by {pct(sa)} ({result['image2d']['surface_area']:.4f} in 2D, "
                           f"{result['volume3d']['surface_area']:.4f} in 3D)")
        if reasons:
            axes = result["image2d"]["surface_area_axes"]
            aniso = rel_error(max(axes), min(axes)) if max(axes) > 0 else None
            if aniso is not None and aniso > ANISOTROPY_LIMIT:
                causes.append(CAUSES["anisotropy"] + f"; here the 2D surface area differs by {pct(aniso)} "
                              "between the two image axes")
                causes += [CAUSES["representativity"], CAUSES["segmentation"]]
            else:
                causes += [CAUSES["representativity"], CAUSES["anisotropy"], CAUSES["segmentation"]]
            causes += _volume_anisotropy(result["volume3d"].get("surface_area_axes"))
    under = training_cause(training) if reasons else None
    if under:
        causes.insert(0, under)
    advice = [ADVICE["match_vf"]] if result["kind"] != "grayscale" and vf_bad else []
    if reasons:
        advice.append(ADVICE["another_volume"])
        if training and training.get("preset") == "microlib" and training.get("layers") == "transpose":
            advice.append(ADVICE["resize_layers"])
    return {"flagged": bool(reasons), "threshold": ERROR_THRESHOLD, "reasons": reasons, "likely_causes": causes,
            "advice": advice}


def _volume_anisotropy(axes) -> list[str]:
    """A cause when the generated volume's surface area differs between its axes."""
    if not axes or len(axes) != 3 or min(axes) <= 0:
        return []
    hi = int(np.argmax(axes))
    spread = rel_error(min(axes), max(axes))
    if spread is None or spread <= ANISOTROPY_LIMIT:
        return []
    text = (f"the generated volume has {100 * spread:.0f}% more interface along {'xyz'[hi]} than along "
            f"{'xyz'[int(np.argmin(axes))]}")
    if hi == 1:  # measured on the H100 (docs/benchmarks.md, per axis)
        text += ("; SliceGAN shows y as the rows of one family of training slices and the columns of "
                 "another, and y often comes out with extra interface")
    return [text]


# -- files ----------------------------------------------------------------------
def load_pair(image2d: str | os.PathLike, volume3d: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, str]:
    """Load a training image and a volume as labels, or as intensities when grayscale.

    A file with more than :data:`MAX_LABEL_PHASES` distinct values is grayscale.
    Returns ``(image2d, volume3d, kind)``.
    """
    from ..images import load_labels

    img, vol = load_labels(image2d), load_labels(volume3d)
    if img.ndim != 2:
        raise StatsError(f"{Path(image2d).name}: expected a 2D image, got shape {img.shape}")
    if vol.ndim != 3:
        raise StatsError(f"{Path(volume3d).name}: expected a 3D TIFF volume, got shape {vol.shape}")
    gray = max(int(img.max()), int(vol.max())) + 1 > MAX_LABEL_PHASES
    if gray:
        return load_intensity(image2d), load_intensity(volume3d), "grayscale"
    if int(img.max()) != int(vol.max()):
        img, vol = _align_phases(image2d, volume3d, img, vol)
    return img, vol, "nphase"


def _raw_values(path) -> np.ndarray:
    """The stored pixel values of a label file (before any relabelling)."""
    from ..images import MAX_VOLUME_FILE_BYTES, load_image, read_tiff_array, sniff_format
    from ..safefile import open_regular_file

    path = Path(path)
    with open_regular_file(path, MAX_VOLUME_FILE_BYTES, "an image or a volume", ImageError) as fh:
        if sniff_format(fh.read(8)) == "tiff":
            return read_tiff_array(fh, path.name)  # page count and size checked before decoding
    return load_image(path, min_side=1).as_uint8()


def _align_phases(p2, p3, img, vol):
    """One file lacks a phase the other has (a generator that lost a phase): relabel the
    poorer one with the richer one's values, so phase k means the same in both."""
    r2, r3 = _raw_values(p2), _raw_values(p3)
    v2, v3 = np.unique(r2), np.unique(r3)
    if np.isin(v3, v2).all():
        return img, np.searchsorted(v2, r3).astype(np.uint8)
    if np.isin(v2, v3).all():
        return np.searchsorted(v3, r2).astype(np.uint8), vol
    return img, vol


def load_intensity(path: str | os.PathLike) -> np.ndarray:
    """A 2D image or 3D TIFF as float32 intensities in [0, 1]."""
    from ..images import MAX_VOLUME_FILE_BYTES, load_image, read_tiff_array, sniff_format, to_unit_range
    from ..safefile import open_regular_file

    path = Path(path)
    with open_regular_file(path, MAX_VOLUME_FILE_BYTES, "an image or a volume", ImageError) as fh:
        if sniff_format(fh.read(8)) != "tiff":
            arr = None
        else:
            arr = read_tiff_array(fh, path.name)  # page count and size checked before decoding
    if arr is None or arr.ndim == 2:
        return load_image(path, min_side=1).gray()
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return (arr / float(np.iinfo(arr.dtype).max)).astype(np.float32)
    return to_unit_range(arr, path.name)  # any float range (1e38, 1e300) without overflow; NaN refused


def finite_or_none(x):
    """JSON has no infinities: map them (and NaN) to None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x

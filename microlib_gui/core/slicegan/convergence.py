"""Convergence checks during training: the statistics of a small generated volume against the
training image's, on the training device, and the rule that stops a run when they agree.

The figures are those of :mod:`microlib_gui.core.stats` (and :func:`~microlib_gui.core.stats.compare`,
which MicroLib validates generators with), computed in torch on the device the run trains on:

* volume fraction of each phase (share of voxels; the argmax of the generator's output);
* surface-area density: share of face-neighbour pairs in different phases, pooled over the axes;
* two-point correlation S2(r), r = 0..:data:`R_MAX`: zero-padded FFT autocorrelation (no
  wrap-around) over the valid pairs of each displacement, averaged over ``r <= |d| < r + 1``.

Isotropic runs compare the image's 2D figures with the volume's 3D ones, as ``compare`` does.
Anisotropic runs (three images) compare image k with the volume's 2D sections perpendicular to axis
k (the slices its critic sees): volume fraction; surface area over the pairs along the two in-plane
axes; S2 of the stack of sections; the errors are the largest over the three axes.
Grayscale and colour runs (colour averaged over its channels) compare the mean intensity (in place of
the volume fraction), the intensity spread (standard deviation, in place of the surface area) and
the intensity S2, as ``compare`` does for grayscale.

Errors: ``vf_error`` the largest relative volume-fraction error over the phases holding at least
:data:`~microlib_gui.core.stats.compare.MIN_FLAG_VF` of the image, ``sa_error`` the relative
surface-area error, ``s2_error`` the largest absolute difference of the S2 curves over the phases.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

#: Largest S2 distance of a check (pixels): features of MicroLib images are mostly below this.
R_MAX = 20
#: Phases rarer than this in the image are left out of ``vf_error`` (as in the 5 % flag).
MIN_VF = 0.01
#: Seed of the check volume's latent (fixed: checks of one run see the same noise).
CHECK_SEED = 2024


# -- metrics on tensors -------------------------------------------------------------------------
def volume_fractions(labels: torch.Tensor, n_phases: int) -> torch.Tensor:
    """Share of voxels (pixels) of each phase ``0..n_phases-1`` of an integer label tensor."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=n_phases)[:n_phases]
    return counts.double() / labels.numel()


def surface_area(labels: torch.Tensor, axes=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of face-neighbour pairs in different phases: (pooled over ``axes``, per axis).

    ``axes``: the axes whose neighbour pairs count (default all), e.g. the in-plane axes of a stack
    of sections.
    """
    axes = range(labels.dim()) if axes is None else axes
    diffs, pairs = [], []
    for ax in axes:
        n = labels.shape[ax]
        diffs.append((labels.narrow(ax, 1, n - 1) != labels.narrow(ax, 0, n - 1)).sum().double())
        pairs.append(labels.numel() // n * (n - 1))
    d = torch.stack(diffs)
    p = torch.tensor(pairs, dtype=torch.float64, device=labels.device)
    return d.sum() / p.sum(), d / p


def _radial_index(R: int, ndim: int, device) -> torch.Tensor:
    """``floor(|d|)`` of each lag of the full grid (lags 0..R, -R..-1 per axis; R + 1: unused)."""
    lag = torch.cat([torch.arange(0, R + 1), torch.arange(-R, 0)]).double()
    grids = torch.meshgrid(*([lag] * ndim), indexing="ij")
    dist = torch.sqrt(sum(g * g for g in grids))
    return torch.clamp(torch.floor(dist).long(), max=R + 1).reshape(-1).to(device)


def two_point(field: torch.Tensor, R: int = R_MAX, batch_dims: int = 0) -> torch.Tensor:
    """S2(r), r = 0..R, of a field (an indicator or intensities), as core.stats defines it.

    ``batch_dims`` leading dimensions are a stack of images whose pairs pool (the sections of a
    volume along one axis): their sum of products over their count of valid pairs.
    """
    # float32 transforms (twice as fast as float64; S2 to ~1e-7), float64 from the products on
    f = field.float()
    dims = list(range(batch_dims, f.dim()))
    shape = [f.shape[d] for d in dims]
    R = max(1, min(int(R), min(shape) // 2))  # as core.stats.metrics.clamp_r_max
    sizes = [n + R for n in shape]  # enough padding: no wrap-around for lags up to R
    F = torch.fft.rfftn(f, s=sizes, dim=dims)
    c = torch.fft.irfftn(F.real.square() + F.imag.square(), s=sizes, dim=dims)
    for d, size in zip(dims, sizes):
        keep = torch.cat([torch.arange(0, R + 1), torch.arange(size - R, size)]).to(f.device)
        c = c.index_select(d, keep)
    c = c.double()
    if batch_dims:
        c = c.sum(dim=list(range(batch_dims)))
    lag = torch.cat([torch.arange(0, R + 1), torch.arange(-R, 0)]).double().to(f.device)
    n_valid = torch.ones((), dtype=torch.float64, device=f.device)
    for i, n in enumerate(shape):
        n_valid = n_valid * (n - lag.abs()).reshape([-1 if j == i else 1 for j in range(len(shape))])
    n_valid = n_valid * (field.numel() // int(torch.tensor(shape).prod()))  # images in the stack
    idx = _radial_index(R, len(shape), f.device)
    sums = torch.zeros(R + 2, dtype=torch.float64, device=f.device).index_add_(0, idx, (c / n_valid).reshape(-1))
    counts = torch.bincount(idx, minlength=R + 2).double()
    return (sums[: R + 1] / counts[: R + 1]).clamp(0.0, 1.0)


# -- the figures of an image and of a volume ------------------------------------------------------
def label_figures(labels: torch.Tensor, n_phases: int, batch_dims: int = 0, R: int = R_MAX) -> dict:
    """Volume fractions, pooled surface area and S2 per phase of labels (a stack: ``batch_dims``)."""
    sa, _ = surface_area(labels, range(batch_dims, labels.dim()))
    s2 = [two_point(labels == k, R, batch_dims) for k in range(n_phases)]
    return {"vf": volume_fractions(labels, n_phases), "sa": sa, "s2": torch.stack(s2)}


def intensity_figures(f: torch.Tensor, batch_dims: int = 0, R: int = R_MAX) -> dict:
    """Mean, standard deviation and S2 of intensities in [0, 1] (figures keyed as the labels')."""
    f = f.double()
    return {"vf": f.mean().reshape(1), "sa": f.std(unbiased=False), "s2": two_point(f, R, batch_dims)[None]}


def _sections(vol: torch.Tensor, axis: int) -> torch.Tensor:
    """The sections of a (X, Y, Z) volume perpendicular to ``axis`` as a stack (L, a, b), in-plane
    axes in the order the critics see them (:data:`~.train.AXES`)."""
    order = {0: (0, 1, 2), 1: (1, 0, 2), 2: (2, 0, 1)}[axis]
    return vol.permute(*order)


def _errors(img: dict, vol: dict, nphase: bool) -> dict[str, float]:
    vf_i, vf_v = img["vf"], vol["vf"]
    rel = (vf_i - vf_v).abs() / vf_i.clamp_min(1e-12)
    keep = vf_i >= MIN_VF if nphase else vf_i > 0
    vf_err = rel[keep].max() if bool(keep.any()) else torch.zeros((), dtype=torch.float64)
    sa_err = (img["sa"] - vol["sa"]).abs() / img["sa"].clamp_min(1e-12)
    n = min(img["s2"].shape[1], vol["s2"].shape[1])  # the common distances (each capped at half a side)
    s2_err = (img["s2"][:, :n] - vol["s2"][:, :n]).abs().max()
    vals = torch.stack([vf_err.to(sa_err.device), sa_err, s2_err]).tolist()  # one synchronisation
    return dict(zip(("vf_error", "sa_error", "s2_error"), vals))


class Figures:
    """The training images' figures, computed once, and the errors of a generated volume.

    Parameters
    ----------
    images : list of (C, H, W) tensors
        The training images as the trainer encodes them (one-hot for n-phase), on the device.
    imtype : {"nphase", "grayscale", "colour"}
    """

    def __init__(self, images: list[torch.Tensor], imtype: str, R: int = R_MAX):
        self.nphase = imtype == "nphase"
        self.nc = images[0].shape[0]
        self.R = R
        self.anisotropic = len(images) == 3
        self.images = [self._figures(self._field(im), 0) for im in images]

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        """(C, ...) generator output or encoded image → labels (n-phase: the argmax, first of ties)
        or intensities. A pass per channel: argmax along a leading dimension is slow on the CPU."""
        if not self.nphase:
            return x.float().mean(0)
        labels = torch.zeros(x.shape[1:], dtype=torch.uint8, device=x.device)
        best = x[0]
        for k in range(1, x.shape[0]):
            more = x[k] > best
            labels[more] = k
            best = torch.maximum(best, x[k])
        return labels

    def _figures(self, field: torch.Tensor, batch_dims: int) -> dict:
        if self.nphase:
            return label_figures(field, self.nc, batch_dims, self.R)
        return intensity_figures(field, batch_dims, self.R)

    def errors(self, volume) -> dict[str, float]:
        """Errors of a (C, X, Y, Z) generated volume against the image(s); of a list of volumes,
        the errors of their mean figures (one sample of a generator is a noisy judge)."""
        if not self.anisotropic:
            vols = _as_list(volume)
            figs = _mean_figures([self._figures(self._field(v), 0) for v in vols])
            return _errors(self.images[0], figs, self.nphase)
        per_axis = self.axis_errors(volume)
        return {key: max(e[key] for e in per_axis) for key in per_axis[0]}

    def axis_errors(self, volume) -> list[dict[str, float]]:
        """Anisotropic runs: the errors of image k against the sections perpendicular to axis k
        (of a list of volumes: of their mean figures)."""
        fields = [self._field(v) for v in _as_list(volume)]
        return [_errors(self.images[k], _mean_figures([self._figures(_sections(f, k), 1) for f in fields]),
                        self.nphase) for k in range(3)]


def _as_list(volume) -> list[torch.Tensor]:
    return list(volume) if isinstance(volume, (list, tuple)) else [volume]


def _mean_figures(figs: list[dict]) -> dict:
    """Figures of several equal-sized volumes: the mean of each (volume fractions, surface area and
    S2 are means over voxels or pairs, so this is the figure of the volumes taken together)."""
    if len(figs) == 1:
        return figs[0]
    n = min(f["s2"].shape[-1] for f in figs)
    return {k: torch.stack([f[k][..., :n] if k == "s2" else f[k] for f in figs]).mean(0) for k in figs[0]}


# -- the stopping rule --------------------------------------------------------------------------
@dataclass
class Tracker:
    """Checks so far, the streak of checks within tolerance, and the best snapshot.

    A check is within tolerance when ``vf_error <= tol``, ``sa_error <= tol`` and
    ``s2_error <= s2_tol``; the run stops at a check at or after ``min_iters`` that ends a streak of
    ``patience`` such checks (``stop_reason`` "converged"). The best check has the smallest
    ``max(vf_error, sa_error)``. With ``plateau`` > 0 the run also stops, at or after ``min_iters``,
    once that many checks in a row brought no better one (``stop_reason`` "plateau"): a generator
    that will not reach the tolerance stops improving long before the cap, and the best check's
    generator is what is saved either way.
    """

    tol: float
    s2_tol: float
    patience: int
    min_iters: int
    plateau: int = 0
    stop_reason: str | None = None
    stopped_at: int | None = None
    history: list[dict] = field(default_factory=list)
    streak: int = 0
    best_iteration: int | None = None
    best_score: float = float("inf")
    best_state: dict | None = None
    converged_at: int | None = None

    def add(self, iteration: int, errors: dict[str, float], state=None) -> bool:
        """Record a check (``state``: a callable giving the generator's state dict); True: stop."""
        self.history.append({"iteration": int(iteration), **{k: float(v) for k, v in errors.items()}})
        ok = (errors["vf_error"] <= self.tol and errors["sa_error"] <= self.tol
              and errors["s2_error"] <= self.s2_tol)
        self.streak = self.streak + 1 if ok else 0
        score = max(errors["vf_error"], errors["sa_error"])
        # before min_iters a barely trained generator can score well by chance on one volume
        # (seen on the GPU: micro001's best check was iteration 250): it is never the one kept
        if score < self.best_score and iteration >= self.min_iters:
            self.best_score, self.best_iteration = score, int(iteration)
            if state is not None:
                self.best_state = {k: v.detach().clone() for k, v in state().items()}
        if iteration < self.min_iters:
            return False
        if ok and self.streak >= self.patience:
            self.converged_at = self.stopped_at = int(iteration)
            self.stop_reason = "converged"
            return True
        since_best = sum(1 for h in self.history if h["iteration"] > (self.best_iteration or 0))
        if self.plateau and since_best >= self.plateau:
            self.stopped_at, self.stop_reason = int(iteration), "plateau"
            return True
        return False

    def stop_message(self) -> str:
        """What the last event of a run that stopped says."""
        if self.stop_reason == "plateau":
            b = self.best or {}
            return (f"stopped at iteration {self.stopped_at}: no better check in the last {self.plateau} "
                    f"(best at iteration {self.best_iteration}: vf {100 * b.get('vf_error', 0):.1f} %, "
                    f"surface area {100 * b.get('sa_error', 0):.1f} %)")
        return f"converged at iteration {self.converged_at}"

    @property
    def best(self) -> dict | None:
        """The best check's record."""
        return next((h for h in self.history if h["iteration"] == self.best_iteration), None)

    def state(self) -> dict:
        """For a checkpoint (tensors and plain values only: loads with ``weights_only``)."""
        return {"history": copy.deepcopy(self.history), "streak": self.streak, "best_iteration": self.best_iteration,
                "best_score": self.best_score, "best_state": self.best_state, "converged_at": self.converged_at,
                "stop_reason": self.stop_reason, "stopped_at": self.stopped_at}

    def load(self, st: dict | None) -> None:
        if not st:
            return
        self.history = list(st.get("history") or [])
        self.streak = int(st.get("streak") or 0)
        self.best_iteration = st.get("best_iteration")
        self.best_score = float(st.get("best_score", float("inf")))
        self.best_state = st.get("best_state")
        self.converged_at = st.get("converged_at")
        self.stop_reason, self.stopped_at = st.get("stop_reason"), st.get("stopped_at")

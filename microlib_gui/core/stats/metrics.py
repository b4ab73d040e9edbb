"""Microstructure metrics on label images (2D or 3D): volume fraction, surface area, S2(r).

All functions take an integer label array (phase k = value k), 2D ``(H, W)`` or 3D
``(D, H, W)``, or a float intensity array in [0, 1] where stated.

Definitions (as in MicroLib, Kench et al. 2022):

* volume fraction of phase k: share of pixels/voxels labelled k;
* surface-area density: share of neighbouring pixel/voxel pairs (face neighbours)
  whose two members lie in different phases; reported overall and per axis;
* two-point correlation S2_k(r): probability that two points ``r`` apart both lie in
  phase k. It is estimated per displacement vector ``d`` from every pair that fits
  inside the image (no periodic wrap-around): ``S2(d) = C(d) / N(d)`` with ``C`` the
  number of pairs in phase k and ``N(d) = prod(n_i - |d_i|)`` the number of valid
  pairs, then averaged over all ``d`` with ``r <= |d| < r + 1`` (so ``S2(0)`` is
  the volume fraction).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import scipy.fft as sfft

from ..errors import MicrolibError


class StatsError(MicrolibError):
    """Statistics cannot be computed for this input (wrong shape, too small, ...)."""


#: Default largest distance (pixels) of the two-point correlation (MicroLib plots about this far).
DEFAULT_R_MAX = 100


def _workers() -> int:
    try:  # respect taskset/cgroup CPU limits
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def check_labels(labels: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``labels`` as a 2D/3D integer array or raise :class:`StatsError`."""
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise StatsError(f"{name}: expected a 2D image or a 3D volume, got {arr.ndim} dimensions")
    if min(arr.shape) < 2:
        raise StatsError(f"{name}: shape {arr.shape} is too small for statistics")
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise StatsError(f"{name}: labels must be integers, got {arr.dtype}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise StatsError(f"{name}: negative labels")
    return arr


def volume_fraction(labels: np.ndarray, n_phases: int | None = None) -> list[float]:
    """Share of pixels/voxels of each phase ``0..n_phases-1``."""
    arr = check_labels(labels)
    n = int(arr.max()) + 1 if n_phases is None else int(n_phases)
    if n <= 16:  # a pass per phase beats bincount's int64 copy of a large volume
        counts = [np.count_nonzero(arr == k) for k in range(n)]
    else:
        counts = np.bincount(arr.ravel(), minlength=n)[:n]
    return [float(c / arr.size) for c in counts]


def surface_area(labels: np.ndarray) -> dict:
    """Surface-area density: share of face-neighbour pairs in different phases.

    Returns
    -------
    dict
        ``{"total": float, "axes": [float per axis]}``; ``total`` pools the pairs of all axes.
    """
    arr = check_labels(labels)
    diffs, pairs = [], []
    for ax in range(arr.ndim):
        n_diff = 0
        # Count in slabs along axis 0 to keep the boolean temporaries small.
        for sl_a, sl_b in _neighbour_slabs(arr.shape, ax):
            n_diff += int(np.count_nonzero(arr[sl_a] != arr[sl_b]))
        diffs.append(n_diff)
        pairs.append(arr.size // arr.shape[ax] * (arr.shape[ax] - 1))
    return {
        "total": float(sum(diffs) / sum(pairs)),
        "axes": [float(d / p) for d, p in zip(diffs, pairs)],
    }


def _neighbour_slabs(shape, ax, slab=64):
    """Index pairs (a, b) covering every neighbour pair along ``ax`` in chunks of axis 0."""
    nd = len(shape)
    if ax == 0:
        for s in range(0, shape[0] - 1, slab):
            e = min(s + slab, shape[0] - 1)
            yield (slice(s, e),), (slice(s + 1, e + 1),)
        return
    for s in range(0, shape[0], slab):
        e = min(s + slab, shape[0])
        a = [slice(s, e)] + [slice(None)] * (nd - 1)
        b = list(a)
        a[ax] = slice(0, -1)
        b[ax] = slice(1, None)
        yield tuple(a), tuple(b)


# -- two-point correlation ---------------------------------------------------------
def clamp_r_max(shape, r_max: int | None) -> int:
    """The largest usable distance: ``r_max`` capped at half the shortest side."""
    cap = max(1, min(shape) // 2)
    return cap if r_max is None else max(1, min(int(r_max), cap))


def _lags(R: int) -> np.ndarray:
    """Lag values in the order the cropped FFT output holds them: 0..R, -R..-1."""
    return np.concatenate([np.arange(0, R + 1), np.arange(-R, 0)])


def _lag_axes(ndim: int, R: int) -> list[np.ndarray]:
    """The lag grid actually computed: since C(-d) = C(d), only d_0 >= 0 along axis 0."""
    return [np.arange(0, R + 1)] + [_lags(R)] * (ndim - 1)


@functools.lru_cache(maxsize=8)
def _radial_bins(ndim: int, R: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the half lag grid: bin index ``floor(|d|)`` (R+1 = unused), the weight of each
    lag (2 for d_0 > 0, which stands for d and -d) and the weighted count of each bin."""
    axes = [a.astype(np.float32) for a in _lag_axes(ndim, R)]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    dist = np.sqrt(sum(g * g for g in grids))
    idx = np.minimum(np.floor(dist).astype(np.int32), R + 1).ravel()
    weight = np.broadcast_to(np.where(axes[0] == 0, 1.0, 2.0).reshape([-1] + [1] * (ndim - 1)),
                             dist.shape).ravel().copy()
    counts = np.bincount(idx, weights=weight, minlength=R + 2)
    for a in (idx, weight, counts):
        a.setflags(write=False)
    return idx, weight, counts


def _valid_pairs(shape, R: int) -> np.ndarray:
    """``N(d) = prod(n_i - |d_i|)`` on the (half) lag grid."""
    out = np.ones((1,) * len(shape), dtype=np.float64)
    for ax, (n, lag) in enumerate(zip(shape, _lag_axes(len(shape), R))):
        v = (n - np.abs(lag)).astype(np.float64)
        out = out * v.reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return out


def _radial_mean(s2: np.ndarray, R: int) -> np.ndarray:
    idx, weight, counts = _radial_bins(s2.ndim, R)
    sums = np.bincount(idx, weights=s2.ravel() * weight, minlength=R + 2)
    return sums[: R + 1] / counts[: R + 1]


def _autocorrelation(field: np.ndarray, R: int, device: str = "cpu", block: int = 16) -> np.ndarray:
    """``C(d) = sum_x f(x) f(x+d)`` for ``|d_i| <= R``, by zero-padded FFT (no wrap-around).

    Padding each axis to ``n + R`` is enough for lags up to R. The transforms are done
    in blocks so that no padded copy of the whole volume is ever made: (1) slabs of
    axis 0 go through the real FFT of the last axis and the FFTs of the middle axes;
    (2) blocks of axis-1 columns go through the forward FFT of axis 0, the power
    spectrum and the inverse FFT of axis 0, keeping only the 2R+1 needed lags;
    (3) the small remainder is inverted along the other axes. Float32 throughout.
    """
    if device != "cpu":
        return _autocorrelation_torch(field, R, device)
    nd = field.ndim
    sizes = [sfft.next_fast_len(n + R, real=True) for n in field.shape]
    w = _workers()
    keep = np.r_[0 : R + 1, -R:0]
    half = sizes[-1] // 2 + 1
    # (1) last axis real FFT, middle axes complex FFT, slab by slab along axis 0.
    spec = np.empty((field.shape[0], *sizes[1:-1], half), dtype=np.complex64)
    for s0 in range(0, field.shape[0], block):
        part = sfft.rfft(field[s0 : s0 + block].astype(np.float32), n=sizes[-1], axis=nd - 1, workers=w)
        for ax in range(1, nd - 1):
            part = sfft.fft(part, n=sizes[ax], axis=ax, workers=w, overwrite_x=True)
        spec[s0 : s0 + block] = part
    # (2) axis 0 forward, |F|^2, axis 0 inverse, keeping lags 0..R (C(-d) = C(d)); block by
    # block along axis 1, written back over the rows of ``spec`` already consumed (no new
    # large array: first touches of fresh memory are a large part of the cost).
    for s1 in range(0, spec.shape[1], block):
        part = sfft.fft(spec[:, s1 : s1 + block], n=sizes[0], axis=0, workers=w)
        np.multiply(part, part.conj(), out=part)
        part = sfft.ifft(part, axis=0, workers=w, overwrite_x=True)
        spec[: R + 1, s1 : s1 + block] = part[: R + 1]
    cropped = spec[: R + 1]
    # (3) the rest of the inverse transform on the small cropped array.
    for ax in range(1, nd - 1):
        cropped = np.take(sfft.ifft(cropped, axis=ax, workers=w), keep, axis=ax)
    c = sfft.irfft(cropped, n=sizes[-1], axis=nd - 1, workers=w)
    return np.take(c, keep, axis=nd - 1).astype(np.float64)


def _autocorrelation_torch(field: np.ndarray, R: int, device: str) -> np.ndarray:
    import torch

    nd = field.ndim
    sizes = [sfft.next_fast_len(n + R, real=True) for n in field.shape]
    t = torch.as_tensor(np.ascontiguousarray(field), device=device).to(torch.float32)
    F = torch.fft.rfftn(t, s=sizes)
    F = F.real.square() + F.imag.square()
    c = torch.fft.irfftn(F, s=sizes)
    for ax in range(nd):
        kept = np.r_[0 : R + 1] if ax == 0 else np.r_[0 : R + 1, sizes[ax] - R : sizes[ax]]
        c = torch.index_select(c, ax, torch.as_tensor(kept, device=device))
    return c.double().cpu().numpy()


def _running_sums(arr: np.ndarray, ax: int, start: int, count: int, step: int, dtype) -> np.ndarray:
    """``count + 1`` running sums of ``arr`` along ``ax`` over slices ``start, start+step, ...``
    (the first is 0). A loop of whole-slice adds: much faster than ``np.cumsum`` along a
    leading axis of a large array."""
    shape = list(arr.shape)
    shape[ax] = count + 1
    out = np.zeros(shape, dtype=dtype)
    idx = [slice(None)] * arr.ndim
    for i in range(count):
        idx[ax] = i + 1
        dst = out[tuple(idx)]
        idx[ax] = i
        prev = out[tuple(idx)]
        idx[ax] = start + step * i
        np.add(prev, arr[tuple(idx)], out=dst, dtype=dtype, casting="unsafe")
    return out


def _prefix_table(ind: np.ndarray, points: list[np.ndarray], R: int) -> np.ndarray:
    """``T[i, j, ...] = sum of ind over x_0 < points[0][i], x_1 < points[1][j], ...``.

    Every point is <= R or >= n - R, so each axis needs running sums over its first
    and last R slices and one total: far cheaper than a full cumulative sum.
    """
    table = ind
    dtype = np.int64 if ind.size >= 2**31 else np.int32
    for ax, pts in enumerate(points):
        n = table.shape[ax]
        h = min(R, n)
        total = table.sum(axis=ax, keepdims=True, dtype=dtype)
        head = _running_sums(table, ax, 0, h, 1, dtype)  # head[p]: sum over x < p
        tail = total - _running_sums(table, ax, n - 1, h, -1, dtype)  # tail[q]: sum over x < n - q
        low, high = pts[pts <= h], pts[pts > h]
        table = np.concatenate([np.take(head, low, axis=ax), np.take(tail, n - high, axis=ax)], axis=ax)
    return table


def _window_sums(ind: np.ndarray, R: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lag d, the sums of ``ind`` over the first points x and over the second points
    x + d of all valid pairs (x, x + d): box sums of a prefix table, differenced axis by axis."""
    points, boxes = [], {False: [], True: []}
    for n, lag in zip(ind.shape, _lag_axes(ind.ndim, R)):
        u = np.unique(np.concatenate([np.arange(0, R + 1), np.arange(n - R, n + 1)]))
        points.append(u)
        for second in (False, True):
            lo = np.maximum(0, lag if second else -lag)
            hi = n - np.maximum(0, -lag if second else lag)
            boxes[second].append((np.searchsorted(u, lo), np.searchsorted(u, hi)))
    table = _prefix_table(ind, points, R)
    out = []
    for second in (False, True):
        acc = table
        for ax, (lo, hi) in enumerate(boxes[second]):
            acc = np.take(acc, hi, axis=ax) - np.take(acc, lo, axis=ax)
        out.append(acc.astype(np.float64))
    return out[0], out[1]


def two_point_correlation(
    labels: np.ndarray,
    r_max: int | None = DEFAULT_R_MAX,
    phases: list[int] | None = None,
    n_phases: int | None = None,
    device: str = "cpu",
) -> dict:
    """S2(r) of each phase for r = 0, 1, ..., r_max (no periodic wrap-around).

    Parameters
    ----------
    labels : int ndarray, 2D or 3D
    r_max : int or None
        Largest distance; capped at half the shortest side (None: that cap).
    phases : list of int, optional
        Phases to compute (default all ``0..n_phases-1``).
    n_phases : int, optional
        Number of phases (default ``labels.max() + 1``).
    device : str
        ``"cpu"`` (scipy.fft) or a torch device such as ``"cuda"``.

    Returns
    -------
    dict
        ``{"r": [0..R], "s2": [[S2 per r] per phase]}`` (phases not asked for are ``None``).
        For a two-phase image, S2 of the second phase is derived exactly from the
        first (window sums), so only one FFT is needed.
    """
    arr = check_labels(labels)
    n = int(arr.max()) + 1 if n_phases is None else int(n_phases)
    wanted = list(range(n)) if phases is None else [int(p) for p in phases]
    R = clamp_r_max(arr.shape, r_max)
    N = _valid_pairs(arr.shape, R)
    out: list = [None] * n
    done: dict[int, np.ndarray] = {}
    for k in wanted:
        if k in done:
            continue
        ind = arr == k
        C = _autocorrelation(ind, R, device)
        done[k] = C
        other = 1 - k
        if n == 2 and other in wanted and other not in done and device == "cpu":
            # On a GPU a second FFT is cheaper than these CPU-side sums.
            # Pairs both outside phase k: N - (x in k) - (x+d in k) + (both in k).
            first, second = _window_sums(ind, R)
            done[other] = N - first - second + C
    for k, C in done.items():
        out[k] = np.clip(_radial_mean(C / N, R), 0.0, 1.0).tolist()
    return {"r": list(range(R + 1)), "s2": out}


def intensity_two_point(intensity: np.ndarray, r_max: int | None = DEFAULT_R_MAX, device: str = "cpu") -> dict:
    """S2(r) of a grayscale field in [0, 1]: mean of ``f(x) f(x+r)`` over valid pairs."""
    f = np.asarray(intensity, dtype=np.float32)
    if f.ndim not in (2, 3) or min(f.shape) < 2:
        raise StatsError(f"expected a 2D image or a 3D volume, got shape {f.shape}")
    R = clamp_r_max(f.shape, r_max)
    s2 = _radial_mean(_autocorrelation(f, R, device) / _valid_pairs(f.shape, R), R)
    return {"r": list(range(R + 1)), "s2": s2.tolist()}


def grayscale_stats(intensity: np.ndarray, bins: int = 64) -> dict:
    """Histogram (``bins`` bins over [0, 1], as densities), mean and standard deviation."""
    f = np.asarray(intensity, dtype=np.float32)
    hist, edges = np.histogram(f, bins=bins, range=(0.0, 1.0), density=True)
    return {
        "mean": float(f.mean(dtype=np.float64)),
        "std": float(f.std(dtype=np.float64)),
        "histogram": hist.tolist(),
        "bin_edges": edges.tolist(),
    }

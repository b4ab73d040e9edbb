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
from concurrent.futures import ThreadPoolExecutor

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
        counts = [0] * n
        for s in range(0, arr.shape[0], 16):  # in slabs: the boolean temporaries stay in cache
            part = arr[s : s + 16]
            for k in range(n):
                counts[k] += int(np.count_nonzero(part == k))
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


def _neighbour_slabs(shape, ax, slab=16):
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


#: Target size of the per-thread work buffers of the blocked FFT.
_BLOCK_BYTES = 2 * 2**20

#: Inputs up to this many elements are transformed in float64 (cheap at that size).
_FLOAT64_MAX_SIZE = 2**21


def _fft_in_place(a: np.ndarray, axis: int) -> None:
    """Complex FFT of ``a`` along ``axis``, written into ``a``. scipy transforms in place when
    allowed to (``overwrite_x``); should a version decline, the result is copied back."""
    res = sfft.fft(a, axis=axis, overwrite_x=True)
    if not np.may_share_memory(res, a):
        a[...] = res


def _autocorrelation(field: np.ndarray, R: int, device: str = "cpu", block: int | None = None) -> np.ndarray:
    """``C(d) = sum_x f(x) f(x+d)`` for ``|d_i| <= R``, by zero-padded FFT (no wrap-around).

    Padding each axis to ``n + R`` is enough for lags up to R. The transforms are done
    in blocks so that no padded copy of the whole volume is ever made: (1) slabs of
    axis 0 go through the real FFT of the last axis (from a reused zero-padded buffer)
    and, in place, the FFTs of the middle axes; (2) blocks of axis-1 columns go through
    the forward FFT of axis 0, the (real) power spectrum and the inverse along axis 0,
    done as a real FFT (the inverse DFT of a real sequence is ``conj(rfft) / n``: half
    the work of a complex one), keeping only lags 0..R; (3) the small remainder is
    inverted along the other axes. The blocks of each stage are shared among the cores
    (threads, each FFT single-threaded, so the copies and products run in parallel too);
    blocks are small (cache-sized) and work buffers reused. Float32 for large inputs
    (relative error ~1e-7); float64 up to ``_FLOAT64_MAX_SIZE`` elements, where it costs
    little and makes small images exact to rounding.
    """
    if device != "cpu":
        return _autocorrelation_torch(field, R, device)
    nd, shape = field.ndim, field.shape
    sizes = [sfft.next_fast_len(n + R, real=True) for n in shape]
    real = np.float64 if field.size <= _FLOAT64_MAX_SIZE else np.float32
    cplx = np.result_type(real, np.complex64)
    every = slice(None)
    half = sizes[-1] // 2 + 1
    spec = np.empty((shape[0], *sizes[1:-1], half), dtype=cplx)
    inner = (every,) + tuple(slice(0, n) for n in shape[1:-1])
    # Blocks of about _BLOCK_BYTES per work buffer (small: they stay in cache; measured
    # on 512^3, one 1.3-1.6 MB slice per block beat 16 slices by 30%).
    itemsize = np.dtype(cplx).itemsize
    b0 = block or max(1, _BLOCK_BYTES // (int(np.prod(shape[1:-1])) * sizes[-1] * itemsize // 2))
    b1 = block or max(1, _BLOCK_BYTES // (sizes[0] * int(np.prod(spec.shape[2:])) * itemsize))

    def forward_slabs(starts):
        # (1) last axis real FFT, middle axes complex FFT in place, slab by slab along axis 0.
        buf = np.zeros((min(b0, shape[0]), *shape[1:-1], sizes[-1]), dtype=real)
        for s0 in starts:
            b = buf[: min(b0, shape[0] - s0)]
            b[..., : shape[-1]] = field[s0 : s0 + b0]
            slab = spec[s0 : s0 + b0]
            slab[inner] = sfft.rfft(b, axis=nd - 1)
            for ax in range(1, nd - 1):
                slab[(every,) * ax + (slice(shape[ax], None),)] = 0  # padding of the middle axes
            for ax in range(1, nd - 1):
                _fft_in_place(slab, ax)

    def axis0_columns(starts):
        # (2) axis 0 forward, |F|^2, axis 0 inverse keeping lags 0..R (C(-d) = C(d)), written
        # back over the rows of ``spec`` just consumed (no new large array: first touches of
        # fresh memory are a large part of the cost).
        cols = spec.shape[1]
        work = np.zeros((sizes[0], min(b1, cols), *spec.shape[2:]), dtype=cplx)
        power = np.empty(work.shape, dtype=real)
        square = np.empty(work.shape, dtype=real)
        for s1 in starts:
            k = min(b1, cols - s1)
            wk, pw, sq = work[:, :k], power[:, :k], square[:, :k]
            wk[: shape[0]] = spec[:, s1 : s1 + k]
            wk[shape[0] :] = 0
            _fft_in_place(wk, 0)
            np.square(wk.real, out=pw)
            np.square(wk.imag, out=sq)
            pw += sq
            # ifft(pw)[d] = conj(rfft(pw)[d]) / sizes[0] for real pw; the scale is applied at the end.
            np.conjugate(sfft.rfft(pw, axis=0)[: R + 1], out=spec[: R + 1, s1 : s1 + k])

    keep = np.r_[0 : R + 1, -R:0]
    out = np.empty((R + 1,) + (2 * R + 1,) * (nd - 1), dtype=np.float64)

    def inverse_rest(starts):
        # (3) the rest of the inverse transform on the small cropped array, slab by slab.
        for s0 in starts:
            c = spec[s0 : min(s0 + b0, R + 1)]
            for ax in range(1, nd - 1):
                c = np.take(sfft.ifft(c, axis=ax, overwrite_x=True), keep, axis=ax)
            c = sfft.irfft(c, n=sizes[-1], axis=nd - 1)
            np.multiply(np.take(c, keep, axis=nd - 1), 1.0 / sizes[0], out=out[s0 : s0 + b0])

    w = _workers()
    _in_threads(forward_slabs, range(0, shape[0], b0), w)
    _in_threads(axis0_columns, range(0, spec.shape[1], b1), w)
    _in_threads(inverse_rest, range(0, R + 1, b0), w)
    return out


def _in_threads(fn, starts, w: int) -> None:
    """``fn(part)`` for ``w`` interleaved parts of the block starts, in ``w`` threads
    (numpy and pocketfft release the GIL)."""
    starts = list(starts)
    if w <= 1 or len(starts) < 2:
        fn(starts)
        return
    with ThreadPoolExecutor(max_workers=w) as pool:
        for f in [pool.submit(fn, starts[i::w]) for i in range(min(w, len(starts)))]:
            f.result()


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


def _prefix_table(ind: np.ndarray, points: list[np.ndarray]) -> np.ndarray:
    """``T[i, j, ...] = sum of ind over x_0 < points[0][i], x_1 < points[1][j], ...``.

    ``points`` per axis are sorted and run from 0 to n. The array is first reduced to the
    cells between consecutive points (the cells one slice wide, near the faces, are
    copied; the wide middle one is summed), then cumulated: one pass over the volume,
    no large temporaries.
    """
    table = ind.view(np.uint8) if ind.dtype == np.bool_ else ind
    cap, w = 1, _workers()
    for ax, pts in enumerate(points):
        cap *= ind.shape[ax]  # bound on a cell sum after reducing axes 0..ax
        dtype = np.uint16 if cap < 2**16 else np.int32 if cap < 2**31 else np.int64
        shape = list(table.shape)
        shape[ax] = len(pts) - 1
        cells = np.empty(shape, dtype=dtype)
        # Shared among the cores by splitting another axis.
        sp = 1 if ax == 0 else 0
        step = -(-table.shape[sp] // w)
        _in_threads(functools.partial(_reduce_cells, table, cells, ax, pts, sp, step),
                    range(0, table.shape[sp], step), w)
        table = cells
    dtype = np.int64 if ind.size >= 2**31 else np.int32
    for ax in range(table.ndim):
        shape = list(table.shape)
        shape[ax] += 1
        cum = np.zeros(shape, dtype=dtype)
        np.cumsum(table, axis=ax, dtype=dtype, out=cum[(slice(None),) * ax + (slice(1, None),)])
        table = cum
    return table


def _reduce_cells(table, cells, ax, pts, sp, step, starts) -> None:
    """``cells`` = ``table`` summed along ``ax`` over the cells between consecutive ``pts``,
    for the parts ``[s, s + step)`` of axis ``sp`` given by ``starts``."""
    widths = np.diff(pts)
    pre = (slice(None),) * ax
    for s in starts:
        part = (slice(None),) * sp + (slice(s, s + step),)
        src, dst = table[part], cells[part]
        i = 0
        while i < len(widths):
            j = i + 1
            if widths[i] == 1:  # a run of one-slice cells: a single copy
                while j < len(widths) and widths[j] == 1:
                    j += 1
                dst[pre + (slice(i, j),)] = src[pre + (slice(pts[i], pts[j]),)]
            else:
                np.sum(src[pre + (slice(pts[i], pts[j]),)], axis=ax, dtype=dst.dtype, out=dst[pre + (i,)])
            i = j


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
    table = _prefix_table(ind, points)
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

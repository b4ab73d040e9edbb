"""3D-only properties: tortuosity factor (TauFactor) and percolating fraction per phase.

Both are reported per direction (x, y, z = volume axes 2, 1, 0... see ``AXES``); an
isotropic entry should give three similar values, so their spread is reported too.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np

from .metrics import StatsError, check_labels

#: Direction names and the volume axis each one runs along (axis 0 = x, as in TauFactor).
AXES = {"x": 0, "y": 1, "z": 2}

#: Largest cube side solved on a CPU by default; larger volumes use their central cube.
CPU_TAU_SIDE = 64
#: Solver iterations between two progress calls (TauFactor checks convergence every 100).
SOLVE_CHUNK = 100


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # torch is a hard dependency, but keep core importable without it
        return "cpu"


def _taufactor(metrics: bool = False):
    """TauFactor (or its metrics module), with a one-line error when it is not installed."""
    try:
        if metrics:
            import taufactor.metrics as mod
        else:
            import taufactor as mod
    except ImportError as exc:
        raise StatsError(f"tortuosity and percolation need the taufactor package ({exc}); "
                         "install it with: pip install taufactor") from None
    return mod


def spread(values: dict[str, float | None]) -> float | None:
    """(max - min) / mean of the finite values, or None when fewer than two are finite."""
    vals = [v for v in values.values() if v is not None and math.isfinite(v)]
    if len(vals) < 2 or np.mean(vals) == 0:
        return None
    return float((max(vals) - min(vals)) / np.mean(vals))


def central_cube(volume: np.ndarray, side: int | None) -> np.ndarray:
    """The central cube of ``volume`` with side ``min(side, shortest side)``."""
    s = min(volume.shape) if side is None else min(int(side), *volume.shape)
    starts = [(n - s) // 2 for n in volume.shape]
    return volume[tuple(slice(b, b + s) for b in starts)]


def tortuosity(
    volume: np.ndarray,
    phases: list[int] | None = None,
    device: str | None = None,
    max_side: int | None = -1,
    iter_limit: int = 20000,
    conv_crit: float = 1e-2,
    progress=None,
) -> dict:
    """Tortuosity factor of each phase along x, y and z with TauFactor's SOR solver.

    Parameters
    ----------
    volume : int ndarray (D, H, W)
    phases : list of int, optional
        Conducting phases to solve (default: every phase present).
    device : str, optional
        ``"cuda"`` or ``"cpu"``; default :func:`default_device`.
    max_side : int or None
        Solve the central cube of this side (TauFactor batches the three directions
        of one cube). ``-1`` (default): :data:`CPU_TAU_SIDE` on a CPU, the whole
        shortest side on a GPU. ``None``: the shortest side.
    iter_limit, conv_crit :
        Passed to ``Solver.solve``.
    progress : callable, optional
        ``progress(iterations)`` after every :data:`SOLVE_CHUNK` solver iterations
        (the solve is run in chunks; an exception raised here, e.g. a cancelled
        job's, stops it).

    Returns
    -------
    dict
        ``{"device", "side", "phases": [{"phase", "x", "y", "z", "spread", "converged"}]}``;
        a direction with no percolating path has tortuosity ``None`` (infinite).
    """
    import torch

    Solver = _taufactor().Solver
    vol = check_labels(volume, "volume")
    if vol.ndim != 3:
        raise StatsError("tortuosity needs a 3D volume")
    device = device or default_device()
    if max_side == -1:
        max_side = CPU_TAU_SIDE if device == "cpu" else None
    cube = central_cube(vol, max_side)
    if min(cube.shape) < 4:
        raise StatsError(f"volume {vol.shape} is too small for a tortuosity solve")
    n = int(vol.max()) + 1
    phases = [k for k in (range(n) if phases is None else phases) if np.any(cube == k)]
    out = {"device": device, "side": int(cube.shape[0]), "phases": []}
    if not phases:
        return out
    # Directions without a spanning cluster have no finite tortuosity: leave them out of
    # the solve (they would never converge) and report None.
    perc = {p["phase"]: p for p in percolating_fraction(cube, phases)}
    # One batch: for each phase, the cube turned so that each direction in turn is axis 0.
    batch, where = [], []
    for k in phases:
        ind = (cube == k).astype(np.float32)
        for name, ax in AXES.items():
            if perc[k][name] > 0:
                batch.append(np.ascontiguousarray(np.moveaxis(ind, ax, 0)))
                where.append((k, name))
    taus: dict = {}
    converged = True
    if batch:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            solver = Solver(np.stack(batch), device=device)
            tau = np.asarray(_solve_in_chunks(solver, iter_limit, conv_crit, progress), dtype=float)
        converged = bool(solver.converged)
        taus = {key: float(t) for key, t in zip(where, tau)}
        del solver
        if device != "cpu":
            with contextlib.suppress(Exception):
                torch.cuda.empty_cache()
    for k in phases:
        vals = {}
        for name in AXES:
            t = taus.get((k, name))
            vals[name] = t if t is not None and math.isfinite(t) and t > 0 else None
        out["phases"].append({"phase": int(k), **vals, "spread": spread(vals), "converged": converged})
    return out


def _solve_in_chunks(solver, iter_limit: int, conv_crit: float, progress=None):
    """``solver.solve`` in chunks of :data:`SOLVE_CHUNK` iterations, calling ``progress`` between them.

    TauFactor's solver keeps its iteration count and convergence state between
    calls, so the chunks add up to one solve (its convergence check runs every
    100 iterations, a divisor of the chunk).
    """
    tau = None
    while True:
        limit = min(iter_limit, solver.iter + SOLVE_CHUNK)
        tau = solver.solve(iter_limit=limit, verbose=False, conv_crit=conv_crit)
        if solver.converged or solver.iter >= iter_limit:
            return tau
        if progress is not None:
            progress(int(solver.iter))


def percolating_fraction(volume: np.ndarray, phases: list[int] | None = None) -> list[dict]:
    """Share of each phase's voxels in clusters (face-connected) that touch both opposite
    faces, per direction; plus the share in the largest cluster (``"largest"``).

    Returns
    -------
    list of dict
        One per phase: ``{"phase", "x", "y", "z", "spread", "largest"}``.
    """
    from scipy import ndimage as ndi

    find_spanning_labels = _taufactor(metrics=True).find_spanning_labels

    vol = check_labels(volume, "volume")
    if vol.ndim != 3:
        raise StatsError("percolating fraction needs a 3D volume")
    n = int(vol.max()) + 1
    out = []
    for k in range(n) if phases is None else phases:
        mask = vol == k
        total = int(np.count_nonzero(mask))
        if total == 0:
            out.append({"phase": int(k), "x": 0.0, "y": 0.0, "z": 0.0, "spread": None, "largest": 0.0})
            continue
        lab, nlab = ndi.label(mask)
        sizes = np.bincount(lab.ravel(), minlength=nlab + 1)
        sizes[0] = 0
        vals = {}
        for name in AXES:  # TauFactor's axis names: x = axis 0
            span = sorted(find_spanning_labels(lab, name))
            vals[name] = float(sizes[span].sum() / total) if span else 0.0
        out.append({"phase": int(k), **vals, "spread": spread(vals), "largest": float(sizes.max() / total)})
    return out

"""Quality figures of an inpainting against the truth (issue 5, "Quality").

For label images:

* phase-fraction error: mean over phases of |fraction in the masked region −
  fraction in the whole image|, in percentage points; computed for the
  inpainted output and for the true image, whose region is a fair sample too;
* seam: the share of 4-neighbour pixel pairs across the mask border whose labels
  differ, against the share of all neighbouring pairs that differ in the true
  image (a seam raises the first; a blurred fill lowers it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


def phase_fraction_error(labels: np.ndarray, mask: np.ndarray, n_phases: int | None = None) -> float:
    """Mean |region fraction − whole-image fraction| over phases, in percentage points."""
    n = int(n_phases or labels.max() + 1)
    whole = np.bincount(labels.ravel(), minlength=n)[:n] / labels.size
    reg = np.bincount(labels[mask].ravel(), minlength=n)[:n] / max(1, int(mask.sum()))
    return float(100 * np.abs(reg - whole).mean())


def _pairs(a: np.ndarray):
    """Horizontal and vertical 4-neighbour pairs of ``a`` as (first, second) views."""
    return (a[:, :-1], a[:, 1:]), (a[:-1, :], a[1:, :])


def border_changes(labels: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(pairs across the mask border with different labels, pairs across the border)."""
    diff = tot = 0
    for (la, lb), (ma, mb) in zip(_pairs(labels), _pairs(mask)):
        cross = ma != mb
        tot += int(cross.sum())
        diff += int((cross & (la != lb)).sum())
    return diff, tot


def neighbour_changes(labels: np.ndarray) -> tuple[int, int]:
    """(neighbouring pairs with different labels, all neighbouring pairs)."""
    diff = tot = 0
    for la, lb in _pairs(labels):
        tot += la.size
        diff += int((la != lb).sum())
    return diff, tot


def score(output: np.ndarray, truth: np.ndarray, original: np.ndarray, mask: np.ndarray) -> dict:
    """All figures for one label image (``output``/``truth`` as labels 0..n-1).

    ``original`` is the input that was inpainted (to check exactness outside the mask).
    """
    n = int(max(output.max(), truth.max()) + 1)
    bd, bt = border_changes(output, mask)
    td, _ = border_changes(truth, mask)
    cd, ct = neighbour_changes(truth)
    return {
        "exact_outside": bool(np.array_equal(output[~mask], original[~mask])),
        "pf_err_inpainted_pp": phase_fraction_error(output, mask, n),
        "pf_err_truth_pp": phase_fraction_error(truth, mask, n),
        "border_diff": bd, "border_pairs": bt, "truth_border_diff": td, "clean_diff": cd, "clean_pairs": ct,
        "seam_ratio": (bd / bt) / (cd / ct) if bt and cd else float("nan"),
        "seam_ratio_truth": (td / bt) / (cd / ct) if bt and cd else float("nan"),
        "masked_share": float(mask.mean()),
    }


def summarise(rows: list[dict]) -> dict:
    """Set-level figures: mean phase-fraction errors and the pooled seam ratio."""
    bd = sum(r["border_diff"] for r in rows)
    bt = sum(r["border_pairs"] for r in rows)
    td = sum(r["truth_border_diff"] for r in rows)
    cd = sum(r["clean_diff"] for r in rows)
    ct = sum(r["clean_pairs"] for r in rows)
    return {
        "images": len(rows),
        "all_exact_outside": all(r["exact_outside"] for r in rows),
        "pf_err_inpainted_pp": float(np.mean([r["pf_err_inpainted_pp"] for r in rows])),
        "pf_err_truth_pp": float(np.mean([r["pf_err_truth_pp"] for r in rows])),
        "seam_ratio_pooled": (bd / bt) / (cd / ct),
        # the same figure for the true pixels under the mask: what a perfect fill would score
        "seam_ratio_truth_pooled": (td / bt) / (cd / ct),
        "seam_ratio_median": float(np.median([r["seam_ratio"] for r in rows])),
    }


def labelled_cases(folder: str | Path, ids: list[str] | None = None
                   ) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(id, truth, mask, hidden)`` for each ``segNNN.png`` + ``barNNN.png`` pair in ``folder``
    (the raw-like set's layout), in id order; ``hidden`` is the truth with the masked pixels set
    to 0, so that a method scored on it never sees the truth under the mask."""
    from .data import read_pixels

    for p in sorted(Path(folder).glob("seg*.png")):
        i = p.stem[3:]
        if ids is not None and i not in ids:
            continue
        truth = read_pixels(p)
        mask = read_pixels(p.with_name(f"bar{i}.png")) > 0
        hidden = truth.copy()
        hidden[mask] = 0
        yield i, truth, mask, hidden

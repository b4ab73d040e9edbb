"""Issue 5 quality targets, fast method, over every labelled image of ``rawlike``.

The GAN method's figures come from bench/gpu_inpaint.sh (GPU) and
bench/bench_inpaint.py (CPU, reduced iterations); see docs/benchmarks.md.
"""

from __future__ import annotations

import pytest

from microlib_gui.core.inpaint import inpaint
from microlib_gui.core.inpaint.quality import labelled_cases, score, summarise


@pytest.fixture(scope="module")
def fast_scores(shared_data):
    rows = []
    for _, seg, bar, hidden in labelled_cases(shared_data / "rawlike"):
        out = inpaint(hidden, bar, method="fast", kind="labels")["output"]
        rows.append(score(out, seg, hidden, bar))
    assert len(rows) >= 10
    return rows


def test_exact_outside_mask(fast_scores):
    assert all(r["exact_outside"] for r in fast_scores)


def test_phase_fractions_within_2pp_of_truth(fast_scores):
    s = summarise(fast_scores)
    assert s["pf_err_inpainted_pp"] <= s["pf_err_truth_pp"] + 2.0


def test_no_seam(fast_scores):
    # a seam adds label changes across the mask border; the target allows 1.25x the clean image's rate
    s = summarise(fast_scores)
    assert s["seam_ratio_pooled"] <= 1.25

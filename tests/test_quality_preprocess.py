"""Issue 4's quality targets on the shared raw-like set (figures in docs/benchmarks.md).

Runs the same code as ``bench/bench_preprocess.py --quality``.
"""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def figures(shared_data):
    spec = importlib.util.spec_from_file_location(
        "bench_preprocess", Path(__file__).resolve().parents[1] / "bench" / "bench_preprocess.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.quality(shared_data / "rawlike")


def test_auto_segmentation(figures):
    seg = figures["segmentation"]
    assert seg["images"] >= 10
    assert seg["mean_accuracy"] >= 0.97
    assert seg["mean_vf_error"] <= 0.01


def test_mask_with_pick_and_box(figures):
    m = figures["mask_pick"]
    assert m["mean_coverage"] >= 0.99
    assert m["mean_stray"] <= 0.05
    # Better coverage than MicroLib's own rule at the same tolerance.
    assert m["mean_coverage"] > figures["mask_microlib_rule"]["mean_coverage"]


def test_auto_detection(figures):
    a = figures["mask_auto"]
    assert a["mean_coverage"] >= 0.97
    assert a["mean_stray"] <= 0.10
    v = figures["voxel_size"]
    from microlib_gui.core.scalebar import ocr

    # templates read the bold labels; Tesseract (installed by scripts/setup.sh) the thin ones
    assert v["labels_read"] >= (15 if ocr.available() else 6)  # labels that are read must be right
    assert v["wrong_reads"] == 0 and v["max_rel_error_where_read"] <= 0.02
    assert v["max_length_error_px"] <= 1.5

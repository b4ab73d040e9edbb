"""Segmentation engine and the ``microlib segment`` command."""

import json

import numpy as np
import pytest
from PIL import Image

from microlib_gui.cli import main
from microlib_gui.commands._args import parse_phases_arg
from microlib_gui.core.demo import CATALOG, render_micrograph
from microlib_gui.core.errors import MicrolibError
from microlib_gui.core.segment import (apply_thresholds, estimate_n_phases, gray255,
                                       segment, thresholds_from_phases, volume_fractions)


def _accuracy(pred, truth):
    """Best match over label orders (auto labels may come in either order)."""
    from itertools import permutations

    n = int(max(pred.max(), truth.max())) + 1
    return max((np.array(p)[pred] == truth).mean() for p in permutations(range(n)))


def test_thresholds_halfway_between_levels():
    assert thresholds_from_phases([200, 70]) == [135.0]
    assert thresholds_from_phases([40, 125, 215]) == [82.5, 170.0]
    with pytest.raises(MicrolibError):
        thresholds_from_phases([100])


def test_apply_thresholds_counts_levels():
    g = np.array([[0, 100, 135, 200, 255]], np.float32)
    assert apply_thresholds(g, [135]).tolist() == [[0, 0, 1, 1, 1]]
    assert apply_thresholds(g, [50, 150]).tolist() == [[0, 1, 1, 2, 2]]


@pytest.mark.parametrize("spec", [s for s in CATALOG if s.kind != "grayscale"], ids=lambda s: s.key)
def test_auto_segmentation_of_demo_images(spec):
    raw, truth, bar = render_micrograph(spec)
    seg = segment(raw)
    assert seg.n_phases == len(spec.grey_levels)
    ignore = np.zeros(raw.shape, bool)
    x0, y0, x1, y1 = bar["box_xyxy"]
    ignore[y0:y1, x0:x1] = True
    assert _accuracy(seg.labels[~ignore], truth[~ignore]) > 0.95


def test_picked_levels_give_the_true_phases():
    spec = CATALOG[1]  # three phases
    raw, truth, _ = render_micrograph(spec)
    seg = segment(raw, phases=spec.grey_levels)
    assert seg.method == "phases" and seg.n_phases == 3
    assert (seg.labels == truth).mean() > 0.9


def test_16bit_and_colour_input_give_the_same_labels():
    spec = CATALOG[0]
    raw, _, _ = render_micrograph(spec)
    u16 = raw.astype(np.uint16) * 257
    rgb = np.repeat(raw[..., None], 3, axis=2)
    a = segment(raw, thresholds=[135]).labels
    assert np.array_equal(a, segment(u16, thresholds=[135]).labels)
    assert np.array_equal(a, segment(rgb, thresholds=[135]).labels)
    assert np.allclose(gray255(u16), raw, atol=0.01)


def test_estimate_and_volume_fractions():
    rng = np.random.default_rng(0)
    g = np.where(rng.random((128, 128)) < 0.3, 60.0, 190.0) + rng.normal(0, 5, (128, 128))
    assert estimate_n_phases(g) == 2
    lab = apply_thresholds(g, [125])
    vf = volume_fractions(lab, 2)
    assert abs(vf[0] - 0.3) < 0.02 and abs(sum(vf) - 1) < 1e-9


def test_parse_phases_arg():
    assert parse_phases_arg("auto") == {}
    assert parse_phases_arg("auto:3") == {"n_phases": 3}
    assert parse_phases_arg("70,200") == {"phases": [70.0, 200.0]}
    for bad in ("auto:x", "auto:1", "a,b", "70,300"):
        with pytest.raises(MicrolibError):
            parse_phases_arg(bad)


def test_cli_segment(tmp_path, capsys):
    raw, truth, _ = render_micrograph(CATALOG[0])
    src = tmp_path / "raw.png"
    Image.fromarray(raw).save(src)
    out = tmp_path / "seg.png"
    assert main(["segment", str(src), "--phases", "70,200", "--crop", "0,0,200,150", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_phases"] == 2 and res["thresholds"] == [135.0]
    seg = np.asarray(Image.open(out))
    assert seg.shape == (150, 200) and set(np.unique(seg)) <= {0, 255}
    assert ((seg > 0) == (truth[:150, :200] == 1)).mean() > 0.9


def test_cli_segment_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    assert main(["segment", str(bad), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("microlib: error:") and "\n" not in err
    raw, _, _ = render_micrograph(CATALOG[0])
    Image.fromarray(raw).save(tmp_path / "r.png")
    assert main(["segment", str(tmp_path / "r.png"), "--crop", "0,0,9999,10", "--out", str(tmp_path / "o.png")]) == 2
    assert "does not fit" in capsys.readouterr().err

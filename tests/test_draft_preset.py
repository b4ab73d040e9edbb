"""The ``draft`` preset (a CPU laptop in about 20 minutes): ``microlib train --preset draft`` runs,
its generator makes a volume, and the measured figures the GUI shows are there for it.

Two iterations only: the draft's quality and time are measured by bench/draft_preset.py
(docs/benchmarks.md, "CPU draft preset (issue 21)"), not here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from microlib_gui.cli import main
from microlib_gui.core.slicegan.generate import generate, load_model
from microlib_gui.core.slicegan.presets import PRESET_NOTES, PRESETS, get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def image(tmp_path):
    f = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((128, 128)), 3, mode="wrap")
    path = tmp_path / "field.png"
    Image.fromarray(((f > 0) * 255).astype(np.uint8)).save(path)
    return str(path)


def test_draft_trains_from_the_command_line_and_its_generator_generates(tmp_path, image, capsys):
    run = tmp_path / "run"
    assert main(["train", image, "--out", str(run), "--preset", "draft", "--iters", "2", "--device", "cpu",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iteration"] == 2
    stored = json.loads((run / "run.json").read_text())["preset"]
    assert stored["name"] == "draft" and stored["img_side"] == get_preset("draft").img_side
    G, _meta = load_model(run)
    # trained with resize layers (no transposed convolutions' hatching), said in the generator's meta
    # file; saved as the published network they equal
    assert stored["g_layers"] == ["resize"] * 5 and get_preset("draft").g_layers == ("resize",) * 5
    assert json.loads((run / "slicegan_meta.json").read_text())["trained_layers"] == ["resize"] * 5
    assert G.params.g_layers == ()
    vol = generate(G, size=64, seed=0, device="cpu")
    assert vol.shape == (64, 64, 64) and set(np.unique(vol)) <= {0, 1}


def test_an_unknown_preset_is_one_line_naming_the_draft(tmp_path, image, capsys):
    with pytest.raises(SystemExit) as exc:  # a usage error: argparse exits
        main(["train", image, "--out", str(tmp_path / "r"), "--preset", "drafty"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'drafty'" in err and re.search(r"\bdraft\b[,)]", err) and len(err.strip().splitlines()) == 1


def test_measured_notes_name_presets_and_the_draft_fits_its_time():
    assert set(PRESET_NOTES) <= set(PRESETS)
    d = PRESET_NOTES["draft"]
    assert 0 < d["cpu_minutes"] <= 20  # the target: 20 minutes on an idle 2-core CPU
    for k in ("vf_error_max", "sa_error_max", "vf_error_max_matched", "sa_error_max_matched"):
        assert 0 <= d[k] < 1, k  # measured fractions, not percentages
    assert d["vf_error_max_matched"] <= d["vf_error_max"]
    assert len(d["images"]) >= 3  # the three micrographs at least
    assert PRESET_NOTES["tiny"]["for_tests"] and PRESET_NOTES["check"]["for_tests"]

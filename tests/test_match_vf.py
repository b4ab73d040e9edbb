"""Phase fractions on target (``microlib generate --match-vf``, Inspect's checkbox): the offset
fit on synthetic logits with known fractions, the offsets in both generation paths, the CLI on a
run folder and on an entry (provenance, statistics, export), and the Inspect panel's checkbox."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from microlib_gui.cli import main
from microlib_gui.core.library import layout as L
from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.slicegan import calibrate as C
from microlib_gui.core.slicegan.generate import generate
from microlib_gui.core.slicegan.nets import Generator
from microlib_gui.core.slicegan.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fractions(vol, n):
    return np.bincount(np.asarray(vol).ravel(), minlength=n)[:n] / np.asarray(vol).size


def _random_generator(nc: int, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(get_preset("tiny").net_params(nc), "nphase").eval()


def _field_png(path, vf: float, seed: int = 0, side: int = 96):
    from PIL import Image

    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((side, side)), 2.0, mode="wrap")
    lab = (f > np.quantile(f, 1 - vf)).astype(np.uint8)
    Image.fromarray(lab * 255).save(path)
    return lab


# -- the fit ---------------------------------------------------------------------------------------
def test_fit_recovers_the_known_fractions_of_a_synthetic_logit_field():
    rng = np.random.default_rng(0)
    # a 3-phase structure with known fractions (a smooth field cut at its quantiles), as logits:
    # a margin of 1 for the true phase, noise, then a per-phase shift that spoils the fractions
    f = ndimage.gaussian_filter(rng.standard_normal((48, 48, 48)), 2.0)
    target = np.array([0.5, 0.3, 0.2])
    lab = np.digitize(f, np.quantile(f, [0.5, 0.8])).ravel()
    assert np.allclose(_fractions(lab, 3), target, atol=1e-4)
    shift = np.array([0.0, 1.2, -0.8])
    logits = np.eye(3)[lab].T + 0.2 * rng.standard_normal((3, lab.size)) + shift[:, None]
    raw = C.fractions(logits)
    assert np.abs(raw - target).max() > 0.3  # the shift moved them far off
    b = C.fit_offsets(logits, target)
    assert np.abs(C.fractions(logits, b) - target).max() <= 1e-4
    assert b[0] == 0 and np.allclose(b, -shift, atol=0.1)  # it undoes the shift
    assert (np.argmax(logits + b[:, None], 0) == lab).mean() > 0.99  # the structure is the true one

    # two phases: a quantile of the logit difference, exact in one step
    d = logits[:2]
    b2 = C.fit_offsets(d, [0.9, 0.1])
    assert np.allclose(C.fractions(d, b2), [0.9, 0.1], atol=1e-6)
    assert abs(-b2[1] - np.quantile(d[1] - d[0], 0.9)) < 1e-3
    # a phase at 0 gets no voxel; targets are normalised
    assert C.fractions(logits, C.fit_offsets(logits, [0, 2, 2]))[0] == 0
    with pytest.raises(SliceGANError, match="2 target phase fractions for a generator of 3"):
        C.fit_offsets(logits, [0.5, 0.5])
    with pytest.raises(SliceGANError, match="at least 0"):
        C.fit_offsets(logits, [0.5, -0.1, 0.6])


@pytest.mark.parametrize("nc", [2, 3])
def test_offsets_give_the_same_labels_in_both_generation_paths(monkeypatch, nc):
    G = _random_generator(nc)
    offsets = [0.0, 0.02] + ([-0.01] if nc == 3 else [])
    fast = generate(G, size=40, seed=1, device="cpu", offsets=offsets)
    assert np.array_equal(generate(G, size=40, seed=1, device="cpu", offsets=[0.0] * nc),
                          generate(G, size=40, seed=1, device="cpu"))
    monkeypatch.setenv("MICROLIB_GEN_SUBPIXEL", "0")  # the published network's own layers
    plain = generate(G, size=40, seed=1, device="cpu", offsets=offsets)
    assert (fast == plain).mean() > 0.9999
    assert not np.array_equal(fast, generate(G, size=40, seed=1, device="cpu"))  # the offsets act
    with pytest.raises(SliceGANError, match="one offset per phase"):
        generate(G, size=40, device="cpu", offsets=[0.0] * (nc + 1))


def test_calibrated_volume_has_the_target_fractions_tiled_and_sampled(monkeypatch):
    G = _random_generator(2, seed=3)
    raw = _fractions(generate(G, size=48, seed=5, device="cpu"), 2)
    target = [0.3, 0.7]
    assert abs(raw[1] - 0.7) > 0.05
    # the whole volume is the sample, computed in blocks (tiled) as generation computes it
    cal = C.calibrate(G, target, size=48, seed=5, device="cpu", max_block_voxels=16 ** 3)
    assert cal["whole_volume"] and cal["stride"] == 1 and cal["sample_voxels"] == 48 ** 3
    assert np.allclose(cal["raw_vf"], raw)
    vol = generate(G, size=48, seed=5, device="cpu", max_block_voxels=16 ** 3, offsets=cal["offsets"])
    assert np.allclose(_fractions(vol, 2), target, atol=1e-4) and np.allclose(cal["calibrated_vf"], target, atol=1e-4)
    # a volume larger than the sample: its first blocks (here the four 16³ blocks of [0:16, 0:16, :]),
    # read with a stride; they are on target, the rest as near as the structure is stationary
    monkeypatch.setattr(C, "SAMPLE_VOXELS", 24 ** 3)
    monkeypatch.setattr(C, "MAX_SAMPLES", 12 ** 3)
    part = C.calibrate(G, target, size=64, seed=5, device="cpu", max_block_voxels=16 ** 3)
    assert not part["whole_volume"] and part["stride"] == 2 and part["sample_voxels"] == 4 * 16 ** 3
    big = generate(G, size=64, seed=5, device="cpu", offsets=part["offsets"])
    assert np.abs(_fractions(big[:16, :16], 2) - target).max() < 0.01
    assert np.abs(_fractions(big, 2) - target).max() < np.abs(_fractions(generate(G, size=64, seed=5, device="cpu"), 2)
                                                             - target).max()
    with pytest.raises(SliceGANError, match="n-phase generator"):
        C.calibrate(Generator(get_preset("tiny").net_params(1), "grayscale"), [1.0], size=32, device="cpu")


# -- the CLI on a run folder ---------------------------------------------------------------------
def test_cli_match_vf_on_a_run_folder(tmp_path, capsys):
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.train import train

    lab = _field_png(tmp_path / "field.png", vf=0.3)
    run = tmp_path / "run"
    run_inline(train, {"images": [str(tmp_path / "field.png")], "out": str(run), "preset": "tiny", "iters": 1,
                       "device": "cpu", "seed": 0})
    base = ["generate", str(run), "--size", "40", "--device", "cpu", "--seed", "2", "--json"]

    assert main([*base, "--out", str(tmp_path / "raw.tif")]) == 0
    raw = _fractions(tifffile.imread(tmp_path / "raw.tif"), 2)
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "m.tif"), "--match-vf"]) == 0
    res = json.loads(capsys.readouterr().out)
    vol = tifffile.imread(tmp_path / "m.tif")
    want = _fractions(lab, 2)
    assert np.allclose(_fractions(vol, 2), want, atol=1e-4) and np.allclose(res["calibration"]["target_vf"], want)
    assert np.allclose(res["calibration"]["raw_vf"], raw)  # the raw figures are the uncalibrated volume's
    assert abs(raw[1] - want[1]) > 0.01

    # IMAGE: another image's fractions; the text output says before → after
    _field_png(tmp_path / "other.png", vf=0.5, seed=1)
    assert main([*base[:-1], "--out", str(tmp_path / "o.tif"), "--match-vf", str(tmp_path / "other.png")]) == 0
    assert "phase fractions" in capsys.readouterr().out
    assert np.allclose(_fractions(tifffile.imread(tmp_path / "o.tif"), 2), [0.5, 0.5], atol=1e-4)

    # a generator with no run.json beside it: one line, exit 2, nothing written
    pub = tmp_path / "pub"
    pub.mkdir()
    for name in ("slicegan_Gen.pt", "slicegan_params.data", "slicegan_meta.json"):
        (pub / name).write_bytes((run / name).read_bytes())
    assert main(["generate", str(pub / "slicegan_Gen.pt"), "--size", "40", "--device", "cpu",
                 "--out", str(tmp_path / "q.tif"), "--match-vf"]) == 2
    err = capsys.readouterr().err
    assert "give --match-vf IMAGE" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "q.tif").exists()


# -- an entry: provenance, statistics, export ---------------------------------------------------
def test_entry_match_vf_recorded_in_provenance_statistics_and_export(tmp_path, capsys):
    from test_workflow_generate_export import curated, publish

    from microlib_gui.core.images import load_labels
    from microlib_gui.core.workflow import export as wf_export
    from microlib_gui.core.workflow import generate as wf_gen
    from microlib_gui.core.workflow import stats

    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    want = _fractions(load_labels(lib.entry_file(eid, L.INPAINTED.suffix)), 2)
    cli = ["--library", str(lib.root), "generate", str(eid), "--size", "32", "--device", "cpu"]

    assert main([*cli, "--match-vf", "x.png"]) == 2  # an entry's target is its own image
    assert "without IMAGE" in capsys.readouterr().err
    assert main([*cli, "--match-vf"]) == 0
    assert "phase fractions" in capsys.readouterr().out
    vol = tifffile.imread(lib.entry_file(eid, L.VOLUME.suffix))
    assert np.allclose(_fractions(vol, 2), want, atol=1e-4)
    state = wf_gen.volume_state(lib, eid)
    assert state.current and state.params["match_vf"] is True
    cal = state.params["calibration"]
    assert np.allclose(cal["target_vf"], want) and len(cal["offsets"]) == 2 and cal["whole_volume"]
    prov = next(p for p in lib.provenance(eid) if p["file"] == lib.entry_file(eid, L.VOLUME.suffix).name)
    assert {i["file"] for i in prov["inputs"]} == {lib.entry_file(eid, s).name
                                                   for s in (L.GENERATOR.suffix, L.INPAINTED.suffix)}

    result = stats.compute(lib, eid, tortuosity=False, device="cpu")
    assert np.allclose(result["calibration"]["raw_vf"], cal["raw_vf"])
    assert result["errors"]["volume_fraction"][1] < 1e-3  # the calibrated volume on target
    raw_err = result["calibration"]["raw_volume_fraction_error"][1]
    assert raw_err == pytest.approx(abs(cal["raw_vf"][1] - want[1]) / want[1], rel=1e-6) and raw_err > 0.01
    assert stats.saved(lib, eid).result["calibration"]["raw_vf"] == cal["raw_vf"]  # kept in _stats.json

    wf_export.export(lib, [eid], tmp_path / "out", media=False)
    name = lib.entry_dir(eid).name
    manifest = json.loads((tmp_path / "out" / name / (name + L.EXPORT_MANIFEST.suffix)).read_text())
    assert manifest["volume"]["match_vf"] is True and manifest["volume"]["calibration"]["offsets"] == cal["offsets"]

    # generated again without it: recorded as not matched, and the statistics have no calibration
    assert main(cli) == 0
    state = wf_gen.volume_state(lib, eid)
    assert state.params["match_vf"] is False and "calibration" not in state.params
    assert "calibration" not in stats.compute(lib, eid, tortuosity=False, device="cpu")


# -- the Inspect panel ---------------------------------------------------------------------------------
@pytest.mark.gui
def test_inspect_checkbox_matches_the_fractions_and_stats_show_before_and_after(qtbot, tmp_path, monkeypatch,
                                                                                 artifacts):
    from test_gui_inspect_export_flow import open_window, shot
    from test_workflow_generate_export import curated, publish

    from microlib_gui.core.images import load_labels
    from microlib_gui.core.jobs import DONE

    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    want = _fractions(load_labels(lib.entry_file(eid, L.INPAINTED.suffix)), 2)
    win = open_window(qtbot, lib.root)
    win.go_to_step("inspect")
    insp = win.panels["inspect"]
    qtbot.waitUntil(lambda: insp.gen_btn.isEnabled(), timeout=5000)
    assert not insp.match_vf.isChecked()  # opt-in

    def generate_and_stats():
        insp.gen_btn.click()
        qtbot.waitUntil(lambda: insp.gen_job.done, timeout=60_000)
        assert insp.gen_job.result.state == DONE, insp.gen_job.result.error
        qtbot.waitUntil(lambda: insp.status.text().startswith("✔ Volume") and insp.stats_btn.isEnabled(),
                        timeout=5000)
        insp.stats_btn.click()
        qtbot.waitUntil(lambda: insp.stats_job.done, timeout=120_000)
        assert insp.stats_job.result.state == DONE, insp.stats_job.result.error
        qtbot.waitUntil(lambda: insp.stats_view.result is not None and not insp.stats_view.note, timeout=5000)

    insp.size_spin.setValue(32)
    insp.match_vf.setChecked(True)
    generate_and_stats()
    assert "phase fractions matched to the training image" in insp.status.text()
    vol = tifffile.imread(lib.entry_file(eid, L.VOLUME.suffix))
    assert np.allclose(_fractions(vol, 2), want, atol=1e-4)
    banner = insp.stats_view.banner.text()
    raw = insp.stats_view.result["calibration"]["raw_vf"]
    assert "Phase fractions matched to the training image" in banner and f"{raw[1]:.3f} → {want[1]:.3f}" in banner
    insp.tabs.setCurrentIndex(1)
    shot(insp, artifacts / "inspect_match_vf.png")

    # unticked, generated again: the volume is the raw one, the statistics say nothing of matching
    insp.match_vf.setChecked(False)
    generate_and_stats()
    assert "matched" not in insp.status.text()
    assert np.allclose(_fractions(tifffile.imread(lib.entry_file(eid, L.VOLUME.suffix)), 2), raw, atol=1e-4)
    assert "matched" not in insp.stats_view.banner.text()
    shot(insp, artifacts / "inspect_match_vf_off.png")

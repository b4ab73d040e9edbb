"""MicroLib-layout export, training publication, generation into the entry, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from microlib_gui.cli import main
from microlib_gui.core import export, media
from microlib_gui.core.workflow import export as wf_export
from microlib_gui.core.workflow import generate as wf_generate
from microlib_gui.core.demo import CATALOG, render_micrograph
from microlib_gui.core.images import load_image, load_labels, save_png
from microlib_gui.core.jobs import run_inline
from microlib_gui.core.slicegan.fileformat import load_generator, read_params, save_generator
from microlib_gui.core.slicegan.nets import Critic, Generator
from microlib_gui.core.slicegan.presets import get_preset


def _fake_run(folder):
    """A run folder as the trainer leaves it: generator files + a checkpoint with the critic."""
    torch.manual_seed(0)
    params = get_preset("tiny").net_params(2)
    G = Generator(params, "nphase")
    save_generator(folder / "slicegan_Gen.pt", G, {"phases": [0, 255]})
    torch.save({"D": [Critic(params).state_dict()], "iteration": 3}, folder / "checkpoint.pt")
    return folder


@pytest.fixture
def trained_entry(demo_library, tmp_path):
    lib = demo_library
    e = lib.list_entries()[0]
    _, labels, _ = render_micrograph(CATALOG[0])
    lib.write_file(e.id, "_inpainted.png", writer=lambda p: save_png(p, (labels * 255).astype(np.uint8)),
                   produced_by="test")
    lib.set_annotations(e.id, {"vox_size": 0.25})
    from microlib_gui.core.workflow import train as wf_train

    run = wf_train.new_run(lib, e.id, wf_train.run_params(wf_train.inputs(lib, e.id), preset="tiny"))
    _fake_run(run.out)
    wf_train.publish(lib, e.id, run)
    return lib, e


def test_publish_training_writes_slicegan_files(trained_entry):
    lib, e = trained_entry
    G, meta = load_generator(lib.entry_file(e.id, "_Gen.pt"))
    assert meta["imtype"] == "nphase"
    assert read_params(lib.entry_file(e.id, "_params.data")).to_list() == G.params.to_list()
    disc = torch.load(lib.entry_file(e.id, "_Disc.pt"), weights_only=True)
    assert any(k.endswith("weight") for k in disc)
    prov = {p["file"]: p for p in lib.provenance(e.id)}
    assert prov[e.name + "_Gen.pt"]["produced_by"] == "train"


def test_generate_then_export_every_file_opens(trained_entry, tmp_path):
    lib, e = trained_entry
    events = []
    res = run_inline(wf_generate.run_job,
                     {"library_root": str(lib.root), "entry_id": e.id, "size": 40, "seed": 3, "device": "cpu"},
                     on_progress=events.append)
    assert res["shape"] == [40, 40, 40] and events
    vol = load_labels(lib.entry_file(e.id, ".tif"))
    assert vol.shape == (40, 40, 40) and set(np.unique(vol)) <= {0, 1}

    out = tmp_path / "out"
    results = wf_export.export(lib, [e.id], out, n_frames=8)
    items = {i.name: i for i in results[0].items}
    folder = out / e.name
    for suffix in (".tif", ".mp4", "_long.png", "_inpainted.png", "_original.png", "_Gen.pt", "_Disc.pt",
                   "_params.data"):
        assert items[e.name + suffix].status in ("written", "copied", "generated"), items[e.name + suffix]
        assert (folder / (e.name + suffix)).stat().st_size > 0
    assert items[e.name + "_inpaint.gif"].status == "missing"
    # every file opens
    t = tifffile.imread(folder / (e.name + ".tif"))
    assert t.dtype == np.uint8 and np.array_equal(t, vol)
    assert export.read_voxel_size(folder / (e.name + ".tif")) == pytest.approx(0.25)
    with tifffile.TiffFile(folder / (e.name + ".tif")) as tif:
        assert tif.imagej_metadata["unit"] == "um"
    frames, _ = media.read_mp4(folder / (e.name + ".mp4"))
    assert len(frames) == 8 and frames[0].std() > 10
    strip = load_image(folder / (e.name + "_long.png"), min_side=16)
    assert strip.shape[1] > 6 * strip.shape[0]
    assert load_image(folder / (e.name + "_original.png")).shape == (384, 384)
    G, _ = load_generator(folder / (e.name + "_Gen.pt"))
    assert G.params.nc == 2
    torch.load(folder / (e.name + "_Disc.pt"), weights_only=True)
    anns = json.loads((out / "data_anns.json").read_text())
    assert [r["name"] for r in anns.values()] == [e.name]
    # the folder and data_anns.json say which library (and entry) they hold
    manifest = json.loads((folder / (e.name + "_export.json")).read_text())
    assert manifest["library"]["uuid"] == lib.uuid == anns["1"]["library"] and manifest["entry"]["id"] == e.id


def test_export_of_untrained_entry_reports_missing_files(demo_library, tmp_path):
    e = demo_library.list_entries()[1]
    r = wf_export.export_entry(demo_library, e.id, tmp_path / "o")
    st = {i.name[len(e.name):]: i for i in r.items}
    assert st["_original.png"].status == "copied"
    assert st[".tif"].status == "missing" and "Generate" in st[".tif"].detail
    assert st["_Gen.pt"].status == "missing" and r.ok


def test_inpaint_gif_becomes_mp4(demo_library, tmp_path):
    from PIL import Image

    e = demo_library.list_entries()[0]

    def gif(p):
        ims = [Image.fromarray(np.full((64, 64), v, np.uint8)) for v in (10, 200)]
        ims[0].save(p, save_all=True, append_images=ims[1:], duration=100)

    demo_library.write_file(e.id, "_inpaint.gif", writer=gif, produced_by="test")
    r = wf_export.export_entry(demo_library, e.id, tmp_path / "o")
    st = {i.name[len(e.name):]: i.status for i in r.items}
    assert st["_inpaint.gif"] == "copied" and st["_inpaint.mp4"] == "generated"
    frames, _ = media.read_mp4(tmp_path / "o" / e.name / (e.name + "_inpaint.mp4"))
    assert len(frames) == 2


def test_volume_tiff_voxel_size_round_trip(tmp_path):
    vol = np.random.default_rng(0).integers(0, 3, (8, 9, 10)).astype(np.uint8)
    p = export.write_volume_tiff(tmp_path / "v.tif", vol, 1.5)
    assert np.array_equal(tifffile.imread(p), vol)
    assert export.read_voxel_size(p) == pytest.approx(1.5)
    p2 = export.write_volume_tiff(tmp_path / "w.tif", vol, None)
    assert export.read_voxel_size(p2) in (None, 1.0)


def test_cli_export_and_media(trained_entry, tmp_path, capsys):
    lib, e = trained_entry
    run_inline(wf_generate.run_job, {"library_root": str(lib.root), "entry_id": e.id, "size": 32,
                                              "device": "cpu"})
    out = tmp_path / "cli"
    rc = main(["--library", str(lib.root), "export", e.name, "--out", str(out), "--frames", "6", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert {i["status"] for i in doc["entries"][0]["items"]} >= {"written", "generated", "copied"}
    assert (out / e.name / (e.name + ".mp4")).exists()
    # without --out: the library's own folder
    assert main(["--library", str(lib.root), "export", e.name, "--no-media"]) == 0
    assert (lib.root / "export" / e.name / (e.name + ".tif")).exists()
    capsys.readouterr()

    rc = main(["media", str(lib.entry_file(e.id, ".tif")), "--mp4", str(tmp_path / "m.mp4"), "--long",
               str(tmp_path / "m.png"), "--frames", "4", "--size", "64"])
    assert rc == 0
    assert len(media.read_mp4(tmp_path / "m.mp4")[0]) == 4
    assert load_image(tmp_path / "m.png", min_side=16).shape[0] == 256


def test_cli_bad_input_gives_one_line(demo_library, tmp_path, capsys):
    assert main(["--library", str(demo_library.root), "export", "--out", str(tmp_path)]) == 2
    assert "ENTRY or pass --all" in capsys.readouterr().err
    assert main(["--library", str(demo_library.root), "export", "999", "--out", str(tmp_path)]) == 2
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    assert main(["media", str(tmp_path / "bad.tif"), "--mp4", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("microlib: error:") for line in err)
    assert main(["media", str(tmp_path / "bad.tif")]) == 2

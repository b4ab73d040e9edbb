"""Generate, statistics and export as workflow steps (headless): what each saves, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from microlib_gui.cli import main
from microlib_gui.core.demo import CATALOG, render_micrograph
from microlib_gui.core.export import ExportError
from microlib_gui.core.images import save_png
from microlib_gui.core.library import layout as L
from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.library import Library, StagedFile
from microlib_gui.core.workflow import export as wf_export
from microlib_gui.core.workflow import generate, stats
from microlib_gui.core.workflow.common import png_bytes
from microlib_gui.core.workflow.export import ExportConflictError


def fake_run(out: Path, seed: int, iteration: int = 2) -> None:
    """A run folder as the trainer leaves it (tiny network, random weights, a checkpoint with the critic)."""
    from microlib_gui.core.slicegan.fileformat import save_generator
    from microlib_gui.core.slicegan.nets import Critic, Generator
    from microlib_gui.core.slicegan.presets import get_preset

    torch.manual_seed(seed)
    params = get_preset("tiny").net_params(2)
    save_generator(out / "slicegan_Gen.pt", Generator(params, "nphase"), {"phases": [0, 255], "iteration": iteration})
    torch.save({"D": [Critic(params).state_dict()], "iteration": iteration}, out / "checkpoint.pt")
    (out / "run.json").write_text(json.dumps({"iteration": iteration}))


def publish(lib, entry_id: int, seed: int, iteration: int = 2):
    """A finished training run of the entry, published as the Train step publishes it."""
    from microlib_gui.core.jobs import DONE, Finished
    from microlib_gui.core.workflow import train

    run = train.new_run(lib, entry_id, train.run_params(train.inputs(lib, entry_id), preset="tiny", iters=2,
                                                        seed=seed))
    fake_run(run.out, seed, iteration)
    return train.finish(lib, entry_id, run, Finished(DONE, result={"iteration": iteration}))


def curated(root: Path, tmp_path: Path, name: str = "sample.png") -> tuple[Library, int]:
    """A library with one local entry (10001) made from ``name``, inpainted, with a voxel size."""
    lib = Library(root)
    raw, labels, _ = render_micrograph(CATALOG[0])
    src = tmp_path / name
    save_png(src, raw)
    e = lib.add_entry(src, source="local")
    lib.complete_step(e.id, "scalebar", annotations={"vox_size": 0.5})
    lib.complete_step(e.id, "inpaint", files=[StagedFile(L.INPAINTED.suffix, png_bytes((labels * 255).astype(np.uint8)))])
    return lib, e.id


def gen(lib, eid, size=32, seed=0):
    from microlib_gui.core.jobs import run_inline

    return run_inline(generate.run_job, {"library_root": str(lib.root), "entry_id": eid, "size": size, "seed": seed,
                                         "device": "cpu"})


def test_generate_follows_the_generator(tmp_path, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    inp = generate.inputs(lib, eid)
    assert not inp.ready and "Train step" in inp.reason
    publish(lib, eid, seed=1)
    inp = generate.inputs(lib, eid)
    assert inp.ready and inp.info["run"] == 1 and inp.info["iteration"] == 2
    assert generate.describe_generator(inp.info) == "run 1, 2 iterations"

    res = gen(lib, eid, seed=3)
    assert res["shape"] == [32, 32, 32] and Path(res["path"]) == lib.entry_file(eid, L.VOLUME.suffix)
    state = generate.volume_state(lib, eid)
    assert state.current and state.params["seed"] == 3 and state.params["generator"]["run"] == 1
    assert lib.get_entry(eid).steps["inspect"] == "done"
    assert not list(lib.entry_dir(eid).glob(".tmp-*"))  # the job's temporary file went into place
    runs = lib.runs(eid, kind=generate.RUN_KIND)
    assert [r["number"] for r in runs] == [1]

    # A new generator: the volume is from the old one, and says which.
    publish(lib, eid, seed=2)
    state = generate.volume_state(lib, eid)
    assert state.exists and state.stale and "run 1" in state.reason and "run 2" in state.reason
    assert lib.get_entry(eid).steps["inspect"] == "stale"
    gen(lib, eid)
    assert generate.volume_state(lib, eid).current and lib.get_entry(eid).steps["inspect"] == "done"


def test_generate_save_refuses_a_volume_of_a_replaced_generator(tmp_path, one_torch_thread):
    from microlib_gui.core.jobs import run_inline

    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    params = {"size": 32, "device": "cpu"}
    result = run_inline(generate.job, {"library_root": str(lib.root), "entry_id": eid, **params})
    assert Path(result["path"]).exists()
    publish(lib, eid, seed=2)  # published while the volume was being generated
    with pytest.raises(SliceGANError, match="generate again"):
        generate.save(lib, eid, result, params)
    assert not Path(result["path"]).exists() and not lib.entry_file(eid, L.VOLUME.suffix).exists()


def test_statistics_are_kept_and_know_their_volume(tmp_path, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    assert stats.saved(lib, eid).result is None
    assert not stats.inputs(lib, eid).ready
    publish(lib, eid, seed=1)
    gen(lib, eid)
    before = lib.get_entry(eid).steps
    res = stats.compute(lib, eid, r_max=8, tortuosity=False)
    kept = stats.saved(lib, eid)
    assert kept.current and kept.result["errors"] == res["errors"] and kept.result["entry"]["id"] == eid
    assert lib.entry_file(eid, L.STATS_PNG.suffix).read_bytes()[:4] == b"\x89PNG"
    assert lib.get_entry(eid).steps == before  # statistics change no step's status
    # a new volume: the kept statistics are from the earlier one
    gen(lib, eid, seed=5)
    kept = stats.saved(lib, eid)
    assert kept.result is not None and not kept.current and "earlier volume" in kept.reason
    # CLI twin: `microlib stats ENTRY` stores them with the entry
    assert main(["--library", str(lib.root), "stats", "10001", "--r-max", "8", "--no-tortuosity"]) == 0
    assert stats.saved(lib, eid).current


def test_export_says_whose_it_is_and_merges_this_librarys_entries(tmp_path, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path, name="my steel.png")
    publish(lib, eid, seed=1)
    gen(lib, eid)
    out = wf_export.default_folder(lib)
    assert out == lib.root / "export"
    res = wf_export.export(lib, [eid], out, media=False)
    folder = out / "microstructure10001"
    manifest = json.loads((folder / ("microstructure10001" + L.EXPORT_MANIFEST.suffix)).read_text())
    assert manifest["library"]["uuid"] == lib.uuid and manifest["entry"]["id"] == eid
    assert manifest["entry"]["original_filename"] == "my steel.png"
    anns = json.loads((out / "data_anns.json").read_text())
    assert anns["1"]["library"] == lib.uuid and anns["1"]["original_filename"] == "my steel.png"
    assert res[0].ok and lib.get_entry(eid).steps["export"] == "done"
    inp = wf_export.inputs(lib, eid)
    assert inp.last_current and inp.last["folder"] == str(folder)

    # a second entry of the same library into the same folder: data_anns.json lists both
    raw, labels, _ = render_micrograph(CATALOG[1])
    save_png(tmp_path / "second.png", raw)
    e2 = lib.add_entry(tmp_path / "second.png", source="local")
    wf_export.export(lib, [e2.id], out, media=False)
    anns = json.loads((out / "data_anns.json").read_text())
    assert [r["name"] for r in anns.values()] == ["microstructure10001", "microstructure10002"]

    # a new generator: the export is stale; exported again, the old volume is not in the folder
    publish(lib, eid, seed=2)
    inp = wf_export.inputs(lib, eid)
    assert not inp.last_current and lib.get_entry(eid).steps["export"] == "stale"
    assert "not current" in inp.missing[L.VOLUME.suffix]
    res = wf_export.export(lib, [eid], out, media=False)
    items = {i.name: i for i in res[0].items}
    assert items["microstructure10001.tif"].status == "missing" and "generate it again" in items[
        "microstructure10001.tif"].detail
    assert not (folder / "microstructure10001.tif").exists()
    assert (folder / "microstructure10001_Gen.pt").read_bytes() == lib.entry_file(eid, L.GENERATOR.suffix).read_bytes()


def test_export_refuses_another_librarys_entry(tmp_path, capsys, one_torch_thread):
    a, ea = curated(tmp_path / "A", tmp_path, name="demo-like.png")
    b, eb = curated(tmp_path / "B", tmp_path, name="real.png")
    assert ea == eb == 10001  # every library numbers its local entries from 10001
    out = wf_export.default_folder(a)
    wf_export.export(a, [ea], out, media=False)
    folder = out / "microstructure10001"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    anns_before = (out / "data_anns.json").read_bytes()

    found = wf_export.conflicts(b, [eb], out)
    assert len(found) == 2 and "another library" in found[0] and "demo-like.png" in found[0]
    assert "data_anns.json" in found[1]
    with pytest.raises(ExportConflictError):
        wf_export.export(b, [eb], out, media=False)
    # the CLI: one line, exit 2, nothing written
    rc = main(["--library", str(b.root), "export", "10001", "--out", str(out), "--no-media"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "another library" in err[0] and "--overwrite" in err[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert (out / "data_anns.json").read_bytes() == anns_before
    assert b.get_entry(eb).steps["export"] == "todo"

    # asked to, it overwrites: the folder and data_anns.json are then B's alone
    assert main(["--library", str(b.root), "export", "10001", "--out", str(out), "--no-media", "--overwrite"]) == 0
    manifest = wf_export.folder_manifest(folder, "microstructure10001")
    assert manifest["library"]["uuid"] == b.uuid and manifest["entry"]["original_filename"] == "real.png"
    assert "microstructure10001.tif" not in {p.name for p in folder.iterdir()}  # A's volume is gone
    anns = json.loads((out / "data_anns.json").read_text())
    assert [r["library"] for r in anns.values()] == [b.uuid]


def test_export_refuses_unknown_files_and_the_library_itself(tmp_path):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    out = tmp_path / "out"
    (out / "microstructure10001").mkdir(parents=True)
    (out / "microstructure10001" / "microstructure10001.tif").write_bytes(b"somebody's volume")
    assert "not exported from this library" in wf_export.conflicts(lib, [eid], out)[0]
    with pytest.raises(ExportError, match="entry folders"):
        wf_export.export(lib, [eid], lib.root, media=False)
    with pytest.raises(ExportError, match="entry folders"):
        wf_export.export(lib, [eid], lib.entry_dir(eid), media=False)


def test_cli_generate_into_an_entry(tmp_path, capsys, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    assert main(["--library", str(lib.root), "generate", "10001", "--size", "32"]) == 2
    assert "Train step" in capsys.readouterr().err
    publish(lib, eid, seed=1)
    assert main(["--library", str(lib.root), "generate", "microstructure10001", "--size", "32", "--device", "cpu",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shape"] == [32, 32, 32] and doc["generator"]["run"] == 1
    assert generate.volume_state(lib, eid).current
    assert main(["--library", str(lib.root), "generate", "10001", "--size", "32", "--out", "x.tif"]) == 2

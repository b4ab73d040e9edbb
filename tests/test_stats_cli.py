"""``microlib stats`` and ``microlib report``, and per-entry reports stored in a library."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from microlib_gui.cli import main
from microlib_gui.core.images import save_png
from microlib_gui.core.workflow import stats as stats_step


def _blobs(shape, seed, thr=0.5):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), 2.0) > thr).astype(np.uint8)


@pytest.fixture
def pair(tmp_path):
    img = tmp_path / "train.png"
    vol = tmp_path / "vol.tif"
    save_png(img, _blobs((120, 120), 1) * 255)
    tifffile.imwrite(vol, _blobs((32, 32, 32), 2) * 255)
    return img, vol


def test_stats_json(pair, capsys):
    img, vol = pair
    assert main(["stats", str(img), str(vol), "--json", "--r-max", "12", "--tau-side", "16"]) == 0
    out = json.loads(capsys.readouterr().out)
    for part in ("image2d", "volume3d"):
        assert len(out[part]["volume_fraction"]) == 2
        assert 0 < out[part]["surface_area"] < 1
        assert len(out[part]["two_point"]) == 2 and len(out[part]["two_point"][0]) == 13
        assert out[part]["two_point"][1][0] == pytest.approx(out[part]["volume_fraction"][1])
    assert len(out["errors"]["volume_fraction"]) == 2 and isinstance(out["errors"]["surface_area"], float)
    assert out["volume3d"]["tortuosity"]["side"] == 16
    assert {"x", "y", "z", "spread"} <= set(out["volume3d"]["percolating_fraction"][0])


def test_stats_text_and_plot(pair, tmp_path, capsys):
    img, vol = pair
    plot = tmp_path / "cmp.png"
    assert main(["stats", str(img), str(vol), "--plot", str(plot), "--no-tortuosity", "--r-max", "8"]) == 0
    text = capsys.readouterr().out
    assert "volume fraction" in text and "surface area" in text
    # Two unrelated blob fields: volume fractions agree, the surface area does not (6.2% > 5%).
    assert "FLAGGED: surface area differs by 6.2%" in text and "OK:" not in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_text_says_ok_when_2d_and_3d_agree(tmp_path, capsys):
    # The 2D image is every section of the volume along its three axes: nothing differs by 5%.
    vol = _blobs((40, 40, 40), 2)
    sections = [vol[i] for i in range(40)] + [vol[:, i] for i in range(40)] + [vol[:, :, i] for i in range(40)]
    img, vpath = tmp_path / "sections.png", tmp_path / "vol.tif"
    save_png(img, np.concatenate(sections, axis=1) * 255)
    tifffile.imwrite(vpath, vol * 255)
    assert main(["stats", str(img), str(vpath), "--no-tortuosity", "--r-max", "8"]) == 0
    text = capsys.readouterr().out
    assert "OK: every error is within 5%." in text and "FLAGGED" not in text


def test_stats_text_flags_a_volume_that_lost_its_structure(pair, tmp_path, capsys):
    img, _ = pair
    vol = tmp_path / "mostly_white.tif"
    tifffile.imwrite(vol, _blobs((32, 32, 32), 2, thr=0.56) * 255)  # phase 1 almost gone
    assert main(["stats", str(img), str(vol), "--no-tortuosity", "--r-max", "8"]) == 0
    text = capsys.readouterr().out
    assert "FLAGGED: phase 0 volume fraction differs by 97.3%" in text and "OK:" not in text
    assert "Likely cause:" in text


@pytest.mark.parametrize("args", [
    ["stats", "missing.png", "missing.tif"],
    ["stats", "{img}", "{img}"],  # a 2D image where a volume is expected
    ["stats", "{img}", "{vol}", "--r-max", "0"],
])
def test_stats_bad_input_exits_2(pair, capsys, args):
    img, vol = pair
    argv = [a.format(img=img, vol=vol) for a in args]
    try:
        rc = main(argv)
    except SystemExit as exc:  # a usage error (an option's value out of range)
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("microlib") and "error:" in err and err.count("\n") == 1, err


def _entry_with_files(library, seed, vf_thr=0.5):
    e = library.add_entry(_png_bytes(seed))
    save = library.write_file
    img = _blobs((100, 100), seed, vf_thr) * 255
    save(e.id, "_inpainted.png", writer=lambda p: save_png(p, img.astype(np.uint8)), produced_by="test")
    vol = _blobs((24, 24, 24), seed + 100, vf_thr) * 255
    save(e.id, ".tif", writer=lambda p: tifffile.imwrite(p, vol.astype(np.uint8)), produced_by="test")
    return e


def _png_bytes(seed):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((_blobs((80, 80), seed) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_entry_report_stored_and_reused(library):
    e = _entry_with_files(library, 3)
    res = stats_step.compute(library, e.id, r_max=8, tortuosity=False)
    js = library.entry_file(e.id, "_stats.json")
    png = library.entry_file(e.id, "_stats.png")
    assert json.loads(js.read_text())["errors"] == res["errors"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not library.is_stale(e.id, "_stats.json")
    prov = {p["file"]: p for p in library.provenance(e.id)}
    assert prov[js.name]["produced_by"] == "stats"
    assert [i["file"] for i in prov[js.name]["inputs"]] == [e.name + "_inpainted.png", e.name + ".tif"]
    mtime = js.stat().st_mtime_ns
    assert stats_step.saved(library, e.id).current  # up to date: a report reuses it
    assert js.stat().st_mtime_ns == mtime
    # A new volume makes the stored stats stale.
    library.write_file(e.id, ".tif", writer=lambda p: tifffile.imwrite(p, _blobs((24, 24, 24), 9) * 255),
                       produced_by="test")
    assert library.is_stale(e.id, "_stats.json")


def test_report_command(library, tmp_path, capsys):
    a = _entry_with_files(library, 4)
    b = _entry_with_files(library, 5, vf_thr=0.52)
    c = library.add_entry(_png_bytes(6))  # no training image, no volume
    out = tmp_path / "rep"
    assert main(["report", str(library.root), "--out", str(out), "--no-tortuosity", "--r-max", "8"]) == 0
    text = capsys.readouterr().out
    assert f"skipped {c.name}" in text
    assert (out / "library_stats.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "library_stats.csv").open()))
    by_name = {r["name"]: r for r in rows}
    assert by_name[a.name]["status"] == "ok" and by_name[b.name]["status"] == "ok"
    assert by_name[c.name]["status"].startswith("skipped: no")
    assert 0 < float(by_name[a.name]["vf_2d"]) <= 0.5  # the rarest phase is reported
    assert library.entry_file(a.id, "_stats.json").exists()
    assert main(["report", str(tmp_path / "nolib"), "--out", str(out)]) == 2


def test_volume_missing_a_phase_keeps_phase_meaning(pair, tmp_path, capsys):
    img, _ = pair
    vol = tmp_path / "all_white.tif"
    tifffile.imwrite(vol, np.full((16, 16, 16), 255, np.uint8))  # a generator that lost phase 0
    assert main(["stats", str(img), str(vol), "--json", "--no-tortuosity", "--r-max", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["volume3d"]["volume_fraction"] == [0.0, 1.0]
    assert out["flag"]["flagged"]

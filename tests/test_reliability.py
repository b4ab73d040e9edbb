"""Reliability: kills at any moment, resource faults, untrusted paths, hostile redirects.

Each test here is a row of docs/reliability.md; `test_reliability_doc_names_real_tests`
keeps that table true.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "microlib_gui.cli"]


def _tiny_generator(path: Path, seed: int = 0) -> Path:
    import torch

    from microlib_gui.core.slicegan.fileformat import save_generator
    from microlib_gui.core.slicegan.nets import Generator
    from microlib_gui.core.slicegan.presets import get_preset

    torch.manual_seed(seed)
    G = Generator(get_preset("tiny").net_params(2))
    return save_generator(path, G)


def _kill_after(cmd, delay_s, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(delay_s)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# -- kills ------------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [1.5, 3.0, 4.5])
def test_kill_during_generation_leaves_no_partial_volume(tmp_path, delay):
    gen = _tiny_generator(tmp_path / "tiny_Gen.pt")
    out = tmp_path / "vol.tif"
    rc, _, err = _kill_after([*CLI, "generate", str(gen), "--size", "192", "--out", str(out),
                              "--device", "cpu"], delay)
    if out.exists():  # it finished before the kill: then it must be whole
        vol = tifffile.imread(out)
        assert vol.shape == (192, 192, 192), (rc, err)
    else:
        assert rc == -signal.SIGKILL
    # An unfinished temporary may be left by the kill, but only under a .tmp- name.
    assert {p.name for p in tmp_path.glob("*.tif") if not p.name.startswith(".tmp-")} <= {"vol.tif"}


def _entry_with_volume(library):
    from microlib_gui.core.demo import ensure_demo_entries
    from microlib_gui.core.export import write_volume_tiff
    from microlib_gui.core.images import save_png

    ensure_demo_entries(library)
    eid = library.list_entries()[0].id
    labels = (np.indices((64, 64)).sum(0) // 8 % 2).astype(np.uint8)
    library.write_file(eid, "_inpainted.png", writer=lambda p: save_png(p, labels * 255), produced_by="test")
    vol = (np.indices((64, 64, 64)).sum(0) // 8 % 2).astype(np.uint8)
    library.write_file(eid, ".tif", writer=lambda p: write_volume_tiff(p, vol, 0.5), produced_by="test")
    library.set_annotations(eid, {"vox_size": 0.5, "data_type": "twophase"})
    return eid


@pytest.mark.parametrize("delay", [2.0, 4.0])
def test_kill_during_export_leaves_only_whole_files(library, tmp_path, delay):
    import imageio.v3 as iio

    eid = _entry_with_volume(library)
    out = tmp_path / "export"
    _kill_after([*CLI, "--library", str(library.root), "export", str(eid), "--out", str(out),
                 "--frames", "48"], delay)
    assert library.integrity_check() == "ok"
    for f in out.rglob("*"):
        if f.is_dir() or f.name.startswith(".tmp-"):
            continue  # unfinished temporaries never carry a finished file's name
        if f.suffix == ".png":
            assert iio.imread(f).size > 0, f
        elif f.suffix == ".tif":
            assert tifffile.imread(f).ndim == 3, f
        elif f.suffix == ".mp4":
            from microlib_gui.core.media import read_mp4

            frames, _ = read_mp4(f)
            assert len(frames) == 48, f
        elif f.suffix == ".json":
            import json

            json.loads(f.read_text())
    # Exporting again completes the job.
    r = subprocess.run([*CLI, "--library", str(library.root), "export", str(eid), "--out", str(out),
                        "--frames", "48"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / library.get_entry(eid).name / f"{library.get_entry(eid).name}.mp4").exists()


@pytest.fixture
def slow_site(make_doitpoms_site):
    from conftest import load_doitpoms_site_module

    ids = sorted(load_doitpoms_site_module().RAW_FOR_ID)
    site = make_doitpoms_site(sleep_s=0.6)
    for did in ids:  # every large image answers slowly: the kill lands mid-import
        site.faults[f"micrographs/large/{did:06d}.jpg"] = ["sleep"]
    site.ids = ids
    return site


def test_kill_during_bulk_import_then_resume(slow_site, tmp_path):
    from microlib_gui.core.images import load_image
    from microlib_gui.core.library import Library

    lib_path = tmp_path / "lib"
    env = {**os.environ, "MICROLIB_CACHE": str(tmp_path / "cache")}
    ids = [str(i) for i in slow_site.ids]
    cmd = [*CLI, "--library", str(lib_path), "doitpoms", "import", *ids, "--base-url", slow_site.base_url]
    _kill_after(cmd, 4.0, env=env)
    lib = Library(lib_path)
    assert lib.integrity_check() == "ok"
    before = lib.list_entries()
    assert len(before) < len(ids), "the import finished before the kill; slow the site down"
    for e in before:  # every entry that made it in is whole
        assert load_image(lib.original_path(e.id)).shape[0] > 0
    r = subprocess.run([*CLI, "--library", str(lib_path), "doitpoms", "import", "--resume",
                        "--base-url", slow_site.base_url, *ids], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(e.doitpoms_id for e in Library(lib_path).list_entries()) == sorted(slow_site.ids)


# -- resource faults ----------------------------------------------------------------------------
def _limit_file_size(max_bytes):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return preexec


def test_disk_full_while_writing_a_volume(tmp_path):
    gen = _tiny_generator(tmp_path / "tiny_Gen.pt")
    out = tmp_path / "vol.tif"
    out.write_bytes(b"an older volume the user keeps")
    r = subprocess.run([*CLI, "generate", str(gen), "--size", "160", "--out", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(1_000_000))
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # progress lines come before the one-line error
    assert "Traceback" not in r.stderr and last.startswith("microlib: error: ")
    assert "too large" in last or "disk space" in last
    assert out.read_bytes() == b"an older volume the user keeps"  # nothing already saved is lost
    assert not list(tmp_path.glob(".tmp-*"))


def test_host_out_of_memory_in_a_job_is_a_clear_message():
    from microlib_gui.core.jobs import FAILED, ProcessJob

    job = ProcessJob("microlib_gui.core.jobs:_selftest_allocate", {"gigabytes": 64}).start()
    fin = job.wait(timeout=120)
    assert fin is not None and fin.state == FAILED
    assert fin.error.startswith("out of memory")


def test_worker_killed_by_the_system_is_reported(tmp_path):
    from microlib_gui.core.jobs import FAILED, ProcessJob

    job = ProcessJob("microlib_gui.core.jobs:_selftest_sleep", {"seconds": 60}).start()
    time.sleep(1.0)
    os.kill(job.pid, signal.SIGKILL)
    fin = job.wait(timeout=30)
    assert fin.state == FAILED and "killed" in fin.error


# -- untrusted names and paths -------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["/../../escape.png", "\\..\\x", "../x.png", "_ok/../../x"])
def test_entry_file_names_cannot_escape(library, suffix):
    from microlib_gui.core.errors import StoreError

    with pytest.raises(StoreError):
        library.entry_file(10001, suffix)


@pytest.mark.parametrize("did", [0, -3, 10_001, 10**12])
def test_doitpoms_ids_out_of_range_are_refused(library, tmp_path, did):
    from PIL import Image

    from microlib_gui.core.errors import StoreError

    p = tmp_path / "m.png"
    Image.fromarray(np.zeros((80, 80), np.uint8)).save(p)
    with pytest.raises(StoreError, match="DoITPoMS id"):
        library.add_entry(p, source="doitpoms", doitpoms_id=did)
    assert not [d for d in library.root.iterdir() if d.is_dir()]


@pytest.mark.parametrize("key", ["../../etc", "microstructure../x", "doitpoms:../1", "1; DROP TABLE entries"])
def test_entry_lookups_by_name_cannot_escape(library, key):
    from microlib_gui.core.errors import StoreError

    with pytest.raises(StoreError):
        library.find_entry(key)


# -- network: redirects to another host ------------------------------------------------------------
def test_redirect_to_another_host_is_refused(tmp_path):
    from pytest_httpserver import HTTPServer
    from werkzeug.wrappers import Response

    from microlib_gui.core.doitpoms import Cache, Client
    from microlib_gui.core.doitpoms.client import DoitpomsError

    other = HTTPServer(host="127.0.0.1", threaded=True)
    other.start()
    other.expect_request(re.compile(".*")).respond_with_data("<html>evil</html>")
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    srv.expect_request("/miclib/full_record.php").respond_with_handler(
        lambda req: Response("", status=302, headers={"Location": other.url_for("/full_record.php?id=1")}))
    srv.expect_request("/miclib/browse.php").respond_with_handler(
        lambda req: Response("", status=301, headers={"Location": "/miclib/browse2.php"}))
    srv.expect_request("/miclib/browse2.php").respond_with_data("<html><body>moved here</body></html>")
    try:
        c = Client(srv.url_for("/miclib/"), cache=Cache(tmp_path / "cache"), retries=0, timeout=(2, 2))
        with pytest.raises(DoitpomsError, match="redirected to another host"):
            c.fetch("full_record.php?id=1")
        assert len(other.log) == 0  # nothing was fetched from the other host
        assert b"moved here" in c.fetch("browse.php")  # a redirect within the site is followed
        assert c.cache.get("full_record.php?id=1") is None
    finally:
        for s in (srv, other):
            s.clear()
            s.stop()


# -- the table in docs/reliability.md -----------------------------------------------------------------
def test_reliability_doc_names_real_tests():
    doc = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    refs = re.findall(r"`(tests/test_\w+\.py)::(\w+)`", doc)
    assert len(refs) >= 20
    for path, name in refs:
        text = (REPO / path).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", text, re.M), f"{path}::{name} named in docs/reliability.md"


# -- an OCR engine that fails or hangs --------------------------------------------------------------
@pytest.mark.parametrize("behaviour", ["exit 3", "sleep 30", "echo garbage"])
def test_scale_bar_detection_survives_a_broken_ocr_engine(tmp_path, monkeypatch, shared_data, behaviour):
    # A real program named tesseract that fails, hangs or talks nonsense comes first on PATH:
    # detection still finds the bar, reads nothing wrong, and returns within the time limit.
    import time

    from microlib_gui.core.scalebar import ocr
    from microlib_gui.core import scalebar as sb
    from microlib_gui.core.images import load_image

    fake = tmp_path / "bin" / "tesseract"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat > /dev/null\n{behaviour}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(ocr, "TIMEOUT_S", 1.0)
    ocr.tesseract_path.cache_clear()
    try:
        img = load_image(shared_data / "rawlike" / "raw006.png").data  # a label only OCR reads
        t0 = time.monotonic()
        det = sb.detect_scale_bar(img)
        assert time.monotonic() - t0 < 2 * len(sb.OCR_SCALES) * 1.0 + 5  # every call cut at its limit
        assert abs(det.bar_length_px - 89.26) < 1.5
        assert det.value_um is None and det.label_reader is None
    finally:
        ocr.tesseract_path.cache_clear()

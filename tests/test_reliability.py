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


def _temps(folder: Path) -> dict[Path, int]:
    """The ``.tmp-*`` files of unfinished atomic writes under ``folder``, with their sizes now."""
    out = {}
    for p in folder.rglob(".tmp-*"):
        try:
            out[p] = p.stat().st_size
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return out


def _temp_of(temp: Path, target: str) -> bool:
    """Whether ``temp`` is an atomic write's temporary for a file named ``target``.

    Temporaries are ``.tmp-<the target's stem, maybe shortened>-<random><the target's suffix>``.
    """
    name = Path(target)
    stem = temp.name[len(".tmp-"):].rsplit("-", 1)[0]
    return temp.suffix == name.suffix and bool(stem) and name.stem.startswith(stem)


def _kill_mid_write(cmd, folder: Path, target: str, min_bytes: int = 0, env=None, timeout_s: float = 240.0):
    """Run ``cmd``; SIGKILL it the moment an atomic write of a file named ``target`` is under way in ``folder``.

    "Under way": its ``.tmp-*`` temporary exists and holds at least ``min_bytes``.
    Synchronised on that file, not on a delay, so the kill lands mid-write however
    fast or slow the machine is. Returns ``(stderr, {temp: size} seen just before the
    kill, the temp that triggered it)``; the test fails if the command ended first
    (the kill would prove nothing).
    """
    err = folder.parent / f".{folder.name}-stderr.txt"
    with open(err, "wb") as log:  # not a pipe: a full pipe would stall the command
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    end = time.monotonic() + timeout_s
    hit = None
    try:
        while hit is None:
            temps = _temps(folder) if folder.exists() else {}
            hit = next((t for t, n in temps.items() if _temp_of(t, target) and n >= min_bytes), None)
            if hit is not None:
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert proc.poll() is None, (f"the command ended (code {proc.returncode}) before the write of {target} "
                                         f"was under way: {err.read_text(errors='replace')[-500:]}")
            assert time.monotonic() < end, f"the write of {target} did not get under way in time"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the command finished before the kill landed"
    return err.read_text(errors="replace"), temps, hit


# -- kills ------------------------------------------------------------------------------------
@pytest.mark.parametrize("min_bytes", [0, 1, 4 << 20], ids=["temp-created", "first-bytes", "4MB-written"])
def test_kill_during_generation_leaves_no_partial_volume(tmp_path, min_bytes):
    gen = _tiny_generator(tmp_path / "tiny_Gen.pt")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "vol.tif"
    out.write_bytes(b"an older volume the user keeps")
    err, temps, tmp = _kill_mid_write([*CLI, "generate", str(gen), "--size", "256", "--out", str(out),
                                       "--device", "cpu"], out_dir, "vol.tif", min_bytes)
    # The kill landed mid-write: the temporary beside the target held part of the new volume...
    assert tmp.parent == out_dir and tmp.suffix == ".tif" and min_bytes <= temps[tmp] < 256**3, (temps, err)
    # ...and the target is still the old file: the partial volume never took its name.
    assert out.read_bytes() == b"an older volume the user keeps"
    assert {p.name for p in out_dir.iterdir() if not p.name.startswith(".tmp-")} == {"vol.tif"}
    # Generating again replaces it with the whole volume.
    r = subprocess.run([*CLI, "generate", str(gen), "--size", "64", "--out", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert tifffile.imread(out).shape == (64, 64, 64)


def _entry_with_volume(root: Path, tmp_path: Path):
    """A curated entry with a published generator and a current 96³ volume (as Inspect → Generate leaves it)."""
    from test_workflow_generate_export import curated, gen, publish

    library, eid = curated(root, tmp_path)
    publish(library, eid, seed=1)
    gen(library, eid, size=96)
    return library, eid


@pytest.mark.parametrize("suffix,min_bytes", [(".mp4", 0), (".mp4", 256 << 10), ("_long.png", 0)],
                         ids=["movie-started", "movie-half-written", "strip-started"])
def test_kill_during_export_leaves_only_whole_files(tmp_path, one_torch_thread, suffix, min_bytes):
    import imageio.v3 as iio

    library, eid = _entry_with_volume(tmp_path / "lib", tmp_path)
    name = library.get_entry(eid).name
    committed = library.entry_signature(eid)
    out = tmp_path / "export"
    cmd = [*CLI, "--library", str(library.root), "export", str(eid), "--out", str(out), "--frames", "48"]
    err, temps, tmp = _kill_mid_write(cmd, out, name + suffix, min_bytes)
    # The kill landed mid-write: the file being rendered exists only as its temporary.
    assert tmp.parent == out / name and temps[tmp] >= min_bytes, (temps, err)
    assert not (out / name / (name + suffix)).exists()
    # The library is whole and keeps what was committed: an export reads it, never writes it.
    assert library.integrity_check() == "ok" and library.entry_signature(eid) == committed
    done = [f for f in out.rglob("*") if f.is_file() and not f.name.startswith(".tmp-")]
    assert any(f.suffix == ".tif" for f in done)  # files before the killed one were finished
    for f in done:  # and every file under a finished name opens whole
        if f.suffix == ".png":
            assert iio.imread(f).size > 0, f
        elif f.suffix == ".tif":
            assert tifffile.imread(f).shape == (96, 96, 96), f
        elif f.suffix == ".mp4":
            from microlib_gui.core.media import read_mp4

            frames, _ = read_mp4(f)
            assert len(frames) == 48, f
        elif f.suffix == ".json":
            import json

            json.loads(f.read_text())
    # Exporting again completes the job.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for s in (".mp4", "_long.png", ".tif"):
        assert (out / name / (name + s)).exists()


@pytest.fixture
def slow_site(make_doitpoms_site):
    from conftest import load_doitpoms_site_module

    ids = sorted(load_doitpoms_site_module().RAW_FOR_ID)
    site = make_doitpoms_site(sleep_s=0.6)
    for did in ids:  # every large image answers slowly: the kill lands mid-import
        site.faults[f"micrographs/large/{did:06d}.jpg"] = ["sleep"]
    site.ids = ids
    return site


def _committed_ids(lib_path: Path) -> list[int]:
    """Entries committed so far, read as another process would (read-only, while the import writes)."""
    import sqlite3

    db = lib_path / "library.sqlite"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in con.execute("SELECT id FROM entries ORDER BY id")]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is still being made
        return []


def test_kill_during_bulk_import_then_resume(slow_site, tmp_path):
    from microlib_gui.core.images import load_image
    from microlib_gui.core.library import Library

    lib_path = tmp_path / "lib"
    env = {**os.environ, "MICROLIB_CACHE": str(tmp_path / "cache")}
    ids = [str(i) for i in slow_site.ids]
    cmd = [*CLI, "--library", str(lib_path), "doitpoms", "import", *ids, "--base-url", slow_site.base_url]
    with open(tmp_path / "import.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    try:  # killed as soon as the first micrograph is committed: the others are still on their way
        end = time.monotonic() + 240
        while not (at_kill := _committed_ids(lib_path)):
            assert proc.poll() is None, (tmp_path / "import.log").read_text()
            assert time.monotonic() < end, "no entry committed in time"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import finished before the kill landed"
    lib = Library(lib_path)
    assert lib.integrity_check() == "ok"
    before = lib.list_entries()
    assert set(at_kill) <= {e.id for e in before}, "an entry committed before the kill was lost"
    assert len(before) < len(ids), "the kill did not land mid-import"
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
    end = time.monotonic() + 60
    while job.last_progress is None and time.monotonic() < end:  # killed once at work, not while starting
        job.poll()
        time.sleep(0.02)
    os.kill(job.pid, signal.SIGKILL)
    fin = job.wait(timeout=30)
    assert fin.state == FAILED and "killed" in fin.error
    assert not Path(f"/proc/{job.pid}").exists()  # reaped: no zombie left


def test_a_finished_worker_leaves_no_zombie():
    from microlib_gui.core.jobs import DONE, ProcessJob

    job = ProcessJob("microlib_gui.core.jobs:_selftest_sleep", {"seconds": 0.2}).start()
    fin = job.wait(timeout=60)
    assert fin is not None and fin.state == DONE
    # wait() returns once the process has exited and been reaped: no /proc entry, not even a zombie's
    assert not Path(f"/proc/{job.pid}").exists()


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

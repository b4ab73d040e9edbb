"""Hostile files and servers: nothing hangs, nothing runs away with memory, every refusal is one line.

The classes of the reliability issue, each with cases of our own: paths that are not regular
files (named pipes, links to ``/dev/zero``, folders, files of gigabytes), a server that sends a
byte at a time, TIFFs of tens of thousands of pages, decompression bombs (PNG, TIFF, a zipped
generator), model files declaring more than they hold, volumes and latents beyond the machine,
outputs that cannot be written, ``train --resume`` without a run, float images at the ends of
their range. Everything runs for real: real pipes, a real slow server, the real ``microlib``
process, whose peak memory is measured (``wait4``'s maximum resident size).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import badfiles

CLI = [sys.executable, "-m", "microlib_gui.cli"]
#: Memory a refusal may take above a process that only imported everything (torch, the
#: statistics, ...); every bomb below would take a gigabyte or more.
MARGIN_MB = 150


@dataclass
class Ran:
    rc: int
    out: str
    err: str
    seconds: float
    rss_mb: float

    def one_line_error(self, *fragments: str) -> str:
        """Assert exit 2 with one ``microlib: error:`` line holding every fragment; returns the line."""
        lines = self.err.strip().splitlines()
        assert self.rc == 2, (self.rc, self.err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("microlib: error: "), self.err[-2000:]
        assert "Traceback" not in self.err and "internal error" not in self.err
        for f in fragments:
            assert f in lines[0], (f, lines[0])
        return lines[0]


# The measured process is forked by this small launcher, not by pytest: a process's peak memory
# counts the memory of the process it was forked from until it runs its program.
_LAUNCH = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run(args, timeout: float = 120, env: dict | None = None, code: str | None = None) -> Ran:
    """Run ``microlib ARGS`` (or ``python -c CODE ARGS``) and measure its peak memory.

    A process still running after ``timeout`` seconds is killed and the test fails: a hang.
    """
    py_args = ["-c", code, *args] if code else ["-m", "microlib_gui.cli", *args]
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rc"
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(report), *py_args], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, env=full_env, start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            seconds = time.monotonic() - t0
            out.seek(0)
            err.seek(0)
            text_out, text_err = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if seconds >= timeout or not report.exists():
            pytest.fail(f"hung: {' '.join(map(str, args))[:200]} still running after {timeout:g} s\n"
                        f"{text_out[-1500:]}\n{text_err[-1500:]}")
        rc, kb = report.read_text().split()
    return Ran(int(rc), text_out, text_err, seconds, int(kb) / 1024)


@pytest.fixture(scope="module")
def idle_mb() -> float:
    """Peak memory of a process that imports every reader and the CLI, and reads nothing."""
    r = run([], code="import microlib_gui.cli, torch, tifffile, scipy.ndimage\n" + CORE_SWEEP)
    assert r.rc == 0, r.err
    return r.rss_mb


def _tiny_generator(folder: Path, name: str = "tiny") -> Path:
    import torch

    from microlib_gui.core.slicegan.fileformat import save_generator
    from microlib_gui.core.slicegan.nets import Generator
    from microlib_gui.core.slicegan.presets import get_preset

    torch.manual_seed(0)
    return save_generator(folder / f"{name}_Gen.pt", Generator(get_preset("tiny").net_params(2)))


def _special(path: Path, kind: str) -> Path:
    """A path that is not a regular file: a named pipe, a link to /dev/zero, a folder."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        raise ValueError(kind)
    return path


KINDS = {"fifo": "named pipe", "devzero": "device", "folder": "folder"}


# -- paths that are not regular files ---------------------------------------------------------
CORE_SWEEP = r"""
import json, sys, time
from pathlib import Path
from microlib_gui.core.errors import MicrolibError
from microlib_gui.core import images, media
from microlib_gui.core.inpaint import data as inpaint_data
from microlib_gui.core.stats.compare import load_intensity
from microlib_gui.core.slicegan import fileformat, generate
from microlib_gui.core.workflow.browse import annotation_file_kind

readers = {
    "load_image": images.load_image, "load_labels": images.load_labels, "load_volume": media.load_volume,
    "load_mask": inpaint_data.load_mask, "load_inpaint_image": inpaint_data.load_inpaint_image,
    "load_intensity": load_intensity, "read_params": fileformat.read_params,
    "load_state_dict": fileformat.load_state_dict, "load_generator": fileformat.load_generator,
    "load_latent": generate.load_latent, "annotation_file_kind": annotation_file_kind,
}
out = {}
for arg in sys.argv[1:]:
    reader, path = arg.split("=", 1)
    print("reading", arg, flush=True, file=sys.stderr)
    t = time.monotonic()
    try:
        readers[reader](path)
        res = ["read", ""]
    except MicrolibError as exc:
        res = [type(exc).__name__, str(exc)]
    out[arg] = res + [time.monotonic() - t]
print(json.dumps(out))
"""


def test_every_reader_refuses_pipes_devices_and_folders_before_reading(tmp_path, idle_mb):
    """Images, masks, labels, volumes, params, generators, latents, annotation files: a named pipe
    (reading it would wait forever), a link to /dev/zero (it never ends) and a folder are refused
    by name and kind at once, in one line."""
    gen = _tiny_generator(tmp_path)
    names = {"load_image": "x.png", "load_labels": "x.png", "load_volume": "x.tif", "load_mask": "m.png",
             "load_inpaint_image": "x.png", "load_intensity": "x.tif", "read_params": "x_params.data",
             "load_state_dict": "x_Gen.pt", "load_generator": "g_Gen.pt", "load_latent": "z.npy",
             "annotation_file_kind": "anns.json"}
    args = []
    for kind in KINDS:
        d = tmp_path / kind
        d.mkdir()
        (d / "g_params.data").write_bytes(gen.with_name("tiny_params.data").read_bytes())
        for reader, name in names.items():
            p = d / name
            if not os.path.lexists(p):
                _special(p, kind)
            args.append(f"{reader}={p}")
    r = run(args, code=CORE_SWEEP, timeout=90)
    assert r.rc == 0, r.err[-3000:]
    res = json.loads(r.out)
    assert len(res) == len(names) * len(KINDS)
    for arg, (etype, msg, seconds) in res.items():
        kind = Path(arg.split("=", 1)[1]).parent.name
        name = Path(arg).name
        assert etype != "read", arg
        assert msg.startswith(name + ": ") and KINDS[kind] in msg and "\n" not in msg, (arg, msg)
        assert seconds < 1.0, (arg, seconds)
    assert r.rss_mb < idle_mb + MARGIN_MB, (r.rss_mb, idle_mb)  # nothing of /dev/zero was read


CLI_SWEEP = r"""
import contextlib, io, json, sys
from microlib_gui.cli import main
out = {}
for line in sys.argv[1:]:
    argv = json.loads(line)
    print("running", argv, flush=True, file=sys.stderr)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    out[line] = [rc, err.getvalue()]
print(json.dumps(out))
"""


def _sweep(commands: list[list[str]], timeout: float = 300) -> tuple[dict, Ran]:
    r = run([json.dumps(c) for c in commands], code=CLI_SWEEP, timeout=timeout)
    assert r.rc == 0, r.err[-3000:]
    return {tuple(json.loads(k)): v for k, v in json.loads(r.out).items()}, r


def test_every_command_answers_a_pipe_or_dev_zero_in_one_line(tmp_path, idle_mb):
    """Each command that reads a user's file, given a named pipe or a link to /dev/zero for it,
    exits 2 with one line naming the file and what it is: never waits, never fills memory."""
    gen = _tiny_generator(tmp_path)
    ok_img = tmp_path / "ok.png"
    Image.fromarray((np.indices((96, 96)).sum(0) // 8 % 2 * 255).astype(np.uint8)).save(ok_img)
    lib, o = str(tmp_path / "lib"), tmp_path / "o"
    o.mkdir()
    commands = []
    for kind in ("fifo", "devzero"):
        d = tmp_path / kind
        d.mkdir()
        p = {n: _special(d / n, kind) for n in ("x.png", "x.tif", "m.png", "z.npy", "anns.json", "v.tif")}
        g = d / "g_Gen.pt"
        _special(g, kind)
        (d / "g_params.data").write_bytes(gen.with_name("tiny_params.data").read_bytes())
        h = d / "h_Gen.pt"
        h.write_bytes(gen.read_bytes())
        _special(d / "h_params.data", kind)
        commands += [
            ["--library", lib, "library", "add", str(p["x.png"])],
            ["--library", lib, "library", "import-anns", str(p["anns.json"])],
            ["segment", str(p["x.png"]), "--phases", "auto", "--out", str(o / "s.png")],
            ["scalebar", str(p["x.png"]), "--auto", "--out", str(o / "m.png")],
            ["inpaint", str(ok_img), "--mask", str(p["m.png"]), "--method", "fast", "--out", str(o / "i.png")],
            ["inpaint", str(p["x.png"]), "--mask", str(ok_img), "--method", "fast", "--out", str(o / "i.png")],
            ["stats", str(ok_img), str(p["v.tif"])],
            ["media", str(p["v.tif"]), "--long", str(o / "l.png")],
            ["generate", str(g), "--size", "32", "--out", str(o / "v.tif")],
            ["generate", str(h), "--size", "32", "--out", str(o / "v.tif")],
            ["generate", str(gen), "--latent", str(p["z.npy"]), "--out", str(o / "v.tif")],
            ["train", str(p["x.png"]), "--out", str(o / "run"), "--preset", "tiny", "--iters", "1"],
        ]
    res, r = _sweep(commands, timeout=240)
    assert len(res) == len(commands)
    for argv, (rc, err) in res.items():
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (argv, rc, err)
        assert "named pipe" in err or "device" in err, (argv, err)
    assert not any(o.iterdir())  # nothing written for a refused input
    assert r.rss_mb < idle_mb + MARGIN_MB, (r.rss_mb, idle_mb)


@pytest.mark.timeout(120)
def test_gui_open_image_and_import_annotations_refuse_a_pipe_with_a_dialog(qtbot, demo_library, monkeypatch,
                                                                         tmp_path, artifacts):
    """File → Open image and File → Import annotations on a named pipe, a link to /dev/zero, a
    TIFF of 100,000 pages and a decompression bomb: one dialog each, at once; nothing added."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from microlib_gui.gui.app import create_window, make_settings

    win = create_window(demo_library.root, make_settings())
    qtbot.addWidget(win)
    win.show()
    before = win.entry_combo.count()
    fifo = _special(tmp_path / "pipe.png", "fifo")
    seen: list[str] = []

    def close_dialog():  # the real dialog, as the user sees it
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            return QTimer.singleShot(50, close_dialog)
        seen.append(box.text())
        box.grab().save(str(artifacts / "hostile_open_pipe_dialog.png"))
        box.accept()

    QTimer.singleShot(50, close_dialog)
    assert win.open_image(str(fifo)) is None
    assert len(seen) == 1 and "pipe.png: is a named pipe" in seen[0], seen
    shown: list[str] = [seen[0]]
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    zero = _special(tmp_path / "zero.png", "devzero")
    pages = tmp_path / "pages.tif"
    pages.write_bytes(badfiles.tiff_pages(100_000, ((1, 1), (1, 2))))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(badfiles.png_zeros(9000, 9000, 3))
    t0 = time.monotonic()
    for p in (zero, pages, bomb):
        assert win.open_image(str(p)) is None
    win.import_annotations(str(_special(tmp_path / "pipe.json", "fifo")))
    assert time.monotonic() - t0 < 10
    assert len(shown) == 5 and all("\n" not in m for m in shown), shown
    assert "named pipe" in shown[0] and "device" in shown[1] and "3D stack" in shown[2]
    assert "megapixel limit" in shown[3] and "named pipe" in shown[4]
    assert win.entry_combo.count() == before
    win.grab().save(str(artifacts / "hostile_open_after.png"))


# -- a server that sends one byte at a time ------------------------------------------------------
@pytest.fixture
def drip_server():
    """``start(mode)`` → base URL of a local server that answers every request one byte every
    0.2 s: in the body (``"body"``: headers at once, a long Content-Length) or already in the
    headers (``"headers"``)."""
    servers = []

    def start(mode: str) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        stop = threading.Event()

        def handle(conn):
            try:
                conn.recv(65536)
                if mode == "body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n<html>")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not stop.is_set():
                    conn.sendall(b"a")
                    time.sleep(0.2)
            except OSError:
                pass
            finally:
                conn.close()

        def accept():
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        servers.append((srv, stop))
        return f"http://127.0.0.1:{srv.getsockname()[1]}/miclib/"

    yield start
    for srv, stop in servers:
        stop.set()
        srv.close()


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_server_sending_a_byte_at_a_time_meets_the_deadline(drip_server, tmp_path, mode):
    """The read timeout (5 s) never fires against a byte every 0.2 s; the overall deadline (2 s,
    retries included) ends the request, and nothing of what came is kept."""
    from microlib_gui.core.doitpoms import Cache, Client, OfflineError

    c = Client(drip_server(mode), cache=Cache(tmp_path / "cache"), retries=3, backoff_s=0.01, timeout=(2, 5),
               deadline_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(OfflineError, match="did not deliver it within 2 s") as ei:
        c.record(7)
    took = time.monotonic() - t0
    assert 1.9 < took < 3.5, took
    assert "\n" not in str(ei.value)
    assert c.cache.get("full_record.php?id=7") is None and c.cache.get_record(7) is None
    with pytest.raises(OfflineError):  # offline now: the cache is what is left, and it holds nothing
        c.record(7)
    c.close()


def test_cli_doitpoms_show_against_a_slow_server_ends_at_the_deadline(drip_server, tmp_path):
    url = drip_server("body")
    r = run(["doitpoms", "show", "7"], timeout=60,
            env={"MICROLIB_DOITPOMS_URL": url, "MICROLIB_DOITPOMS_DEADLINE": "3",
                 "MICROLIB_CACHE": str(tmp_path / "cache")})
    r.one_line_error("did not deliver it within 3 s")
    assert r.seconds < 20, r.seconds


# -- TIFFs of many pages -----------------------------------------------------------------------------
def test_tiffs_of_many_pages_are_refused_before_they_are_walked(tmp_path):
    """100,000 one-pixel pages of two sizes (tifffile's series over them take hours): every path
    answers at once, from the page count along the IFD chain."""
    from microlib_gui.core.errors import MicrolibError
    from microlib_gui.core.images import MAX_VOLUME_PAGES, load_image, load_labels
    from microlib_gui.core.media import load_volume

    pages = tmp_path / "pages.tif"
    pages.write_bytes(badfiles.tiff_pages(100_000, ((1, 1), (1, 2))))
    for reader, want in ((load_image, "3D stack"), (load_labels, f"more than {MAX_VOLUME_PAGES} pages"),
                         (load_volume, f"more than {MAX_VOLUME_PAGES} pages")):
        t0 = time.monotonic()
        with pytest.raises(MicrolibError, match=want):
            reader(pages)
        assert time.monotonic() - t0 < 1.0
    mixed = tmp_path / "mixed.tif"  # under the page limit, but of two sizes: not a volume
    mixed.write_bytes(badfiles.tiff_pages(4000, ((1, 1), (1, 2))))
    t0 = time.monotonic()
    with pytest.raises(MicrolibError, match="pages differ in size"):
        load_volume(mixed)
    assert time.monotonic() - t0 < 2.0
    ok = tmp_path / "ok.png"
    Image.fromarray((np.indices((96, 96)).sum(0) // 8 % 2 * 255).astype(np.uint8)).save(ok)
    lib = str(tmp_path / "lib")
    res, _ = _sweep([["--library", lib, "library", "add", str(pages)], ["stats", str(ok), str(pages)],
                     ["media", str(pages), "--long", str(tmp_path / "l.png")],
                     ["segment", str(pages), "--phases", "auto", "--out", str(tmp_path / "s.png")]], timeout=60)
    for argv, (rc, err) in res.items():
        assert rc == 2 and len(err.strip().splitlines()) == 1, (argv, err)
        assert "3D stack" in err or "pages" in err, (argv, err)


# -- decompression bombs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, data, want", [
    ("bomb_9000.png", lambda: badfiles.png_zeros(9000, 9000, 3), "over the 67 megapixel limit"),
    ("bomb_rgba.png", lambda: badfiles.png_zeros(20000, 20000, 4), "over the 67 megapixel limit"),
    ("bomb_f64.tif", lambda: badfiles.tiff_zeros(8192, 8192, 3, 64), "over the 1.1 GB limit"),
    ("bomb_u16.tif", lambda: badfiles.tiff_zeros(12000, 9000, 1, 16, float_=False), "megapixel limit"),
])
def test_decompression_bombs_are_refused_from_their_header(tmp_path, name, data, want):
    """Real bombs (every byte decodes to what the header declares: a 240 kB PNG of 243 MB of
    pixels, a 1.6 MB TIFF of 1.6 GB of float64): refused from the declared size, naming the
    limit; the process stays at its idle size."""
    p = tmp_path / name
    p.write_bytes(data())
    assert p.stat().st_size < 8 << 20
    r = run(["--library", str(tmp_path / "lib"), "library", "add", str(p)], timeout=60)
    r.one_line_error(name, want, "decompression bomb")
    assert r.rss_mb < 250, r.rss_mb


def test_a_large_gray_image_saved_as_rgb_loads_in_a_third_of_the_memory(tmp_path):
    """An 8000² PNG of equal RGB channels (a 190 kB file; within the limit, so it is loaded):
    the channels are compared before any float copy is made, so it costs a gray image's memory
    (it took 1.7 GB as RGB floats)."""
    p = tmp_path / "gray_as_rgb.png"
    p.write_bytes(badfiles.png_zeros(8000, 8000, 3))
    r = run(["--library", str(tmp_path / "lib"), "library", "add", str(p), "--json"], timeout=120)
    assert r.rc == 0, r.err
    assert json.loads(r.out)["metadata"]["image_kind"] == "gray"
    assert r.rss_mb < 900, r.rss_mb


# -- model files: validated before anything is allocated -------------------------------------------
def _params(gf: list[int], gk: int = 4) -> bytes:
    n = len(gf) - 1
    dk, ds, df, dp = [4, 4], [2, 2], [gf[-1], 8, 1], [1, 0]
    return pickle.dumps([dk, ds, df, dp, [gk] * n, [2] * n, gf, [2] * (n - 1) + [3]], protocol=4)


def test_model_files_are_checked_before_the_network_is_built(tmp_path, idle_mb):
    """Params declaring a 1 GB network, params declaring 480 MB beside a 60 kB generator, a
    generator whose zip holds a 2 GiB member (2 MB on disk), a 3 GB params file, a negative
    padding: each refused in one line before anything is allocated for it."""
    gen = _tiny_generator(tmp_path)
    real_params = gen.with_name("tiny_params.data").read_bytes()
    cases = {}

    def case(name, params: bytes | None, gen_bytes: bytes | None = None, want: str = ""):
        d = tmp_path / name
        d.mkdir()
        (d / "m_Gen.pt").write_bytes(gen_bytes if gen_bytes is not None else gen.read_bytes())
        if params is not None:
            (d / "m_params.data").write_bytes(params)
        cases[name] = (d / "m_Gen.pt", want)
        return d

    case("declares_1GB", _params([32, 2048, 2048, 2]), want="over the limit of 134,217,728")
    case("declares_480MB", _params([32, 1370, 1370, 2]), want="does not match its _params.data")
    import zipfile

    first = next(n for n in zipfile.ZipFile(gen).namelist() if n.endswith("/data/0"))  # convs.0.weight
    zipped = badfiles.zip_with_bomb(gen.read_bytes(), first, 2 << 30)
    assert len(zipped) < 4 << 20
    assert zipfile.ZipFile(io.BytesIO(zipped)).getinfo(first).file_size == 2 << 30
    case("zip_member_2GiB", real_params, zipped, want="refused before unpacking")
    d = case("params_3GB", None, want="over the 65.5 KB limit")
    with open(d / "m_params.data", "wb") as fh:  # sparse: 3 GB long, nothing on disk
        fh.write(real_params)
        fh.truncate(3 << 30)
    bad = pickle.loads(real_params)
    bad[7] = [-1] + bad[7][1:]
    case("negative_padding", pickle.dumps(bad, protocol=4), want="paddings must be at least 0")
    for name, (g, want) in cases.items():
        r = run(["generate", str(g), "--size", "32", "--out", str(tmp_path / f"{name}.tif"), "--device", "cpu"],
                timeout=120)
        r.one_line_error(want)
        assert r.rss_mb < idle_mb + MARGIN_MB, (name, r.rss_mb, idle_mb)
        assert not (tmp_path / f"{name}.tif").exists()
    # the real files still load and generate
    r = run(["generate", str(gen), "--size", "32", "--out", str(tmp_path / "ok.tif"), "--device", "cpu"])
    assert r.rc == 0, r.err
    assert tifffile.imread(tmp_path / "ok.tif").shape == (32, 32, 32)


# -- volumes and latents beyond the machine -----------------------------------------------------------
def test_volumes_and_latents_beyond_memory_are_refused_with_the_number(tmp_path, idle_mb):
    import numpy.lib.format as npf

    gen = _tiny_generator(tmp_path)
    huge = tmp_path / "huge.npy"  # a real .npy of 256 GB of zeros (sparse)
    with open(huge, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                        "shape": (1, 8, 2000, 2000, 2000)})
        fh.truncate(fh.tell() + 4 * 8 * 2000 ** 3)
    np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "nan.npy", np.full((1, 8, 4, 4, 4), np.nan, np.float32))
    out = str(tmp_path / "v.tif")
    res, r = _sweep([
        ["generate", str(gen), "--size", "100000", "--out", out, "--device", "cpu"],
        ["generate", str(gen), "--size", "64,100000,100000", "--out", out, "--device", "cpu"],
        ["generate", str(gen), "--latent", str(huge), "--out", out, "--device", "cpu"],
        ["generate", str(gen), "--latent", str(tmp_path / "strings.npy"), "--out", out, "--device", "cpu"],
        ["generate", str(gen), "--latent", str(tmp_path / "objects.npy"), "--out", out, "--device", "cpu"],
        ["generate", str(gen), "--latent", str(tmp_path / "nan.npy"), "--out", out, "--device", "cpu"],
    ], timeout=120)
    answers = [err.strip() for rc, err in res.values()]
    assert all(rc == 2 for rc, _ in res.values()), res
    assert all(len(a.splitlines()) == 1 and a.startswith("microlib: error: ") for a in answers), answers
    assert "needs about" in answers[0] and "TB of memory" in answers[0]
    assert "needs about" in answers[1] and "output" in answers[1]  # two slabs of 32x100000x100000
    assert "needs 256.0 GB of memory" in answers[2]
    assert "holds <U1 values" in answers[3] and "holds object values" in answers[4]
    assert "NaN" in answers[5]
    assert r.rss_mb < idle_mb + MARGIN_MB and not Path(out).exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_an_entry_volume_beyond_memory_is_refused_and_the_saved_one_kept(tmp_path, one_torch_thread):
    """``microlib generate ENTRY --size 100000`` (the Inspect step's Generate): refused with the
    numbers before the latent is drawn; the entry's volume and its provenance are unchanged."""
    from test_workflow_generate_export import curated, gen, publish

    from microlib_gui.core.library import layout as L

    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    gen(lib, eid, size=32)
    vol = lib.entry_file(eid, L.VOLUME.suffix)
    before, prov = vol.read_bytes(), lib.provenance(eid)
    r = run(["--library", str(lib.root), "generate", str(eid), "--size", "100000", "--device", "cpu"])
    r.one_line_error("a 100000x100000x100000 volume needs about", "TB of memory")
    assert vol.read_bytes() == before and lib.provenance(eid) == prov
    assert not [p for p in vol.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_volume_larger_than_the_free_disk_is_refused_before_it_is_computed(tmp_path):
    from microlib_gui.core.slicegan import SliceGANError
    from microlib_gui.core.slicegan.fileformat import load_generator
    from microlib_gui.core.slicegan.generate import generate_to_file

    import shutil

    G, _ = load_generator(_tiny_generator(tmp_path))
    free = shutil.disk_usage(tmp_path).free
    x = int(free * 1.5) // (256 * 256)  # 1.5× the free space in uint8 voxels, long and thin: little memory
    t0 = time.monotonic()
    with pytest.raises(SliceGANError, match="of disk space and only"):
        generate_to_file(G, tmp_path / "big.tif", size=(x, 256, 256), device="cpu")
    assert time.monotonic() - t0 < 5 and not list(tmp_path.glob("*.tif"))


# -- outputs that cannot be written ----------------------------------------------------------------
def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    """A folder named like the output, a non-Zarr folder at a .zarr name (its files must survive),
    a path below a file: refused at once, naming the output (not a temporary file); nothing computed."""
    gen = _tiny_generator(tmp_path)
    (tmp_path / "vol.tif").mkdir()
    keep = tmp_path / "mine.zarr"
    keep.mkdir()
    (keep / "notes.txt").write_text("the user's own notes")
    (tmp_path / "afile").write_text("x")
    img = tmp_path / "img.png"
    Image.fromarray((np.indices((96, 96)).sum(0) // 8 % 2 * 255).astype(np.uint8)).save(img)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 44)).save(mask)
    (tmp_path / "out.png").mkdir()
    (tmp_path / "anim.gif").mkdir()
    cases = [
        (["generate", str(gen), "--size", "256", "--out", str(tmp_path / "vol.tif")], "vol.tif: is a folder"),
        (["generate", str(gen), "--size", "256", "--out", str(keep)], "mine.zarr: is a folder"),
        (["generate", str(gen), "--size", "256", "--out", str(tmp_path / "afile" / "v.tif")], "is a file"),
        # a GAN inpainting of 100,000 iterations would run for hours before the folder showed
        (["inpaint", str(img), "--mask", str(mask), "--method", "gan", "--iters", "100000", "--device", "cpu",
          "--out", str(tmp_path / "out.png")], "out.png: is a folder"),
        (["inpaint", str(img), "--mask", str(mask), "--method", "fast", "--gif", str(tmp_path / "anim.gif"),
          "--out", str(tmp_path / "ok.png")], "anim.gif: is a folder"),
        (["train", str(img), "--out", str(tmp_path / "afile"), "--preset", "tiny"], "afile: is a file"),
    ]
    for argv, want in cases:
        r = run([*argv, "--quiet"] if argv[0] == "inpaint" else argv, timeout=60)
        line = r.one_line_error(want)
        assert ".tmp-" not in line and r.seconds < 30, (line, r.seconds)
    assert (keep / "notes.txt").read_text() == "the user's own notes"
    assert not list(tmp_path.glob(".tmp-*")) and not (tmp_path / "ok.png").exists()


def test_train_resume_without_a_run_is_refused(tmp_path):
    img = tmp_path / "img.png"
    Image.fromarray((np.indices((96, 96)).sum(0) // 8 % 2 * 255).astype(np.uint8)).save(img)
    (tmp_path / "empty").mkdir()
    for out, want in ((tmp_path / "nowhere", "does not exist"), (tmp_path / "empty", "holds no checkpoint.pt")):
        r = run(["train", str(img), "--out", str(out), "--preset", "tiny", "--iters", "2", "--resume"])
        r.one_line_error("--resume", want, "no run to continue")
    assert not (tmp_path / "nowhere").exists() and not any((tmp_path / "empty").iterdir())


# -- float images at the ends of their range ---------------------------------------------------------
def test_float_tiffs_of_any_range_load_or_are_refused_in_one_line(tmp_path):
    from microlib_gui.core.errors import ImageError
    from microlib_gui.core.images import load_image

    expected = badfiles.hostile_tiffs(tmp_path)
    for name, want in expected.items():
        if want == "ok":
            img = load_image(tmp_path / name)
            assert np.all(np.isfinite(img.data)) and img.data.min() >= 0 and img.data.max() <= 1, name
            assert np.unique(img.data).size > 1, name  # the range was kept, not flattened
        else:
            with pytest.raises(ImageError) as ei:
                load_image(tmp_path / name)
            assert want in str(ei.value) and str(ei.value).startswith(name), (name, str(ei.value))
    ext = load_image(tmp_path / "f32_extreme.tif").data
    src = tifffile.imread(tmp_path / "f32_extreme.tif")
    assert np.array_equal(ext > 0.5, src > 0) and set(np.unique(ext)) == {0.0, 1.0}
    # the commands: segmentation and statistics of extreme floats work or say why in one line
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 20, (48, 48, 48)).astype(np.float32) * 1.5e37 - 1.5e38
    tifffile.imwrite(tmp_path / "vol_extreme.tif", vol)
    tifffile.imwrite(tmp_path / "img_1e38.tif", rng.integers(0, 100, (128, 128)).astype(np.float32) * 2e36)
    res, _ = _sweep([
        ["segment", str(tmp_path / "f32_extreme.tif"), "--phases", "auto", "--out", str(tmp_path / "s.png")],
        ["segment", str(tmp_path / "f64_1e300.tif"), "--phases", "auto", "--out", str(tmp_path / "s2.png")],
        ["segment", str(tmp_path / "neg_inf.tif"), "--phases", "auto", "--out", str(tmp_path / "s3.png")],
        ["stats", str(tmp_path / "img_1e38.tif"), str(tmp_path / "vol_extreme.tif"), "--no-tortuosity",
         "--r-max", "16", "--json"],
    ], timeout=240)
    rcs = [v[0] for v in res.values()]
    errs = [v[1] for v in res.values()]
    assert rcs[:2] == [0, 0], errs
    assert rcs[2] == 2 and "NaN or infinite" in errs[2] and len(errs[2].strip().splitlines()) == 1
    assert rcs[3] == 0, errs[3]
    assert np.unique(np.asarray(Image.open(tmp_path / "s.png"))).size == 2  # the two halves, as phases

"""Every path that accepts image files answers each bad file with a one-line reason."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from badfiles import make_corpus
from microlib_gui.core.errors import ImageError
from microlib_gui.core.images import load_image


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_corpus(folder)


def test_corpus_is_large_enough(corpus):
    _, expected = corpus
    assert len(expected) >= 40
    assert sum(v != "ok" for v in expected.values()) >= 25


def test_load_image_on_corpus(corpus):
    folder, expected = corpus
    for name, want in expected.items():
        if want == "ok":
            img = load_image(folder / name)
            assert img.data.ndim in (2, 3), name
        else:
            with pytest.raises(ImageError) as ei:
                load_image(folder / name)
            msg = str(ei.value)
            assert want in msg, (name, msg)
            assert "\n" not in msg and msg.startswith(name)


def test_library_add_on_corpus_loses_nothing(corpus, library):
    folder, expected = corpus
    added = 0
    for name, want in expected.items():
        if want == "ok":
            library.add_entry(folder / name)
            added += 1
        else:
            with pytest.raises(ImageError):
                library.add_entry(folder / name)
    assert len(library.list_entries()) == added
    assert library.integrity_check() == "ok"


def test_cli_add_on_corpus(corpus, tmp_path):
    folder, expected = corpus
    bad = [n for n, w in expected.items() if w != "ok"][:12]
    # one interpreter for all files keeps this fast; each call goes through cli.main
    code = (
        "import sys, io, contextlib, json\n"
        "from microlib_gui.cli import main\n"
        "out = {}\n"
        "for f in sys.argv[2:]:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        rc = main(['--library', sys.argv[1], 'library', 'add', f])\n"
        "    out[f] = [rc, err.getvalue()]\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lib"), *[str(folder / n) for n in bad]],
                       capture_output=True, text=True, timeout=120)
    import json

    res = json.loads(r.stdout)
    for f, (rc, err) in res.items():
        assert rc == 2, (f, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (f, err)


CLI_SWEEP = """
import sys, io, contextlib, json
from microlib_gui.cli import main
lib, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
commands = {
    "segment": lambda f: ["segment", f, "--phases", "auto", "--out", out + "/s.png"],
    "scalebar": lambda f: ["scalebar", f, "--auto", "--out", out + "/m.png"],
    "inpaint": lambda f: ["inpaint", f, "--mask", f, "--method", "fast", "--out", out + "/i.png"],
    "stats": lambda f: ["stats", f, f, "--json"],
    "generate": lambda f: ["generate", f, "--size", "32", "--out", out + "/v.tif"],
    "import-anns": lambda f: ["--library", lib, "library", "import-anns", f],
    "library-add": lambda f: ["--library", lib, "library", "add", f],
}
res = {}
for name, make in commands.items():
    for f in files:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(make(f))
            except SystemExit as e:
                rc = e.code
        res[name + " " + f.rsplit("/", 1)[-1]] = [rc, err.getvalue()]
print(json.dumps(res))
"""


def test_every_cli_path_answers_bad_files_in_one_line(corpus, tmp_path):
    """segment, scalebar, inpaint, stats, generate (generator load), annotation import, library add."""
    import json

    folder, expected = corpus
    bad = [str(folder / n) for n, w in expected.items() if w != "ok"]
    (tmp_path / "o").mkdir()
    r = subprocess.run([sys.executable, "-c", CLI_SWEEP, str(tmp_path / "lib"), str(tmp_path / "o"), *bad],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert len(res) == 7 * len(bad)
    problems = {k: v for k, v in res.items()
                if v[0] in (0, None) or len(v[1].strip().splitlines()) != 1 or "Traceback" in v[1]
                or "internal error" in v[1]}
    assert not problems, problems
    assert not list((tmp_path / "o").iterdir())  # nothing written for a bad input


def test_gui_open_answers_each_bad_file_with_a_dialog(corpus, qtbot, demo_library, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from microlib_gui.gui.app import create_window, make_settings

    folder, expected = corpus
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    win = create_window(demo_library.root, make_settings())
    qtbot.addWidget(win)
    bad = [n for n, w in expected.items() if w != "ok"]
    for name in bad:
        assert win.open_image(str(folder / name)) is None
    assert len(shown) == len(bad)
    assert all("\n" not in m and expected[n] in m for n, m in zip(bad, shown))
    assert win.entry_combo.count() == 4  # nothing added, nothing lost


def test_volume_with_300_labels_and_single_phase_image(tmp_path):
    """Odd label inputs: refused or handled with a reason, never a traceback."""
    vol = (np.arange(20 * 20 * 20) % 300).reshape(20, 20, 20).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v300.tif", vol)
    img = np.full((80, 80), 7, np.uint8)
    Image.fromarray(img).save(tmp_path / "one.png")
    r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "stats", str(tmp_path / "one.png"),
                        str(tmp_path / "v300.tif")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "too many phases" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "segment", str(tmp_path / "one.png"),
                        "--phases", "auto", "--out", str(tmp_path / "s.png")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr

"""Every path that accepts image files answers each bad file with a one-line reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

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

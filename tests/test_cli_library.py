"""The `microlib` command: library subcommands, JSON output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args, env_home=None, check=False):
    cmd = [sys.executable, "-m", "microlib_gui.cli", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_help_lists_commands():
    r = run("--help", check=True)
    assert "library" in r.stdout


def test_init_demo_list_show_json(tmp_path):
    lib = str(tmp_path / "lib")
    r = run("--library", lib, "library", "init", "--demo", "--json", check=True)
    assert len(json.loads(r.stdout)["demo_added"]) == 4
    r = run("--library", lib, "library", "list", "--json", check=True)
    entries = json.loads(r.stdout)
    assert [e["source"] for e in entries] == ["demo"] * 4
    r = run("--library", lib, "library", "show", str(entries[0]["id"]), "--json", check=True)
    shown = json.loads(r.stdout)
    assert shown["name"] == entries[0]["name"] and shown["files"] == [f"{shown['name']}_original.png"]
    r = run("--library", lib, "library", "init", "--demo", "--json", check=True)
    assert json.loads(r.stdout)["demo_added"] == []  # idempotent


def test_import_export_anns_cli(shared_data, tmp_path):
    lib = str(tmp_path / "lib")
    r = run("--library", lib, "library", "import-anns", str(shared_data / "microlib-prelabelled_anns.json"),
            "--json", check=True)
    assert len(json.loads(r.stdout)["pending"]) == 79
    r = run("--library", lib, "library", "export", str(tmp_path / "out"), "--json", check=True)
    doc = json.loads((tmp_path / "out" / "microlib_anns.json").read_text())
    assert doc == json.loads((shared_data / "microlib-prelabelled_anns.json").read_text())


@pytest.mark.parametrize("args,needle", [
    (["library", "show", "12345"], "no entry 12345"),
    (["library", "add", "/nonexistent/x.png"], "no such file"),
    (["library", "exclude", "10001", "ugly"], "unknown exclusion reason"),
])
def test_errors_are_one_line_exit_2(tmp_path, args, needle):
    lib = str(tmp_path / "lib")
    run("--library", lib, "library", "init", "--demo", check=True)
    r = run("--library", lib, *args)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_image_file_cli(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    r = run("--library", str(tmp_path / "lib"), "library", "add", str(bad))
    assert r.returncode == 2 and "corrupt or truncated PNG" in r.stderr and "Traceback" not in r.stderr

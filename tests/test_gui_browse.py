"""The Browse step in a real X server against the local stand-in DoITPoMS site."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.gui


@pytest.fixture
def site(make_doitpoms_site):
    return make_doitpoms_site()


def _panel(qtbot, library, tmp_path, monkeypatch, base_url):
    monkeypatch.setenv("MICROLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("MICROLIB_DOITPOMS_URL", base_url)
    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.steps.browse import Panel

    ctx = AppContext(library)
    panel = Panel(ctx)
    panel.client.timeout = (1.0, 2.0)
    panel.client.backoff_s = 0.01
    qtbot.addWidget(panel)
    panel.resize(1280, 800)
    panel.show()
    qtbot.waitExposed(panel)
    return ctx, panel


def _visible(panel) -> set[str]:
    return {it.key for it in panel.model.items}


def _select(panel, keys, qtbot):
    """Select the tiles of ``keys`` in one go (as a rubber-band or Ctrl+A selection does)."""
    from PySide6.QtCore import QItemSelection

    sel = panel.view.selectionModel()
    selection = QItemSelection()
    for row, it in enumerate(panel.model.items):
        if it.key in keys:
            idx = panel.model.index(row)
            selection.select(idx, idx)
    sel.select(selection, sel.SelectionFlag.ClearAndSelect)
    qtbot.wait(20)


def test_search_filter_open_and_add_two(qtbot, demo_library, tmp_path, monkeypatch, site, artifacts):
    ctx, panel = _panel(qtbot, demo_library, tmp_path, monkeypatch, site.base_url)
    assert {k for k in _visible(panel) if k.startswith("e")} == {"e10001", "e10002", "e10003", "e10004"}
    panel.activated()  # first show: refresh the listing in the background
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert {"d1", "d6", "d39", "d54", "d70"} <= _visible(panel)
    assert not panel.banner_row.isVisible()

    # search over record text
    qtbot.keyClicks(panel.search_edit, "steel")
    # the demo "Grayscale textured steel" entry matches too: search covers the library
    qtbot.waitUntil(lambda: _visible(panel) == {"d6", "d54", "e10003"}, timeout=3000)
    panel.search_edit.clear()
    # filters
    panel.element_box.setCurrentText("Sn")
    assert _visible(panel) == {"d39"}
    panel.element_box.setCurrentIndex(0)
    panel.technique_box.setCurrentText("Scanning electron microscopy (SEM)")
    assert _visible(panel) == {"d6", "d70"}
    panel.category_box.setCurrentText("Ceramic")
    assert _visible(panel) == {"d70"}
    panel.technique_box.setCurrentIndex(0)
    panel.category_box.setCurrentIndex(0)
    qtbot.waitUntil(lambda: "d1" in _visible(panel), timeout=3000)

    # open a record: full record text and the large image (fetched in the background)
    _select(panel, {"d1"}, qtbot)
    text = panel.record_view.toPlainText()
    assert "Hypoeutectic Al-Si casting" in text and "Reflected light microscopy" in text
    assert "Creative Commons" in text
    qtbot.waitUntil(lambda: not panel.image_label.pixmap().isNull(), timeout=10000)
    # thumbnails arrive in the background too
    qtbot.waitUntil(lambda: "d1" in panel.model.thumbs, timeout=10000)

    # add two entries at once
    _select(panel, {"d1", "d70"}, qtbot)
    assert panel.add_btn.isEnabled()
    panel.add_btn.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    lib_ids = {e.doitpoms_id for e in demo_library.list_entries()}
    assert {1, 70} <= lib_ids
    assert demo_library.find_entry("doitpoms:70").metadata["element"] == ["Al", "O"]
    assert "Added 2" in panel.status.text()
    labels = {it.key: it.label() for it in panel.model.items}
    assert "in library" in labels["d1"] and "in library" in labels["d70"]
    assert "in library" not in labels["d6"]

    # selecting an entry that is in the library makes it the current entry
    _select(panel, {"d70"}, qtbot)
    assert ctx.entry_id == 70
    # exclude it with one of MicroLib's reasons and a note
    panel.reason_box.setCurrentText("low quality")
    panel.note_edit.setText("blurred at the edges")
    panel.exclude_btn.click()
    e = demo_library.get_entry(70)
    assert e.excluded and e.exclusion_reason == "low quality" and e.exclusion_note == "blurred at the edges"
    qtbot.waitUntil(lambda: "Excluded" in panel.record_view.toPlainText(), timeout=3000)
    assert "blurred at the edges" in panel.record_view.toPlainText()

    _select(panel, {"d1"}, qtbot)
    qtbot.waitUntil(lambda: not panel.image_label.pixmap().isNull(), timeout=10000)
    qtbot.waitUntil(lambda: len(panel.model.thumbs) >= 6, timeout=10000)
    qtbot.wait(100)
    path = artifacts / "browse_step.png"
    panel.grab().save(str(path))
    arr = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert arr.std() > 10  # thumbnails and text, not a blank panel


def test_offline_banner_shows_cached_and_demo(qtbot, demo_library, tmp_path, monkeypatch, artifacts, site):
    ctx, panel = _panel(qtbot, demo_library, tmp_path, monkeypatch, "http://127.0.0.1:9/miclib/")
    panel.client.retries = 0
    panel.activated()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.banner_row.isVisible()
    assert "Offline" in panel.banner.text()
    assert _visible(panel) == {"e10001", "e10002", "e10003", "e10004"}  # demo entries still browsable
    _select(panel, {"e10002"}, qtbot)
    assert ctx.entry_id == 10002
    assert "Demo entry" in panel.record_view.toPlainText()
    qtbot.waitUntil(lambda: not panel.image_label.pixmap().isNull(), timeout=5000)
    panel.grab().save(str(artifacts / "browse_offline.png"))

    # point the panel at a mirror that works: the banner goes, the records come
    assert not panel.set_base_url("not a url")
    assert "not an http(s) URL" in panel.status.text()
    assert panel.set_base_url(site.base_url)
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert not panel.banner_row.isVisible()
    assert {"d1", "d70"} <= _visible(panel)
    from microlib_gui.gui.settings import make_settings

    assert make_settings().value("doitpoms/base_url") == site.base_url


def test_unfinished_import_can_be_resumed(qtbot, library, tmp_path, monkeypatch, site):
    from microlib_gui.core.doitpoms import Cache, Client
    from microlib_gui.core.doitpoms.importer import import_micrographs
    from microlib_gui.core.jobs import run_inline

    # an earlier import whose server kept failing for one image leaves it pending
    client = Client(site.base_url, cache=Cache(tmp_path / "cache"), retries=0)
    site.faults["micrographs/large/000039.jpg"] = ["500"]
    res = run_inline(import_micrographs, {"library": str(library.root), "ids": [1, 39], "client": client})
    assert res["pending"] == [39]
    ctx, panel = _panel(qtbot, library, tmp_path, monkeypatch, site.base_url)
    assert panel.resume_btn.isVisible() and "1 left" in panel.resume_btn.text()
    panel.resume_btn.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert {e.doitpoms_id for e in library.list_entries()} == {1, 39}
    assert not panel.resume_btn.isVisible()
    assert {"d1", "d39"} <= _visible(panel)


def test_cancelled_import_keeps_what_was_added(qtbot, library, tmp_path, monkeypatch, site):
    ctx, panel = _panel(qtbot, library, tmp_path, monkeypatch, site.base_url)
    panel.activated()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    site.faults["micrographs/large/000006.jpg"] = ["sleep"]  # the first download takes a while
    _select(panel, {"d6", "d39", "d54"}, qtbot)
    panel.add_btn.click()
    assert panel.cancel_btn.isVisible()
    qtbot.waitUntil(lambda: site.hits["micrographs/large/000006.jpg"] == 1, timeout=10000)
    panel.cancel_btn.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert "cancelled" in panel.status.text(), panel.status.text()
    assert {e.doitpoms_id for e in library.list_entries()} == {6}  # the one in hand was finished
    assert panel.resume_btn.isVisible() and "2 left" in panel.resume_btn.text()
    panel.resume_btn.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert {e.doitpoms_id for e in library.list_entries()} == {6, 39, 54}


def _cli(library, *args):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "--library", str(library.root), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_exclusion_made_elsewhere_shows_on_the_current_entry(qtbot, demo_library, tmp_path, monkeypatch,
                                                             artifacts):
    # The user reads entry 10002; another process (the CLI) excludes it, then changes only the reason:
    # the tile and the record follow each time, with no click in the panel.
    ctx, panel = _panel(qtbot, demo_library, tmp_path, monkeypatch, "http://127.0.0.1:9/miclib/")
    _select(panel, {"e10002"}, qtbot)
    assert ctx.entry_id == 10002 and "Excluded" not in panel.record_view.toPlainText()

    def label():
        return next(it.label() for it in panel.model.items if it.key == "e10002")

    _cli(demo_library, "library", "exclude", "10002", "anisotropic", "--note", "stretched")
    qtbot.waitUntil(lambda: "Excluded: anisotropic" in panel.record_view.toPlainText(), timeout=10000)
    assert "stretched" in panel.record_view.toPlainText() and "excluded" in label()

    # a change of the current entry alone re-reads its tile: the grid is not rebuilt (scroll, selection kept)
    resets = []
    panel.model.modelReset.connect(lambda: resets.append(1))
    _cli(demo_library, "library", "exclude", "10002", "low quality", "--note", "blurred")
    qtbot.waitUntil(lambda: "Excluded: low quality" in panel.record_view.toPlainText(), timeout=10000)
    assert "blurred" in panel.record_view.toPlainText() and "stretched" not in panel.record_view.toPlainText()
    assert resets == [] and [it.key for it in panel.selected_items()] == ["e10002"]
    panel.grab().save(str(artifacts / "browse_excluded_elsewhere.png"))

    # included again from the panel: the tile loses its badge, the record its exclusion
    panel.include_btn.click()
    qtbot.waitUntil(lambda: "Excluded" not in panel.record_view.toPlainText(), timeout=10000)
    assert not demo_library.get_entry(10002).excluded and "excluded" not in label()

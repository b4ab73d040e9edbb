"""``microlib info`` and Help → About: what this installation has."""

from __future__ import annotations

import json
import shutil

import pytest

from microlib_gui.cli import main


def test_info_json_matches_this_machine(capsys):
    import torch

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["torch"]["version"] == torch.__version__
    assert info["torch"]["cuda_available"] == torch.cuda.is_available()
    assert (info["tools"]["tesseract"]["path"] is not None) == (shutil.which("tesseract") is not None)
    if info["tools"]["tesseract"]["path"]:
        assert info["tools"]["tesseract"]["version"].startswith("tesseract")
    assert info["library"]  # the conftest points it at a private folder
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "Compute:" in text and "tesseract:" in text


def test_info_without_ocr(capsys, monkeypatch):
    from microlib_gui.core.scalebar import ocr

    monkeypatch.setenv("MICROLIB_OCR", "0")
    ocr.tesseract_path.cache_clear()
    try:
        assert main(["info"]) == 0
        assert "tesseract: not found" in capsys.readouterr().out
    finally:
        ocr.tesseract_path.cache_clear()


@pytest.mark.gui
def test_about_box_shows_the_system(qtbot, demo_library):
    from microlib_gui.gui.app import make_settings
    from microlib_gui.gui.main_window import MainWindow

    win = MainWindow(demo_library, make_settings())
    qtbot.addWidget(win)
    box = win.about()
    qtbot.waitUntil(box.isVisible)
    assert box.informativeText().startswith("Compute:")
    assert "PyTorch" in box.detailedText() and "Default library" in box.detailedText()
    box.close()


@pytest.mark.gui
def test_user_guide_renders_pages_and_follows_links(qtbot, demo_library, artifacts):
    from PySide6.QtCore import QUrl

    from microlib_gui.gui.app import make_settings
    from microlib_gui.gui.main_window import MainWindow

    win = MainWindow(demo_library, make_settings())
    qtbot.addWidget(win)
    win.show_guide()
    dlg = win.guide_dialog
    qtbot.waitUntil(dlg.isVisible)
    assert dlg.list.count() >= 10 and dlg.current == "README.md"
    assert "MicroLib Studio" in dlg.text.toPlainText()
    dlg.text.anchorClicked.emit(QUrl("docs/inpainting.md"))  # a link as the README writes it
    assert dlg.current == "inpainting.md" and "Re-sample" in dlg.text.toPlainText()
    assert dlg.list.currentItem().data(256) == "inpainting.md"
    dlg.grab().save(str(artifacts / "user_guide.png"))
    dlg.close()

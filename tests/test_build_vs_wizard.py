"""``microlib build`` makes, step for step, the same entry files as the wizard (issue 18, item 9).

Two real raw-like micrographs with a burnt-in scale bar (``shared/data/rawlike``): 016, kept
GRAYSCALE, rotated and cropped, its bar masked by a click on it inside a box and measured by
clicking its two ends; and 001, TWO-PHASE, cropped, segmented with Auto, its bar found with
Auto-detect. Each is curated once through the real GUI panels of one main window (real mouse
clicks on the scale-bar image; the crop box typed into the spin boxes; Inpaint with the fast
method, Start then Accept), in one library. A copy of each micrograph in another library is
curated with the CLI twins (``microlib entry crop|segment|scalebar``) and inpainted by
``microlib build --steps inpaint``. ``_inpainted.png``, ``_segmented.png`` and ``_mask.png``
must be equal pixel for pixel.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from microlib_gui.cli import main
from microlib_gui.core.library import layout as L
from microlib_gui.core.library import Library

pytestmark = pytest.mark.gui

GRAY, TWO = "016", "001"
#: What the user does on 016 (pixels of the rotated image for the crop, of the original for the bar).
GRAY_CROP, GRAY_ROT = (0, 0, 490, 495), 1.5
GRAY_BAR_BOX, GRAY_PICK, GRAY_ENDS, GRAY_UM = (410, 455, 492, 490), (450, 482), ((416, 482), (485, 482)), 100.0
TWO_CROP = (10, 10, 480, 490)


def add(lib: Library, raw, did: str) -> int:
    return lib.add_entry(raw / f"raw{did}.png", source="doitpoms", doitpoms_id=int(did)).id


def click(qtbot, view, x: int, y: int) -> None:
    """A left click on image pixel (x, y) of an ImageView."""
    from PySide6.QtCore import Qt

    pos = view.mapFromScene(view.scene_point(x, y))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def type_crop(panel, box) -> None:
    x0, y0, x1, y1 = box
    for key, v in zip("xywh", (x0, y0, x1 - x0, y1 - y0)):
        panel.spins[key].setValue(v)
    panel.spins["h"].editingFinished.emit()  # what leaving the spin box does


def inpaint_in_panel(win, qtbot, artifacts, name: str) -> None:
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    assert inp.inputs is not None and inp.inputs.mask is not None, inp.info.text()
    inp.method.setCurrentIndex(inp.method.findData("fast"))
    inp.start_btn.click()
    qtbot.waitUntil(lambda: inp.accept_btn.isEnabled(), timeout=60000)
    inp.accept_btn.click()
    qtbot.waitUntil(lambda: win.ctx.library.get_entry(win.ctx.entry_id).steps["inpaint"] == "done", timeout=5000)
    win.grab().save(str(artifacts / f"build_vs_wizard_{name}.png"))


def curate_in_wizard(qtbot, root, raw, artifacts) -> Library:
    from PySide6.QtCore import QSettings

    from microlib_gui.gui.main_window import MainWindow

    lib = Library(root)
    gray_id, two_id = add(lib, raw, GRAY), add(lib, raw, TWO)
    win = MainWindow(lib, QSettings(str(root.parent / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    try:
        # 016: rotate, crop, keep grayscale, pick the bar in a box, click its ends, type 100 µm.
        win.select_entry(gray_id)
        win.go_to_step("crop")
        crop = win.panels["crop"]
        crop.rot_spin.setValue(GRAY_ROT)
        crop.rot_spin.editingFinished.emit()
        type_crop(crop, GRAY_CROP)
        win.go_to_step("segment")
        seg = win.panels["segment"]
        seg.kind.setCurrentIndex(seg.kind.findText("grayscale (keep)"))
        win.go_to_step("scalebar")
        bar = win.panels["scalebar"]
        bar.view.set_box(GRAY_BAR_BOX)
        bar.view.roi.sigRegionChangeFinished.emit(bar.view.roi)  # what releasing the box drag does
        bar.mode_pick.setChecked(True)
        click(qtbot, bar.view, *GRAY_PICK)
        bar.mode_ends.setChecked(True)
        for end in GRAY_ENDS:
            click(qtbot, bar.view, *end)
        bar.um.setValue(GRAY_UM)
        bar.um.editingFinished.emit()
        ann = lib.get_annotations(gray_id)
        assert ann["data_type"] == "grayscale" and ann.get("vox_size"), ann
        inpaint_in_panel(win, qtbot, artifacts, "grayscale")
        # 001: crop, Auto segment, Auto-detect the bar.
        win.select_entry(two_id)
        win.go_to_step("crop")
        type_crop(win.panels["crop"], TWO_CROP)
        win.go_to_step("segment")
        win.panels["segment"].auto_btn.click()
        win.go_to_step("scalebar")
        bar.auto_btn.click()
        qtbot.waitUntil(lambda: not bar.auto_running(), timeout=60000)
        qtbot.waitUntil(lambda: lib.get_annotations(two_id).get("vox_size") is not None, timeout=5000)
        inpaint_in_panel(win, qtbot, artifacts, "twophase")
    finally:
        for p in win.panels.values():
            getattr(p, "confirm_close", lambda: True)()
    return lib


def cli(lib_root, *args) -> int:
    return main(["--library", str(lib_root), *[str(a) for a in args]])


def csv(*vals) -> str:
    return ",".join(str(v) for v in vals)


def curate_with_cli_and_build(root, raw, capsys) -> Library:
    lib = Library(root)
    gray, two = (str(add(lib, raw, d)) for d in (GRAY, TWO))
    steps = [
        ("entry", "crop", gray, "--box", csv(*GRAY_CROP), "--rotate", GRAY_ROT),
        ("entry", "segment", gray, "--keep", "grayscale"),
        ("entry", "scalebar", gray, "--pick", csv(*GRAY_PICK), "--box", csv(*GRAY_BAR_BOX),
         "--ends", csv(*GRAY_ENDS[0], *GRAY_ENDS[1]), "--um", GRAY_UM),
        ("entry", "crop", two, "--box", csv(*TWO_CROP)),
        ("entry", "segment", two, "--auto"),
        ("entry", "scalebar", two, "--auto"),
    ]
    for args in steps:
        assert cli(root, *args) == 0, (args, capsys.readouterr().err)
    assert cli(root, "build", "--entries", gray, two, "--steps", "inpaint") == 0, capsys.readouterr()
    return lib


def pixels(lib: Library, eid: int, suffix: str) -> np.ndarray | None:
    path = lib.entry_file(eid, suffix)
    return np.asarray(Image.open(path)) if path.exists() else None


def test_build_and_cli_make_the_wizards_files(qtbot, tmp_path, shared_data, artifacts, capsys):
    raw = shared_data / "rawlike"
    wiz = curate_in_wizard(qtbot, tmp_path / "wizard" / "lib", raw, artifacts)
    built = curate_with_cli_and_build(tmp_path / "cli" / "lib", raw, capsys)
    for did, kind in ((GRAY, "grayscale"), (TWO, "twophase")):
        eid = int(did)
        for f in (L.INPAINTED, L.SEGMENTED, L.MASK):
            a, b = pixels(wiz, eid, f.suffix), pixels(built, eid, f.suffix)
            assert (a is None) == (b is None), (did, f.suffix, "made by one side only")
            if a is not None:
                assert a.shape == b.shape and np.array_equal(a, b), (did, f.suffix, int((a != b).sum()))
        for lib in (wiz, built):
            ann = lib.get_annotations(eid)
            assert ann["data_type"] == kind and ann.get("vox_size")
            assert {s: lib.get_entry(eid).steps[s] for s in ("crop", "segment", "scalebar", "inpaint")} == \
                dict.fromkeys(("crop", "segment", "scalebar", "inpaint"), "done")
        wa, ba = wiz.get_annotations(eid), built.get_annotations(eid)
        for key in ("crop", "rotation", "thresholds", "deblur_sigma", "barbox", "bar_colour", "bar_length_px",
                    "vox_size"):
            assert wa.get(key) == ba.get(key), (did, key)
    # The training images are what the user cropped, with the bar removed.
    gray = pixels(built, int(GRAY), L.INPAINTED.suffix)
    assert gray.shape == (GRAY_CROP[3] - GRAY_CROP[1], GRAY_CROP[2] - GRAY_CROP[0])
    assert len(np.unique(gray)) > 50  # a grayscale image, not labels
    mask = pixels(built, int(GRAY), L.MASK.suffix) > 0
    assert mask.sum() > 200 and gray[mask].mean() > 20  # the black bar is gone (it was 0)
    two = pixels(built, int(TWO), L.INPAINTED.suffix)
    assert two.shape == (TWO_CROP[3] - TWO_CROP[1], TWO_CROP[2] - TWO_CROP[0])
    seg, keep = pixels(built, int(TWO), L.SEGMENTED.suffix), pixels(built, int(TWO), L.MASK.suffix) == 0
    assert len(np.unique(two)) == 2 and np.array_equal(two[keep] > 0, seg[keep] > 0)  # labels outside the bar


def test_a_new_crop_makes_the_build_redo_inpainting(tmp_path, shared_data, capsys):
    """A changed crop rewrites no file, yet Inpaint depends on it: the build redoes the step."""
    raw = shared_data / "rawlike"
    root = tmp_path / "lib"
    curate_with_cli_and_build(root, raw, capsys)
    capsys.readouterr()
    assert cli(root, "build", "--entries", "1", "--steps", "inpaint", "--dry-run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["plan"][0]["skip_reason"] == "up to date"
    assert cli(root, "entry", "crop", "1", "--box", "20,20,420,400") == 0
    capsys.readouterr()
    assert cli(root, "build", "--entries", "1", "--steps", "inpaint", "--dry-run", "--json") == 0
    (item,) = json.loads(capsys.readouterr().out)["plan"]
    assert item["run"] == ["inpaint"], item
    assert cli(root, "build", "--entries", "1", "--steps", "inpaint") == 0
    lib = Library(root, create=False)
    assert pixels(lib, 1, L.INPAINTED.suffix).shape == (380, 400)
    assert lib.get_entry(1).steps["inpaint"] == "done"

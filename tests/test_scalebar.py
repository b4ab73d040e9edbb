"""Scale-bar masks, detection, label reading, voxel size; ``microlib scalebar``."""

import json

import numpy as np
import pytest
from PIL import Image

from microlib_gui.cli import main
from microlib_gui.core import scalebar as sb
from microlib_gui.core.demo import CATALOG, render_micrograph


def _demo(i=0):
    raw, _, bar = render_micrograph(CATALOG[i])
    return raw, bar


def _truth(i=0):
    from microlib_gui.core.demo import _scale_bar

    return _scale_bar(CATALOG[i].size, CATALOG[i])["mask"]


def test_pick_colour_gets_the_flat_colour_near_an_edge():
    raw, bar = _demo(0)
    x0, y0, x1, y1 = bar["box_xyxy"]
    assert sb.pick_colour(raw, (x0 + x1) // 2, y1 - 2).tolist() == [255.0]


def test_mask_covers_bar_and_label_and_stays_in_the_box():
    raw, bar = _demo(0)
    x0, y0, x1, y1 = bar["box_xyxy"]
    box = (x0 - 4, y0 - 4, x1 + 4, y1 + 4)
    m = sb.bar_mask(raw, 255, 10, box)
    truth = _truth(0)
    assert (m & truth).sum() / truth.sum() > 0.99
    outside = np.ones_like(m)
    outside[box[1]:box[3], box[0]:box[2]] = False
    assert not (m & outside).any()


def test_mask_is_better_than_microlib_on_antialiased_text():
    # A dark, thin label on a mid-grey noisy background: many rim pixels never reach the bar colour.
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(150, 6, (120, 200)), 0, 255)
    from PIL import ImageDraw, ImageFont

    canvas = Image.new("L", (200, 120), 0)
    d = ImageDraw.Draw(canvas)
    d.text((20, 60), "20 µm", fill=255, font=ImageFont.load_default(size=14))
    d.rectangle([20, 85, 110, 89], fill=255)
    a = np.asarray(canvas, np.float32) / 255
    img = np.rint(img * (1 - a)).astype(np.uint8)  # black bar and label, anti-aliased
    truth = a > 0
    box = (10, 50, 130, 100)
    ours = sb.bar_mask(img, 0, 10, box)
    ml = sb.microlib_mask(img, 0, 10, box)
    cov = lambda m: (m & truth).sum() / truth.sum()  # noqa: E731
    assert cov(ours) > 0.99 and cov(ours) > cov(ml)


def test_white_bar_on_white_phase_does_not_spill():
    raw, bar = _demo(0)  # white bar over a two-phase image with a bright phase at 200
    x0, y0, x1, y1 = bar["box_xyxy"]
    m = sb.bar_mask(raw, 255, 10, (x0 - 20, y0 - 20, x1 + 20, y1 + 20))
    from scipy import ndimage as ndi

    far = ndi.distance_transform_edt(~_truth(0)) > 2
    assert (m & far).sum() / m.sum() < 0.05


@pytest.mark.parametrize("i", range(len(CATALOG)))
def test_detect_demo_bars(i):
    raw, bar = _demo(i)
    det = sb.detect_scale_bar(raw)
    x0, y0, x1, y1 = bar["box_xyxy"]
    bx0, by0, bx1, by1 = det.box
    assert bx0 <= x0 + 1 and by0 <= y0 + 1 and bx1 >= x1 - 1 and by1 >= y1 - 1
    assert abs(det.bar_length_px - bar["bar_length_px"]) <= 1.5
    if det.value_um is not None:  # when read, it must be right
        assert det.value_um == pytest.approx(bar["bar_value_um"])


def test_no_bar_is_a_clear_error():
    noise = (np.random.default_rng(0).random((128, 128)) * 255).astype(np.uint8)
    with pytest.raises(sb.ScaleBarError, match="no scale bar"):
        sb.detect_scale_bar(noise)


def test_voxel_size_and_microlib_barcol():
    assert sb.voxel_size(100, 50) == 0.5
    assert sb.length_between((10, 5), (109, 5)) == 100
    with pytest.raises(sb.ScaleBarError):
        sb.voxel_size(0, 50)
    assert sb.microlib_barcol(255, 25.5) == [255, 255]
    assert sb.tolerance_from_barcol([255, 255]) == (255.0, 25.5)


def test_16bit_and_float_input():
    raw, bar = _demo(0)
    x0, y0, x1, y1 = bar["box_xyxy"]
    box = (x0 - 4, y0 - 4, x1 + 4, y1 + 4)
    a = sb.bar_mask(raw, 255, 10, box)
    assert np.array_equal(a, sb.bar_mask(raw.astype(np.uint16) * 257, 255, 10, box))
    assert np.array_equal(a, sb.bar_mask(raw.astype(np.float32) / 255, 255, 10, box))


def test_cli_scalebar(tmp_path, capsys):
    raw, bar = _demo(0)
    src = tmp_path / "raw.png"
    Image.fromarray(raw).save(src)
    out = tmp_path / "mask.png"
    assert main(["scalebar", str(src), "--auto", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert abs(res["bar_length_px"] - bar["bar_length_px"]) <= 1.5 and len(res["box"]) == 4
    assert np.asarray(Image.open(out)).sum() > 0
    x0, y0, x1, y1 = bar["box_xyxy"]
    assert main(["scalebar", str(src), "--pick", f"{(x0 + x1) // 2},{y1 - 2}", "--box",
                 f"{x0 - 4},{y0 - 4},{x1 + 4},{y1 + 4}", "--tolerance", "12", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mask_pixels"] > 100
    assert main(["scalebar", str(src), "--pick", "5000,5", "--out", str(out)]) == 2
    assert "outside" in capsys.readouterr().err


@pytest.mark.parametrize("text,expected", [
    ("50 um", ("50 µm", 50.0)), ("10 pm", ("10 µm", 10.0)), ("200µm", ("200 µm", 200.0)),
    ("5 ym", ("5 µm", 5.0)), ("500 nm", ("500 nm", 0.5)), ("2 mm", ("2 mm", 2000.0)), ("0,5 um", ("0.5 µm", 0.5)),
    ("5 un", ("5 µm", 5.0)), ("20 pum", ("20 µm", 20.0)),
    ("640 pm", None), ("54m", None), ("", None), ("5 umbrella", None)])
def test_label_text_parsing(text, expected):
    # OCR output: µ is often read as u, p or y; only usual scale-bar values are taken
    assert sb.parse_label_text(text) == expected


def test_demo_labels_read_when_ocr_is_installed():
    from microlib_gui.core.scalebar import ocr

    if not ocr.available():
        pytest.skip("tesseract is not installed (scripts/setup.sh installs tesseract-ocr)")
    read, readers = 0, set()
    for i in range(len(CATALOG)):
        raw, bar = _demo(i)
        det = sb.detect_scale_bar(raw)
        if det.value_um is not None:
            assert det.value_um == pytest.approx(bar["bar_value_um"])
            read += 1
            readers.add(det.to_dict()["label_reader"])
    assert read >= len(CATALOG) - 1
    # the demo's thin labels need OCR (alone, or agreeing with a template)
    assert readers & {"ocr", "ocr+template"} and readers <= {"template", "ocr", "ocr+template"}

"""Crop and rotate on arrays; annotation round-trip of the preprocessing keys."""

import numpy as np
import pytest

from microlib_gui.core.errors import MicrolibError
from microlib_gui.commands._args import parse_box
from microlib_gui.core.preprocess import apply_geometry, crop_image, rotate_image


def test_crop_takes_exactly_the_box():
    img = np.arange(100 * 80, dtype=np.float32).reshape(80, 100)
    out = crop_image(img, (10, 20, 30, 25))
    assert out.shape == (5, 20)
    assert out[0, 0] == img[20, 10] and out[-1, -1] == img[24, 29]


@pytest.mark.parametrize("box", [(0, 0, 101, 10), (5, 5, 5, 10), (-1, 0, 10, 10)])
def test_crop_outside_the_image_is_refused(box):
    with pytest.raises(MicrolibError, match="does not fit"):
        crop_image(np.zeros((80, 100)), box)


def test_quarter_turn_is_exact_and_labels_stay_labels():
    lab = (np.random.default_rng(0).random((64, 64)) > 0.5).astype(np.uint8)
    assert np.array_equal(rotate_image(lab, 90, labels=True), np.rot90(lab))
    r = rotate_image(lab, 17, labels=True)
    assert r.dtype == np.uint8 and set(np.unique(r)) <= {0, 1}


def test_rotation_then_crop_of_colour_and_16bit():
    rgb = np.random.default_rng(1).random((64, 96, 3)).astype(np.float32)
    out = apply_geometry(rgb, crop=(4, 4, 40, 30), rotation=5)
    assert out.shape == (26, 36, 3) and out.dtype == np.float32
    u16 = (np.random.default_rng(2).random((64, 64)) * 65535).astype(np.uint16)
    assert apply_geometry(u16, rotation=3).dtype == np.uint16


def test_parse_box_reason():
    assert parse_box("1,2,30,40") == (1, 2, 30, 40)
    with pytest.raises(MicrolibError, match="x0,y0,x1,y1"):
        parse_box("1,2,3")


def test_preprocessing_annotations_round_trip(demo_library):
    lib = demo_library
    eid = lib.list_entries()[0].id
    ann = {"crop": [0, 0, 300, 280], "rotation": 2.5, "phases": [70, 200], "thresholds": [135.0],
           "n_phases": 2, "segment_method": "phases", "barbox": [[280, 330], [370, 370]],
           "barcol": [255, 100], "bar_pick": [300, 360], "bar_tolerance": 10.0,
           "bar_ends": [[290, 365], [385, 365]], "bar_length_px": 96.0, "bar_value_um": 20.0,
           "vox_size": 0.2083, "data_type": "twophase"}
    lib.set_annotations(eid, ann)
    assert lib.get_annotations(eid) == ann
    from microlib_gui.core.annotations import to_microlib_ann

    ml = to_microlib_ann(lib.get_annotations(eid))
    assert ml["barcol"] == [255, 100] and ml["phases"] == [70, 200] and ml["crop"] == [0, 0, 300, 280]

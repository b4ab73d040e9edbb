"""Inpainting a library entry: which image and mask to use, and where results go.

The training image is the entry's segmented label image when there is one,
else its grayscale image. The segment/preprocess engine is being written beside
this module; until it is there, :func:`entry_inputs` derives the image from the
annotations itself (crop, rotation, thresholds halfway between ``phases``) in
:func:`_derive_from_annotations` — the one place to switch over later.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..images import load_image
from ..steps import DONE
from .data import InpaintImage, load_inpaint_image, load_mask, prepare_image
from .regions import mask_from_array

#: Label images another step may have written, tried in order.
SEGMENTED_SUFFIXES = ("_segmented.png", "_labels.png")
MASK_SUFFIX = "_mask.png"
INPAINTED_SUFFIX = "_inpainted.png"
GIF_SUFFIX = "_inpaint.gif"


@dataclass
class EntryInputs:
    """What the Inpaint step works on for one entry."""

    image: InpaintImage
    mask: np.ndarray | None  # bool, or None when no scale bar has been marked
    inputs: list[str]  # suffixes of the entry files they came from (provenance)
    description: str  # for the user, e.g. "segmented labels (2 phases)"


def _segment_by_phases(gray255: np.ndarray, ann: dict) -> np.ndarray | None:
    """Labels from explicit ``thresholds``, else phase k = pixels nearest ``phases[k]``.

    Nearest level is the same as thresholds halfway between the sorted levels,
    but keeps the annotation's phase order.
    """
    if ann.get("thresholds"):
        return np.digitize(gray255, sorted(float(t) for t in ann["thresholds"])).astype(np.uint8)
    phases = ann.get("phases")
    if not phases or len(phases) < 2:
        return None
    levels = np.asarray([float(v) for v in phases], np.float32)
    lut = np.argmin(np.abs(np.arange(256, dtype=np.float32)[:, None] - levels[None]), axis=1).astype(np.uint8)
    return lut[gray255]


def _crop_rotate(arr: np.ndarray, ann: dict, order: int) -> np.ndarray:
    from scipy import ndimage

    if ann.get("rotation"):
        arr = ndimage.rotate(arr, float(ann["rotation"]), reshape=False, order=order, mode="nearest")
    if ann.get("crop"):
        x0, y0, x1, y1 = ann["crop"]
        arr = arr[y0:y1, x0:x1]
    return arr


def _derive_from_annotations(library, entry_id: int, ann: dict) -> tuple[InpaintImage, np.ndarray, list[str]]:
    """(training image, the full original as gray 0-255, inputs) from the original and the annotations."""
    src = library.original_path(entry_id)
    gray255 = np.clip(np.rint(load_image(src).gray() * 255), 0, 255).astype(np.uint8)
    work = _crop_rotate(gray255, ann, order=1)
    labels = _segment_by_phases(work, ann)
    suffix = src.name[len(library.entry_file(entry_id, "").name):]
    if labels is not None and np.unique(labels).size >= 2:
        image = prepare_image(labels, "labels")
    else:
        image = prepare_image(work, "gray")
    return image, gray255, [suffix]


def entry_inputs(library, entry_id: int) -> EntryInputs:
    """The image and mask the Inpaint step uses for ``entry_id``.

    Raises
    ------
    InpaintError
        The mask file does not fit the image, or the image cannot be used.
    """
    ann = library.get_annotations(entry_id)
    inputs: list[str] = []
    image = None
    for suffix in SEGMENTED_SUFFIXES:
        if library.entry_file(entry_id, suffix).exists():
            image = load_inpaint_image(library.entry_file(entry_id, suffix), "labels")
            inputs = [suffix]
            break
    original_gray = None
    if image is None:
        image, original_gray, inputs = _derive_from_annotations(library, entry_id, ann)
    desc = (f"segmented labels ({image.n_phases} phases)" if image.kind == "labels"
            else "grayscale image (not segmented)")
    mask = None
    mask_path = library.entry_file(entry_id, MASK_SUFFIX)
    if mask_path.exists():
        mask = mask_from_array(load_mask(mask_path), image.shape, mask_path.name)
        inputs.append(MASK_SUFFIX)
    elif ann.get("barbox") and ann.get("barcol"):
        mask = _mask_from_annotations(library, entry_id, ann, image.shape, original_gray)
    return EntryInputs(image, mask, inputs, desc)


def _mask_from_annotations(library, entry_id, ann, shape, original_gray) -> np.ndarray | None:
    """MicroLib's annotations give a box and a colour: mask the bar in the original, then crop/rotate."""
    from ..scalebar import bar_mask, tolerance_from_barcol

    if original_gray is None:
        original_gray = np.clip(np.rint(load_image(library.original_path(entry_id)).gray() * 255), 0, 255
                                ).astype(np.uint8)
    grey, tol = tolerance_from_barcol(ann["barcol"])
    full = bar_mask(original_gray, grey, tol, box=ann["barbox"])
    m = _crop_rotate(full.astype(np.uint8), ann, order=0) > 0
    if m.shape != tuple(shape) or not m.any() or m.all():
        return None
    return m


def save_result(library, entry_id: int, result: dict, inputs: list[str], params: dict) -> list[str]:
    """Write ``_inpainted.png`` (and ``_inpaint.gif`` when there are frames); mark the step done.

    Returns the file names written.
    """
    from PIL import Image

    from . import write_gif

    def write_png(tmp) -> None:
        buf = io.BytesIO()
        Image.fromarray(result["output"]).save(buf, format="PNG")
        tmp.write_bytes(buf.getvalue())

    written = [library.write_file(entry_id, INPAINTED_SUFFIX, writer=write_png, produced_by=f"inpaint-{result['method']}",
                                  inputs=inputs, params=params).name]
    if result.get("frames"):
        written.append(library.write_file(entry_id, GIF_SUFFIX, writer=lambda tmp: write_gif(tmp, result["frames"]),
                                          produced_by=f"inpaint-{result['method']}", inputs=inputs,
                                          params=params).name)
    run = library.start_run(entry_id, "inpaint", params, seed=params.get("seed"))
    library.finish_run(run, "done", timings=result.get("timings"), files=written)
    library.set_step_status(entry_id, "inpaint", DONE)
    library.mark_later_steps_stale(entry_id, "inpaint")
    return written

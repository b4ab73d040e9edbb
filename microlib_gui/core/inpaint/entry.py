"""Inpainting a library entry: which image and mask to use, and where results go.

The training image is the entry's segmented label image (``_segmented.png``,
written by the Segment step) when there is one; otherwise it is derived as the
Segment step would (rotation, crop, thresholds from the annotations) with
:mod:`..preprocess` and :mod:`..segment`, or the grayscale image for entries
that are not segmented.
The mask is ``_mask.png`` (Scale bar step), else the bar found from MicroLib's
``barbox``/``barcol`` annotations.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .. import preprocess as pp
from ..steps import DONE
from .data import InpaintImage, load_inpaint_image, load_mask, prepare_image
from .regions import mask_from_array

SEGMENTED_SUFFIX = pp.SEGMENTED_SUFFIX
MASK_SUFFIX = pp.MASK_SUFFIX
INPAINTED_SUFFIX = "_inpainted.png"
GIF_SUFFIX = "_inpaint.gif"


@dataclass
class EntryInputs:
    """What the Inpaint step works on for one entry."""

    image: InpaintImage
    mask: np.ndarray | None  # bool, or None when no scale bar has been marked
    inputs: list[str]  # suffixes of the entry files they came from (provenance)
    description: str  # for the user, e.g. "segmented labels (2 phases)"


def _original_suffix(library, entry_id: int) -> str:
    return library.original_path(entry_id).name[len(library.entry_file(entry_id, "").name):]


def _derive_from_annotations(library, entry_id: int, ann: dict) -> tuple[InpaintImage, list[str]]:
    """The training image made from the original as the Segment step makes it.

    Rotation and crop, then the annotated thresholds (or phase levels) through
    :func:`..segment.segment`; entries typed grayscale/colour, or with no levels
    yet, stay grayscale.
    """
    from .. import segment as sg

    work = pp.apply_geometry(pp.entry_image(library, entry_id).data, ann.get("crop"), ann.get("rotation"))
    seg = None
    if sg.needs_segmentation(ann.get("data_type")):
        sigma = float(ann.get("deblur_sigma") or 0)
        if ann.get("thresholds"):
            seg = sg.segment(work, thresholds=ann["thresholds"], deblur_sigma=sigma)
        elif ann.get("phases") and len(ann["phases"]) >= 2:
            seg = sg.segment(work, phases=ann["phases"], deblur_sigma=sigma)
    if seg is not None and np.unique(seg.labels).size >= 2:
        image = prepare_image(seg.labels, "labels")
    else:
        image = prepare_image(np.clip(np.rint(sg.gray255(work)), 0, 255).astype(np.uint8), "gray")
    return image, [_original_suffix(library, entry_id)]


def entry_inputs(library, entry_id: int) -> EntryInputs:
    """The image and mask the Inpaint step uses for ``entry_id``.

    Raises
    ------
    InpaintError
        The mask file does not fit the image, or the image cannot be used.
    """
    ann = library.get_annotations(entry_id)
    seg_path = library.entry_file(entry_id, SEGMENTED_SUFFIX)
    if seg_path.exists():
        image, inputs = load_inpaint_image(seg_path, "labels"), [SEGMENTED_SUFFIX]
    else:
        image, inputs = _derive_from_annotations(library, entry_id, ann)
    desc = (f"segmented labels ({image.n_phases} phases)" if image.kind == "labels"
            else "grayscale image (not segmented)")
    mask = None
    mask_path = library.entry_file(entry_id, MASK_SUFFIX)
    if mask_path.exists():
        mask = mask_from_array(load_mask(mask_path), image.shape, mask_path.name)
        inputs.append(MASK_SUFFIX)
    elif ann.get("barbox") and ann.get("barcol"):
        mask = _mask_from_annotations(library, entry_id, ann, image.shape)
    return EntryInputs(image, mask, inputs, desc)


def _mask_from_annotations(library, entry_id, ann, shape) -> np.ndarray | None:
    """MicroLib's annotations give a box and a colour: mask the bar in the original, then rotate/crop."""
    from ..scalebar import bar_mask, tolerance_from_barcol

    grey, tol = tolerance_from_barcol(ann["barcol"])
    full = bar_mask(pp.entry_image(library, entry_id).data, grey, tol, box=ann["barbox"])
    m = pp.mask_in_working_frame(full, ann)
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

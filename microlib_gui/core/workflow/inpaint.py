"""Inpaint step: remove the scale bar from the training image → ``_inpainted.png`` (+ ``_inpaint.gif``).

The training image is the segmented crop (or, for entries kept grayscale, the
gray crop) and the mask is the bar in the same frame; both are derived from the
current annotations here (:func:`inputs`), so the Inpaint panel, the build and
the CLI inpaint the same pixels. With no bar in the frame, the training image
is saved as it is (:func:`save_without_bar`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import preprocess as pp
from .. import segment as sg
from ..inpaint.data import InpaintImage, prepare_image
from ..inpaint.regions import InpaintError
from ..library import layout as L
from ..library import StagedFile
from . import scalebar
from . import segment as seg_step
from .common import original_image, original_suffix, png_bytes

STEP = "inpaint"


@dataclass
class InpaintInputs:
    """What the Inpaint step works on for one entry."""

    image: InpaintImage
    mask: np.ndarray | None  #: bool, in the image's frame; None when no bar is there
    inputs: list[str]  #: suffixes of the entry files they came from (provenance)
    description: str  #: for the user, e.g. "segmented labels (2 phases)"
    signature: str  #: changes whenever the image or the mask does (a result of other inputs is stale)
    no_bar: bool = False  #: the Scale bar step says the micrograph has no bar


def inputs(library, entry_id: int) -> InpaintInputs:
    """The image and mask to inpaint, from the current annotations."""
    ann = library.get_annotations(entry_id)
    original = original_image(library, entry_id)
    gray = pp.working_gray(original, ann)
    labels = seg_step.labels_for(gray, ann)
    if labels is not None and np.unique(labels).size >= 2:
        # stored as MicroLib's training images are: two phases 0/255, n phases spread over 0..255
        image = prepare_image(sg.labels_to_png(labels), "labels")
        desc = f"segmented labels ({image.n_phases} phases)"
    else:
        image = prepare_image(np.clip(np.rint(gray), 0, 255).astype(np.uint8), "gray")
        desc = "grayscale image (not segmented)"
    if scalebar.has_no_bar(ann):
        mask = None  # the Scale bar step says there is none
    elif scalebar.bar_colour(ann) is not None:
        mask = scalebar.mask_in_frame(original, ann)
    else:  # a mask that came from elsewhere (imported, drawn by another tool) and fits this frame
        mask = _mask_file(library, entry_id, image.shape)
    if mask is not None and (mask.shape != image.shape or mask.all()):
        mask = None
    files = [original_suffix(library, entry_id)]
    files += [f.suffix for f in (L.SEGMENTED, L.MASK) if library.entry_file(entry_id, f.suffix).exists()]
    h = hashlib.sha256(np.ascontiguousarray(image.original).tobytes())
    h.update(b"" if mask is None else np.packbits(mask).tobytes())
    return InpaintInputs(image, mask, files, desc, h.hexdigest()[:16], scalebar.has_no_bar(ann))


def _mask_file(library, entry_id: int, shape) -> np.ndarray | None:
    path = library.entry_file(entry_id, L.MASK.suffix)
    if not path.exists():
        return None
    from ..inpaint.data import load_mask
    from ..inpaint.regions import mask_from_array

    return mask_from_array(load_mask(path), shape, path.name)


def saved_path(library, entry_id: int):
    """The entry's saved training image, or None."""
    path = library.entry_file(entry_id, L.INPAINTED.suffix)
    return path if path.exists() else None


def job(ctx, inputs: InpaintInputs, **params) -> dict:
    """Job function: inpaint ``inputs`` with :func:`microlib_gui.core.inpaint.inpaint_job`."""
    from ..inpaint import inpaint_job

    if inputs.mask is None:
        raise InpaintError("no scale bar is marked in this entry's frame: nothing to inpaint")
    return inpaint_job(ctx, image=inputs.image, mask=inputs.mask, **params)


def _files(library, entry_id, output: np.ndarray, frames, inputs: list[str], params: dict, method: str):
    from ..inpaint import write_gif

    by = f"inpaint-{method}"
    files = [StagedFile(L.INPAINTED.suffix, png_bytes(output), inputs=inputs, params=params, produced_by=by)]
    if frames:
        files.append(StagedFile(L.INPAINT_GIF.suffix, writer=lambda tmp: write_gif(tmp, frames), inputs=inputs,
                                params=params, produced_by=by))
    return files


def save(library, entry_id: int, result: dict, inputs: InpaintInputs, params: dict):
    """Accept an inpainting result: ``_inpainted.png`` (+ gif), a run record, step done, in one transaction."""
    files = _files(library, entry_id, result["output"], result.get("frames"), inputs.inputs, params,
                   result.get("method", params.get("method", "fast")))
    run = {"kind": STEP, "params": params, "seed": params.get("seed"), "status": "done",
           "timings": result.get("timings") or {}, "files": [library.entry_file(entry_id, f.suffix).name for f in files]}
    return library.complete_step(entry_id, STEP, files=files, run=run)


def save_without_bar(library, entry_id: int, inputs: InpaintInputs | None = None):
    """No bar to remove: the training image is the segmented (or gray) crop as it is."""
    inputs = inputs or globals()["inputs"](library, entry_id)
    return library.complete_step(entry_id, STEP, files=_files(library, entry_id, inputs.image.original, None,
                                                              inputs.inputs, {"method": "none"}, "none"),
                                 remove=[L.INPAINT_GIF.suffix])

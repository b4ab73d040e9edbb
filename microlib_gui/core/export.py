"""The MicroLib dataset layout of an exported entry, and the volume TIFF format (with its voxel size).

One exported entry is a folder ``OUT/microstructureNNN/`` holding the files of
MicroLib's dataset (a file missing from the library is made when it can be made
from what is there, otherwise reported as missing):

==============================  ============================================================
``microstructureNNN.tif``       the 3D volume, uint8 labels or grayscale, voxel size in µm
                                in the TIFF metadata (ImageJ ``spacing``/``unit`` and the
                                X/Y resolution tags)
``microstructureNNN.mp4``       360° rotation movie (rendered from the volume if absent)
``_long.png``                   rotation-and-erosion strip (rendered if absent)
``_inpaint.gif`` / ``.mp4``     the inpainting animation (the .mp4 made from the .gif)
``_inpainted.png``              the training image
``_original.png``               the micrograph as downloaded (converted to PNG if needed)
``_Gen.pt``, ``_Disc.pt``,      the SliceGAN generator, critic and network parameters, as
``_params.data``                the SliceGAN repository writes them
``_meta.json``                  the generator's image type, phases and the layers it was
                                trained with (ours; the published code ignores it)
==============================  ============================================================

plus ``microstructureNNN_export.json`` (which library and entry the folder holds),
and ``OUT/data_anns.json`` lists the exported entries. The per-entry folder has
the layout the SliceGAN repository loads a trained generator from
(``NAME/NAME_Gen.pt`` + ``NAME/NAME_params.data``). Every file is written
atomically. The Export step itself — refusing to overwrite another library's
entry, the library's default folder, the record of what was exported — is
:mod:`microlib_gui.core.workflow.export`; this module holds the layout and the
volume TIFF format.

A training run's generator is published into the entry under those names by
:func:`microlib_gui.core.workflow.train.publish`; :mod:`microlib_gui.core.workflow.generate`
makes the entry's ``.tif`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import atomic_path
from .errors import MicrolibError
from .library import layout as L
from .media import volume_kind

#: Two layout files only an export has: the inpainting animation as a movie, the original as PNG.
INPAINT_MP4 = "_inpaint.mp4"
ORIGINAL_PNG = L.ORIGINAL_STEM + ".png"
#: The files of one exported entry, in the order they are written.
LAYOUT = (L.VOLUME.suffix, L.MOVIE.suffix, L.LONG_PNG.suffix, L.INPAINT_GIF.suffix, INPAINT_MP4, L.INPAINTED.suffix,
          ORIGINAL_PNG, L.GENERATOR.suffix, L.CRITIC.suffix, L.PARAMS.suffix, L.GEN_META.suffix)
WRITTEN, COPIED, GENERATED, MISSING, FAILED = "written", "copied", "generated", "missing", "failed"


class ExportError(MicrolibError):
    """An export could not be done (bad folder, unknown entry, ...)."""


@dataclass
class ExportItem:
    """What happened to one file of the layout."""

    name: str
    status: str  # written | copied | generated | missing | failed
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class ExportResult:
    entry_id: int
    folder: Path
    items: list[ExportItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.status == FAILED for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "folder": str(self.folder), "items": [i.to_dict() for i in self.items]}


# -- TIFF volumes with voxel size ------------------------------------------------
def write_volume_tiff(path: str | Path, volume: np.ndarray, vox_size_um: float | None) -> Path:
    """Write a ``(z, y, x)`` uint8 volume as an ImageJ hyperstack TIFF with its voxel size.

    The voxel size goes in ImageJ's ``spacing`` (z) and ``unit`` ('um') and in the
    X/Y resolution tags (pixels per µm), which Fiji, napari and tifffile all read.
    """
    import tifffile

    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ExportError(f"a volume must be 3D, got shape {tuple(vol.shape)}")
    if vol.dtype != np.uint8:
        if volume_kind(vol) == "labels":
            vol = vol.astype(np.uint8)
        else:
            v = vol.astype(np.float32)
            lo, hi = float(v.min()), float(v.max())
            vol = np.rint((v - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(v)).astype(np.uint8)
    kw: dict[str, Any] = {"imagej": True, "metadata": {"axes": "ZYX"}}
    if vox_size_um:
        v = float(vox_size_um)
        kw["resolution"] = (1.0 / v, 1.0 / v)
        kw["metadata"].update({"spacing": v, "unit": "um"})
    with atomic_path(path, suffix=".tif") as tmp:
        tifffile.imwrite(tmp, vol, **kw)
    return Path(path)


def read_voxel_size(path: str | Path) -> float | None:
    """The voxel size in µm stored by :func:`write_volume_tiff` (None if absent)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata or {}
        if "spacing" in ij and str(ij.get("unit", "")).lower() in ("um", "micron", "µm", "\\u00B5m"):
            return float(ij["spacing"])
        tag = tif.pages[0].tags.get("XResolution")
        if tag is not None:
            num, den = tag.value
            if num:
                return float(den) / float(num)
    return None


def entry_vox_size(library, entry_id: int) -> float | None:
    """µm per voxel of an entry: its ``vox_size`` annotation (from the scale bar)."""
    ann = library.get_annotations(entry_id)
    v = ann.get("vox_size") or library.get_entry(entry_id).metadata.get("vox_size")
    return float(v) if v else None

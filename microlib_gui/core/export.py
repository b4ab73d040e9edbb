"""Write library entries in the MicroLib dataset layout, and publish training results.

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
==============================  ============================================================

and ``OUT/data_anns.json`` lists the exported entries (:meth:`Library.export_data_anns`).
The per-entry folder has the layout the SliceGAN repository loads a trained
generator from (``NAME/NAME_Gen.pt`` + ``NAME/NAME_params.data``). Every file is
written atomically.

:func:`publish_training` copies a finished (or stopped) training run into the
entry's folder under those names; :func:`generate_entry_volume` makes the entry's
``.tif`` from its generator.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import atomic_path
from .errors import MicrolibError
from .media import MediaError, gif_to_mp4, load_volume, volume_kind, write_long_png, write_rotation_movie

#: The files of one exported entry, in the order they are written.
LAYOUT = (".tif", ".mp4", "_long.png", "_inpaint.gif", "_inpaint.mp4", "_inpainted.png", "_original.png",
          "_Gen.pt", "_Disc.pt", "_params.data")
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


# -- training results -> entry files -----------------------------------------------------
def publish_training(library, entry_id: int, run_dir: str | Path, run_id: int | None = None) -> list[Path]:
    """Copy a SliceGAN run's generator into the entry as ``_Gen.pt``, ``_params.data``,
    ``_Disc.pt`` (the x critic, from the checkpoint) and ``_meta.json``.

    The critic is read with ``torch.load(weights_only=True)``; the files are
    written with provenance pointing at ``_inpainted.png``.
    """
    import torch

    run_dir = Path(run_dir)
    gens = sorted(run_dir.glob("*_Gen.pt"))
    if not gens:
        raise ExportError(f"{run_dir.name}: the training run has no generator yet")
    stem = gens[0].name[: -len("_Gen.pt")]
    inputs = ["_inpainted.png"] if library.entry_file(entry_id, "_inpainted.png").exists() else []
    written = []
    for suffix in ("_Gen.pt", "_params.data", "_meta.json"):
        src = run_dir / (stem + suffix)
        if src.exists():
            written.append(library.write_file(entry_id, suffix, src.read_bytes(), produced_by="train",
                                              inputs=inputs, run_id=run_id))
    ck = run_dir / "checkpoint.pt"
    if ck.exists():
        try:
            state = torch.load(ck, map_location="cpu", weights_only=True)
            critic = state["D"][0]
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint: keep the generator
            raise ExportError(f"{ck.name}: cannot read the critic ({' '.join(str(exc).split())[:100]})") from None
        written.append(library.write_file(entry_id, "_Disc.pt", writer=lambda tmp: torch.save(critic, tmp),
                                          produced_by="train", inputs=inputs, run_id=run_id))
    return written


def generate_entry_volume(ctx, library_root: str, entry_id: int, size: int = 64,
                          periodic: tuple[bool, bool, bool] = (False, False, False), seed: int = 0,
                          device: str = "auto", max_block_voxels: int | None = None) -> dict:
    """Job function: generate the entry's volume (``microstructureNNN.tif``) from its ``_Gen.pt``.

    Generation is tiled and streamed to disk (:func:`..slicegan.generate.generate_to_file`),
    so large volumes never need the whole volume in memory at once.
    """
    from .slicegan.generate import generate_to_file
    from .slicegan.fileformat import load_generator
    from .store import Library

    lib = Library(library_root, create=False)
    gen = lib.entry_file(entry_id, "_Gen.pt")
    if not gen.exists():
        raise ExportError(f"{gen.name}: no trained generator for this entry; run the Train step first")
    G, _meta = load_generator(gen)
    ctx.check_cancelled()

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.report(done, total, f"block {done}/{total}")

    info: dict[str, Any] = {}

    def writer(tmp: Path) -> None:
        info.update(generate_to_file(G, tmp, size=size, periodic=tuple(periodic), seed=seed, device=device,
                                     max_block_voxels=max_block_voxels, progress=progress))

    path = lib.write_file(entry_id, ".tif", writer=writer, produced_by="generate", inputs=["_Gen.pt"],
                          params={"size": size, "periodic": list(periodic), "seed": seed})
    return {"path": str(path), "shape": info.get("shape"), "seconds": info.get("seconds")}


# -- export ------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def export_entry(library, entry_id: int, out_dir: str | Path, *, media: bool = True, n_frames: int = 72,
                 progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export one entry into ``out_dir/microstructureNNN/`` (see the module docstring).

    Parameters
    ----------
    library : Library
    entry_id : int
    out_dir : path
        Created if needed.
    media : bool
        Render the movie and strip from the volume when the entry lacks them.
    n_frames : int
        Frames of a rendered rotation movie.
    progress : callable(str), optional
        Told the name of each file before it is written.

    Returns
    -------
    ExportResult with one :class:`ExportItem` per layout file.
    """
    from .images import load_image, save_png

    entry = library.get_entry(entry_id)
    name = entry.name
    folder = Path(out_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {folder}: {exc.strerror or exc}") from None
    res = ExportResult(entry_id, folder)
    src = lambda suffix: library.entry_file(entry_id, suffix)  # noqa: E731
    dst = lambda suffix: folder / (name + suffix)  # noqa: E731
    volume = None
    volume_err = "no generated volume (Inspect → Generate)"

    def get_volume():
        nonlocal volume, volume_err
        if volume is None and src(".tif").exists():
            try:
                volume = load_volume(src(".tif"))
            except MediaError as exc:
                volume_err = str(exc)
        return volume

    for suffix in LAYOUT:
        if progress:
            progress(name + suffix)
        try:
            item = _export_one(library, entry, suffix, src, dst, get_volume, media, n_frames, load_image, save_png)
        except (MicrolibError, OSError, ValueError, RuntimeError) as exc:
            item = ExportItem(name + suffix, FAILED, " ".join(str(exc).split())[:200])
        if item.status == MISSING and suffix in (".tif", ".mp4", "_long.png") and not item.detail:
            item.detail = volume_err
        res.items.append(item)
        if dst(suffix).exists():
            _share(dst(suffix))
    return res


def _share(path: Path) -> None:
    """Exported files are for others: readable as the umask allows (temp files start at 0600)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass


def _export_one(library, entry, suffix, src, dst, get_volume, media, n_frames, load_image, save_png) -> ExportItem:
    fname = entry.name + suffix
    if suffix == ".tif":
        vol = get_volume()
        if vol is None:
            return ExportItem(fname, MISSING)
        vox = entry_vox_size(library, entry.id)
        write_volume_tiff(dst(suffix), vol, vox)
        return ExportItem(fname, WRITTEN, f"{tuple(vol.shape)}, " + (f"{vox:g} µm/voxel" if vox
                                                                    else "voxel size unknown (no scale bar)"))
    if suffix in (".mp4", "_long.png"):
        if src(suffix).exists() and not library.is_stale(entry.id, suffix):
            _copy(src(suffix), dst(suffix))
            return ExportItem(fname, COPIED)
        vol = get_volume() if media else None
        if vol is None:
            return ExportItem(fname, MISSING, "" if media else "media rendering switched off")
        if suffix == ".mp4":
            write_rotation_movie(vol, dst(suffix), n_frames=n_frames)
        else:
            write_long_png(vol, dst(suffix))
        return ExportItem(fname, GENERATED, "rendered from the volume")
    if suffix == "_inpaint.mp4":
        if src(suffix).exists():
            _copy(src(suffix), dst(suffix))
            return ExportItem(fname, COPIED)
        if src("_inpaint.gif").exists():
            gif_to_mp4(src("_inpaint.gif"), dst(suffix))
            return ExportItem(fname, GENERATED, "made from _inpaint.gif")
        return ExportItem(fname, MISSING, "no inpainting animation (Inpaint step with the GAN method)")
    if suffix == "_original.png":
        orig = library.original_path(entry.id)
        if orig.suffix.lower() == ".png":
            _copy(orig, dst(suffix))
            return ExportItem(fname, COPIED)
        save_png(dst(suffix), load_image(orig).as_uint8())
        return ExportItem(fname, GENERATED, f"converted from {orig.suffix}")
    if src(suffix).exists():
        _copy(src(suffix), dst(suffix))
        return ExportItem(fname, COPIED)
    why = {"_inpainted.png": "Inpaint step not done", "_inpaint.gif": "no inpainting animation",
           "_Gen.pt": "not trained yet", "_params.data": "not trained yet", "_Disc.pt": "not trained yet"}
    return ExportItem(fname, MISSING, why.get(suffix, ""))


def export_entries(library, entry_ids: list[int] | None, out_dir: str | Path, *, media: bool = True,
                   n_frames: int = 72, progress: Callable[[str], None] | None = None) -> list[ExportResult]:
    """Export several entries (None: every entry not excluded) and write ``data_anns.json``."""
    if entry_ids is None:
        entry_ids = [e.id for e in library.list_entries(include_excluded=False)]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder")
    results = [export_entry(library, eid, out, media=media, n_frames=n_frames, progress=progress)
               for eid in entry_ids]
    _share(library.export_data_anns(out / "data_anns.json", entries=list(entry_ids)))
    return results


def export_job(ctx, library_root: str, entry_ids: list[int] | None, out_dir: str, media: bool = True,
               n_frames: int = 72) -> list[dict]:
    """Job function around :func:`export_entries` (for the GUI's background thread)."""
    from .store import Library

    lib = Library(library_root, create=False)
    ids = entry_ids if entry_ids is not None else [e.id for e in lib.list_entries(include_excluded=False)]
    total = len(ids) * len(LAYOUT)
    count = [0]

    def progress(fname: str) -> None:
        ctx.check_cancelled()
        ctx.report(count[0], total, f"writing {fname}")
        count[0] += 1

    results = export_entries(lib, ids, out_dir, media=media, n_frames=n_frames, progress=progress)
    return [r.to_dict() for r in results]

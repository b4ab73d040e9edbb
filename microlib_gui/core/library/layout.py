"""Every file of an entry folder, declared once: its suffix and the step that makes it.

``microstructureNNN<suffix>`` in MicroLib's dataset layout. Code that reads or
writes an entry file names it through these constants, never by a literal, so a
renamed file or a new producer changes one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntryFile:
    """One kind of file in an entry folder."""

    suffix: str  #: appended to ``microstructureNNN``
    step: str  #: the wizard step (core.steps.STEPS) that writes it
    what: str  #: for people: what the file holds


SEGMENTED = EntryFile("_segmented.png", "segment", "phase labels of the cropped, rotated micrograph")
MASK = EntryFile("_mask.png", "scalebar", "scale-bar mask (255) in the cropped frame")
INPAINTED = EntryFile("_inpainted.png", "inpaint", "training image: segmented crop with the bar removed")
INPAINT_GIF = EntryFile("_inpaint.gif", "inpaint", "animation of the inpainting optimisation")
GENERATOR = EntryFile("_Gen.pt", "train", "SliceGAN generator weights (published format)")
PARAMS = EntryFile("_params.data", "train", "SliceGAN network parameters (published format)")
CRITIC = EntryFile("_Disc.pt", "train", "SliceGAN critic weights")
GEN_META = EntryFile("_meta.json", "train", "image type, phase values and iteration of the generator")
VOLUME = EntryFile(".tif", "inspect", "generated 3D volume (voxel size in its tags)")
STATS_JSON = EntryFile("_stats.json", "inspect", "2D vs 3D statistics of the volume")
STATS_PNG = EntryFile("_stats.png", "inspect", "figure of the 2D vs 3D statistics")
MOVIE = EntryFile(".mp4", "export", "rotation movie of the volume")
LONG_PNG = EntryFile("_long.png", "export", "rotation-and-erosion strip of the volume")
EXPORT_MANIFEST = EntryFile("_export.json", "export", "what was exported where")
SELFTEST = EntryFile("_selftest.json", "browse", "diagnostic histogram written by `microlib build --steps selftest`")

#: The original is ``_original`` plus the extension of the imported format.
ORIGINAL_STEM = "_original"
ORIGINAL_EXT = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}

#: Every derived file, in the order the steps make them.
DERIVED: tuple[EntryFile, ...] = (SEGMENTED, MASK, INPAINTED, INPAINT_GIF, GENERATOR, PARAMS, CRITIC,
                                  GEN_META, VOLUME,
                                  STATS_JSON, STATS_PNG, MOVIE, LONG_PNG, EXPORT_MANIFEST)
#: The three files a training run publishes into the entry.
TRAINED = (GENERATOR, PARAMS, CRITIC)

#: Where training runs live inside an entry folder: ``train/run-NNN/``, numbered from 1 per entry.
RUNS_DIR = "train"


def run_dir_name(number: int) -> str:
    """``run-001`` for the entry's first training run."""
    return f"run-{int(number):03d}"


def produced_by(suffix: str) -> str | None:
    """The step that writes the file with ``suffix`` (None for the original or unknown files)."""
    return next((f.step for f in DERIVED if f.suffix == suffix), None)

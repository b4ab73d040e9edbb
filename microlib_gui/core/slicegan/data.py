"""Training images → tensors on the device, and random patch batches drawn there.

The published code pre-samples tens of thousands of patches on the CPU; here the
whole image stays on the device and each critic step gathers a fresh batch of
random crops with one indexing operation (no host work, no synchronisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ImageError
from ..images import load_image
from . import IMTYPES, SliceGANError

#: More distinct grey levels than this and an image is not an n-phase label image.
MAX_PHASES = 8


@dataclass
class TrainingImage:
    """A training image as a (C, H, W) float32 array, with how it was encoded."""

    data: np.ndarray
    imtype: str
    phases: list[int] | None  # grey levels (0-255) of each phase, n-phase only

    @property
    def nc(self) -> int:
        return self.data.shape[0]


def detect_type(gray_u8: np.ndarray, is_colour: bool) -> str:
    """"colour" for colour files, "nphase" for at most MAX_PHASES grey levels, else "grayscale"."""
    if is_colour:
        return "colour"
    return "nphase" if len(np.unique(gray_u8)) <= MAX_PHASES else "grayscale"


def encode(image: np.ndarray, imtype: str, phases: list[int] | None = None) -> TrainingImage:
    """Encode one image for training.

    Parameters
    ----------
    image : ndarray
        uint8 (H, W) or (H, W, 3).
    imtype : {"nphase", "grayscale", "colour"}
    phases : list of int, optional
        Grey levels of the phases (n-phase); by default the image's distinct values.
        Anisotropic training passes the union over the three images so the
        channels mean the same phase in each.
    """
    if imtype not in IMTYPES:
        raise SliceGANError(f"unknown image type {imtype!r} (choose from {', '.join(IMTYPES)})")
    if imtype == "colour":
        if image.ndim != 3:
            raise SliceGANError("colour training needs a colour image")
        return TrainingImage(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0, imtype, None)
    gray = image if image.ndim == 2 else np.rint(image @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    if imtype == "grayscale":
        return TrainingImage(gray[None].astype(np.float32) / 255.0, imtype, None)
    values = sorted(int(v) for v in np.unique(gray)) if phases is None else list(phases)
    if len(values) > MAX_PHASES:
        raise SliceGANError(f"{len(values)} grey levels is too many for an n-phase image "
                            f"(at most {MAX_PHASES}); use --type grayscale or segment it first")
    if len(values) < 2:
        raise SliceGANError("an n-phase image needs at least two phases (it has one grey level)")
    onehot = np.stack([(gray == v) for v in values]).astype(np.float32)
    if not np.all(onehot.sum(0) == 1):
        raise SliceGANError("the image has grey levels outside the given phases")
    return TrainingImage(onehot, imtype, values)


def load_training_images(paths: list, imtype: str = "auto", min_side: int = 64) -> list[TrainingImage]:
    """Load one (isotropic) or three (anisotropic: x, y, z) training images.

    Raises
    ------
    SliceGANError, ImageError
        Wrong number of images, images too small, mixed types, too many phases.
    """
    if len(paths) not in (1, 3):
        raise SliceGANError(f"give one image (isotropic) or three (anisotropic), not {len(paths)}")
    arrays = []
    colour = False
    for p in paths:
        mg = load_image(p, min_side=min_side)
        arrays.append(mg.as_uint8())
        colour = colour or mg.kind == "rgb"
    if imtype == "auto":
        kinds = {detect_type(a if a.ndim == 2 else a[..., 0], a.ndim == 3) for a in arrays}
        imtype = "colour" if "colour" in kinds else ("grayscale" if "grayscale" in kinds else "nphase")
    if imtype == "colour" and not all(a.ndim == 3 for a in arrays):
        raise ImageError("colour training needs colour images (a given image is grayscale)")
    if imtype != "colour":
        arrays = [a if a.ndim == 2 else np.rint(a @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
                  for a in arrays]
    phases = None
    if imtype == "nphase":
        phases = sorted({int(v) for a in arrays for v in np.unique(a)})
    return [encode(a, imtype, phases) for a in arrays]


class PatchSampler:
    """Random ``side``×``side`` crops of an image tensor kept on the device."""

    def __init__(self, image: TrainingImage, side: int, device: torch.device):
        c, h, w = image.data.shape
        if h < side or w < side:
            raise SliceGANError(f"the training image ({w}x{h}) is smaller than the {side}px patches")
        self.image = torch.from_numpy(image.data).to(device)
        self.side = side
        self.h, self.w = h, w
        self.ar = torch.arange(side, device=device)

    def sample(self, batch: int, generator: torch.Generator | None = None, dihedral: bool = False) -> torch.Tensor:
        """A (batch, C, side, side) tensor of random crops, drawn on the device.

        ``dihedral``: each crop also randomly transposed and flipped (one of the square's
        8 symmetries), so rows and columns, and the two diagonals, look alike.
        """
        dev = self.image.device
        oy = torch.randint(0, self.h - self.side + 1, (batch, 1), device=dev, generator=generator)
        ox = torch.randint(0, self.w - self.side + 1, (batch, 1), device=dev, generator=generator)
        rows = (oy + self.ar)[:, :, None]  # (B, s, 1)
        cols = (ox + self.ar)[:, None, :]  # (B, 1, s)
        x = self.image[:, rows, cols].transpose(0, 1)
        if dihedral:
            t, fr, fc = (torch.rand(3, batch, 1, 1, 1, device=dev, generator=generator) < 0.5).unbind(0)
            x = torch.where(t, x.transpose(2, 3), x)
            x = torch.where(fr, x.flip(2), x)
            x = torch.where(fc, x.flip(3), x)
        return x.contiguous()

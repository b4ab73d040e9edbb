"""Inpainting: replace the pixels under a mask (a scale bar and its label) and nothing else.

Two methods share one job function, :func:`inpaint_job`:

* ``"gan"`` — MicroLib's: a 2D WGAN-GP trained on patches of the image itself,
  then latent optimisation per masked region (:mod:`.gan`);
* ``"fast"`` — biharmonic inpainting, label-aware for phase images (:mod:`.fast`).

Inputs are label images (phases 0..n-1, or a few grey levels such as 0/255) or
grayscale/colour images; the output keeps the input's encoding and equals the
input bit for bit outside the mask.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from .data import InpaintImage, load_inpaint_image, load_mask, prepare_image
from .regions import InpaintError, find_regions, mask_from_array

METHODS = ("gan", "fast")
#: Defaults of the GAN method (a few minutes on a GPU; much longer on a CPU).
DEFAULT_ITERS = 1000
DEFAULT_OPT_ITERS = 300
#: Latents fitted per masked region (one batch); the best match next to the mask is kept.
DEFAULT_RESTARTS = 8
#: Width (px) of the join between the GAN fill and the smooth continuation of the border:
#: 1 averages the two on the first masked ring only, which gave the truth's own border
#: statistics on the raw-like set (docs/benchmarks.md, "Inpainting"). 0: MicroLib's raw paste.
DEFAULT_BLEND = 1.0

__all__ = [
    "METHODS", "InpaintError", "InpaintImage", "inpaint", "inpaint_job", "load_inpaint_image", "load_mask",
    "mask_from_array", "prepare_image", "find_regions", "write_gif",
]


def _as_image(image: Any, kind: str) -> InpaintImage:
    if isinstance(image, InpaintImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_inpaint_image(image, kind)
    return prepare_image(np.asarray(image), kind)


def _as_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(mask, (str, os.PathLike)):
        return mask_from_array(load_mask(mask), shape, Path(mask).name)
    return mask_from_array(np.asarray(mask), shape)


def inpaint_job(ctx, image: Any, mask: Any, method: str = "fast", kind: str = "auto", iters: int = DEFAULT_ITERS,
                opt_iters: int = DEFAULT_OPT_ITERS, batch_size: int = 32, device: str = "auto", seed: int = 0,
                generator_state: dict | None = None, harmonise: tuple[int, int] = (0, 0),
                restarts: int = DEFAULT_RESTARTS, blend: float = DEFAULT_BLEND) -> dict:
    """Job function (see :mod:`microlib_gui.core.jobs`): inpaint ``mask`` in ``image``.

    Parameters
    ----------
    ctx : JobContext
    image : path, ndarray or InpaintImage
        A label image or a grayscale/colour image (8 or 16 bit).
    mask : path or ndarray
        Same size as ``image``; non-zero = replace.
    method : {"gan", "fast"}
    kind : {"auto", "labels", "gray"}
        How to read ``image`` (auto: few distinct values → labels).
    iters, opt_iters, batch_size, device, seed, generator_state, harmonise, restarts, blend
        GAN options (see :func:`.gan.inpaint_gan`); ignored by ``fast``.

    Returns
    -------
    dict
        ``output`` (ndarray in the input's encoding), ``frames`` (list of uint8
        arrays: the optimisation for GAN, before/after per region for fast), ``method``, ``kind``, ``regions``, ``timings``; GAN
        also ``generator_state`` and ``device``.
    """
    import time

    if method not in METHODS:
        raise InpaintError(f"unknown inpainting method {method!r} (gan or fast)")
    img = _as_image(image, kind)
    m = _as_mask(mask, img.shape)
    t0 = time.perf_counter()
    if method == "fast":
        from .fast import inpaint_fast

        ctx.report(0, 1, "inpainting (fast)")
        out = inpaint_fast(img, m)
        ctx.report(1, 1, "done", images={"preview": img.display(out)})
        regions = find_regions(m)
        frames = [img.display(a[r.slices]) for r in regions for a in (img.original, out)]
        return {"output": out, "frames": frames, "method": "fast", "kind": img.kind, "regions": len(regions),
                "timings": {"total_s": time.perf_counter() - t0}}
    from .gan import inpaint_gan

    res = inpaint_gan(img, m, iters=iters, opt_iters=opt_iters, batch_size=batch_size, device=device, seed=seed,
                      generator_state=generator_state, report=ctx.report, check=ctx.check_cancelled,
                      harmonise=tuple(harmonise), restarts=restarts, blend=blend)
    return {**res, "method": "gan", "kind": img.kind}


def inpaint(image: Any, mask: Any, method: str = "fast", **options) -> dict:
    """Inpaint in this thread (scripts, notebooks); same options and result as :func:`inpaint_job`."""
    from ..jobs import run_inline

    return run_inline(inpaint_job, {"image": image, "mask": mask, "method": method, **options})


def write_gif(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 10.0, min_side: int = 192) -> Path:
    """Write animation frames (uint8, same size within a region) as a looping GIF, atomically.

    Frames are padded to one size and enlarged (nearest neighbour) so that a
    small region is visible.
    """
    import imageio.v3 as iio

    if not frames:
        raise InpaintError("no animation frames to write")
    rgb = [f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=-1) for f in frames]
    h = max(f.shape[0] for f in rgb)
    w = max(f.shape[1] for f in rgb)
    scale = max(1, int(np.ceil(min_side / max(1, min(h, w)))))
    canvas = []
    for f in rgb:
        c = np.zeros((h, w, 3), np.uint8)
        c[: f.shape[0], : f.shape[1]] = f
        canvas.append(np.kron(c, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else c)
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(canvas), extension=".gif", duration=int(1000 / fps), loop=0)
    return Path(path)

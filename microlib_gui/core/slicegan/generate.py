"""Volumes of any size from a trained generator: one pass, or tiled and streamed to disk.

Geometry: along each axis a latent of side ``a`` gives ``S·a − c`` voxels
(``S`` the product of the strides; ``c`` = 64 and ``S`` = 32 for MicroLib's
generators). When every layer's padding is at least kernel − stride, each output
voxel sees its whole receptive field, so the latent window ``[t, t + b)`` gives
exactly the voxels ``[S·t, S·(t + b) − c)`` of the full volume. That makes both
tricks exact:

* tiled generation: blocks of the volume are computed from overlapping latent
  windows and pasted together; the result equals the one-pass volume (up to
  floating-point rounding in the convolution algorithms);
* periodic generation (SliceGAN's trick): the latent's first ``c/S`` slabs are
  copied to its end, so the volume is exactly one period, ``S·a`` voxels long,
  and tiles seamlessly.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..atomic import atomic_path, temp_dir
from ..safefile import check_output_file, fmt_bytes, open_regular_file
from . import SliceGANError
from .fileformat import GEN_SUFFIX, load_generator
from .nets import Generator, subpixel_supported

#: Output voxels per block by default. On CUDA this keeps every intermediate tensor under
#: 2**31 elements: above that cuDNN refuses the convolution and a very slow fallback runs.
DEFAULT_BLOCK_VOXELS = {"cuda": 2 ** 27, "cpu": 2 ** 24}


def find_generator(source: str | os.PathLike) -> Path:
    """A run folder or ``NAME_Gen.pt`` → the generator file."""
    src = Path(source)
    if src.is_dir():
        gens = sorted(src.glob("*" + GEN_SUFFIX))
        if not gens:
            raise SliceGANError(f"{src}: no generator in this folder (nothing named NAME{GEN_SUFFIX})")
        if len(gens) > 1:
            raise SliceGANError(f"{src}: several generators; name one NAME{GEN_SUFFIX} file")
        return gens[0]
    if not src.exists():
        raise SliceGANError(f"{src}: no such file or folder")
    if not src.name.endswith(GEN_SUFFIX):
        raise SliceGANError(f"{src.name}: give a run folder or a NAME{GEN_SUFFIX} file")
    return src


def load_model(source: str | os.PathLike, imtype: str | None = None) -> tuple[Generator, dict]:
    """Load a generator from a run folder or a ``NAME_Gen.pt`` (safely; see :mod:`.fileformat`)."""
    return load_generator(find_generator(source), imtype)


def parse_periodic(text: str | None) -> tuple[bool, bool, bool]:
    """``"x,z"`` → (True, False, True)."""
    if not text:
        return (False, False, False)
    axes = {a.strip().lower() for a in text.split(",") if a.strip()}
    bad = axes - {"x", "y", "z"}
    if bad:
        raise SliceGANError(f"--periodic takes axes among x,y,z (got {','.join(sorted(bad))})")
    return tuple(a in axes for a in "xyz")


class Plan:
    """What to generate: the (periodically extended) latent and the output shape."""

    def __init__(self, G: Generator, size=None, periodic=(False, False, False), seed: int = 0,
                 latent: np.ndarray | None = None):
        p = G.params
        self.G = G
        self.S, self.c = p.stride, p.shrink
        self.periodic = tuple(bool(v) for v in periodic)
        if any(self.periodic) and (self.c % self.S or not p.tileable):
            raise SliceGANError("this generator's geometry does not allow periodic volumes")
        sizes = None if size is None else ((int(size),) * 3 if np.ndim(size) == 0 else tuple(int(s) for s in size))
        if sizes is not None and (len(sizes) != 3 or min(sizes) < 1):
            raise SliceGANError("the size must be a positive number of voxels (or three of them)")
        if latent is None:
            if sizes is None:
                raise SliceGANError("give a size or a latent")
            shape = []
            for n, per in zip(sizes, self.periodic):
                if per:
                    if n % self.S:
                        raise SliceGANError(f"a periodic axis needs a size that is a multiple of {self.S} "
                                            f"(got {n}; e.g. {max(self.S, round(n / self.S) * self.S)})")
                    shape.append(n // self.S)
                else:
                    shape.append(max(1, math.ceil((n + self.c) / self.S)))
            base = (1, p.nz, *shape)
        else:
            latent = np.asarray(latent)
            if latent.dtype.kind not in "fiu":
                raise SliceGANError(f"the latent must hold numbers, not {latent.dtype} values")
            base = tuple(latent.shape)
            if len(base) != 5 or base[0] != 1 or base[1] != p.nz:
                raise SliceGANError(f"the latent must have shape (1, {p.nz}, a, b, c); got {base}")
            if latent.dtype.kind == "f" and not np.all(np.isfinite(latent)):
                raise SliceGANError("the latent contains NaN or infinite values")
        # Geometry from shapes only: nothing is drawn or copied until .z is asked for, so the
        # memory a request needs can be told (and refused) first.
        k = self.c // self.S
        ext = list(base[2:])
        for ax, per in enumerate(self.periodic):
            if per:  # the first slabs are copied to the end: the volume becomes one period
                if ext[ax] < k:
                    raise SliceGANError("the latent is too small to be made periodic")
                ext[ax] += k
        full = tuple(self.S * n - self.c for n in ext)
        if min(full) < 1:
            raise SliceGANError(f"the latent {tuple(ext)} is too small for this generator")
        if sizes is None:
            sizes = full
        if any(s > f for s, f in zip(sizes, full)):
            raise SliceGANError(f"size {sizes} is larger than the latent gives {full}")
        self._base, self._latent, self._seed, self._z = base, latent, int(seed), None
        self.latent_shape = (1, p.nz, *ext)  #: the latent the generator runs on (periodic copies included)
        self.shape = sizes  # spatial output shape (cropped from the start of `full`)

    @property
    def z(self) -> torch.Tensor:
        """The latent (drawn from the seed, or the given one), periodically extended; made on first use."""
        if self._z is None:
            if self._latent is None:
                gen = torch.Generator().manual_seed(self._seed)
                z = torch.randn(*self._base, generator=gen)
            else:
                z = torch.as_tensor(np.asarray(self._latent, dtype=np.float32))
            k = self.c // self.S
            for ax, per in enumerate(self.periodic):
                if per:
                    z = torch.cat([z, z.narrow(2 + ax, 0, k)], dim=2 + ax)
            self._z = z
        return self._z

    def host_bytes(self, max_voxels: int, device: str = "cpu", streamed: bool = True,
                   as_float: bool = False) -> dict[str, int]:
        """Estimated peak host memory of generating this volume, by part (bytes).

        ``latent``: the float32 latent (and its periodic copy while it is made);
        ``output``: two slab buffers per slab thickness when streamed to disk, else
        the whole volume; ``compute``: one block's activations on the CPU (on a GPU
        they live in device memory, which the block size bounds).
        """
        per_vox = 3 if self.G.imtype == "colour" else 1
        lat = 4 * math.prod(self.latent_shape)
        if any(self.periodic) or (self._latent is not None and self._latent.dtype != np.float32):
            lat += 4 * math.prod(self._base)
        X, Y, Z = self.shape
        if streamed:
            thick = self.block_dims(max_voxels)[0]
            rem = X % thick if X > thick else 0
            out = 2 * (min(thick, X) + rem) * Y * Z * per_vox
        else:
            out = X * Y * Z * per_vox * (4 if as_float else 1)
        block = min(max_voxels, X * Y * Z)
        # about 80 bytes a voxel of a CPU block: MicroLib's generator took 1.2 GB at 320³ (2**24-voxel blocks)
        compute = block * 4 * (2 * self.G.params.nc + 16) if device == "cpu" else block * per_vox
        return {"latent": lat, "output": out, "compute": compute}

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the written array: (X, Y, Z) or (X, Y, Z, 3) for colour."""
        return self.shape + ((3,) if self.G.imtype == "colour" else ())

    def latent_window(self, o0: int, o1: int) -> tuple[int, int]:
        """Latent range [t0, t1) whose output covers voxels [o0, o1)."""
        return o0 // self.S, math.ceil((o1 + self.c) / self.S)

    def block_dims(self, max_voxels: int, max_slab_bytes: int = 2 ** 28) -> list[int]:
        """Size of the blocks :meth:`blocks` cuts (its first is the slab thickness)."""
        dims = list(self.shape)
        per_vox = 3 if self.G.imtype == "colour" else 1
        if math.prod(dims) > max_voxels and not self.G.params.tileable:
            raise SliceGANError("this generator cannot be tiled; ask for a smaller volume")
        step = self.S

        def halve(i):
            dims[i] = max(step, math.ceil(dims[i] / 2 / step) * step)

        while dims[0] > step and dims[0] * dims[1] * dims[2] * per_vox > max_slab_bytes:
            halve(0)
        while math.prod(dims) > max_voxels and max(dims) > step:
            halve(int(np.argmax([0, dims[1], dims[2]])) if max(dims[1:]) > step else 0)
        return dims

    def blocks(self, max_voxels: int, max_slab_bytes: int = 2 ** 28) -> Iterator[tuple[tuple[int, int], ...]]:
        """Boxes ((x0, x1), (y0, y1), (z0, z1)) covering the volume, slab by slab along x.

        Slabs are first made thin enough that one slab of uint8 output stays under
        ``max_slab_bytes`` on the host; blocks are then split across the slab until
        each has at most ``max_voxels`` voxels.
        """
        dims = self.block_dims(max_voxels, max_slab_bytes)
        for x0 in range(0, self.shape[0], dims[0]):
            for y0 in range(0, self.shape[1], dims[1]):
                for z0 in range(0, self.shape[2], dims[2]):
                    yield tuple((o, min(o + d, n)) for o, d, n in zip((x0, y0, z0), dims, self.shape))


class Runner:
    """The generator on a device, turning latent windows into uint8/float blocks.

    Generators with kernel 4 and stride 2 everywhere (MicroLib's) run through
    :class:`.subpixel.SubpixelGenerator` (ordinary convolutions instead of
    transposed ones; same result up to rounding); ``MICROLIB_GEN_SUBPIXEL=0``
    turns that off.
    """

    def __init__(self, G: Generator, device: torch.device, precision: str = "auto", as_float: bool = False,
                 channels_last: bool | None = None, subpixel: bool | None = None, offsets=None):
        from .subpixel import for_generator

        self.G = G.to(device).eval()
        #: n-phase: per-phase offsets added to the logits before the argmax (:mod:`.calibrate`)
        self.offsets = None if offsets is None else [float(v) for v in offsets]
        if self.offsets is not None and (G.imtype != "nphase" or len(self.offsets) != G.params.nc):
            raise SliceGANError(f"phase offsets need an n-phase generator and one offset per phase "
                                f"({G.params.nc})")
        self.dev = device
        self.cuda = device.type == "cuda"
        self.bf16 = self.cuda and precision in ("auto", "bf16")
        self.as_float = as_float and G.imtype != "nphase"
        if channels_last is None:  # faster on both cuDNN and oneDNN (measured in bench/bench_slicegan.py)
            channels_last = os.environ.get("MICROLIB_GEN_CHANNELS_LAST", "1") == "1"
        self.channels_last = channels_last
        if subpixel is None:
            subpixel = os.environ.get("MICROLIB_GEN_SUBPIXEL", "1") == "1"
        self.fast = None
        if subpixel and subpixel_supported(G.params):
            self.fast = for_generator(self.G, torch.bfloat16 if self.bf16 else torch.float32, channels_last)
        else:
            self.G.to(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)

    def _window(self, plan: Plan, box) -> tuple[torch.Tensor, tuple]:
        """The latent window (on the device) whose output covers ``box``, and the crop of that output."""
        sl = [slice(None), slice(None)]
        crop = []
        for (o0, o1) in box:
            t0, t1 = plan.latent_window(o0, o1)
            sl.append(slice(t0, t1))
            crop.append(slice(o0 - plan.S * t0, o1 - plan.S * t0))
        return plan.z[tuple(sl)].to(self.dev, non_blocking=True), tuple(crop)

    @torch.no_grad()
    def logits(self, plan: Plan, box) -> torch.Tensor:
        """The last layer's output (C, ...) for the voxels in ``box`` (on the device)."""
        z, crop = self._window(plan, box)
        if self.fast is not None:
            x = self.fast.logits(z)
        else:
            if self.channels_last:
                z = z.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                x = self.G.logits(z)
        return x[0][(slice(None), *crop)]

    @torch.no_grad()
    def block(self, plan: Plan, box) -> torch.Tensor:
        """The output voxels in ``box`` (on the device): uint8 labels, uint8/float grey, colour last."""
        if self.fast is not None and self.G.imtype == "nphase":
            z, crop = self._window(plan, box)
            return self.fast.labels(z, self.offsets)[0][crop]
        x = self.logits(plan, box)
        if self.G.imtype == "nphase":  # argmax of the logits = argmax of the softmax
            if self.offsets is not None:
                x = x.float() + torch.tensor(self.offsets, device=x.device).view(-1, 1, 1, 1)
            return x.argmax(0).to(torch.uint8)
        v = 0.5 * (torch.tanh(x.float()) + 1.0)
        if self.G.imtype == "colour":
            v = v.permute(1, 2, 3, 0)
        else:
            v = v[0]
        return v if self.as_float else torch.round(v * 255).clamp_(0, 255).to(torch.uint8)


def to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a numpy array.

    From a GPU the copy lands in page-locked memory: on the H100 host a 512³ uint8
    volume took 2.6 ms that way and 135 ms into ordinary (pageable) memory. The
    array keeps its page-locked buffer, which PyTorch reuses once the array is freed.
    """
    if t.device.type != "cuda":
        return np.ascontiguousarray(t.numpy())
    try:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    except RuntimeError:  # no page-locked memory to be had (e.g. a locked-memory limit): the slow way
        return np.ascontiguousarray(t.cpu().numpy())
    host.copy_(t)
    return host.numpy()


def available_memory() -> int:
    """Bytes of memory available to a new allocation now: ``MemAvailable`` on Linux, else the total."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


#: Share of the available memory one generation may plan to use.
MEMORY_SHARE = 0.8


def check_memory(plan: Plan, max_voxels: int, device: str, streamed: bool, as_float: bool = False) -> int:
    """Refuse, with the numbers, a volume whose estimated host memory is over what is available.

    Runs before the latent is drawn: asking for ``--size 100000`` is an answer in
    milliseconds, not an allocation of terabytes. Returns the estimate (bytes).
    """
    parts = plan.host_bytes(max_voxels, device, streamed, as_float)
    need = sum(parts.values())
    have = int(available_memory() * MEMORY_SHARE)
    if need > have:
        shape = "x".join(str(v) for v in plan.shape)
        detail = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in parts.items() if v)
        raise SliceGANError(f"a {shape} volume needs about {fmt_bytes(need)} of memory ({detail}); "
                            f"{fmt_bytes(have)} can be used here: ask for a smaller volume")
    return need


def _check_disk(path: Path, need: int) -> None:
    """Refuse a volume file larger than the free space where it goes (before computing it)."""
    where = path.absolute().parent
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need > free:
        raise SliceGANError(f"{path.name}: the volume needs {fmt_bytes(need)} of disk space and only "
                            f"{fmt_bytes(free)} is free in {where}; nothing was written")


def _is_zarr_folder(path: Path) -> bool:
    return any((path / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def check_volume_output(path: str | os.PathLike) -> Path:
    """Refuse an output a volume cannot be written to, before anything is computed.

    The name must end in ``.tif``, ``.tiff`` or ``.zarr``; an existing folder is
    refused (except an earlier Zarr array at a ``.zarr`` name, which is replaced),
    as are pipes, devices, a path below a file and a folder that cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".zarr"):
        raise SliceGANError(f"{path.name}: the output must end in .tif, .tiff or .zarr")
    zarr_ok = _is_zarr_folder if suffix == ".zarr" else None
    return check_output_file(path, "the volume", SliceGANError, replaces_folder=zarr_ok)


def load_latent(path: str | os.PathLike) -> np.ndarray:
    """Read a latent ``.npy`` (1, nz, a, b, c) of numbers, its header checked before its data is read.

    A regular file only (:mod:`..safefile`); no pickled objects; the declared type must
    be numeric (strings, objects and records are refused) and the declared size must
    fit in the memory available (the number is in the message) and in the file; float
    values must be finite. Only the header (at most 10 kB) is read before those checks.
    """
    path = Path(path)
    name = path.name
    with open_regular_file(path, None, "a latent (.npy)", SliceGANError) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, OSError, SyntaxError) as exc:
            raise SliceGANError(f"{name}: not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiu":
            raise SliceGANError(f"{name}: holds {dtype} values; a latent holds numbers (float32)")
        need = math.prod(shape) * max(4, dtype.itemsize)
        have = int(available_memory() * MEMORY_SHARE)
        if need > have:
            raise SliceGANError(f"{name}: a latent of shape {tuple(shape)} needs {fmt_bytes(need)} of memory; "
                                f"{fmt_bytes(have)} can be used here")
        data_bytes = math.prod(shape) * dtype.itemsize
        if data_bytes > os.fstat(fh.fileno()).st_size - fh.tell():
            raise SliceGANError(f"{name}: truncated (its header declares {fmt_bytes(data_bytes)} of data)")
        fh.seek(0)
        try:
            arr = np.load(fh, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise SliceGANError(f"{name}: not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise SliceGANError(f"{name}: the latent contains NaN or infinite values")
    return arr


def _device(device: str) -> torch.device:
    from .train import resolve_device

    return resolve_device(device)


def generate(G: Generator, size=None, periodic=(False, False, False), seed: int = 0,
             latent: np.ndarray | None = None, device: str = "auto", as_float: bool = False,
             max_block_voxels: int | None = None, precision: str = "auto", offsets=None) -> np.ndarray:
    """Generate a volume in memory.

    Parameters
    ----------
    G : Generator
    size : int or (int, int, int), optional
        Voxels per side (or per axis); optional when ``latent`` is given.
    periodic : 3 bools
        Axes (x, y, z) along which the volume tiles seamlessly (sizes there must
        be multiples of the generator's stride, 32 for MicroLib).
    seed : int
        Seeds the latent (drawn on the CPU, so the same on every device).
    latent : ndarray (1, nz, a, b, c), optional
        Use this latent instead of drawing one.
    device : {"auto", "cpu", "cuda"}
    as_float : bool
        Grayscale/colour as float32 in [0, 1] instead of uint8.
    max_block_voxels : int, optional
        Largest block computed at once; larger volumes are tiled (exactly).
    offsets : sequence of float, optional
        n-phase: added to each phase's logit before the argmax (fitted by
        :func:`.calibrate.calibrate` to match the training image's phase fractions).

    Returns
    -------
    ndarray: uint8 labels 0..n-1 (n-phase), uint8 or float32 grey, (..., 3) colour.
    """
    dev = _device(device)
    plan = Plan(G, size, periodic, seed, latent)
    budget = max_block_voxels or DEFAULT_BLOCK_VOXELS[dev.type]
    check_memory(plan, budget, dev.type, streamed=False, as_float=as_float and G.imtype != "nphase")
    run = Runner(G, dev, precision, as_float, offsets=offsets)
    boxes = list(plan.blocks(budget))
    if len(boxes) == 1:  # one block: its host copy is the result
        return to_host(run.block(plan, boxes[0]))
    out = np.empty(plan.out_shape, dtype=np.float32 if run.as_float else np.uint8)
    for box in boxes:
        out[tuple(slice(a, b) for a, b in box)] = to_host(run.block(plan, box))
    return out


def generate_to_file(G: Generator, path: str | os.PathLike, size=None, periodic=(False, False, False),
                     seed: int = 0, latent: np.ndarray | None = None, device: str = "auto",
                     max_block_voxels: int | None = None, precision: str = "auto",
                     progress: Callable[[int, int], None] | None = None, offsets=None) -> dict:
    """Generate straight to a BigTIFF (``.tif``/``.tiff``) or Zarr (``.zarr``) file, slab by slab.

    Host memory stays at about one slab (a block's thickness × the volume's cross
    section, uint8). The file appears only when complete (atomic rename).
    ``offsets``: as in :func:`generate`.

    Returns
    -------
    dict with ``path``, ``shape``, ``dtype``, ``seconds``.
    """
    path = check_volume_output(path)  # a folder, a pipe, an unwritable place: said before any work
    suffix = path.suffix.lower()
    dev = _device(device)
    t0 = time.monotonic()
    plan = Plan(G, size, periodic, seed, latent)
    budget = max_block_voxels or DEFAULT_BLOCK_VOXELS[dev.type]
    check_memory(plan, budget, dev.type, streamed=True)
    if suffix != ".zarr":  # uncompressed BigTIFF: the voxels plus about 200 bytes of tags a page
        _check_disk(path, math.prod(plan.out_shape) + 256 * plan.shape[0])
    run = Runner(G, dev, precision, offsets=offsets)
    boxes = list(plan.blocks(budget))
    slabs: dict[tuple[int, int], list] = {}
    for box in boxes:
        slabs.setdefault(box[0], []).append(box)
    writer = _TiffSink if suffix in (".tif", ".tiff") else _ZarrSink
    done = 0
    # one thread writes slab k while the device computes slab k+1 (at most two slabs in memory)
    with writer(path, plan.out_shape, G.imtype) as sink, ThreadPoolExecutor(1) as pool:
        pending = None
        # two slab buffers per thickness, used in turn (one is filled while the other is written):
        # fresh memory for every slab costs page faults (np.empty itself touches no pages)
        buffers: dict[int, list[np.ndarray]] = {}
        for (x0, x1), group in slabs.items():
            pair = buffers.setdefault(x1 - x0, [np.empty((x1 - x0, *plan.out_shape[1:]), dtype=np.uint8)
                                                 for _ in range(2)])
            slab = pair[0]
            pair.reverse()  # the other buffer next time
            for box in group:
                slab[(slice(None), *(slice(a, b) for a, b in box[1:]))] = to_host(run.block(plan, box))
                done += 1
                if progress:
                    progress(done, len(boxes))
            if pending is not None:
                pending.result()
            pending = pool.submit(sink.write, x0, slab)
        if pending is not None:
            pending.result()
    return {"path": str(path), "shape": list(plan.out_shape), "dtype": "uint8",
            "seconds": time.monotonic() - t0}


class _TiffSink:
    """Pages appended to one BigTIFF series; renamed into place when complete."""

    def __init__(self, path: Path, shape, imtype: str):
        self.path, self.shape, self.imtype = path, shape, imtype

    def __enter__(self):
        import tifffile

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._tw = tifffile.TiffWriter(tmp, bigtiff=True)
        self._first = True
        return self

    def write(self, x0: int, slab: np.ndarray) -> None:
        photometric = "rgb" if self.imtype == "colour" else "minisblack"
        for page in slab:
            self._tw.write(page, contiguous=True, photometric=photometric,
                           metadata={"axes": "ZYXS" if self.imtype == "colour" else "ZYX"} if self._first else None)
            self._first = False

    def __exit__(self, *exc):
        self._tw.close()
        return self._ctx.__exit__(*exc)


class _ZarrSink:
    """A Zarr array written slab by slab in a temporary folder, then moved into place."""

    def __init__(self, path: Path, shape, imtype: str):
        self.path, self.shape = path, tuple(shape)

    def __enter__(self):
        import zarr

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_dir(self.path, ".zarr")  # readable as the umask allows, not 0700
        chunks = tuple(min(n, 128) for n in self.shape[:3]) + self.shape[3:]
        self._arr = zarr.open_array(store=str(self._tmp), mode="w", shape=self.shape, chunks=chunks,
                                    dtype="uint8")
        return self

    def write(self, x0: int, slab: np.ndarray) -> None:
        self._arr[x0:x0 + slab.shape[0]] = slab

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return False
        old = None
        if self.path.exists():  # swap: the old one is removed only once the new one is in place
            old = self.path.with_name(".tmp-old-" + self.path.name)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return False

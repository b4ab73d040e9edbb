"""The published SliceGAN files: ``NAME_Gen.pt`` and ``NAME_params.data``.

``NAME_Gen.pt`` is a torch state dict of the generator (``convs.N.weight``,
``bns.N.*``); ``NAME_params.data`` is a pickled list ``[dk, ds, df, dp, gk, gs, gf, gp]``.
Both are untrusted input: the state dict is read with ``torch.load(weights_only=True)``
and the params with an unpickler that can build nothing but lists and ints.
We also write ``NAME_meta.json`` (image type, phase values) beside them; the
published code ignores it. A generator trained with resize layers (``nets.G_LAYER_KINDS``) is
saved as the published network it equals: each resize layer's 3³ taps as their 4³ transposed
kernel (``nets.resize_kernel``), so the published code loads it and gives the same volumes; the
meta file records the layers it was trained with (``"trained_layers"``). Files of an earlier
version kept the 3³ taps and said ``"g_layers"`` in the meta file; they still load.

Nothing is allocated before it is validated: each file must be a regular file
within its size limit before it is read (:mod:`..safefile`); the network the
params describe must have at most :data:`MAX_GENERATOR_WEIGHTS` weights; the
members of ``_Gen.pt`` (a zip archive) may declare no more bytes, uncompressed,
than those weights need (twice that, for float64 files), checked in the zip's
directory before anything is inflated; and the loaded tensors must have exactly
the names and shapes the params give before the network is built.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from ..atomic import atomic_path, atomic_write_bytes, atomic_write_json
from ..safefile import fmt_bytes, open_regular_file, read_regular_file
from . import IMTYPES, SliceGANError
from .nets import Generator, NetParams

GEN_SUFFIX = "_Gen.pt"
PARAMS_SUFFIX = "_params.data"
META_SUFFIX = "_meta.json"
_MAX_PARAMS_BYTES = 64 * 1024
_MAX_META_BYTES = 1 << 20
#: Largest generator accepted (weights): 537 MB of float32; MicroLib's have 40 million.
MAX_GENERATOR_WEIGHTS = 2 ** 27
#: Layers, kernel sides and strides beyond these describe no SliceGAN generator.
_MAX_LAYERS, _MAX_KERNEL, _MAX_STRIDE = 32, 32, 16
#: A ``_Gen.pt``'s zip directory (names of its members) is at most this long.
_MAX_ZIP_DIRECTORY = 1 << 20


class _ListsOnlyUnpickler(pickle.Unpickler):
    """Refuses every global, so no callable can be reached: only builtin containers
    and scalars can be built, and the caller then checks for lists of ints."""

    def find_class(self, module, name):  # noqa: D401 - pickle hook
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent reference")


def read_params(path: str | Path) -> NetParams:
    """Read ``NAME_params.data`` safely.

    Raises
    ------
    SliceGANError
        If the file is missing, is not a pickle of eight lists of ints, or would
        need any class or function to load.
    """
    path = Path(path)
    raw = read_regular_file(path, _MAX_PARAMS_BYTES, "a SliceGAN params file", SliceGANError)
    try:
        obj = _ListsOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception as exc:  # noqa: BLE001 - any decoding problem is the file's fault
        reason = " ".join(str(exc).split())[:120]
        raise SliceGANError(f"{path.name}: not a SliceGAN params file ({reason})") from None
    ok = (isinstance(obj, list) and len(obj) == 8
          and all(isinstance(x, list) and x and all(type(v) is int for v in x) for x in obj))
    if not ok:
        raise SliceGANError(f"{path.name}: not a SliceGAN params file (expected 8 lists of ints)")
    params = NetParams.from_list(obj)
    try:
        params.check()
        _check_bounds(params)
    except ValueError as exc:
        raise SliceGANError(f"{path.name}: inconsistent network parameters ({exc})") from None
    n = generator_weights(params)
    if n > MAX_GENERATOR_WEIGHTS:
        raise SliceGANError(f"{path.name}: declares a generator of {n:,} weights ({fmt_bytes(4 * n)}), over the "
                            f"limit of {MAX_GENERATOR_WEIGHTS:,}")
    return params


def _check_bounds(p: NetParams) -> None:
    """Sizes no SliceGAN network has (they would make absurd geometry or allocations)."""
    if max(len(p.gk), len(p.dk)) > _MAX_LAYERS:
        raise ValueError(f"more than {_MAX_LAYERS} layers")
    if max(p.gk + p.dk) > _MAX_KERNEL or max(p.gs + p.ds) > _MAX_STRIDE:
        raise ValueError(f"kernels over {_MAX_KERNEL} or strides over {_MAX_STRIDE}")
    if any(v < 0 for v in p.gp + p.dp) or any(pad >= k for pad, k in zip(p.gp + p.dp, p.gk + p.dk)):
        raise ValueError("paddings must be at least 0 and below the kernel size")


def generator_shapes(params: NetParams) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a generator's state dict (``convs.N.weight``, ``bns.N.*``)."""
    gf = params.gf
    shapes: dict[str, tuple[int, ...]] = {f"convs.{i}.weight": params.g_weight_shape(i) for i in range(len(params.gk))}
    for i in range(len(params.gk)):
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"bns.{i}.{part}"] = (gf[i + 1],)
        shapes[f"bns.{i}.num_batches_tracked"] = ()
    return shapes


def generator_weights(params: NetParams) -> int:
    """Number of values in the generator's state dict (what loading it allocates)."""
    return sum(math.prod(s) for s in generator_shapes(params).values())


def write_params(path: str | Path, params: NetParams) -> Path:
    """Write ``NAME_params.data`` as the published code does (a pickled list of lists)."""
    return atomic_write_bytes(path, pickle.dumps(params.to_list(), protocol=4))


def gen_paths(gen_path: str | Path) -> tuple[Path, Path, Path]:
    """``NAME_Gen.pt`` → (gen, params, meta) paths."""
    gen_path = Path(gen_path)
    if not gen_path.name.endswith(GEN_SUFFIX):
        raise SliceGANError(f"{gen_path.name}: a generator file must be named NAME{GEN_SUFFIX}")
    stem = gen_path.name[: -len(GEN_SUFFIX)]
    return gen_path, gen_path.with_name(stem + PARAMS_SUFFIX), gen_path.with_name(stem + META_SUFFIX)


def load_state_dict(path: str | Path, params: NetParams | None = None) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with every failure turned into one line.

    With ``params``, the file is checked against the generator they describe before
    anything is inflated: its size, and the uncompressed sizes its zip directory
    declares, must be within twice what those weights need in float32 (plus 1 MB),
    and the loaded tensors must have exactly the names and shapes of
    :func:`generator_shapes` (checked before the network is built).
    """
    path = Path(path)
    cap = 2 * 8 * MAX_GENERATOR_WEIGHTS + (1 << 20)
    budget = cap if params is None else 2 * 4 * generator_weights(params) + (1 << 20)
    with open_regular_file(path, cap, "a generator file", SliceGANError) as fh:
        if fh.read(4) == b"PK\x03\x04":  # torch's zip format: the directory says what each member unpacks to
            _check_zip(fh, path.name, budget)
        elif os.fstat(fh.fileno()).st_size > budget:  # the old format is not compressed: its size is its data
            raise SliceGANError(f"{path.name}: {fmt_bytes(os.fstat(fh.fileno()).st_size)} is more than the "
                                f"{fmt_bytes(budget)} its generator needs")
        fh.seek(0)
        try:
            sd = torch.load(fh, map_location="cpu", weights_only=True)
        except MemoryError:
            raise SliceGANError(f"{path.name}: too large to load into memory") from None
        except Exception as exc:  # noqa: BLE001 - refused globals, corrupt zip, ...
            first = " ".join(str(exc).split())[:160]
            raise SliceGANError(f"{path.name}: refused or unreadable weights file ({first})") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise SliceGANError(f"{path.name}: not a state dict of tensors")
    # Generators saved from nn.DataParallel carry a "module." prefix.
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    if params is not None:
        _check_shapes(sd, generator_shapes(params), path.name)
    return sd


def _check_shapes(sd: dict[str, torch.Tensor], want: dict[str, tuple[int, ...]], name: str) -> None:
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    wrong = [k for k in want if k in sd and tuple(sd[k].shape) != want[k]]
    if missing or extra or wrong:
        what = "; ".join(filter(None, [
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "",
            "; ".join(f"{k} is {tuple(sd[k].shape)}, not {want[k]}" for k in wrong[:2])]))
        hint = ""
        # only 3³ kernels where the params' transposed layers have 4³: resize layers, their meta file gone
        if wrong and name.endswith(GEN_SUFFIX) and all(tuple(sd[k].shape) == want[k][:2] + (3, 3, 3) for k in wrong):
            hint = f"; a generator with resize layers needs its {name[:-len(GEN_SUFFIX)]}{META_SUFFIX} beside it"
        raise SliceGANError(f"{name}: does not match its {PARAMS_SUFFIX} ({what[:200]}){hint}")
    if any(not (v.is_floating_point() or k.endswith("num_batches_tracked")) for k, v in sd.items()):
        raise SliceGANError(f"{name}: weights must be floating-point tensors")


def _zip_directory(fh) -> tuple[int, int]:
    """(members, directory size) from a zip's end record (zip64 too), without reading the directory."""
    fh.seek(0, 2)
    size = fh.tell()
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ValueError("no zip end record")
    _, _, _, _, count, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if (count == 0xFFFF or cd_size == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        (z64_at,) = struct.unpack("<Q", tail[at - 12:at - 4])
        fh.seek(z64_at)
        rec = fh.read(56)
        if rec[:4] != b"PK\x06\x06":
            raise ValueError("bad zip64 end record")
        count, cd_size = struct.unpack("<QQ", rec[32:48])
    return count, cd_size


def _check_zip(fh, name: str, budget: int) -> None:
    """Refuse a ``_Gen.pt`` whose zip declares more uncompressed bytes than ``budget``, before any is inflated."""
    try:
        count, cd_size = _zip_directory(fh)
        if cd_size > _MAX_ZIP_DIRECTORY:
            raise SliceGANError(f"{name}: its zip directory lists {count:,} members ({fmt_bytes(cd_size)}); "
                                "not a generator file")
        fh.seek(0)
        members = zipfile.ZipFile(fh).infolist()  # reads the directory only
    except (ValueError, zipfile.BadZipFile, struct.error, OSError) as exc:
        raise SliceGANError(f"{name}: refused or unreadable weights file (corrupt zip: {exc})") from None
    total = sum(m.file_size for m in members)
    if total > budget:
        big = max(members, key=lambda m: m.file_size)
        raise SliceGANError(f"{name}: its members unpack to {fmt_bytes(total)} ({big.filename}: "
                            f"{fmt_bytes(big.file_size)}), over the {fmt_bytes(budget)} its generator needs; refused "
                            "before unpacking")


def load_generator(gen_path: str | Path, imtype: str | None = None) -> tuple[Generator, dict]:
    """Load ``NAME_Gen.pt`` with its ``NAME_params.data`` (and ``NAME_meta.json`` if present).

    Parameters
    ----------
    gen_path : path to ``NAME_Gen.pt``
    imtype : {"nphase", "grayscale", "colour"}, optional
        Overrides the type; by default it comes from the meta file, else one
        channel means grayscale and more mean n-phase (published generators
        carry no type; MicroLib's are n-phase).

    Returns
    -------
    (Generator in eval mode on the CPU, meta dict with ``imtype`` and ``phases``)
    """
    gen_path, params_path, meta_path = gen_paths(gen_path)
    if not os.path.lexists(params_path):  # anything else there is refused by read_params, saying what it is
        raise SliceGANError(f"{gen_path.name}: {params_path.name} must lie beside it")
    params = read_params(params_path)
    meta: dict = {}
    if meta_path.exists():
        raw = read_regular_file(meta_path, _MAX_META_BYTES, "a JSON file", SliceGANError)
        try:
            meta = json.loads(raw.decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError
        except (ValueError, RecursionError):  # RecursionError: nested absurdly deep
            raise SliceGANError(f"{meta_path.name}: not a valid JSON object") from None
    params = _with_layer_kinds(params, meta.get("g_layers"), meta_path.name)
    imtype = imtype or meta.get("imtype") or ("grayscale" if params.nc == 1 else "nphase")
    if imtype not in IMTYPES:
        raise SliceGANError(f"unknown image type {imtype!r} (choose from {', '.join(IMTYPES)})")
    if imtype == "colour" and params.nc != 3:
        raise SliceGANError(f"{gen_path.name}: a colour generator needs 3 channels, this one has {params.nc}")
    sd = load_state_dict(gen_path, params)  # sizes and shapes checked before the network is built
    G = Generator(params, imtype)
    try:
        G.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise SliceGANError(f"{gen_path.name}: does not match {params_path.name} ({first})") from None
    G.eval()
    meta = {"imtype": imtype, "phases": meta.get("phases"), "nz": params.nz, "nc": params.nc}
    return G, meta


def _with_layer_kinds(params: NetParams, kinds, name: str) -> NetParams:
    """``params`` with the layer kinds a meta file gives (None: the published layers)."""
    if kinds is None:
        return params
    ok = isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)
    try:
        if not ok:
            raise ValueError("g_layers must be a list of layer kinds")
        out = replace(params, g_layers=tuple(kinds))
        out.check()
    except ValueError as exc:
        raise SliceGANError(f"{name}: {exc}") from None
    return out


def save_generator(gen_path: str | Path, G: Generator, meta: dict | None = None) -> Path:
    """Write ``NAME_Gen.pt``, ``NAME_params.data`` and ``NAME_meta.json`` (all atomic)."""
    gen_path, params_path, meta_path = gen_paths(gen_path)
    sd = dict(G.state_dict())
    with torch.no_grad():  # resize layers as the transposed kernels they equal: the published network
        sd.update({f"convs.{i}.weight": G.kernel(i) for i in range(len(G.convs))
                   if G.params.layer_kind(i) == "resize"})
    sd = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
          for k, v in sd.items()}
    with atomic_path(gen_path) as tmp:
        torch.save(sd, tmp)
    write_params(params_path, G.params)
    layers = {"trained_layers": list(G.params.g_layers)} if G.params.has_resize else {}
    atomic_write_json(meta_path, {"imtype": G.imtype, **layers, **(meta or {})})
    return gen_path

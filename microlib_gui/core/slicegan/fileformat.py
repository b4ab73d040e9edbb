"""The published SliceGAN files: ``NAME_Gen.pt`` and ``NAME_params.data``.

``NAME_Gen.pt`` is a torch state dict of the generator (``convs.N.weight``,
``bns.N.*``); ``NAME_params.data`` is a pickled list ``[dk, ds, df, dp, gk, gs, gf, gp]``.
Both are untrusted input: the state dict is read with ``torch.load(weights_only=True)``
and the params with an unpickler that can build nothing but lists and ints.
We also write ``NAME_meta.json`` (image type, phase values) beside them; the
published code ignores it.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import torch

from ..atomic import atomic_path, atomic_write_bytes, atomic_write_json
from . import IMTYPES, SliceGANError
from .nets import Generator, NetParams

GEN_SUFFIX = "_Gen.pt"
PARAMS_SUFFIX = "_params.data"
META_SUFFIX = "_meta.json"
_MAX_PARAMS_BYTES = 64 * 1024


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
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SliceGANError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > _MAX_PARAMS_BYTES:
        raise SliceGANError(f"{path.name}: too large for a SliceGAN params file")
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
    except ValueError as exc:
        raise SliceGANError(f"{path.name}: inconsistent network parameters ({exc})") from None
    return params


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


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with every failure turned into one line."""
    path = Path(path)
    if not path.is_file():
        raise SliceGANError(f"{path.name}: no such file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - refused globals, corrupt zip, ...
        first = " ".join(str(exc).split())[:160]
        raise SliceGANError(f"{path.name}: refused or unreadable weights file ({first})") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise SliceGANError(f"{path.name}: not a state dict of tensors")
    # Generators saved from nn.DataParallel carry a "module." prefix.
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


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
    if not params_path.is_file():
        raise SliceGANError(f"{gen_path.name}: {params_path.name} must lie beside it")
    params = read_params(params_path)
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError
        except (ValueError, OSError):
            raise SliceGANError(f"{meta_path.name}: not a valid JSON object") from None
    imtype = imtype or meta.get("imtype") or ("grayscale" if params.nc == 1 else "nphase")
    if imtype not in IMTYPES:
        raise SliceGANError(f"unknown image type {imtype!r} (choose from {', '.join(IMTYPES)})")
    if imtype == "colour" and params.nc != 3:
        raise SliceGANError(f"{gen_path.name}: a colour generator needs 3 channels, this one has {params.nc}")
    G = Generator(params, imtype)
    sd = load_state_dict(gen_path)
    try:
        G.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise SliceGANError(f"{gen_path.name}: does not match {params_path.name} ({first})") from None
    G.eval()
    meta = {"imtype": imtype, "phases": meta.get("phases"), "nz": params.nz, "nc": params.nc}
    return G, meta


def save_generator(gen_path: str | Path, G: Generator, meta: dict | None = None) -> Path:
    """Write ``NAME_Gen.pt``, ``NAME_params.data`` and ``NAME_meta.json`` (all atomic)."""
    gen_path, params_path, meta_path = gen_paths(gen_path)
    sd = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
          for k, v in G.state_dict().items()}
    with atomic_path(gen_path) as tmp:
        torch.save(sd, tmp)
    write_params(params_path, G.params)
    atomic_write_json(meta_path, {"imtype": G.imtype, **(meta or {})})
    return gen_path

"""Generate (in the Inspect step): the entry's volume ``microstructureNNN.tif`` from its generator.

:func:`inputs` says whether the entry has a generator and which run (and
iteration) it came from; :func:`volume_state` whether the entry's volume was
made by *that* generator — a volume whose generator has since been replaced is
stale and is never shown as current. :func:`job` generates into a temporary
file beside the entry (tiled, streamed to disk), :func:`save` moves it into
place with its provenance in one transaction, refusing when the generator
changed meanwhile. :func:`run_job` does both (the GUI's thread, the build, the
CLI).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import temp_file
from ..library import layout as L
from ..slicegan import SliceGANError
from ..library import StagedFile

STEP = "inspect"
RUN_KIND = "generate"


@functools.lru_cache(maxsize=64)
def _sha_cached(path: str, ino: int, mtime_ns: int, size: int) -> str:
    from ..library import sha256_file

    return sha256_file(path)


def file_sha(path: Path) -> str | None:
    """SHA-256 of a file, computed once per version of it (panels ask on every event)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _sha_cached(str(path), st.st_ino, st.st_mtime_ns, st.st_size)


def known_sha(path: Path, provenance: list[dict]) -> str | None:
    """The SHA-256 the store recorded when it wrote ``path`` (hashed only when nothing is recorded).

    Entry files change only through the store (atomically, with provenance), so
    the recorded value stands for the file: a large volume is not read again
    on every GUI event. None when the file is absent.
    """
    if not path.exists():
        return None
    row = next((p for p in provenance if p["file"] == path.name), None)
    return row["sha256"] if row else file_sha(path)


# -- the generator ---------------------------------------------------------------------
def generator_info(library, entry_id: int) -> dict[str, Any] | None:
    """The entry's published generator, or None without a ``_Gen.pt``.

    :func:`microlib_gui.core.workflow.train.generator_info` (``run``, ``run_id``,
    ``iteration``, ``total``, ``partial``, ``text``) plus ``sha256``, which
    tells one generator from another.
    """
    sha = file_sha(library.entry_file(entry_id, L.GENERATOR.suffix))
    if sha is None:
        return None
    from . import train

    info = train.generator_info(library, entry_id) or {}
    return {**info, "sha256": sha}


def describe_generator(info: dict[str, Any] | None) -> str:
    """``run 2, 4 iterations`` or ``run 2, stopped at iteration 20 of 5000``."""
    if not info:
        return "no generator"
    return info.get("text") or "a trained generator"


@dataclass
class GenerateInputs:
    """What the Generate action works from for one entry."""

    ready: bool
    reason: str  #: why not ready ('' when ready)
    generator: Path
    info: dict[str, Any] | None = None  #: :func:`generator_info`
    vox_size: float | None = None  #: µm per voxel (the scale bar), written into the TIFF


def inputs(library, entry_id: int) -> GenerateInputs:
    """The generator to sample, and whether there is one."""
    from ..export import entry_vox_size

    gen = library.entry_file(entry_id, L.GENERATOR.suffix)
    info = generator_info(library, entry_id)
    if info is None:
        return GenerateInputs(False, "no trained generator yet: do the Train step first", gen)
    if not library.entry_file(entry_id, L.PARAMS.suffix).exists():
        return GenerateInputs(False, f"{gen.name} has no {L.PARAMS.suffix} beside it: train again", gen, info)
    return GenerateInputs(True, "", gen, info, entry_vox_size(library, entry_id))


# -- the volume ------------------------------------------------------------------------
@dataclass
class VolumeState:
    """The entry's volume as it stands against its generator."""

    exists: bool
    current: bool  #: made by the generator the entry has now
    path: Path
    reason: str = ""  #: why it is not current
    params: dict[str, Any] = field(default_factory=dict)  #: size, periodic, seed, generator (what it was made with)

    @property
    def stale(self) -> bool:
        return self.exists and not self.current


def volume_state(library, entry_id: int) -> VolumeState:
    """Whether ``microstructureNNN.tif`` exists and was made by the current ``_Gen.pt``."""
    path = library.entry_file(entry_id, L.VOLUME.suffix)
    if not path.exists():
        return VolumeState(False, False, path, "no volume generated yet")
    prov = next((p for p in library.provenance(entry_id) if p["file"] == path.name), None)
    params = dict(prov["params"]) if prov else {}
    made = params.get("generator") or {}
    was = describe_generator(made) if made else "an earlier generator"
    gen_name = library.entry_file(entry_id, L.GENERATOR.suffix).name
    used = next((i.get("sha256") for i in (prov or {}).get("inputs", []) if i.get("file") == gen_name), None)
    now = file_sha(library.entry_file(entry_id, L.GENERATOR.suffix))
    if now is None:
        return VolumeState(True, False, path, f"it was made by {was}, and the entry has no generator now", params)
    if used is None:
        return VolumeState(True, False, path, "nothing records which generator made it", params)
    if used != now:
        return VolumeState(True, False, path, f"it was made by {was}, not by the current generator "
                                              f"({describe_generator(generator_info(library, entry_id))})", params)
    return VolumeState(True, True, path, "", params)


# -- job and save ------------------------------------------------------------------------
def job(ctx, library_root: str, entry_id: int, size: int = 64,
        periodic: tuple[bool, bool, bool] | list[bool] = (False, False, False), seed: int = 0,
        device: str = "auto", max_block_voxels: int | None = None, match_vf: bool = False) -> dict:
    """Job function: generate a volume into a temporary file beside the entry's.

    ``match_vf``: offsets on the generator's per-phase logits, fitted on the volume's own
    logits (:func:`~microlib_gui.core.slicegan.calibrate.calibrate`), give it the phase
    fractions of the training image ``_inpainted.png``; the result then has ``calibration``
    (target, raw and calibrated fractions, offsets).

    Returns ``path`` (the temporary file, moved into place by :func:`save`),
    ``shape``, ``seconds`` and the ``generator`` it was made with (its
    :func:`generator_info`, whose ``sha256`` :func:`save` checks).
    """
    from ..slicegan.fileformat import load_generator
    from ..slicegan.generate import generate_to_file
    from ..library import Library

    lib = Library(library_root, create=False)
    inp = inputs(lib, entry_id)
    if not inp.ready:
        raise SliceGANError(f"{lib.entry_dir(entry_id).name}: {inp.reason}")
    G, _meta = load_generator(inp.generator)
    if file_sha(inp.generator) != inp.info["sha256"]:
        raise SliceGANError("the generator was replaced while it was being loaded: generate again")
    ctx.check_cancelled()

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.report(done, total, f"block {done}/{total}")

    calibration = None
    if match_vf:
        calibration = _calibrate(ctx, lib, entry_id, G, _meta, size=size, periodic=tuple(periodic), seed=seed,
                                 device=device, max_block_voxels=max_block_voxels)
    target = lib.entry_file(entry_id, L.VOLUME.suffix)
    tmp = str(temp_file(target))  # as any new file: the umask applies, the name is short
    try:
        info = generate_to_file(G, tmp, size=size, periodic=tuple(periodic), seed=seed, device=device,
                                max_block_voxels=max_block_voxels, progress=progress,
                                offsets=calibration["offsets"] if calibration else None)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    gen = {k: inp.info.get(k) for k in ("sha256", "run", "run_id", "iteration", "total", "partial", "text")}
    return {"path": tmp, "shape": list(info.get("shape") or []), "seconds": info.get("seconds"), "generator": gen,
            "calibration": calibration}


def _calibrate(ctx, lib, entry_id: int, G, meta: dict, **plan) -> dict:
    """Offsets giving the volume of ``plan`` the phase fractions of the entry's training image."""
    from ..slicegan.calibrate import calibrate, training_fractions

    image = lib.entry_file(entry_id, L.INPAINTED.suffix)
    if not image.exists():
        raise SliceGANError(f"matching phase fractions needs the training image {image.name} (Inpaint step)")
    target = training_fractions([image], meta.get("phases"))

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.report(0, 1, f"matching phase fractions: sample block {done}")

    return calibrate(G, target, progress=progress, **plan)


def save(library, entry_id: int, result: dict, params: dict):
    """Put the generated volume in place: ``.tif`` with its provenance, a run record, Inspect done.

    Refuses (and drops the file) when the entry's generator is no longer the one
    the volume was made with: it would be shown as current when it is not.
    """
    tmp = Path(result["path"])
    try:
        gen = result.get("generator") or {}
        now = file_sha(library.entry_file(entry_id, L.GENERATOR.suffix))
        if gen.get("sha256") != now:
            raise SliceGANError("a new generator was published while the volume was generated: generate again")
        keep = {k: params[k] for k in ("size", "periodic", "seed") if k in params}
        keep["periodic"] = [bool(v) for v in keep.get("periodic", (False, False, False))]
        keep["generator"] = {k: v for k, v in gen.items() if k != "sha256"}
        keep["match_vf"] = bool(result.get("calibration"))
        if result.get("calibration"):  # the offsets used, and the fractions before and after them
            keep["calibration"] = result["calibration"]

        def move(staged: Path) -> None:
            os.replace(tmp, staged)

        reads = [L.GENERATOR.suffix] + ([L.INPAINTED.suffix] if keep["match_vf"] else [])
        staged = StagedFile(L.VOLUME.suffix, writer=move, inputs=reads, params=keep,
                            produced_by=RUN_KIND)
        run = {"kind": RUN_KIND, "params": keep, "seed": params.get("seed"), "status": "done",
               "timings": {"seconds": result.get("seconds")} if result.get("seconds") else {},
               "files": [library.entry_file(entry_id, L.VOLUME.suffix).name]}
        return library.complete_step(entry_id, STEP, files=[staged], run=run)
    finally:
        tmp.unlink(missing_ok=True)


def run_job(ctx, library_root: str, entry_id: int, **params) -> dict:
    """Job function: :func:`job` then :func:`save` (GUI thread, build, CLI).

    Returns ``path`` (the entry's volume), ``shape``, ``seconds``, ``generator``.
    """
    from ..library import Library

    result = job(ctx, library_root, entry_id, **params)
    lib = Library(library_root, create=False)
    save(lib, entry_id, result, params)
    return {**result, "path": str(lib.entry_file(entry_id, L.VOLUME.suffix))}

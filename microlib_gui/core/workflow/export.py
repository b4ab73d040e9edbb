"""Export step: entries in MicroLib's dataset layout, in folders that say whose entries they hold.

``OUT/microstructureNNN/`` gets the layout files (:data:`microlib_gui.core.export.LAYOUT`)
and ``microstructureNNN_export.json``, which names the library (its
:attr:`~microlib_gui.core.library.Library.uuid` and folder) and the entry (id,
source, original file name). ``OUT/data_anns.json`` lists the exported entries;
each record carries its library's uuid and the entry's original file name.
Entry ids repeat across libraries (every library numbers local entries from
10001), so before anything is written :func:`conflicts` looks for folders holding
another library's entry (or files of unknown origin) and a ``data_anns.json``
of another library: export refuses them unless told to overwrite.

The default folder belongs to the library: ``LIBRARY/export``
(:func:`default_folder`). :func:`save` keeps what was exported where as the
entry's ``_export.json``, with the exported library files as its inputs, so a
changed volume or generator shows the export as stale.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import export as ex
from ..errors import MicrolibError
from ..library import layout as L
from ..media import MediaError, gif_to_mp4, load_volume, write_long_png, write_rotation_movie
from ..steps import DONE, STALE, TODO
from . import generate
from .generate import known_sha

STEP = "export"
DATA_ANNS = "data_anns.json"
#: ``LIBRARY/<this>``: where an entry is exported unless the user chooses a folder.
DEFAULT_DIR = "export"
MANIFEST_FORMAT = "microlib-studio-export"
#: The layout files rendered from (or copied as part of) the volume.
_FROM_VOLUME = (L.VOLUME.suffix, L.MOVIE.suffix, L.LONG_PNG.suffix)


class ExportConflictError(ex.ExportError):
    """The output folder holds another library's entry (or data_anns.json): nothing was written."""

    def __init__(self, conflicts: list[str]):
        self.conflicts = list(conflicts)
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        super().__init__(f"{conflicts[0]}{more}: not overwritten; choose another folder or overwrite "
                         "(microlib export --overwrite)")


def default_folder(library) -> Path:
    """``LIBRARY/export``: the library's own export folder."""
    return library.root / DEFAULT_DIR


def _entry_record(library, entry) -> dict[str, Any]:
    return {"id": int(entry.id), "name": entry.name, "source": entry.source, "doitpoms_id": entry.doitpoms_id,
            "original_filename": entry.metadata.get("original_filename")}


def _library_record(library) -> dict[str, str]:
    return {"uuid": library.uuid, "path": str(library.root)}


# -- who owns what ----------------------------------------------------------------------
def folder_manifest(folder: Path, name: str) -> dict | None:
    """The ``NAME_export.json`` of an exported entry folder (None if absent or unreadable)."""
    try:
        doc = json.loads((folder / (name + L.EXPORT_MANIFEST.suffix)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None


def _describe_owner(doc: dict) -> str:
    lib = doc.get("library") or {}
    ent = doc.get("entry") or {}
    orig = ent.get("original_filename")
    return (f"{ent.get('name', '?')} of another library ({lib.get('path') or lib.get('uuid', '?')}"
            + (f", original {orig}" if orig else "") + ")")


def folder_conflict(library, entry, folder: Path, uuid: str | None = None) -> str | None:
    """Why ``folder`` must not be overwritten with ``entry`` (None: empty, absent, or this entry's)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} is a file"
    doc = folder_manifest(folder, entry.name)
    if doc is not None:
        lib, ent = doc.get("library") or {}, doc.get("entry") or {}
        if lib.get("uuid") == (uuid or library.uuid) and ent.get("id") == entry.id:
            return None
        return f"{folder} holds {_describe_owner(doc)}"
    if any(folder.iterdir()):
        return f"{folder} holds files that were not exported from this library"
    return None


def data_anns_conflict(library, out: Path, uuid: str | None = None) -> str | None:
    """Why ``OUT/data_anns.json`` must not be replaced (None: absent or this library's)."""
    path = out / DATA_ANNS
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{path} cannot be read (not written by this library)"
    recs = list(doc.values()) if isinstance(doc, dict) else []
    uuid = uuid or library.uuid
    if any(not isinstance(r, dict) or r.get("library") != uuid for r in recs):
        return f"{path} lists entries of another library"
    return None


def check_out_dir(library, out_dir: str | Path) -> Path:
    """The output folder, refused when it is a file or one of the library's own entry folders."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ex.ExportError(f"{out} is a file, not a folder")
    res = out.resolve()
    root = library.root
    if res == root or (res.is_relative_to(root) and res.relative_to(root).parts[0].startswith("microstructure")):
        raise ex.ExportError(f"{out}: export into a folder of its own (default {default_folder(library)}), "
                             "not into the library's entry folders")
    return out


def conflicts(library, entry_ids: list[int] | None, out_dir: str | Path) -> list[str]:
    """Everything in ``out_dir`` an export of these entries would overwrite that is not theirs."""
    out = check_out_dir(library, out_dir)
    ids = _ids(library, entry_ids)
    uuid = library.uuid
    found = [c for c in (folder_conflict(library, library.get_entry(i), out / library.get_entry(i).name, uuid)
                         for i in ids) if c]
    c = data_anns_conflict(library, out, uuid)
    return found + ([c] if c else [])


def _ids(library, entry_ids: list[int] | None) -> list[int]:
    if entry_ids is None:
        return [e.id for e in library.list_entries(include_excluded=False)]
    return [int(i) for i in entry_ids]


# -- what the step reads ------------------------------------------------------------------
@dataclass
class ExportInputs:
    """What an export of one entry would contain, and how its last export stands."""

    ready: bool
    reason: str  #: why not ready ('' when ready)
    missing: dict[str, str]  #: layout suffix -> why it would be missing
    volume: generate.VolumeState
    last: dict | None  #: the entry's ``_export.json`` (what was exported where), None if never
    last_current: bool  #: the last export still matches the entry's files
    last_reason: str = ""  #: why it does not


def inputs(library, entry_id: int) -> ExportInputs:
    """What the entry would export now (cheap enough for every GUI event)."""
    entry = library.get_entry(entry_id)
    vol = generate.volume_state(library, entry_id)
    missing: dict[str, str] = {}
    if not vol.exists:
        for s in _FROM_VOLUME:
            missing[s] = "no generated volume (Inspect → Generate)"
    elif not vol.current:
        for s in _FROM_VOLUME:
            missing[s] = f"the volume is not current ({vol.reason}): generate it again (Inspect)"
    for f, why in ((L.INPAINTED, "Inpaint step not done"), (L.GENERATOR, "not trained yet"),
                   (L.PARAMS, "not trained yet"), (L.CRITIC, "not trained yet")):
        if not library.entry_file(entry_id, f.suffix).exists():
            missing[f.suffix] = why
    last = last_export(library, entry_id)
    current, why = True, ""
    if last is None:
        current, why = False, "not exported yet"
    elif vol.stale:
        current, why = False, "the entry's volume is out of date"
    elif entry.steps.get(STEP) == STALE:
        current, why = False, "the entry changed since it was exported"
    elif not _inputs_unchanged(library, entry_id):
        current, why = False, "files of the entry changed since it was exported"
    return ExportInputs(True, "", missing, vol, last, current, why)


def _inputs_unchanged(library, entry_id: int) -> bool:
    path = library.entry_file(entry_id, L.EXPORT_MANIFEST.suffix)
    rows = library.provenance(entry_id)
    prov = next((p for p in rows if p["file"] == path.name), None)
    if prov is None:
        return False
    folder = library.entry_dir(entry_id)
    return all(known_sha(folder / i["file"], rows) == i.get("sha256") for i in prov["inputs"])


def last_export(library, entry_id: int) -> dict | None:
    """The entry's ``_export.json``: ``folder``, ``exported`` (ISO time), ``files`` (name, status, detail)."""
    try:
        doc = json.loads(library.entry_file(entry_id, L.EXPORT_MANIFEST.suffix).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files", doc.get("items")), list):
        return None
    doc.setdefault("files", doc.get("items"))  # the build's older manifest says "items"
    return doc


# -- writing one entry folder --------------------------------------------------------------
def _copy(src: Path, dst: Path) -> None:
    from ..atomic import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


class _Entry:
    """What writing one entry's files needs: sources, targets, the volume (read once)."""

    def __init__(self, library, entry, folder: Path, media: bool, n_frames: int):
        self.library, self.entry, self.folder, self.media, self.n_frames = library, entry, folder, media, n_frames
        self.state = generate.volume_state(library, entry.id)
        self._volume = None
        self.volume_err = ("no generated volume (Inspect → Generate)" if not self.state.exists else
                           f"the volume is not current ({self.state.reason}): generate it again (Inspect)")

    def src(self, suffix: str) -> Path:
        return self.library.entry_file(self.entry.id, suffix)

    def dst(self, suffix: str) -> Path:
        return self.folder / (self.entry.name + suffix)

    def volume(self):
        if self._volume is None and self.state.current:
            try:
                self._volume = load_volume(self.src(L.VOLUME.suffix))
            except MediaError as exc:
                self.volume_err = str(exc)
        return self._volume


def _export_file(e: _Entry, suffix: str) -> ex.ExportItem:
    from ..images import load_image, save_png

    fname = e.entry.name + suffix
    if suffix == L.VOLUME.suffix:
        vol = e.volume()
        if vol is None:
            return ex.ExportItem(fname, ex.MISSING, e.volume_err)
        vox = ex.entry_vox_size(e.library, e.entry.id)
        ex.write_volume_tiff(e.dst(suffix), vol, vox)
        return ex.ExportItem(fname, ex.WRITTEN, f"{tuple(vol.shape)}, " + (
            f"{vox:g} µm/voxel" if vox else "voxel size unknown (no scale bar)"))
    if suffix in (L.MOVIE.suffix, L.LONG_PNG.suffix):
        if not e.state.current:
            return ex.ExportItem(fname, ex.MISSING, e.volume_err)
        if e.src(suffix).exists() and not e.library.is_stale(e.entry.id, suffix):
            _copy(e.src(suffix), e.dst(suffix))
            return ex.ExportItem(fname, ex.COPIED)
        vol = e.volume() if e.media else None
        if vol is None:
            return ex.ExportItem(fname, ex.MISSING, e.volume_err if e.media else "media rendering switched off")
        if suffix == L.MOVIE.suffix:
            write_rotation_movie(vol, e.dst(suffix), n_frames=e.n_frames)
        else:
            write_long_png(vol, e.dst(suffix))
        return ex.ExportItem(fname, ex.GENERATED, "rendered from the volume")
    if suffix == ex.INPAINT_MP4:
        if e.src(suffix).exists():
            _copy(e.src(suffix), e.dst(suffix))
            return ex.ExportItem(fname, ex.COPIED)
        if e.src(L.INPAINT_GIF.suffix).exists():
            gif_to_mp4(e.src(L.INPAINT_GIF.suffix), e.dst(suffix))
            return ex.ExportItem(fname, ex.GENERATED, f"made from {L.INPAINT_GIF.suffix}")
        return ex.ExportItem(fname, ex.MISSING, "no inpainting animation (Inpaint step with the GAN method)")
    if suffix == ex.ORIGINAL_PNG:
        orig = e.library.original_path(e.entry.id)
        if orig.suffix.lower() == ".png":
            _copy(orig, e.dst(suffix))
            return ex.ExportItem(fname, ex.COPIED)
        save_png(e.dst(suffix), load_image(orig).as_uint8())
        return ex.ExportItem(fname, ex.GENERATED, f"converted from {orig.suffix}")
    if e.src(suffix).exists():
        _copy(e.src(suffix), e.dst(suffix))
        return ex.ExportItem(fname, ex.COPIED)
    why = {L.INPAINTED.suffix: "Inpaint step not done", L.INPAINT_GIF.suffix: "no inpainting animation",
           L.GENERATOR.suffix: "not trained yet", L.PARAMS.suffix: "not trained yet",
           L.CRITIC.suffix: "not trained yet", L.GEN_META.suffix: "not trained yet"}
    return ex.ExportItem(fname, ex.MISSING, why.get(suffix, ""))


def _manifest(library, entry, folder: Path, items: list[ex.ExportItem], uuid: str) -> dict:
    from ... import __version__

    return {"format": MANIFEST_FORMAT, "version": 1, "app_version": __version__,
            "library": {"uuid": uuid, "path": str(library.root)}, "entry": _entry_record(library, entry),
            "folder": str(folder), "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "volume": _volume_record(library, entry.id), "files": [i.to_dict() for i in items]}


def _volume_record(library, entry_id: int) -> dict | None:
    """How the exported volume was generated (size, seed, periodic axes, phase-fraction matching
    with its offsets and raw fractions); None without a current volume."""
    state = generate.volume_state(library, entry_id)
    if not state.current:
        return None
    return {k: state.params[k] for k in ("size", "periodic", "seed", "generator", "match_vf", "calibration")
            if k in state.params}


def export_entry(library, entry_id: int, out_dir: str | Path, *, media: bool = True, n_frames: int = 72,
                 progress: Callable[[str], None] | None = None, overwrite: bool = False) -> ex.ExportResult:
    """Write one entry into ``out_dir/microstructureNNN/`` (the library is not changed).

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
    overwrite : bool
        Replace a folder holding another library's entry (or files of unknown origin).

    Returns
    -------
    ExportResult with one :class:`~microlib_gui.core.export.ExportItem` per layout file.

    Raises
    ------
    ExportConflictError
        The folder holds something else and ``overwrite`` is False; nothing is written.
    """
    from ..atomic import atomic_write_json

    entry = library.get_entry(entry_id)
    out = check_out_dir(library, out_dir)
    folder = out / entry.name
    uuid = library.uuid
    clash = folder_conflict(library, entry, folder, uuid)
    if clash and not overwrite:
        raise ExportConflictError([clash])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ex.ExportError(f"cannot create {folder}: {exc.strerror or exc}") from None
    manifest_path = folder / (entry.name + L.EXPORT_MANIFEST.suffix)
    if clash:  # another library's entry: none of its files may stay under this entry's name
        for suffix in ex.LAYOUT:
            (folder / (entry.name + suffix)).unlink(missing_ok=True)
    # Claimed first: a folder interrupted half-way still says whose files it holds.
    atomic_write_json(manifest_path, _manifest(library, entry, folder, [], uuid))
    e = _Entry(library, entry, folder, media, n_frames)
    res = ex.ExportResult(entry.id, folder)
    for suffix in ex.LAYOUT:
        if progress:
            progress(entry.name + suffix)
        try:
            item = _export_file(e, suffix)
        except (MicrolibError, OSError, ValueError, RuntimeError) as exc:
            item = ex.ExportItem(entry.name + suffix, ex.FAILED, " ".join(str(exc).split())[:200])
        if item.status in (ex.MISSING, ex.FAILED):
            # left by an earlier export: it no longer matches the entry
            e.dst(suffix).unlink(missing_ok=True)
        res.items.append(item)
    atomic_write_json(manifest_path, _manifest(library, entry, folder, res.items, uuid))
    return res


def write_data_anns(library, entry_ids: list[int], out_dir: str | Path) -> Path:
    """``OUT/data_anns.json``: these entries, plus this library's entries exported there before.

    Each record is MicroLib's (:func:`~microlib_gui.core.annotations.entry_to_data_anns`)
    with ``library`` (the library's uuid) and ``original_filename`` added.
    """
    from ..annotations import entry_to_data_anns
    from ..atomic import atomic_write_json

    out = Path(out_dir)
    path = out / DATA_ANNS
    uuid = library.uuid
    records: dict[str, dict] = {}
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        old = {}
    for rec in (old.values() if isinstance(old, dict) else []):
        if isinstance(rec, dict) and rec.get("library") == uuid and (out / str(rec.get("name"))).is_dir():
            records[rec["name"]] = rec
    for eid in entry_ids:
        e = library.get_entry(eid)
        if e.excluded:
            continue
        rec = entry_to_data_anns(e, library.get_annotations(e.id))
        rec.update(original_filename=e.metadata.get("original_filename", ""), library=uuid)
        records[e.name] = rec
    doc = {str(i): records[name] for i, name in enumerate(sorted(records), start=1)}
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, doc)


# -- the step ----------------------------------------------------------------------------------
def export(library, entry_ids: list[int] | None, out_dir: str | Path, *, media: bool = True, n_frames: int = 72,
           progress: Callable[[str], None] | None = None, overwrite: bool = False) -> list[ex.ExportResult]:
    """Export entries (None: every entry not excluded), :func:`save` each, then ``data_anns.json``.

    Checks the whole folder first: with a conflict (and no ``overwrite``) nothing is written.
    """
    ids = _ids(library, entry_ids)
    found = conflicts(library, ids, out_dir)
    if found and not overwrite:
        raise ExportConflictError(found)
    out = Path(out_dir)
    params = {"out": str(out), "media": bool(media), "n_frames": int(n_frames)}
    results: list[ex.ExportResult] = []
    try:
        for eid in ids:
            res = export_entry(library, eid, out, media=media, n_frames=n_frames, progress=progress,
                               overwrite=overwrite)
            save(library, eid, res, params)
            results.append(res)
    finally:  # what was exported is listed, even when cancelled part-way
        if results or not ids:
            write_data_anns(library, [r.entry_id for r in results], out)
    return results


def save(library, entry_id: int, result: ex.ExportResult, params: dict):
    """Keep what was exported where as ``_export.json``: the Export step done (or to do, if a file failed)."""
    from ..library import StagedFile

    entry = library.get_entry(entry_id)
    doc = folder_manifest(result.folder, entry.name) or _manifest(library, entry, result.folder, result.items,
                                                                   library.uuid)
    exported = [i.name[len(entry.name):] for i in result.items if i.status in (ex.WRITTEN, ex.COPIED, ex.GENERATED)]
    sources = [s for s in exported if library.entry_file(entry_id, s).exists()]  # not what was rendered
    files = [StagedFile(L.EXPORT_MANIFEST.suffix, (json.dumps(doc, indent=1) + "\n").encode("utf-8"),
                        inputs=sources, params=params, produced_by=STEP)]
    return library.complete_step(entry_id, STEP, files=files, status=DONE if result.ok else TODO)


def run_job(ctx, library_root: str, entry_ids: list[int] | None, out_dir: str, media: bool = True,
            n_frames: int = 72, overwrite: bool = False) -> list[dict]:
    """Job function around :func:`export` (the GUI's thread, the build)."""
    from ..library import Library

    lib = Library(library_root, create=False)
    ids = _ids(lib, entry_ids)
    total = max(1, len(ids) * len(ex.LAYOUT))
    count = [0]

    def progress(fname: str) -> None:
        ctx.check_cancelled()
        ctx.report(count[0], total, f"writing {fname}")
        count[0] += 1

    return [r.to_dict() for r in export(lib, ids, out_dir, media=media, n_frames=n_frames, progress=progress,
                                        overwrite=overwrite)]

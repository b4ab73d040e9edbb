"""``microlib export`` (entries in MicroLib's dataset layout) and ``microlib media`` (movie/strip of a volume)."""

from __future__ import annotations

from pathlib import Path

from . import add_json_flag, emit, open_library
from ._args import entry_key, number, whole

#: Most frames of a rotation movie (an hour at 24 fps).
MAX_FRAMES = 86_400


def register(sub) -> None:
    p = sub.add_parser("export", help="write entries in the MicroLib dataset layout (tif, mp4, _long.png, _Gen.pt, ...)")
    p.add_argument("entry", nargs="?", type=entry_key, help="entry id, name or doitpoms:N")
    p.add_argument("--all", action="store_true", help="export every entry that is not excluded")
    p.add_argument("--out", metavar="DIR",
                   help="output folder, one sub-folder per entry (default: the library's own LIBRARY/export)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace folders holding another library's entries (refused otherwise, exit 2)")
    p.add_argument("--no-media", action="store_true", help="do not render a missing movie or strip")
    p.add_argument("--frames", type=whole(1, MAX_FRAMES), default=72,
                   help="frames of a rendered rotation movie (default 72)")
    add_json_flag(p)
    p.set_defaults(func=cmd_export)

    q = sub.add_parser("media", help="render a 3D TIFF volume: 360° rotation movie and rotation/erosion strip")
    q.add_argument("volume", metavar="VOLUME.tif")
    q.add_argument("--mp4", metavar="OUT.mp4", help="write the rotation movie here")
    q.add_argument("--long", metavar="OUT.png", help="write the rotation-and-erosion strip here")
    q.add_argument("--frames", type=whole(1, MAX_FRAMES), default=72, help="frames in the movie (default 72)")
    q.add_argument("--fps", type=number(0, 1000, lo_open=True), default=24.0)
    q.add_argument("--size", type=whole(16, 4096), default=320, help="movie frame side in pixels (default 320)")
    q.add_argument("--kind", choices=("auto", "labels", "grayscale"), default="auto")
    add_json_flag(q)
    q.set_defaults(func=cmd_media)


def cmd_export(args) -> int:
    import sys

    from ..core.export import FAILED, MISSING, ExportError
    from ..core.workflow import export

    if bool(args.entry) == bool(args.all):
        raise ExportError("name one ENTRY or pass --all")
    lib = open_library(args, create=False)
    ids = None if args.all else [lib.find_entry(args.entry).id]
    quiet = getattr(args, "json", False)
    progress = None if quiet else (lambda name: print(f"  {name} …", file=sys.stderr))
    args.out = args.out or str(export.default_folder(lib))
    # Another library's entry in the folder: ExportConflictError, one line, exit 2, nothing written.
    results = export.export(lib, ids, args.out, media=not args.no_media, n_frames=max(1, args.frames),
                            progress=progress, overwrite=args.overwrite)
    lines = []
    for r in results:
        lines.append(f"{r.folder}")
        for i in r.items:
            lines.append(f"  {i.status:<9} {i.name}" + (f"  ({i.detail})" if i.detail else ""))
    lines.append(f"data_anns.json written to {Path(args.out)}")
    emit(args, {"out": str(Path(args.out)), "entries": [r.to_dict() for r in results]}, "\n".join(lines))
    failed = [i for r in results for i in r.items if i.status == FAILED]
    missing = sum(1 for r in results for i in r.items if i.status == MISSING)
    if failed and not quiet:
        print(f"microlib: {len(failed)} file(s) failed; {missing} missing", file=sys.stderr)
    return 1 if failed else 0


def cmd_media(args) -> int:
    from ..core.media import MediaError, load_volume, write_long_png, write_rotation_movie

    if not args.mp4 and not args.long:
        raise MediaError("nothing to do: give --mp4 OUT.mp4 and/or --long OUT.png")
    if args.mp4 and Path(args.mp4).suffix.lower() != ".mp4":
        raise MediaError(f"{Path(args.mp4).name}: the movie must be an .mp4 file")
    if args.long and Path(args.long).suffix.lower() != ".png":
        raise MediaError(f"{Path(args.long).name}: the strip must be a .png file")
    if args.frames < 1 or not 16 <= args.size <= 4096 or args.fps <= 0:
        raise MediaError("--frames must be ≥ 1, --size within 16..4096 and --fps > 0")
    vol = load_volume(args.volume)
    kind = None if args.kind == "auto" else args.kind
    out = {"volume": args.volume, "shape": list(vol.shape)}
    if args.mp4:
        out["mp4"] = str(write_rotation_movie(vol, args.mp4, n_frames=args.frames, fps=args.fps, size=args.size,
                                              kind=kind))
    if args.long:
        out["long"] = str(write_long_png(vol, args.long, kind=kind))
    emit(args, out, "wrote " + " and ".join(str(out[k]) for k in ("mp4", "long") if k in out))
    return 0

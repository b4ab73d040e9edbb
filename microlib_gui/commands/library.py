"""``microlib library ...``: create, list, show, edit records, import and export libraries."""

from __future__ import annotations

from pathlib import Path

from . import add_json_flag, emit, open_library
from ._args import doitpoms_id, entry_key


def register(sub) -> None:
    p = sub.add_parser("library", help="manage the library store")
    lsub = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    q = lsub.add_parser("init", help="create a library folder (with --demo: add the demo catalog)")
    q.add_argument("--demo", action="store_true", help="add the procedurally generated demo entries")
    add_json_flag(q)
    q.set_defaults(func=cmd_init)

    q = lsub.add_parser("list", help="list entries")
    q.add_argument("--no-excluded", action="store_true", help="hide excluded entries")
    add_json_flag(q)
    q.set_defaults(func=cmd_list)

    q = lsub.add_parser("show", help="show one entry (id, name or doitpoms:N)")
    q.add_argument("entry", type=entry_key)
    add_json_flag(q)
    q.set_defaults(func=cmd_show)

    q = lsub.add_parser("set", help="edit an entry's record: FIELD=VALUE ... (description, keywords, ...)",
                        description="Edit the record data_anns.json holds for an entry (one undoable edit; "
                                    "`microlib entry undo` takes it back). Fields: brief_descr, keywords, "
                                    "category, element, technique, long_desc, contributor, organisation; "
                                    "keywords, category and element are comma-separated lists. "
                                    "A value equal to DoITPoMS's drops the edit.")
    q.add_argument("entry", type=entry_key)
    q.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    add_json_flag(q)
    q.set_defaults(func=cmd_set)

    q = lsub.add_parser("add", help="add a local image file as a new entry")
    q.add_argument("image")
    q.add_argument("--doitpoms-id", type=doitpoms_id, help="the DoITPoMS micrograph id, if it is one")
    add_json_flag(q)
    q.set_defaults(func=cmd_add)

    q = lsub.add_parser("import-anns", help="import a MicroLib annotation file or a data_anns.json",
                        description="Import a MicroLib annotation file (records naming DoITPoMS micrographs, or "
                                    "entries as `microlib library export` writes them: "
                                    "microstructureNNN_original.png) or a data_anns.json. All or nothing; a local "
                                    "entry's record this library cannot take is listed as not applied.")
    q.add_argument("file")
    q.add_argument("--images", metavar="DIR",
                   help="folder with the raw images the file names (adds them): the images themselves, or entry "
                        "folders microstructureNNN/ (a library's or an export's)")
    add_json_flag(q)
    q.set_defaults(func=cmd_import_anns)

    q = lsub.add_parser("export", help="write data_anns.json and MicroLib annotations into DIR")
    q.add_argument("dir")
    q.add_argument("--force", "--overwrite", action="store_true", dest="force",
                   help="replace a data_anns.json or microlib_anns.json already in DIR")
    add_json_flag(q)
    q.set_defaults(func=cmd_export)

    q = lsub.add_parser("exclude", help="exclude an entry for one of MicroLib's reasons")
    q.add_argument("entry", type=entry_key)
    q.add_argument("reason", help="anisotropic | non-representative | 'uneven exposure' | "
                                  "'duplicate of another entry' | 'low quality' | none")
    q.add_argument("--note", default="")
    add_json_flag(q)
    q.set_defaults(func=cmd_exclude)

    q = lsub.add_parser("pending", help="list annotations imported for micrographs not in the library yet")
    q.add_argument("--drop", metavar="ID", type=int, nargs="+", help="forget those DoITPoMS ids' annotations")
    q.add_argument("--drop-all", action="store_true", help="forget every pending annotation")
    add_json_flag(q)
    q.set_defaults(func=cmd_pending)

    q = lsub.add_parser("check", help="run SQLite's integrity check")
    add_json_flag(q)
    q.set_defaults(func=cmd_check)


def cmd_init(args) -> int:
    lib = open_library(args)
    added = []
    if args.demo:
        from ..core.demo import ensure_demo_entries

        added = ensure_demo_entries(lib)
    emit(args, {"library": str(lib.root), "schema_version": lib.schema_version, "demo_added": added},
         f"library ready at {lib.root}" + (f" ({len(added)} demo entries added)" if added else ""))
    return 0


def _row(e, brief: str) -> str:
    flags = " [excluded: %s]" % e.exclusion_reason if e.excluded else ""
    done = sum(1 for s in e.steps.values() if s == "done")
    return f"{e.id:>6}  {e.name:<20} {e.source:<8} {done}/{len(e.steps)} steps  {brief}{flags}"


def cmd_list(args) -> int:
    from ..core.workflow import details

    lib = open_library(args, readonly=True)
    entries = lib.list_entries(include_excluded=not args.no_excluded)
    recs = details.records(lib)
    emit(args, [{**e.to_dict(), "details": recs.get(e.id)} for e in entries],
         "\n".join(_row(e, recs[e.id]["brief_descr"]) for e in entries) if entries else "(library is empty)")
    return 0


def _details_lines(d) -> list[str]:
    """The record as ``show`` prints it: one field a line, empty ones left out, edits marked."""
    lines = []
    for f in d.record:
        v = d.record[f]
        text = ", ".join(v) if isinstance(v, list) else " ".join(str(v).split())
        if text:
            lines.append(f"    {f}: {text[:200]}{'…' if len(text) > 200 else ''}"
                         + ("  (edited)" if f in d.edited else ""))
    return lines


def cmd_show(args) -> int:
    from ..core.workflow import details

    lib = open_library(args, create=False, readonly=True)
    e = lib.find_entry(args.entry)
    d = details.inputs(lib, e.id)
    obj = {**e.to_dict(), "details": d.record, "edited": sorted(d.edited),
           "annotations": lib.get_annotations(e.id), "folder": str(lib.entry_dir(e.id)),
           "files": sorted(p.name for p in lib.entry_dir(e.id).glob("*") if not p.name.startswith(".")),
           "runs": lib.runs(e.id)}
    lines = [e.title, f"  source: {e.source}" + (f" (DoITPoMS {e.doitpoms_id})" if e.doitpoms_id else ""),
             f"  folder: {obj['folder']}",
             "  steps: " + ", ".join(f"{k}={v}" for k, v in e.steps.items())]
    if e.excluded:
        lines.append(f"  excluded: {e.exclusion_reason}" + (f" ({e.exclusion_note})" if e.exclusion_note else ""))
    lines += ["  details:", *_details_lines(d)]
    for k, v in obj["annotations"].items():
        if k not in details.EDITABLE:  # shown above, as the record
            lines.append(f"  {k}: {v}")
    lines.append("  files: " + ", ".join(obj["files"]))
    emit(args, obj, "\n".join(lines))
    return 0


def cmd_set(args) -> int:
    from ..core.workflow import details
    from ._args import parse_fields

    fields = parse_fields(args.fields)  # every pair checked before the library is opened for writing
    lib = open_library(args, create=False)
    e = lib.find_entry(args.entry)
    change = details.save(lib, e.id, **fields)
    d = details.inputs(lib, e.id)
    what = ", ".join(sorted(change.ann_changed)) or "nothing (the values were already these)"
    emit(args, {"entry": e.id, "name": e.name, "changed": sorted(change.ann_changed), "details": d.record},
         "\n".join([f"{e.name}: changed {what}", *_details_lines(d)]))
    return 0


def cmd_add(args) -> int:
    lib = open_library(args)
    e = lib.add_entry(args.image, source="doitpoms" if args.doitpoms_id else "local", doitpoms_id=args.doitpoms_id)
    emit(args, e.to_dict(), f"added {e.name}")
    return 0


def cmd_import_anns(args) -> int:
    from ..core import userjson
    from ..core.annotations import MAX_FILE_BYTES
    from ..core.errors import AnnotationError
    from ..core.safefile import read_regular_file

    lib = open_library(args)
    path = Path(args.file)
    try:
        # a regular file of bounded size only: a named pipe would block, /dev/zero never end
        text = read_regular_file(path, MAX_FILE_BYTES, "an annotation file", AnnotationError).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path.name}: cannot be read as JSON ({exc})") from None
    doc = userjson.loads(text, path.name, AnnotationError)  # too deep: refused before any import reads it
    first = next(iter(doc.values()), {}) if isinstance(doc, dict) else {}
    if isinstance(first, dict) and "name" in first and "data_path" not in first:
        n = lib.import_data_anns(path)
        emit(args, {"kind": "data_anns", "updated": n}, f"updated {n} entries from {path.name}")
        return 0
    res = lib.import_microlib_anns(path, images_dir=args.images)
    emit(args, {"kind": "microlib_anns", **res},
         f"{len(res['applied'])} applied, {len(res['added'])} entries added, "
         f"{len(res['pending'])} pending (applied when those micrographs are imported)"
         + "".join(f"\n  key {r['key']!r} of micrograph {r['micrograph']} kept as {r['as']!r}: "
                   f"{r['key']!r} is micrograph {r['held_by']}'s" for r in res["renamed"])
         + "".join(f"\n  {r['entry']} added as {r['as']}: this library's {r['entry']} is another micrograph"
                   for r in res["moved"])
         + (f"\n{len(res['not_applied'])} not applied:" if res["not_applied"] else "")
         + "".join(f"\n  key {r['key']!r}: {r['reason']}" for r in res["not_applied"]))
    # exit 0: the file was valid and all of it that names this library was applied; a local entry of
    # another library is an expected part of its export (as a pending record), not a failure
    return 0


EXPORT_FILES = ("data_anns.json", "microlib_anns.json")


def cmd_export(args) -> int:
    from ..core.errors import MicrolibError

    out = Path(args.dir)
    found = [out / name for name in EXPORT_FILES if (out / name).exists() or (out / name).is_symlink()]
    if found and not args.force:  # checked before anything is written: neither file is replaced
        more = f" (and {found[1].name})" if len(found) > 1 else ""
        raise MicrolibError(f"{found[0]} exists{more}: not overwritten; choose another folder or overwrite "
                            "(microlib library export --force)")
    lib = open_library(args, create=False, readonly=True)
    a = lib.export_data_anns(out / "data_anns.json")
    b = lib.export_microlib_anns(out / "microlib_anns.json")
    emit(args, {"data_anns": str(a), "microlib_anns": str(b)}, f"wrote {a} and {b}")
    return 0


def cmd_exclude(args) -> int:
    lib = open_library(args, create=False)
    e = lib.find_entry(args.entry)
    reason = None if args.reason.lower() == "none" else args.reason
    e = lib.set_excluded(e.id, reason, args.note)
    emit(args, e.to_dict(), f"{e.name}: " + (f"excluded ({reason})" if reason else "included"))
    return 0


def cmd_pending(args) -> int:
    if args.drop or args.drop_all:
        lib = open_library(args, create=False)
        dropped = lib.drop_pending_annotations(None if args.drop_all else args.drop)
        emit(args, {"dropped": dropped}, f"dropped {len(dropped)} pending annotations")
        return 0
    lib = open_library(args, create=False, readonly=True)
    pending = lib.pending_annotations()
    emit(args, {str(k): v for k, v in pending.items()},
         "\n".join(f"{did:>6}  {ann.get('data_path', '')}" for did, ann in pending.items())
         or "(no pending annotations)")
    return 0


def cmd_check(args) -> int:
    lib = open_library(args, create=False, readonly=True)
    res = lib.integrity_check()
    emit(args, {"integrity_check": res}, res)
    return 0 if res == "ok" else 3

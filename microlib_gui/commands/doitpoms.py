"""``microlib doitpoms ...``: search the DoITPoMS Micrograph Library, show a record, import.

The library's address is ``--base-url``, else ``$MICROLIB_DOITPOMS_URL``, else the
public site; pages and images are cached (``$MICROLIB_CACHE`` or the user cache
dir), so whatever was seen before also works with ``--offline``.
"""

from __future__ import annotations

import sys

from . import add_json_flag, emit, open_library
from ._args import doitpoms_id


def register(sub) -> None:
    p = sub.add_parser("doitpoms", help="search and import DoITPoMS micrographs")
    dsub = p.add_subparsers(dest="doitpoms_command", metavar="ACTION", required=True)

    q = dsub.add_parser("search", help="search record text (fetches unseen records when online)")
    q.add_argument("text", help="words that must all appear in the record ('' for all)")
    q.add_argument("--category", help="keep records with a category containing this")
    q.add_argument("--technique", help="keep records whose technique contains this")
    q.add_argument("--element", help="keep records whose composition names this element symbol")
    _common(q)
    q.set_defaults(func=cmd_search)

    q = dsub.add_parser("show", help="show the full record of one micrograph")
    q.add_argument("id", type=doitpoms_id)
    _common(q)
    q.set_defaults(func=cmd_show)

    q = dsub.add_parser("import", help="add micrographs to the library (resumable)")
    q.add_argument("ids", type=doitpoms_id, nargs="*", metavar="ID")
    q.add_argument("--resume", action="store_true", help="also import what an unfinished import left")
    _common(q)
    q.set_defaults(func=cmd_import)


def _common(q) -> None:
    q.add_argument("--base-url", metavar="URL",
                   help="library address (default: $MICROLIB_DOITPOMS_URL or https://www.doitpoms.ac.uk/miclib/)")
    q.add_argument("--offline", action="store_true", help="use only cached pages and images")
    add_json_flag(q)


def _client(args):
    from ..core.doitpoms import Client

    return Client(args.base_url, offline=args.offline)


def _line(rec) -> str:
    extra = ", ".join(x for x in (rec.technique, " ".join(rec.element)) if x)
    return f"{rec.id:>6}  {rec.brief_descr or '(no description)'}" + (f"  [{extra}]" if extra else "")


def cmd_search(args) -> int:
    client = _client(args)

    def progress(done: int, total: int, msg: str) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rfetching records {done}/{total}", end="", file=sys.stderr, flush=True)

    res = client.search(args.text, args.category, args.technique, args.element, on_progress=progress)
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    lines = [_line(r) for r in res.records] or ["(no matching micrographs)"]
    if res.offline:
        lines.append(f"offline ({client.offline_reason}): searched {len(client.known_records())} cached records")
    for i, err in sorted(res.errors.items()):
        print(f"microlib: warning: {err}", file=sys.stderr)
    if res.message:
        print(f"microlib: warning: {res.message}", file=sys.stderr)
    emit(args, {"records": [r.to_dict() for r in res.records], "offline": res.offline,
                "errors": {str(k): v for k, v in res.errors.items()}}, "\n".join(lines))
    return 0


def cmd_show(args) -> int:
    rec = _client(args).record(args.id)
    rows = [("Brief description", rec.brief_descr), ("Further information", rec.long_desc),
            ("Keywords", ", ".join(rec.keywords)), ("Categories", ", ".join(rec.category)),
            ("Composition", rec.composition), ("Elements", " ".join(rec.element)),
            ("Technique", rec.technique), ("Contributor", rec.contributor),
            ("Organisation", rec.organisation), ("Licence", rec.licence), ("URL", rec.url)]
    lines = [f"DoITPoMS micrograph {rec.id}"] + [f"  {k}: {v}" for k, v in rows if v]
    lines += [f"  (could not read {k}: {v})" for k, v in rec.errors.items()]
    emit(args, rec.to_dict(), "\n".join(lines))
    return 0


def cmd_import(args) -> int:
    from ..core.doitpoms.importer import import_micrographs, pending_import
    from ..core.errors import MicrolibError
    from ..core.jobs import run_inline

    lib = open_library(args)
    client = _client(args)
    ids = list(args.ids)
    if args.resume:
        ids += [i for i in pending_import(lib.root, client.cache) if i not in ids]
    if not ids:
        raise MicrolibError("no micrograph ids given (and nothing left to resume)")

    def progress(p) -> None:
        if not args.json:
            print(f"[{p.step}/{p.total}] {p.message}", file=sys.stderr)

    res = run_inline(import_micrographs, {"library": str(lib.root), "ids": ids, "client": client},
                     on_progress=progress)
    for did, why in res["failed"].items():
        print(f"microlib: error: {why}" if str(did) in why else f"microlib: error: micrograph {did}: {why}",
              file=sys.stderr)
    text = f"added {len(res['added'])}, already there {len(res['skipped'])}, failed {len(res['failed'])}"
    if res["pending"]:
        text += f"; {len(res['pending'])} can be retried with: microlib doitpoms import --resume"
    emit(args, {**res, "failed": {str(k): v for k, v in res["failed"].items()}}, text)
    return 3 if res["failed"] else 0  # 3: some failed, as `library check`

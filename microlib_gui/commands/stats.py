"""``microlib stats`` (2D image vs 3D volume) and ``microlib report`` (library-wide figure).

``microlib stats ENTRY`` compares an entry's training image with its volume and
keeps the result with the entry (``_stats.json``, ``_stats.png``), as the Inspect
step's Compute statistics button does (:mod:`microlib_gui.core.workflow.stats`).
"""

from __future__ import annotations

import sys

from . import add_json_flag, emit
from ._args import MAX_COORD, whole


def register(sub) -> None:
    p = sub.add_parser("stats", help="compare a 2D training image with a generated 3D volume",
                       description="Volume fraction, surface area, two-point correlation (and, for the "
                                   "volume, tortuosity and percolation) of both, their relative errors and "
                                   "MicroLib's 5% flag. IMAGE2D and VOLUME3D are label images (phase k = "
                                   "value k, or the sorted distinct values); many distinct values = grayscale.")
    p.add_argument("image2d", metavar="IMAGE2D|ENTRY",
                   help="2D training image (PNG/TIFF), or an entry of the library (id, microstructureNNN, "
                        "doitpoms:N): its statistics are stored with it")
    p.add_argument("volume3d", metavar="VOLUME3D", nargs="?", help="3D volume (TIFF stack); not for an ENTRY")
    add_json_flag(p)
    p.add_argument("--plot", metavar="OUT.png", help="also write the comparison figure")
    _add_compute_flags(p)
    p.set_defaults(func=cmd_stats)

    r = sub.add_parser("report", help="library-wide 2D vs 3D statistics (MicroLib Figure 4)",
                       description="For every entry with a training image (_inpainted.png) and a volume "
                                   "(.tif): compute or reuse its _stats.json/_stats.png, then write "
                                   "library_stats.png and library_stats.csv into DIR.")
    r.add_argument("library_path", metavar="LIBRARY", help="library folder")
    r.add_argument("--out", metavar="DIR", required=True, help="folder for library_stats.png/.csv")
    r.add_argument("--recompute", action="store_true", help="recompute entries whose stats are up to date")
    add_json_flag(r)
    _add_compute_flags(r)
    r.set_defaults(func=cmd_report)


def _add_compute_flags(p) -> None:
    p.add_argument("--r-max", type=whole(1, MAX_COORD), default=100, metavar="R",
                   help="largest two-point-correlation distance in pixels (default 100)")
    p.add_argument("--no-tortuosity", action="store_true", help="skip the TauFactor solve")
    p.add_argument("--tau-side", type=whole(4, MAX_COORD), default=None, metavar="N",
                   help="solve tortuosity on the central N^3 cube (default 64 on a CPU, all on a GPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where FFTs and TauFactor run (default: a GPU when present)")


def _compute_kw(args) -> dict:
    from ..core.stats.metrics import StatsError

    if args.r_max < 1:
        raise StatsError("--r-max must be at least 1")
    if args.tau_side is not None and args.tau_side < 4:
        raise StatsError("--tau-side must be at least 4")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise StatsError("--device cuda: no CUDA GPU is available")
    return {"r_max": args.r_max, "tortuosity": not args.no_tortuosity,
            "device": None if args.device == "auto" else args.device,
            "tau_side": -1 if args.tau_side is None else args.tau_side}


def cmd_stats(args) -> int:
    from pathlib import Path

    from ..core.report import entry_figure
    from ..core.stats.compare import compare, finite_or_none, load_pair

    kw = _compute_kw(args)
    if args.volume3d is None:
        return _stats_entry(args, kw)
    img, vol, kind = load_pair(args.image2d, args.volume3d)
    result = finite_or_none(compare(img, vol, kind=kind, progress=_stage_printer(args), **kw))
    if args.plot:
        entry_figure(result, args.plot, title=f"{Path(args.image2d).name} vs {Path(args.volume3d).name}")
    emit(args, result, format_result(result))
    return 0


def _stats_entry(args, kw: dict) -> int:
    from pathlib import Path

    from ..core.stats.metrics import StatsError
    from ..core.workflow import stats
    from . import open_library

    if Path(args.image2d).is_file():
        raise StatsError(f"{args.image2d}: give the 3D volume too (IMAGE2D VOLUME3D), or an ENTRY alone")
    if args.plot:
        raise StatsError("an entry's figure is stored with it (_stats.png): leave out --plot")
    lib = open_library(args, create=False)
    entry = lib.find_entry(args.image2d)
    show = _stage_printer(args)
    result = stats.compute(lib, entry.id, on_progress=lambda ev: show(ev.step, ev.total, ev.message), **kw)
    emit(args, result, format_result(result) + f"\nsaved with {entry.name} (_stats.json, _stats.png)")
    return 0


def _stage_printer(args):
    """``progress(step, total, message)`` printing each new stage on stderr as ``[2/7] surface area``
    (nothing with --json, whose stdout is for machines and stderr stays quiet)."""
    last = [None]

    def show(step: int, total: int, message: str) -> None:
        if args.json or message == last[0]:
            return
        last[0] = message
        where = f"[{step}/{total}] " if total else ""
        print(f"{where}{message}", file=sys.stderr, flush=True)

    return show


def _f(x, spec=".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def _p(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def format_result(result: dict) -> str:
    """The readable text of ``microlib stats``."""
    from ..core.report import flag_text

    m2, m3, err = result["image2d"], result["volume3d"], result["errors"]
    lines = [f"2D image {tuple(m2['shape'])}  vs  3D volume {tuple(m3['shape'])}  ({result['kind']})"]
    if result["kind"] == "grayscale":
        lines += [f"mean intensity    2D {_f(m2['mean'])}  3D {_f(m3['mean'])}  error {_p(err['mean'])}",
                  f"intensity std     2D {_f(m2['std'])}  3D {_f(m3['std'])}  error {_p(err['std'])}",
                  f"2PC max |2D-3D|   {_f(err['two_point'][0])}"]
    else:
        for k in range(result["n_phases"]):
            lines.append(f"phase {k}: volume fraction 2D {_f(m2['volume_fraction'][k])}  "
                         f"3D {_f(m3['volume_fraction'][k])}  error {_p(err['volume_fraction'][k])}  "
                         f"2PC max |2D-3D| {_f(err['two_point'][k])}")
        axes2 = " ".join(_f(a) for a in m2["surface_area_axes"])
        axes3 = " ".join(_f(a) for a in m3["surface_area_axes"])
        lines.append(f"surface area: 2D {_f(m2['surface_area'])} (axes {axes2})  "
                     f"3D {_f(m3['surface_area'])} (axes {axes3})  error {_p(err['surface_area'])}")
        tau = m3.get("tortuosity")
        if tau:
            for p in tau["phases"]:
                lines.append(f"phase {p['phase']}: tortuosity x {_f(p['x'], '.3f')}  y {_f(p['y'], '.3f')}  "
                             f"z {_f(p['z'], '.3f')}  spread {_p(p['spread'])}  "
                             f"({tau['side']}^3 cube, {tau['device']})")
        for p in m3.get("percolating_fraction", []):
            lines.append(f"phase {p['phase']}: percolating fraction x {_f(p['x'], '.3f')}  "
                         f"y {_f(p['y'], '.3f')}  z {_f(p['z'], '.3f')}  largest cluster {_f(p['largest'], '.3f')}")
    lines.append(flag_text(result))
    return "\n".join(lines)


def cmd_report(args) -> int:
    from ..core.workflow.report import library_report
    from ..core.library import Library

    kw = _compute_kw(args)
    lib = Library(args.library_path, create=False)

    def progress(i, n, msg):
        if not args.json:
            print(f"[{i}/{n}] {msg}", file=sys.stderr, flush=True)

    rep = library_report(lib, args.out, recompute=args.recompute, progress=progress, **kw)
    flagged = [r["entry"]["name"] for r in rep["results"] if r["flag"]["flagged"]]
    summary = {"png": rep["png"], "csv": rep["csv"], "computed": [r["entry"]["name"] for r in rep["results"]],
               "flagged": flagged, "skipped": rep["skipped"]}
    lines = [f"{len(rep['results'])} entries compared, {len(flagged)} flagged"
             + (f": {', '.join(flagged)}" if flagged else ""),
             f"figure: {rep['png']}", f"table:  {rep['csv']}"]
    lines += [f"skipped {s['name']}: {s['reason']}" for s in rep["skipped"]]
    emit(args, summary, "\n".join(lines))
    return 0

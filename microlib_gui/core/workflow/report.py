"""The library report (MicroLib Figure 4): every entry's statistics, reused while current, and the figure.

Used by ``microlib report`` and View → Library report.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MicrolibError
from ..library import layout as L
from ..report import TPC_SELECTION, library_figure, write_csv
from . import stats


def library_report(library, out_dir: str | os.PathLike, recompute: bool = False, selection: int = TPC_SELECTION,
                   progress=None, **compare_kw) -> dict:
    """Compute (or reuse) every entry's statistics and draw the library-wide figure.

    Writes ``OUT/library_stats.png`` (MicroLib Figure 4 layout) and ``OUT/library_stats.csv``.

    Parameters
    ----------
    library : Library
    out_dir : path-like
    recompute : bool
        Recompute entries whose stored ``_stats.json`` is still up to date.
    selection : int
        How many entries the 2PC panels show (split over two panels).
    progress : callable, optional
        ``progress(done, total, message)``.

    Returns
    -------
    dict
        ``{"results": [...], "skipped": [{"entry", "name", "reason"}], "png": path, "csv": path}``.
    """
    out = Path(out_dir)
    entries = library.list_entries()
    results, skipped = [], []
    for i, e in enumerate(entries):
        if progress:
            progress(i, len(entries), e.name)
        img, vol = (library.entry_file(e.id, f.suffix) for f in (L.INPAINTED, L.VOLUME))
        missing = [p.name for p in (img, vol) if not p.exists()]
        if missing:
            skipped.append({"entry": e.id, "name": e.name, "reason": "no " + " and no ".join(missing)})
            continue
        try:
            stored = None if recompute else stats.saved(library, e.id)
            results.append(stored.result if stored is not None and stored.current
                           else stats.compute(library, e.id, **compare_kw))
        except MicrolibError as exc:
            skipped.append({"entry": e.id, "name": e.name, "reason": str(exc)})
    if progress:
        progress(len(entries), len(entries), "figure")
    png = out / "library_stats.png"
    csv_path = out / "library_stats.csv"
    library_figure(results, png, selection=selection)
    write_csv(results, skipped, csv_path)
    return {"results": results, "skipped": skipped, "png": str(png), "csv": str(csv_path)}


def library_report_job(ctx, library_root: str, out_dir: str, recompute: bool = False, **compare_kw) -> dict:
    """Job function (``core.jobs``) around :func:`library_report`, for the GUI.

    Returns a JSON-able summary: ``png``, ``csv``, ``computed`` and ``flagged``
    (entry names) and ``skipped`` (entry, name, reason).
    """
    from ..library import Library

    def progress(done, total, message):
        ctx.check_cancelled()
        ctx.report(done, max(total, 1), message)

    rep = library_report(Library(library_root, create=False), out_dir, recompute=recompute, progress=progress,
                         **compare_kw)
    return {"png": rep["png"], "csv": rep["csv"], "computed": [r["entry"]["name"] for r in rep["results"]],
            "flagged": [r["entry"]["name"] for r in rep["results"] if r["flag"]["flagged"]],
            "skipped": rep["skipped"]}

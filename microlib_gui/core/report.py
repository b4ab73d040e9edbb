"""Statistics reports drawn from results: a figure per entry, the library-wide Figure 4 and its CSV.

Figures use matplotlib's Agg backend (no display needed). The results come from
:mod:`microlib_gui.core.workflow.stats` (one entry, kept as ``_stats.json`` and
``_stats.png``) and :mod:`microlib_gui.core.workflow.report` (the whole library);
this module knows nothing of libraries.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write_text
from .stats.compare import ERROR_THRESHOLD, headline_phase

#: Entries shown in the 2PC panels of the library figure (two panels of four, as in MicroLib).
TPC_SELECTION = 8

_C2D, _C3D = "#1f77b4", "#ff7f0e"


def _figure(figsize):
    """A figure drawn with Agg and no pyplot: pyplot's global state is not safe from worker threads
    (reports run in jobs beside the GUI), and the app's own Qt backend must never be used here."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _colours() -> list[str]:
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: str | os.PathLike | None, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            tmp.write_bytes(data)
    return data


def _pct(e) -> str:
    return "n/a" if e is None else f"{100 * e:.1f}%"


# -- per entry -------------------------------------------------------------------
def flag_text(result: dict) -> str:
    """The flag as plain sentences (used in figures, the CLI and the GUI)."""
    fl = result.get("flag") or {}
    if not fl.get("flagged"):
        return f"OK: every error is within {100 * fl.get('threshold', ERROR_THRESHOLD):.0f}%."
    lines = ["FLAGGED: " + "; ".join(fl["reasons"]) + "."]
    lines += ["Likely cause: " + c for c in fl["likely_causes"]]
    lines += ["To try: " + a for a in fl.get("advice") or []]
    return "\n".join(lines)


def entry_figure(result: dict, path: str | os.PathLike | None = None, title: str | None = None) -> bytes:
    """Draw one entry's 2D-vs-3D comparison; write it to ``path`` (atomic) and return PNG bytes."""
    import textwrap

    fig = _figure((11, 8.5))
    axs = fig.subplots(2, 2)
    gray = result["kind"] == "grayscale"
    m2, m3, err = result["image2d"], result["volume3d"], result["errors"]
    if gray:
        _hist_panel(axs[0, 0], m2, m3)
        _bars(axs[0, 1], ["mean", "std"], [m2["mean"], m2["std"]], [m3["mean"], m3["std"]],
              [err["mean"], err["std"]], "intensity")
        axs[1, 1].axis("off")
    else:
        n = result["n_phases"]
        _bars(axs[0, 0], [f"phase {k}" for k in range(n)], m2["volume_fraction"], m3["volume_fraction"],
              err["volume_fraction"], "volume fraction")
        labels = ["total"] + [f"axis {i}" for i in range(3)]
        a2 = [m2["surface_area"]] + m2["surface_area_axes"] + [np.nan]
        a3 = [m3["surface_area"]] + m3["surface_area_axes"]
        _bars(axs[0, 1], labels, a2, a3, [err["surface_area"], None, None, None], "surface-area density")
        _tau_panel(axs[1, 1], m3)
    _tpc_panel(axs[1, 0], result)
    status = "FLAGGED" if result["flag"]["flagged"] else "OK"
    fig.suptitle(f"{title or 'Statistics'} — 2D vs 3D — {status}",
                 color="#c0392b" if status == "FLAGGED" else "#1e8449", fontsize=13)
    note = "\n".join(textwrap.fill(line, 150) for line in flag_text(result).splitlines())
    fig.text(0.01, 0.005, note, fontsize=7.5, va="bottom", ha="left",
             color="#c0392b" if status == "FLAGGED" else "black")
    fig.tight_layout(rect=(0, 0.03 + 0.022 * note.count("\n"), 1, 0.96))
    return _save(fig, path)


def _legend_below(ax, ncol: int = 2, fontsize: float = 8) -> None:
    """The legend under the axes (inside, "best" still covered bars and curves); tight_layout makes room."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    below = -0.2 if ax.get_xlabel() else -0.14
    ax.legend(handles, labels, fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, below),
              ncol=max(1, min(ncol, len(handles))), frameon=False)


def _bars(ax, labels, v2, v3, errs, ylabel):
    x = np.arange(len(labels))
    ax.bar(x - 0.2, v2, 0.4, label="2D", color=_C2D)
    ax.bar(x + 0.2, v3, 0.4, label="3D", color=_C3D)
    for i, e in enumerate(errs):
        if e is not None:
            top = np.nanmax([v2[i], v3[i]])
            ax.annotate(_pct(e), (x[i], top), ha="center", va="bottom", fontsize=8,
                        color="#c0392b" if e > ERROR_THRESHOLD else "black")
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    _legend_below(ax)


def _hist_panel(ax, m2, m3):
    for m, c, lab in ((m2, _C2D, "2D"), (m3, _C3D, "3D")):
        edges = np.asarray(m["bin_edges"])
        ax.stairs(m["histogram"], edges, color=c, label=f"{lab} (mean {m['mean']:.3f}, std {m['std']:.3f})")
    ax.set_xlabel("intensity")
    ax.set_ylabel("density")
    _legend_below(ax, ncol=1)


def _tpc_panel(ax, result):
    m2, m3 = result["image2d"], result["volume3d"]
    colors = _colours()
    for k, (a, b) in enumerate(zip(m2["two_point"], m3["two_point"])):
        c = colors[k % len(colors)]
        name = "intensity" if result["kind"] == "grayscale" else f"phase {k}"
        if a is not None:
            ax.plot(m2["r"][: len(a)], a, color=c, label=f"{name} 2D")
        if b is not None:
            ax.plot(m3["r"][: len(b)], b, color=c, ls="--", label=f"{name} 3D")
    ax.set_xlabel("distance r (pixels)")
    ax.set_ylabel("two-point correlation S2(r)")
    _legend_below(ax, ncol=4)


def _tau_panel(ax, m3):
    tau = m3.get("tortuosity")
    perc = m3.get("percolating_fraction") or []
    dirs = ["x", "y", "z"]
    if not tau or not tau.get("phases"):
        ax.set_title("tortuosity not computed", fontsize=9)
        ax.axis("off")
        return
    phases = tau["phases"]
    w = 0.8 / len(phases)
    x = np.arange(3)
    pmap = {q["phase"]: q for q in perc}
    for i, p in enumerate(phases):
        vals = [np.nan if p[d] is None else p[d] for d in dirs]
        label = f"phase {p['phase']}" + ("" if p["spread"] is None else f", spread {_pct(p['spread'])}")
        q = pmap.get(p["phase"])
        if q:
            label += "; percolating " + "/".join(f"{q[d]:.2f}" for d in dirs)
        bars = ax.bar(x - 0.4 + w * (i + 0.5), vals, w, label=label)
        for j, d in enumerate(dirs):
            if p[d] is None:
                ax.annotate("no path", (bars[j].get_x() + w / 2, 0.05), ha="center", fontsize=7, rotation=90)
    ax.set_xticks(x, [f"{d} (axis {i})" for i, d in enumerate(dirs)])
    ax.set_ylabel("tortuosity factor")
    ax.set_title(f"TauFactor, central {tau['side']}³ cube ({tau['device']})", fontsize=9)
    ax.margins(y=0.25)
    _legend_below(ax, ncol=1, fontsize=7)


# -- library-wide (MicroLib Figure 4) ----------------------------------------------
CSV_COLUMNS = ["entry", "name", "status", "kind", "phase", "vf_2d", "vf_3d", "vf_error", "sa_2d", "sa_3d",
               "sa_error", "tpc_max_diff", "tau_x", "tau_y", "tau_z", "tau_spread", "flagged", "reasons"]


def summary_row(result: dict) -> dict[str, Any]:
    """One CSV row (the headline phase) of an entry's result."""
    e = result.get("entry", {})
    row: dict[str, Any] = {"entry": e.get("id"), "name": e.get("name"), "status": "ok", "kind": result["kind"]}
    fl = result["flag"]
    row.update(flagged=fl["flagged"], reasons=" | ".join(fl["reasons"]))
    if result["kind"] != "nphase":
        row["tpc_max_diff"] = result["errors"]["two_point"][0]
        return row
    k = result.get("headline_phase", headline_phase(result["image2d"]["volume_fraction"]))
    m2, m3, err = result["image2d"], result["volume3d"], result["errors"]
    row.update(phase=k, vf_2d=m2["volume_fraction"][k], vf_3d=m3["volume_fraction"][k],
               vf_error=err["volume_fraction"][k], sa_2d=m2["surface_area"], sa_3d=m3["surface_area"],
               sa_error=err["surface_area"], tpc_max_diff=err["two_point"][k])
    for p in (m3.get("tortuosity") or {}).get("phases", []):
        if p["phase"] == k:
            row.update(tau_x=p["x"], tau_y=p["y"], tau_z=p["z"], tau_spread=p["spread"])
    return row


def write_csv(results: list[dict], skipped: list[dict], path: str | os.PathLike) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: _cell(v) for k, v in summary_row(r).items()})
    for s in skipped:
        w.writerow({"entry": s["entry"], "name": s["name"], "status": "skipped: " + s["reason"]})
    return atomic_write_text(path, buf.getvalue())


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def tpc_selection(results: list[dict], n: int) -> list[dict]:
    """``n`` n-phase entries spread evenly over the range of 2D volume fractions."""
    rows = sorted((r for r in results if r["kind"] == "nphase"), key=lambda r: summary_row(r)["vf_2d"])
    if len(rows) <= n:
        return rows
    return [rows[int(i)] for i in np.linspace(0, len(rows) - 1, n).round()]


def library_figure(results: list[dict], path: str | os.PathLike | None = None,
                   selection: int = TPC_SELECTION) -> bytes:
    """MicroLib Figure 4: (a) vf and (b) surface area, 2D vs 3D, entries ordered by the
    2D value, flagged entries marked; (c, d) 2PC 2D (solid) vs 3D (dashed) of a selection."""
    fig = _figure((12, 9))
    axs = fig.subplots(2, 2)
    rows = [summary_row(r) for r in results if r["kind"] == "nphase"]
    for ax, key, label in ((axs[0, 0], "vf", "volume fraction"), (axs[0, 1], "sa", "surface-area density")):
        _ordered_panel(ax, rows, key, label)
    sel = tpc_selection(results, selection)
    half = (len(sel) + 1) // 2
    colors = _colours()
    for ax, part, tag in ((axs[1, 0], sel[:half], "c"), (axs[1, 1], sel[half:], "d")):
        for i, r in enumerate(part):
            k = r.get("headline_phase", 0)
            c = colors[i % len(colors)]
            name = (r.get("entry") or {}).get("name", "?")
            ax.plot(r["image2d"]["r"], r["image2d"]["two_point"][k], color=c, label=f"{name} (phase {k})")
            ax.plot(r["volume3d"]["r"], r["volume3d"]["two_point"][k], color=c, ls="--")
        ax.set_title(f"{tag}) two-point correlation: 2D solid, 3D dashed", fontsize=10)
        ax.set_xlabel("distance r (pixels)")
        ax.set_ylabel("S2(r)")
        if part:
            ax.legend(fontsize=7)
    n_flag = sum(1 for r in rows if r["flagged"])
    mean_vf = np.mean([r["vf_error"] for r in rows if r["vf_error"] is not None]) if rows else float("nan")
    mean_sa = np.mean([r["sa_error"] for r in rows if r["sa_error"] is not None]) if rows else float("nan")
    fig.suptitle(f"2D training data vs 3D generated volumes — {len(rows)} n-phase entries; mean error vf "
                 f"{100 * mean_vf:.1f}%, surface area {100 * mean_sa:.1f}%; {n_flag} above "
                 f"{100 * ERROR_THRESHOLD:.0f}%", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def _ordered_panel(ax, rows, key, label):
    tag = "a" if key == "vf" else "b"
    ax.set_title(f"{tag}) {label}, entries ordered by the 2D value", fontsize=10)
    rows = sorted((r for r in rows if r.get(f"{key}_2d") is not None), key=lambda r: r[f"{key}_2d"])
    if not rows:
        ax.text(0.5, 0.5, "no entries", ha="center", transform=ax.transAxes)
        return
    x = np.arange(len(rows))
    v2 = np.array([r[f"{key}_2d"] for r in rows], dtype=float)
    v3 = np.array([r[f"{key}_3d"] for r in rows], dtype=float)
    ax.plot(x, v2, "o-", ms=4, color=_C2D, label="2D")
    ax.plot(x, v3, "s", ms=4, color=_C3D, label="3D")
    for i, r in enumerate(rows):
        e = r[f"{key}_error"]
        if e is not None and e > ERROR_THRESHOLD:
            ax.annotate(str(r["entry"]), (x[i], v3[i]), textcoords="offset points", xytext=(3, 3),
                        fontsize=7, color="#c0392b")
            ax.plot(x[i], v3[i], "o", ms=9, mfc="none", color="#c0392b")
    ax.set_xlabel("entry (ordered by 2D value)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # entry ranks, not fractions
    ax.set_ylabel(label + (" (rarest phase)" if key == "vf" else ""))
    ax.legend(fontsize=8)

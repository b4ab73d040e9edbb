"""The Stats view: 2D training image vs generated 3D volume, drawn live with pyqtgraph.

Shows what :func:`microlib_gui.core.stats.compare` returns: volume fraction and
surface area (2D vs 3D bars with their errors), two-point correlation curves (2D
solid, 3D dashed, one colour per phase), tortuosity per direction, and MicroLib's
5% flag with its reasons and likely causes in plain words above the plots. For a
volume whose phase fractions were matched to the image (``--match-vf``), the banner
gives the fractions before and after, and triangles mark the raw fractions.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ...core.report import flag_text

C2D, C3D = (31, 119, 180), (255, 127, 14)
#: Entries per row of a legend (legends sit under their plots, not over the data).
LEGEND_COLUMNS = 4
PHASE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
OK_STYLE = "QLabel { background: #e8f6ec; color: #1e6b3a; border: 1px solid #9fd3b0; padding: 6px; }"
FLAG_STYLE = "QLabel { background: #fdecea; color: #a32a1e; border: 1px solid #f0a8a0; padding: 6px; }"
EMPTY_STYLE = "QLabel { color: #555; padding: 6px; }"
STALE_STYLE = "QLabel { background: #fff6dd; color: #7a5a00; border: 1px solid #e8cf8a; padding: 6px; }"


def calibration_text(result: dict) -> str:
    """One line on a matched volume: each phase's fraction before → after (and in 2D); '' if unmatched."""
    cal = result.get("calibration")
    if not cal or not cal.get("raw_vf"):
        return ""
    vf2, vf3 = result["image2d"]["volume_fraction"], result["volume3d"]["volume_fraction"]
    parts = [f"phase {k} {raw:.3f} → {vf3[k]:.3f} (2D {vf2[k]:.3f})"
             for k, raw in enumerate(cal["raw_vf"]) if k < len(vf2) and k < len(vf3)]
    errs = [e for e in cal.get("raw_volume_fraction_error") or [] if e is not None]
    before = f"; before matching the largest error was {100 * max(errs):.1f}%" if errs else ""
    return "Phase fractions matched to the training image: " + ", ".join(parts) + before + "."


class StatsView(QWidget):
    """Four plots and a flag banner; call :meth:`set_results` with a ``compare()`` result."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: dict | None = None
        self.note = ""
        self.banner = QLabel()
        self.banner.setObjectName("statsFlag")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("statsPlots")
        self.graphics.setBackground("w")
        self.p_vf = self._plot(0, 0, "Volume fraction", "phase", "volume fraction")
        self.p_sa = self._plot(0, 1, "Surface-area density", "", "share of neighbour pairs")
        self.p_tpc = self._plot(1, 0, "Two-point correlation (2D solid, 3D dashed)", "distance r (px)", "S2(r)")
        self.p_tau = self._plot(1, 1, "Tortuosity factor (3D)", "direction", "tau", legend_cols=2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.banner)
        lay.addWidget(self.graphics, 1)
        self.set_results(None)

    def _plot(self, row: int, col: int, title: str, xlabel: str, ylabel: str,
              legend_cols: int = LEGEND_COLUMNS) -> pg.PlotItem:
        """A plot in row ``2 row`` of the layout, its legend in the row below it (outside the plot:
        a legend inside covered bars and curves)."""
        p = self.graphics.addPlot(row=2 * row, col=col, title=title)
        p.setLabel("bottom", xlabel)
        p.setLabel("left", ylabel)
        p.showGrid(x=False, y=True, alpha=0.3)
        for side in ("left", "bottom"):
            p.getAxis(side).enableAutoSIPrefix(False)  # "(x0.001)" on a fraction only confuses
        legend = pg.LegendItem(colCount=legend_cols, labelTextSize="8pt", verSpacing=-6)
        self.graphics.addItem(legend, row=2 * row + 1, col=col)
        p.legend = legend  # items plotted with a name join it, as with PlotItem.addLegend
        layout = self.graphics.ci.layout
        # As wide as its entries, under the plot's left end (stretched, its entries drifted apart).
        legend.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        layout.setAlignment(legend, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.setRowStretchFactor(2 * row, 1)
        layout.setRowStretchFactor(2 * row + 1, 0)
        return p

    # -- public ---------------------------------------------------------------------
    def set_results(self, result: dict | None, note: str = "") -> None:
        """Show a result of :func:`~microlib_gui.core.stats.compare` (None clears the view).

        ``note`` says why the result may not describe the entry any more (e.g. it
        was computed from an earlier volume); it heads the banner.
        """
        self.result, self.note = result, (note if result else "")
        for p in (self.p_vf, self.p_sa, self.p_tpc, self.p_tau):
            p.clear()
            if p.legend is not None:
                p.legend.clear()
        if not result:
            self.banner.setStyleSheet(EMPTY_STYLE)
            self.banner.setText("No statistics yet: generate a volume, then compute statistics.")
            return
        flagged = bool(result.get("flag", {}).get("flagged"))
        self.banner.setStyleSheet(STALE_STYLE if note else FLAG_STYLE if flagged else OK_STYLE)
        cal = calibration_text(result)
        self.banner.setText((f"↻ {note}\n" if note else "") + flag_text(result) + (f"\n{cal}" if cal else ""))
        if result.get("kind") == "grayscale":
            self._draw_grayscale(result)
        else:
            self._draw_nphase(result)
        self._draw_tpc(result)

    def is_flagged(self) -> bool:
        return bool(self.result and self.result.get("flag", {}).get("flagged"))

    # -- drawing --------------------------------------------------------------------
    def _bars(self, plot: pg.PlotItem, labels: list[str], v2: list, v3: list, errs: list) -> None:
        x = np.arange(len(labels), dtype=float)
        h2 = np.array([np.nan if v is None else v for v in v2], dtype=float)
        h3 = np.array([np.nan if v is None else v for v in v3], dtype=float)
        ok2, ok3 = np.isfinite(h2), np.isfinite(h3)
        plot.addItem(pg.BarGraphItem(x=x[ok2] - 0.2, height=h2[ok2], width=0.38, brush=C2D, name="2D"))
        plot.addItem(pg.BarGraphItem(x=x[ok3] + 0.2, height=h3[ok3], width=0.38, brush=C3D, name="3D"))
        top = np.nanmax(np.concatenate([h2, h3])) if np.any(ok2 | ok3) else 1.0
        for i, e in enumerate(errs):
            if e is None:
                continue
            colour = "#a32a1e" if e > (self.result or {}).get("flag", {}).get("threshold", 0.05) else "#222"
            t = pg.TextItem(f"{100 * e:.1f}%", color=colour, anchor=(0.5, 1))
            t.setPos(x[i], float(np.nanmax([h2[i], h3[i]])) + 0.02 * top)
            plot.addItem(t)
        plot.getAxis("bottom").setTicks([list(zip(x.tolist(), labels))])
        plot.setYRange(0, top * 1.2, padding=0)
        plot.setXRange(-0.6, len(labels) - 0.4, padding=0)

    def _draw_nphase(self, r: dict) -> None:
        m2, m3, err = r["image2d"], r["volume3d"], r["errors"]
        n = r["n_phases"]
        self._bars(self.p_vf, [f"phase {k}" for k in range(n)], m2["volume_fraction"], m3["volume_fraction"],
                   err["volume_fraction"])
        raw = (r.get("calibration") or {}).get("raw_vf")
        if raw:  # the volume's fractions before they were matched to the image
            self.p_vf.addItem(pg.ScatterPlotItem(x=np.arange(min(n, len(raw))) + 0.2, y=raw[:n], symbol="t",
                                                 size=11, brush=(80, 80, 80), pen=None, name="3D before matching"))
        self.p_vf.setTitle("Volume fraction")
        self.p_vf.setLabel("bottom", "phase")
        self.p_vf.setLabel("left", "volume fraction")
        self.p_sa.setLabel("left", "share of neighbour pairs")
        labels = ["total"] + [f"axis {i}" for i in range(len(m3["surface_area_axes"]))]
        a2 = [m2["surface_area"]] + list(m2["surface_area_axes"]) + [None]
        a3 = [m3["surface_area"]] + list(m3["surface_area_axes"])
        self._bars(self.p_sa, labels, a2, a3, [err["surface_area"]] + [None] * (len(labels) - 1))
        self.p_sa.setTitle("Surface-area density")
        self._draw_tau(m3)

    def _draw_grayscale(self, r: dict) -> None:
        m2, m3, err = r["image2d"], r["volume3d"], r["errors"]
        self.p_vf.setTitle("Intensity histogram")
        self.p_vf.setLabel("bottom", "intensity")
        self.p_vf.setLabel("left", "density")
        self.p_sa.setLabel("left", "intensity")
        for m, c, name in ((m2, C2D, "2D"), (m3, C3D, "3D")):
            self.p_vf.plot(m["bin_edges"], m["histogram"], stepMode="center", pen=pg.mkPen(c, width=2), name=name)
        self.p_sa.setTitle("Mean and spread of intensity")
        self._bars(self.p_sa, ["mean", "std"], [m2["mean"], m2["std"]], [m3["mean"], m3["std"]],
                   [err.get("mean"), err.get("std")])
        self.p_tau.setTitle("Tortuosity: not defined for grayscale")

    def _draw_tpc(self, r: dict) -> None:
        m2, m3 = r["image2d"], r["volume3d"]
        for k, (a, b) in enumerate(zip(m2["two_point"], m3["two_point"])):
            c = PHASE_COLOURS[k % len(PHASE_COLOURS)]
            name = "intensity" if r.get("kind") == "grayscale" else f"phase {k}"
            if a is not None:
                self.p_tpc.plot(m2["r"][: len(a)], a, pen=pg.mkPen(c, width=2), name=f"{name} 2D")
            if b is not None:
                self.p_tpc.plot(m3["r"][: len(b)], b, pen=pg.mkPen(c, width=2, style=Qt.DashLine),
                                name=f"{name} 3D")

    def _draw_tau(self, m3: dict) -> None:
        tau = m3.get("tortuosity")
        if not tau or not tau.get("phases"):
            self.p_tau.setTitle("Tortuosity: not computed")
            return
        phases = tau["phases"]
        w = 0.8 / len(phases)
        top = 1.0
        for i, p in enumerate(phases):
            c = PHASE_COLOURS[p["phase"] % len(PHASE_COLOURS)]
            xs, hs = [], []
            for j, d in enumerate("xyz"):
                x = j - 0.4 + w * (i + 0.5)
                if p[d] is None:
                    t = pg.TextItem("no path", color="#a32a1e", anchor=(0.5, 1))
                    t.setPos(x, 0.3)
                    self.p_tau.addItem(t)
                else:
                    xs.append(x)
                    hs.append(p[d])
            spread = "" if p.get("spread") is None else f" (spread {100 * p['spread']:.1f}%)"
            item = pg.BarGraphItem(x=xs, height=hs, width=w * 0.9, brush=c)
            self.p_tau.addItem(item)
            self.p_tau.legend.addItem(item, f"phase {p['phase']}{spread}")
            top = max([top] + hs)
        self.p_tau.getAxis("bottom").setTicks([[(0, "x"), (1, "y"), (2, "z")]])
        self.p_tau.setYRange(0, top * 1.4, padding=0)
        self.p_tau.setTitle(f"Tortuosity factor ({tau['side']}³ cube, {tau['device']})")

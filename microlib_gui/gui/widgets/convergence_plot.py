"""Convergence of a training run (pyqtgraph): volume-fraction and surface-area errors against iteration.

The trainer's convergence check reports relative errors as fractions (``vf_error``, ``sa_error``);
they are drawn in % on a log axis (errors fall from tens of % to a few), with the tolerance as a
dashed line and the best iteration as a vertical line. The legend has a row of its own under the
axes (:func:`~microlib_gui.gui.widgets.loss_plot.curve_plot`).
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from .loss_plot import curve_plot

#: Scalars plotted (fractions), with their legend names and colours.
CURVES = (("vf_error", "volume fraction", (70, 150, 220)),
          ("sa_error", "surface area", (220, 130, 40)))
#: Errors below this (in %) are drawn at it: a log axis has no zero.
FLOOR_PCT = 0.01
#: Labelled values of the error axis (%).
TICKS_PCT = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class ConvergencePlot(QWidget):
    """Errors in % against iteration; :meth:`add_point` takes one progress event's scalars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot, self.plot_item, self.legend = curve_plot("convergencePlot", "error (%)", 2)
        self.plot_item.setLogMode(y=True)
        # plain numbers at 1-2-5 steps: the log axis's own labels (8·10¹ ...) crowd a small plot
        ticks = [(math.log10(v), f"{v:g}") for v in TICKS_PCT]
        self.plot_item.getAxis("left").setTicks([ticks, []])
        self.data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k, _, _ in CURVES}
        self.curves = {}
        for k, label, col in CURVES:
            self.curves[k] = self.plot_item.plot([], [], pen=pg.mkPen(col, width=2), symbol="o", symbolSize=5,
                                                 symbolBrush=col, symbolPen=None)
            self.legend.addItem(self.curves[k], label)
        tol_pen = pg.mkPen((90, 90, 90), width=1.5, style=Qt.PenStyle.DashLine)
        best_pen = pg.mkPen((60, 160, 60), width=1.5, style=Qt.PenStyle.DotLine)
        # InfiniteLine does not follow log mode: its position is given as log10 (see set_tolerance)
        self.tol_line = pg.InfiniteLine(angle=0, pen=tol_pen, movable=False)
        self.best_line = pg.InfiniteLine(angle=90, pen=best_pen, movable=False)
        for line in (self.tol_line, self.best_line):
            line.setVisible(False)
            self.plot_item.addItem(line, ignoreBounds=True)
        # legend samples for the two lines (items not drawn in the plot)
        self._tol_sample = pg.PlotDataItem(pen=tol_pen)
        self.legend.addItem(self._tol_sample, "target")
        self.legend.addItem(pg.PlotDataItem(pen=best_pen), "best iteration")
        self.tolerance: float | None = None
        self.best: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def clear(self) -> None:
        for k in self.data:
            self.data[k] = ([], [])
            self.curves[k].setData([], [])
        self.set_best(None)

    def set_tolerance(self, tol: float | None) -> None:
        """The target as a fraction (``0.03`` → a dashed line at 3 %); None hides it."""
        self.tolerance = tol
        if tol and tol > 0:
            self.tol_line.setPos(math.log10(max(tol * 100.0, FLOOR_PCT)))
        label = self.legend.getLabel(self._tol_sample)
        if label is not None:
            label.setText(f"target {tol * 100:g} %" if tol else "target")
            self.plot.fit_legend()
        self.tol_line.setVisible(bool(tol and tol > 0))

    def set_best(self, iteration: int | None) -> None:
        """Mark the best iteration (None: no mark)."""
        self.best = None if iteration is None else int(iteration)
        if self.best is not None:
            self.best_line.setPos(self.best)
        self.best_line.setVisible(self.best is not None)

    def add_point(self, iteration: int, scalars: dict[str, float]) -> bool:
        """Append the errors an event carries; False when it carries none (a plain loss report)."""
        added = False
        for k in self.data:
            v = scalars.get(k)
            if v is None or not math.isfinite(float(v)):
                continue
            xs, ys = self.data[k]
            if xs and iteration <= xs[-1]:  # a resumed run reports again from its checkpoint
                continue
            xs.append(float(iteration))
            ys.append(max(float(v) * 100.0, FLOOR_PCT))
            self.curves[k].setData(xs, ys)
            added = True
        return added

    def n_points(self, key: str = "vf_error") -> int:
        return len(self.data[key][0])

    def checks(self) -> list[tuple[int, dict[str, float]]]:
        """(iteration, {scalar: fraction}) of each check drawn, in order (what the events carried)."""
        merged: dict[int, dict[str, float]] = {}
        for k, (xs, ys) in self.data.items():
            for x, y in zip(xs, ys):
                merged.setdefault(int(x), {})[k] = y / 100.0
        return sorted(merged.items())

    def points(self, key: str = "vf_error") -> list[tuple[float, float]]:
        """(iteration, error in %) of one curve."""
        xs, ys = self.data[key]
        return list(zip(xs, ys))

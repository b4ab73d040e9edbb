"""Training loss curves (pyqtgraph): critic loss, Wasserstein estimate, gradient penalty.

The legend sits in its own row under the axes (:func:`curve_plot`), so it never covers a curve,
whatever the data's range; when its entries do not fit side by side it puts fewer in a row, so no
name is cut off.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: Space between legend entries side by side (px).
_LEGEND_SPACING = 12
#: Room a legend entry takes beside its label's text: the line sample (20 px) and the spacing.
_SAMPLE_AND_SPACING = 20 + _LEGEND_SPACING
#: Room kept right of the plot: the last tick label of the iteration axis is centred on the edge.
_RIGHT_MARGIN = 14

#: Scalars plotted, with their legend names and colours.
CURVES = (("critic_loss", "critic loss", (220, 90, 80)),
          ("wasserstein", "Wasserstein estimate", (70, 150, 220)),
          ("gradient_penalty", "gradient penalty", (120, 200, 120)))


def curve_plot(name: str, y_label: str, legend_columns: int) -> tuple[pg.GraphicsLayoutWidget, pg.PlotItem,
                                                                      pg.LegendItem]:
    """A white plot with its legend in a row of its own under the axes.

    Parameters
    ----------
    name : str
        Object name of the returned widget (tests find it by that).
    y_label : str
        Left axis label; the bottom axis is the iteration.
    legend_columns : int
        Legend entries per row.

    Returns
    -------
    (widget, plot, legend)
        Add curves to ``plot`` and name them with ``legend.addItem(curve, label)``.
    """
    widget = CurvePlotWidget(legend_columns)
    widget.setBackground("w")
    widget.setObjectName(name)
    plot = widget.addPlot(row=0, col=0)
    plot.setLabel("bottom", "iteration")
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.3)
    # no offset: the legend is laid out as a cell of the layout, not anchored over the view box
    legend = pg.LegendItem(colCount=legend_columns, labelTextColor=(40, 40, 40), frame=False,
                           horSpacing=_LEGEND_SPACING)
    widget.addItem(legend, row=1, col=0)
    widget.legend = legend
    widget.ci.layout.setRowStretchFactor(0, 1)
    widget.ci.layout.setRowStretchFactor(1, 0)
    widget.ci.layout.setContentsMargins(2, 2, _RIGHT_MARGIN, 2)
    return widget, plot, legend


class CurvePlotWidget(pg.GraphicsLayoutWidget):
    """A plot widget whose legend (:attr:`legend`) has as many entries per row as fit its width,
    up to ``legend_columns``; call :meth:`fit_legend` after changing a label."""

    def __init__(self, legend_columns: int):
        super().__init__()
        self.legend_columns = legend_columns
        self.legend: pg.LegendItem | None = None

    def resizeEvent(self, ev) -> None:
        self._fit_columns()  # first: the layout below must not keep a wider legend's minimum width
        super().resizeEvent(ev)

    def fit_legend(self) -> None:
        if self._fit_columns():
            super().resizeEvent(None)  # lays the plot and legend out again in the widget's width

    def _fit_columns(self) -> bool:
        """Set the legend's entries per row from the widget's width; True if that changed them."""
        legend = getattr(self, "legend", None)  # pyqtgraph resizes once inside __init__
        if legend is None or not legend.items:
            return False
        widest = max(label.item.boundingRect().width() for _, label in legend.items)
        fits = int((self.width() - _RIGHT_MARGIN) // (widest + _SAMPLE_AND_SPACING))
        cols = max(1, min(self.legend_columns, fits))
        if cols == legend.columnCount:
            return False
        legend.setColumnCount(cols)
        # its labels keep the widths of their old cells, and the legend sizes itself from them:
        # shrink it, lay the entries out at their own widths, then size it from those
        legend.setGeometry(0, 0, 0, 0)
        legend.layout.activate()
        legend.updateSize()
        legend.updateGeometry()
        return True


class LossPlot(QWidget):
    """Loss against iteration; :meth:`add_point` appends one progress event's scalars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot, self.plot_item, self.legend = curve_plot("lossPlot", "loss", 2)
        self.data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k, _, _ in CURVES}
        self.curves = {}
        for k, label, col in CURVES:
            self.curves[k] = self.plot_item.plot([], [], pen=pg.mkPen(col, width=2))
            self.legend.addItem(self.curves[k], label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def clear(self) -> None:
        for k in self.data:
            self.data[k] = ([], [])
            self.curves[k].setData([], [])

    def add_point(self, iteration: int, scalars: dict[str, float]) -> None:
        for k in self.data:
            if k in scalars:
                xs, ys = self.data[k]
                if xs and iteration <= xs[-1]:  # a resumed run restarts its count: keep x increasing
                    continue
                xs.append(float(iteration))
                ys.append(float(scalars[k]))
                self.curves[k].setData(xs, ys)

    def n_points(self, key: str = "critic_loss") -> int:
        return len(self.data[key][0])

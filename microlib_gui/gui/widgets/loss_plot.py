"""Training loss curves (pyqtgraph): critic loss, Wasserstein estimate, gradient penalty."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: Scalars plotted, with their legend names and colours.
CURVES = (("critic_loss", "critic loss", (220, 90, 80)),
          ("wasserstein", "Wasserstein estimate", (70, 150, 220)),
          ("gradient_penalty", "gradient penalty", (120, 200, 120)))


class LossPlot(QWidget):
    """Loss against iteration; :meth:`add_point` appends one progress event's scalars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("lossPlot")
        self.plot.addLegend(offset=(10, 10))
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.data: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k, _, _ in CURVES}
        self.curves = {k: self.plot.plot([], [], name=label, pen=pg.mkPen(col, width=2))
                       for k, label, col in CURVES}
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

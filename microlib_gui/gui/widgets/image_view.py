"""An image view for the preprocessing steps: pan/zoom, an RGBA overlay, a box, clicks, markers.

Built on pyqtgraph (``ImageItem`` in row-major order, so arrays are ``(H, W)`` /
``(H, W, 3)`` as everywhere in core). Overlays are arrays; no image file is
written for a preview. Also here: :class:`AnnotationHistory`, the undo/redo
buttons and shortcuts the annotation panels share.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

#: Colours of phases 0..7 in the segmentation overlay (RGB).
PHASE_COLOURS = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (188, 189, 34),
], np.uint8)
MASK_COLOUR = (255, 0, 0)


def labels_rgba(labels: np.ndarray, opacity: float) -> np.ndarray:
    """RGBA overlay colouring each phase (by a lookup table: fast for previews)."""
    lut = np.zeros((256, 4), np.uint8)
    lut[: len(PHASE_COLOURS), :3] = PHASE_COLOURS
    lut[: len(PHASE_COLOURS), 3] = int(round(255 * float(opacity)))
    return lut[labels]


def mask_rgba(mask: np.ndarray, colour=MASK_COLOUR, alpha: int = 170) -> np.ndarray:
    out = np.zeros(mask.shape + (4,), np.uint8)
    out[mask] = (*colour, alpha)
    return out


def to_display(data: np.ndarray) -> np.ndarray:
    """uint8 gray or RGB for display from a float [0, 1] / uint8 / uint16 array."""
    a = np.asarray(data)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a // 257).astype(np.uint8)
    return np.clip(np.rint(a.astype(np.float32) * 255), 0, 255).astype(np.uint8)


class ImageView(pg.GraphicsLayoutWidget):
    """Shows an image with an optional overlay, a draggable box and point markers.

    Signals
    -------
    clicked(int, int)
        A left click on the image, in image pixels (x, y).
    box_changed(int, int, int, int)
        The box was moved or resized (x0, y0, x1, y1), emitted when the drag ends.
    box_moving(int, int, int, int)
        The same while dragging (for live previews).
    """

    clicked = Signal(int, int)
    box_changed = Signal(int, int, int, int)
    box_moving = Signal(int, int, int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setBackground("#202020")
        self.view = self.addViewBox(lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.view.addItem(self.image_item)
        self.view.addItem(self.overlay_item)
        self.markers = pg.ScatterPlotItem(size=11, pen=pg.mkPen("c", width=2), brush=pg.mkBrush(0, 255, 255, 80),
                                          symbol="+")
        self.markers.setZValue(20)
        self.view.addItem(self.markers)
        self.roi: pg.RectROI | None = None
        self._shape: tuple[int, int] | None = None
        self.scene().sigMouseClicked.connect(self._on_click)

    # -- content -----------------------------------------------------------------
    def set_image(self, data: np.ndarray | None, keep_view: bool = False) -> None:
        if data is None:
            self.image_item.clear()
            self.overlay_item.clear()
            self._shape = None
            return
        disp = to_display(data)
        self.image_item.setImage(disp, autoLevels=False, levels=(0, 255))
        new_shape = disp.shape[:2]
        if not keep_view or new_shape != self._shape:
            self.view.autoRange(padding=0.02)
        self._shape = new_shape

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self.overlay_item.clear()
        else:
            self.overlay_item.setImage(rgba, autoLevels=False, levels=(0, 255))

    def overlay_array(self) -> np.ndarray | None:
        return self.overlay_item.image

    def set_markers(self, points) -> None:
        self.markers.setData([p[0] + 0.5 for p in points], [p[1] + 0.5 for p in points])

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self._shape

    # -- the box ---------------------------------------------------------------------
    def set_box(self, box, movable: bool = True) -> None:
        """Show a draggable rectangle (x0, y0, x1, y1); None removes it."""
        if box is None:
            if self.roi is not None:
                self.view.removeItem(self.roi)
                self.roi = None
            return
        x0, y0, x1, y1 = box
        if self.roi is None:
            self.roi = pg.RectROI([x0, y0], [x1 - x0, y1 - y0], pen=pg.mkPen("y", width=2),
                                  movable=movable, rotatable=False, removable=False)
            self.roi.addScaleHandle([0, 0], [1, 1])
            self.roi.addScaleHandle([1, 0], [0, 1])
            self.roi.addScaleHandle([0, 1], [1, 0])
            self.roi.setZValue(30)
            self.roi.sigRegionChangeFinished.connect(lambda *_: self.box_changed.emit(*self.box()))
            self.roi.sigRegionChanged.connect(lambda *_: self.box_moving.emit(*self.box()))
            self.view.addItem(self.roi)
        else:
            self.roi.blockSignals(True)
            self.roi.setPos([x0, y0])
            self.roi.setSize([x1 - x0, y1 - y0])
            self.roi.blockSignals(False)
            self.roi.update()

    def box(self) -> tuple[int, int, int, int] | None:
        """The box in whole pixels, clipped to the image."""
        if self.roi is None:
            return None
        pos, size = self.roi.pos(), self.roi.size()
        x0, y0 = int(round(pos.x())), int(round(pos.y()))
        x1, y1 = int(round(pos.x() + size.x())), int(round(pos.y() + size.y()))
        if self._shape is not None:
            h, w = self._shape
            x0, x1 = max(0, min(x0, w - 1)), max(1, min(x1, w))
            y0, y1 = max(0, min(y0, h - 1)), max(1, min(y1, h))
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    # -- clicks ------------------------------------------------------------------------
    def image_point(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """Image pixel under a scene position, or None outside the image."""
        if self._shape is None:
            return None
        p = self.view.mapSceneToView(scene_pos)
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        h, w = self._shape
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def scene_point(self, x: float, y: float) -> QPointF:
        """Scene position of the centre of image pixel (x, y) (for tests and tools)."""
        return self.view.mapViewToScene(QPointF(x + 0.5, y + 0.5))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        pt = self.image_point(ev.scenePos())
        if pt is not None:
            self.clicked.emit(*pt)


class AnnotationHistory(QObject):
    """Undo / Redo buttons plus Ctrl+Z / Ctrl+Shift+Z for the entry's annotation edits.

    Moves go through :mod:`microlib_gui.core.workflow.history`, which re-derives
    the files of the annotations moved to in the same transaction; the live
    entry model's event then makes every panel re-read.
    """

    changed = Signal()

    def __init__(self, panel, reload=None):
        super().__init__(panel)
        self.panel = panel
        self.undo_btn = QPushButton("↶ Undo")
        self.redo_btn = QPushButton("↷ Redo")
        self.undo_btn.setToolTip("Undo the last annotation change (Ctrl+Z)")
        self.redo_btn.setToolTip("Redo (Ctrl+Shift+Z)")
        self.undo_btn.clicked.connect(self.undo)
        self.redo_btn.clicked.connect(self.redo)
        seen: set[str] = set()
        for seq, slot in ((QKeySequence.StandardKey.Undo, self.undo), ("Ctrl+Shift+Z", self.redo),
                          (QKeySequence.StandardKey.Redo, self.redo)):
            key = QKeySequence(seq)
            if key.toString() in seen:
                continue  # Redo is Ctrl+Shift+Z on X11: two shortcuts of one key are ambiguous and neither fires
            seen.add(key.toString())
            sc = QShortcut(key, panel)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)

    def buttons(self) -> QWidget:
        w = QWidget()
        lay = QHBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.undo_btn)
        lay.addWidget(self.redo_btn)
        lay.addStretch(1)
        return w

    def refresh(self) -> None:
        """Enable the buttons that have something to do (called from the panel's load_entry)."""
        from ...core.workflow import history

        eid = self.panel.entry_id
        for btn, move in ((self.undo_btn, -1), (self.redo_btn, +1)):
            btn.setEnabled(eid is not None and history.can_move(self.panel.library, eid, move))

    def undo(self) -> None:
        self._move(-1)

    def redo(self) -> None:
        self._move(+1)

    def _move(self, move: int) -> None:
        from ...core.errors import MicrolibError
        from ...core.workflow import history

        eid = self.panel.entry_id
        if eid is None:
            return
        try:
            done = history.move(self.panel.library, eid, move)
        except MicrolibError as exc:
            self.panel.show_error(str(exc))
            return
        if done is not None:
            self.panel.changed()
            self.changed.emit()


def lay_out_view_and_side(panel: QWidget, view: QWidget, side_items: list, side_stretch: int = 1) -> None:
    """The annotation steps' layout: the image view on the left, a column of controls on the right.

    ``side_items`` are widgets, layouts or ``None`` (a stretch), top to bottom; a
    ``(widget, stretch)`` pair gives that widget a stretch factor.
    """
    from PySide6.QtWidgets import QLayout, QSplitter, QVBoxLayout

    side = QWidget()
    column = QVBoxLayout(side)
    for item in side_items:
        if item is None:
            column.addStretch(1)
        elif isinstance(item, tuple):
            column.addWidget(*item)
        elif isinstance(item, QLayout):
            column.addLayout(item)
        else:
            column.addWidget(item)
    split = QSplitter()
    split.addWidget(view)
    split.addWidget(side)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, side_stretch)
    QVBoxLayout(panel).addWidget(split)

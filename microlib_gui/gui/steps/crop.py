"""The Crop step: drag a rectangle (or type x/y/w/h), rotate, reset.

The rectangle is in pixels of the rotated image (rotation first, then crop:
see :mod:`microlib_gui.core.preprocess`). Each change is saved at once as an
annotation edit (undoable) and makes the later steps stale.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox, QFormLayout, QLabel, QPushButton, QSlider, QSpinBox,
)

from ...core import preprocess as pp
from ...core.errors import MicrolibError
from ..widgets.image_view import AnnotationHistory, ImageView, lay_out_view_and_side
from .base import StepPanel


class Panel(StepPanel):
    step = "crop"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.original: np.ndarray | None = None
        self.rotated: np.ndarray | None = None
        self._loading = False

        self.view = ImageView()
        self.view.setObjectName("cropView")
        self.spins = {}
        form = QFormLayout()
        for key in ("x", "y", "w", "h"):
            sp = QSpinBox()
            sp.setRange(0 if key in "xy" else 1, 100_000)
            sp.editingFinished.connect(self._on_spins)
            self.spins[key] = sp
            form.addRow(key, sp)
        self.rot_slider = QSlider(Qt.Orientation.Horizontal)
        self.rot_slider.setRange(-450, 450)  # tenths of a degree
        self.rot_spin = QDoubleSpinBox()
        self.rot_spin.setRange(-45, 45)
        self.rot_spin.setDecimals(1)
        self.rot_spin.setSuffix("°")
        form.addRow("Rotation", self.rot_slider)
        form.addRow("", self.rot_spin)
        self.reset_btn = QPushButton("Reset (whole image, no rotation)")
        self.reset_btn.setShortcut("R")
        form.addRow(self.reset_btn)
        self.size_label = QLabel("")
        form.addRow("Result", self.size_label)
        self.history = AnnotationHistory(self, self._reload)
        lay_out_view_and_side(self, self.view, [form, None, self.history.buttons()])

        self.view.box_changed.connect(lambda *_: self.commit())
        self.view.box_moving.connect(lambda *_: self._show_box_values())
        self.rot_slider.valueChanged.connect(lambda v: self.rot_spin.setValue(v / 10))
        self.rot_slider.sliderReleased.connect(self._on_rotation)
        self.rot_spin.editingFinished.connect(self._on_rotation)
        self.reset_btn.clicked.connect(self.reset)

    def load_entry(self, entry_id):
        self.original = self.rotated = None
        self.view.set_image(None)
        self.view.set_box(None)
        if entry_id is None:
            return
        self.original = pp.entry_image(self.library, entry_id).data
        self._reload()

    def _reload(self) -> None:
        if self.entry_id is None or self.original is None:
            return
        ann = self.library.get_annotations(self.entry_id)
        rot = float(ann.get("rotation") or 0)
        self._loading = True
        try:
            self.rot_spin.setValue(rot)
            self.rot_slider.setValue(int(round(rot * 10)))
            self.rotated = pp.rotate_image(self.original, rot) if rot else self.original
            self.view.set_image(self.rotated, keep_view=True)
            h, w = self.rotated.shape[:2]
            self.view.set_box(tuple(ann["crop"]) if ann.get("crop") else (0, 0, w, h))
            self._show_box_values()
        finally:
            self._loading = False

    def _show_box_values(self) -> None:
        box = self.view.box()
        if box is None:
            return
        x0, y0, x1, y1 = box
        for key, v in zip("xywh", (x0, y0, x1 - x0, y1 - y0)):
            self.spins[key].blockSignals(True)
            self.spins[key].setValue(v)
            self.spins[key].blockSignals(False)
        self.size_label.setText(f"{x1 - x0} × {y1 - y0} px")

    def _on_spins(self) -> None:
        if self.rotated is None:
            return
        x, y, w, h = (self.spins[k].value() for k in "xywh")
        H, W = self.rotated.shape[:2]
        x, y = min(x, W - 1), min(y, H - 1)
        self.view.set_box((x, y, min(W, x + w), min(H, y + h)))
        self.commit()

    def _on_rotation(self) -> None:
        if self._loading or self.original is None:
            return
        self.rot_slider.blockSignals(True)
        self.rot_slider.setValue(int(round(self.rot_spin.value() * 10)))
        self.rot_slider.blockSignals(False)
        self.rotated = pp.rotate_image(self.original, self.rot_spin.value())
        self.view.set_image(self.rotated, keep_view=True)
        self.commit()

    def reset(self) -> None:
        if self.original is None:
            return
        self._loading = True
        self.rot_spin.setValue(0)
        self.rot_slider.setValue(0)
        self._loading = False
        self.rotated = self.original
        h, w = self.original.shape[:2]
        self.view.set_image(self.rotated, keep_view=True)
        self.view.set_box((0, 0, w, h))
        self.commit()

    def commit(self) -> None:
        eid = self.entry_id
        if eid is None or self._loading or self.rotated is None:
            return
        self._show_box_values()
        box = self.view.box()
        h, w = self.rotated.shape[:2]
        full = box == (0, 0, w, h)
        try:
            self.library.set_annotations(eid, {"crop": None if full else list(box),
                                               "rotation": self.rot_spin.value() or None})
            self.library.set_step_status(eid, "crop", "done")
            self.library.mark_later_steps_stale(eid, "crop")
        except MicrolibError as exc:
            self.show_error(str(exc))
            return
        self.ctx.notify_updated(eid)

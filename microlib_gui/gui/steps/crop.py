"""The Crop step: drag a rectangle (or type x/y/w/h), rotate, reset.

The rectangle is in pixels of the rotated image (rotation first, then crop:
see :mod:`microlib_gui.core.preprocess`). Each change is saved at once through
:mod:`microlib_gui.core.workflow.crop` (undoable); the step table decides what
becomes stale.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox, QFormLayout, QLabel, QPushButton, QSlider, QSpinBox,
)

from ...core.workflow import crop as wf
from ..widgets.image_view import AnnotationHistory, ImageView, lay_out_view_and_side
from .base import StepPanel


class Panel(StepPanel):
    step = "crop"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self._inputs: wf.CropInputs | None = None  # read afresh on every entry event
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
        self.history = AnnotationHistory(self)
        lay_out_view_and_side(self, self.view, [form, None, self.history.buttons()])

        self.view.box_changed.connect(lambda *_: self.commit())
        self.view.box_moving.connect(lambda *_: self._show_box_values())
        self.rot_slider.valueChanged.connect(self._on_slider)
        self.rot_slider.sliderReleased.connect(self.commit)
        self.rot_spin.editingFinished.connect(self._on_rotation_typed)
        self.reset_btn.clicked.connect(self.reset)

    # -- showing the entry ---------------------------------------------------------------
    def load_entry(self, entry_id):
        self._inputs = None
        self.history.refresh()
        if entry_id is None:
            self.view.set_image(None)
            self.view.set_box(None)
            self.size_label.setText("")
            return
        self._inputs = inp = wf.inputs(self.library, entry_id)
        self._loading = True
        try:
            self.rot_spin.setValue(inp.rotation)
            self.rot_slider.setValue(int(round(inp.rotation * 10)))
            self.view.set_image(wf.rotated(inp), keep_view=True)
            h, w = inp.original.shape[:2]
            self.view.set_box(inp.crop or (0, 0, w, h))
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

    # -- edits -------------------------------------------------------------------------------
    def _on_spins(self) -> None:
        if self._inputs is None:
            return
        x, y, w, h = (self.spins[k].value() for k in "xywh")
        H, W = self._inputs.original.shape[:2]
        x, y = min(x, W - 1), min(y, H - 1)
        self.view.set_box((x, y, min(W, x + w), min(H, y + h)))
        self.commit()

    def _on_slider(self, v: int) -> None:
        """While dragging: preview the rotation (saved on release)."""
        self.rot_spin.blockSignals(True)
        self.rot_spin.setValue(v / 10)
        self.rot_spin.blockSignals(False)
        if not self._loading and self._inputs is not None:
            self.view.set_image(wf.rotated(self._inputs, v / 10), keep_view=True)
            if not self.rot_slider.isSliderDown():  # keyboard or click on the track: save now
                self.commit()

    def _on_rotation_typed(self) -> None:
        if self._loading:
            return
        self.rot_slider.setValue(int(round(self.rot_spin.value() * 10)))
        self.commit()

    def reset(self) -> None:
        if self._inputs is None:
            return
        self._save(None, 0.0)

    def commit(self) -> None:
        if self._loading or self._inputs is None or self.view.box() is None:
            return
        self._save(self.view.box(), self.rot_spin.value())

    def _save(self, box, rotation: float) -> None:
        eid = self.entry_id
        if eid is None:
            return
        self.save(wf.save, self.library, eid, box, rotation, shape=self._inputs.original.shape)

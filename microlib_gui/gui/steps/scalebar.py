"""The Scale bar step: pick the bar colour, tolerance, box, live mask; bar length and µm per pixel.

Click on the bar to take its colour (mode "Pick colour"), drag the box, move
the tolerance slider: the red mask follows live. "Auto-detect" proposes box,
colour, bar length and, when the label is readable, its value. In mode
"Bar ends" two clicks measure the bar; type its length in µm and the voxel size
follows. Every change is saved at once (undoable); ``_mask.png`` is written in
the cropped frame for the Inpaint step.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QRadioButton, QSlider,
)

from ...core import preprocess as pp
from ...core import scalebar as sb
from ...core.errors import MicrolibError
from ...core.jobs import DONE, Finished, ThreadJob
from ..widgets.image_view import AnnotationHistory, ImageView, lay_out_view_and_side, mask_rgba
from .base import StepPanel


class Panel(StepPanel):
    step = "scalebar"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.image: np.ndarray | None = None  # the original micrograph data
        self.colour: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.ends: list[tuple[int, int]] = []
        self._loading = False
        self._auto_job: ThreadJob | None = None
        self._auto_timer = QTimer(self)
        self._auto_timer.setInterval(50)
        self._auto_timer.timeout.connect(self._poll_auto)

        self.view = ImageView()
        self.view.setObjectName("scalebarView")
        self.mode_pick = QRadioButton("Pick colour (click the bar)")
        self.mode_ends = QRadioButton("Bar ends (click both ends)")
        self.mode_pick.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.mode_pick)
        group.addButton(self.mode_ends)
        self.colour_label = QLabel("—")
        self.tolerance = QSlider(Qt.Orientation.Horizontal)
        self.tolerance.setObjectName("toleranceSlider")
        self.tolerance.setRange(0, 80)
        self.tolerance.setValue(int(sb.DEFAULT_TOLERANCE))
        self.tol_label = QLabel(str(self.tolerance.value()))
        self.box_btn = QPushButton("Box around bar")
        self.box_btn.setToolTip("Show a box to drag around the bar and its label (B)")
        self.box_btn.setShortcut("B")
        self.auto_btn = QPushButton("Auto-detect")
        self.auto_btn.setToolTip("Find the bar, its colour, length and label (D)")
        self.auto_btn.setShortcut("D")
        self.count_label = QLabel("0")
        self.count_label.setObjectName("maskCount")
        self.length_label = QLabel("—")
        self.um = QDoubleSpinBox()
        self.um.setRange(0, 1e6)
        self.um.setDecimals(3)
        self.um.setSuffix(" µm")
        self.um.setSpecialValueText("(type the bar's length)")
        self.vox_label = QLabel("—")
        self.vox_label.setObjectName("voxSize")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.history = AnnotationHistory(self, self._reload)

        form = QFormLayout()
        form.addRow(self.mode_pick)
        form.addRow(self.mode_ends)
        form.addRow("Bar colour", self.colour_label)
        tol_row = QHBoxLayout()
        tol_row.addWidget(self.tolerance, 1)
        tol_row.addWidget(self.tol_label)
        form.addRow("Tolerance", tol_row)
        btns = QHBoxLayout()
        btns.addWidget(self.box_btn)
        btns.addWidget(self.auto_btn)
        form.addRow(btns)
        form.addRow("Mask pixels", self.count_label)
        form.addRow("Bar length", self.length_label)
        form.addRow("Bar value", self.um)
        form.addRow("µm per pixel", self.vox_label)
        lay_out_view_and_side(self, self.view, [form, None, self.history.buttons(), self.status])

        self.view.clicked.connect(self._on_click)
        self.view.box_moving.connect(lambda *_: self._update_mask())
        self.view.box_changed.connect(lambda *_: self.commit())
        self.tolerance.valueChanged.connect(self._on_tolerance)
        self.tolerance.sliderReleased.connect(self.commit)
        self.box_btn.clicked.connect(self.add_box)
        self.auto_btn.clicked.connect(self.run_auto)
        self.um.editingFinished.connect(self.commit)
        self.um.valueChanged.connect(lambda _v: self._update_vox())

    # -- loading -------------------------------------------------------------------------------
    def load_entry(self, entry_id):
        self.image = None
        self.view.set_image(None)
        self.view.set_box(None)
        if entry_id is None:
            self.status.setText("No entry selected.")
            return
        self.image = pp.entry_image(self.library, entry_id).data
        self.view.set_image(self.image)
        self._reload()

    def _reload(self) -> None:
        if self.entry_id is None or self.image is None:
            return
        ann = self.library.get_annotations(self.entry_id)
        self._loading = True
        try:
            self.colour = None
            if ann.get("bar_colour") is not None:
                self.colour = np.asarray(ann["bar_colour"], np.float32)
            elif ann.get("barcol"):
                self.colour = np.asarray([sb.tolerance_from_barcol(ann["barcol"])[0]], np.float32)
            tol = ann.get("bar_tolerance")
            if tol is None and ann.get("barcol"):
                tol = sb.tolerance_from_barcol(ann["barcol"])[1]
            self.tolerance.setValue(int(round(tol if tol is not None else sb.DEFAULT_TOLERANCE)))
            box = ann.get("barbox")
            self.view.set_box(None if not box else (box[0][0], box[0][1], box[1][0], box[1][1]))
            self.ends = [tuple(p) for p in ann.get("bar_ends") or []]
            self.um.setValue(float(ann.get("bar_value_um") or 0))
        finally:
            self._loading = False
        self._update_mask()
        self._update_vox()

    # -- interaction -------------------------------------------------------------------------------
    def _on_click(self, x: int, y: int) -> None:
        if self.image is None:
            return
        if self.mode_pick.isChecked():
            try:
                self.colour = sb.pick_colour(self.image, x, y)
            except MicrolibError as exc:
                self.show_error(str(exc))
                return
            self._pick = (x, y)
            self._update_mask()
            self.commit()
        else:
            self.ends = (self.ends + [(x, y)])[-2:] if len(self.ends) < 2 else [(x, y)]
            self._update_vox()
            if len(self.ends) == 2:
                self.commit()

    def _on_tolerance(self, v: int) -> None:
        self.tol_label.setText(str(v))
        self._update_mask()
        if not self.tolerance.isSliderDown():  # keyboard or programmatic change: save now
            self.commit()

    def add_box(self) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        self.view.set_box((int(w * 0.6), int(h * 0.85), w - 4, h - 4))
        self._update_mask()
        self.commit()

    def run_auto(self) -> None:
        """Detect the bar in the background (label reading may take a second); results land in
        :meth:`_auto_done`."""
        if self.image is None or (self._auto_job is not None and not self._auto_job.done):
            return
        image, entry = self.image, self.entry_id
        self._auto_job = ThreadJob(lambda ctx: (entry, sb.detect_scale_bar(image))).start()
        self.auto_btn.setEnabled(False)
        self.status.setText("Looking for the scale bar and reading its label…")
        self._auto_timer.start()

    def _poll_auto(self) -> None:
        job = self._auto_job
        if job is None:
            self._auto_timer.stop()
            return
        for ev in job.poll():
            if not isinstance(ev, Finished):
                continue
            self._auto_timer.stop()
            self._auto_job = None
            self.auto_btn.setEnabled(True)
            if ev.state == DONE:
                entry, det = ev.result
                if entry == self.entry_id and self.image is not None:  # still the same entry
                    self._auto_done(det)
            else:
                self.status.setText("")
                self.show_error(ev.error or "scale-bar detection failed")

    def auto_running(self) -> bool:
        return self._auto_job is not None

    def _auto_done(self, det) -> None:
        self._loading = True
        try:
            self.colour = np.asarray(det.colour, np.float32)
            self.view.set_box(det.box)
            self.ends = [tuple(det.bar_ends[0]), tuple(det.bar_ends[1])]
            self._auto_length = det.bar_length_px
            if det.value_um:
                self.um.setValue(det.value_um)
        finally:
            self._loading = False
        self._update_mask()
        self._update_vox()
        self.commit()
        read = (f"label read as “{det.label_text}”" + (" by OCR: check it" if det.label_reader == "ocr" else "")
                if det.label_text else "label not read: type its value")
        self.status.setText(f"Found a {det.bar_length_px:.1f} px bar ({det.corner} corner); {read}.")

    # -- previews ------------------------------------------------------------------------------------
    def bar_length(self) -> float | None:
        if len(self.ends) != 2:
            return None
        auto = getattr(self, "_auto_length", None)
        measured = sb.length_between(*self.ends)
        # The detected length counts partly covered end pixels; keep it while the ends are the detected ones.
        return auto if auto and abs(auto - measured) < 1.5 else measured

    def _update_mask(self) -> None:
        if self.image is None or self.colour is None:
            self.mask = None
            self.view.set_overlay(None)
            self.count_label.setText("0")
            self.colour_label.setText("—")
            return
        self.colour_label.setText(", ".join(f"{c:.0f}" for c in self.colour))
        try:
            self.mask = sb.bar_mask(self.image, self.colour, float(self.tolerance.value()), self.view.box())
        except MicrolibError as exc:
            self.status.setText(str(exc))
            return
        self.view.set_overlay(mask_rgba(self.mask))
        self.count_label.setText(str(int(self.mask.sum())))

    def _update_vox(self) -> None:
        self.view.set_markers(self.ends)
        length = self.bar_length()
        self.length_label.setText("—" if length is None else f"{length:.1f} px")
        if length and self.um.value() > 0:
            self.vox_label.setText(f"{sb.voxel_size(length, self.um.value()):.5g}")
        else:
            self.vox_label.setText("—")

    # -- saving --------------------------------------------------------------------------------------
    def commit(self) -> None:
        eid = self.entry_id
        if eid is None or self._loading or self.image is None:
            return
        tol = float(self.tolerance.value())
        changes: dict = {"bar_tolerance": tol}
        box = self.view.box()
        if box is not None:
            changes["barbox"] = [[box[0], box[1]], [box[2], box[3]]]
        if self.colour is not None:
            grey = float(np.mean(self.colour))
            changes["bar_colour"] = [float(c) for c in self.colour]
            changes["barcol"] = sb.microlib_barcol(grey, tol)
        if getattr(self, "_pick", None):
            changes["bar_pick"] = list(self._pick)
        length = self.bar_length()
        if length:
            changes["bar_ends"] = [list(p) for p in self.ends]
            changes["bar_length_px"] = round(length, 3)
        if self.um.value() > 0:
            changes["bar_value_um"] = self.um.value()
            if length:
                changes["vox_size"] = sb.voxel_size(length, self.um.value())
        try:
            ann = self.library.set_annotations(eid, changes)
            if self.mask is not None and self.mask.any():
                pp.write_mask(self.library, eid, self.mask, ann, {"colour": changes.get("bar_colour"),
                                                                  "tolerance": tol, "box": box})
            if ann.get("vox_size") and self.mask is not None:
                self.library.set_step_status(eid, "scalebar", "done")
            self.library.mark_later_steps_stale(eid, "scalebar")
        except MicrolibError as exc:
            self.show_error(str(exc))
            return
        self.ctx.notify_updated(eid)

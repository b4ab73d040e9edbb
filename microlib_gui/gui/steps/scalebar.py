"""The Scale bar step: pick the bar colour, tolerance, box, live mask; bar length and µm per pixel.

Click on the bar to take its colour (mode "Pick colour"), drag the box, move
the tolerance slider: the red mask follows live. "Auto-detect" proposes box,
colour, bar length and, when the label is readable, its value. In mode
"Bar ends" two clicks measure the bar; type its length in µm and the voxel size
follows. Every change is saved at once through
:mod:`microlib_gui.core.workflow.scalebar` (annotations and ``_mask.png`` in the
cropped frame, one transaction, undoable).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
    QRadioButton, QSlider,
)

from ...core import scalebar as sb
from ...core.errors import MicrolibError
from ...core.jobs import DONE
from ...core.workflow import scalebar as wf
from ..widgets.image_view import AnnotationHistory, ImageView, lay_out_view_and_side, mask_rgba
from .base import StepPanel


def detect_job(ctx, image: np.ndarray):
    """Job function: find the bar and read its label (may take a second with OCR)."""
    return sb.detect_scale_bar(image)


class Panel(StepPanel):
    step = "scalebar"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self._inputs: wf.ScaleBarInputs | None = None  # read afresh on every entry event
        self.mask: np.ndarray | None = None
        self._clicked_end: tuple[int, int] | None = None  # first click of a two-click measurement
        self._auto_job = None
        self._loading = False

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
        # Micrographs with no burnt-in bar: the scale typed in (microscope, record) or left unknown.
        self.no_bar = QCheckBox("This micrograph has no scale bar (nothing to mask)")
        self.no_bar.setObjectName("noBar")
        self.typed_vox = QDoubleSpinBox()
        self.typed_vox.setObjectName("typedVox")
        self.typed_vox.setRange(0, 1e6)
        self.typed_vox.setDecimals(5)
        self.typed_vox.setSuffix(" µm/px")
        self.typed_vox.setSpecialValueText("(type it)")
        self.typed_vox.setToolTip("The voxel size from the microscope or the micrograph's record")
        self.scale_unknown = QCheckBox("Scale unknown (exports say so)")
        self.scale_unknown.setObjectName("scaleUnknown")
        no_bar_box = QGroupBox("No bar to measure?")
        nb = QFormLayout(no_bar_box)
        nb.addRow(self.no_bar)
        nb.addRow("µm per pixel", self.typed_vox)
        nb.addRow(self.scale_unknown)
        self.status = QLabel("")
        self.status.setObjectName("scalebarStatus")
        self.status.setMinimumHeight(3 * self.status.fontMetrics().height() + 6)
        self.status.setWordWrap(True)
        self.history = AnnotationHistory(self)

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
        lay_out_view_and_side(self, self.view, [form, no_bar_box, None, self.history.buttons(), self.status])

        self.view.clicked.connect(self._on_click)
        self.view.box_moving.connect(lambda *_: self._update_mask())
        self.view.box_changed.connect(lambda *_: self._save_controls())
        self.tolerance.valueChanged.connect(self._on_tolerance)
        self.tolerance.sliderReleased.connect(self._save_controls)
        self.box_btn.clicked.connect(self.add_box)
        self.auto_btn.clicked.connect(self.run_auto)
        self.um.editingFinished.connect(self._on_um)
        self.no_bar.toggled.connect(self._on_no_bar)
        self.typed_vox.editingFinished.connect(self._on_typed_vox)
        self.scale_unknown.toggled.connect(self._on_scale_unknown)
        self.um.valueChanged.connect(lambda _v: self._update_vox())

    @property
    def ann(self) -> dict:
        return {} if self._inputs is None else self._inputs.annotations

    @property
    def image(self) -> np.ndarray | None:
        return None if self._inputs is None else self._inputs.original

    # -- showing the entry -------------------------------------------------------------------------
    def load_entry(self, entry_id):
        self._inputs = None
        self._clicked_end = None
        self.history.refresh()
        self.auto_btn.setEnabled(entry_id is not None and self._auto_job is None)
        if entry_id is None:
            self.view.set_image(None)
            self.view.set_box(None)
            self.view.set_overlay(None)
            self.status.setText("No entry selected.")
            return
        self._inputs = wf.inputs(self.library, entry_id)
        ann = self.ann
        self.view.set_image(self.image, keep_view=True)
        self._loading = True
        try:
            self.tolerance.setValue(int(round(wf.tolerance(ann))))
            self.tol_label.setText(str(self.tolerance.value()))
            self.view.set_box(wf.box(ann))
            self.um.setValue(float(ann.get("bar_value_um") or 0))
            self.no_bar.setChecked(wf.has_no_bar(ann))
            typed = ann.get("scale_source") == "typed"
            self.typed_vox.setValue(float(ann.get("vox_size") or 0) if typed else 0.0)
            self.scale_unknown.setChecked(ann.get("scale_source") == "unknown")
            self.typed_vox.setEnabled(not self.scale_unknown.isChecked())
        finally:
            self._loading = False
        self._update_mask()
        self._update_vox()
        masked = wf.has_no_bar(ann) or (self.mask is not None and self.mask.any())
        bar_text = "no scale bar in this micrograph" if wf.has_no_bar(ann) else "bar masked" if masked else \
            "no bar masked yet"
        if ann.get("vox_size"):
            how = " (typed)" if ann.get("scale_source") == "typed" else ""
            self.status.setText(f"Saved: {ann['vox_size']:.5g} µm per pixel{how}; {bar_text}.")
        elif ann.get("scale_source") == "unknown":
            self.status.setText(f"Saved: scale unknown; {bar_text}.")
        elif wf.bar_colour(ann) is None:
            self.status.setText("Click the bar (or Auto-detect) to mask it.")
        else:
            self.status.setText("Measure the bar (Bar ends) and type its length to get the voxel size.")

    # -- interaction ---------------------------------------------------------------------------------
    def _on_click(self, x: int, y: int) -> None:
        if self.image is None:
            return
        if self.mode_pick.isChecked():
            try:
                colour = sb.pick_colour(self.image, x, y)
            except MicrolibError as exc:
                self.show_error(str(exc))
                return
            self._save(wf.changes_for(colour=colour, tol=self.tolerance.value(), pick=(x, y),
                                      bar_box=self.view.box()))
        elif self._clicked_end is None:
            self._clicked_end = (x, y)
            self.view.set_markers([(x, y)])
        else:
            ends = [self._clicked_end, (x, y)]
            self._clicked_end = None
            try:
                length = sb.length_between(*ends)
            except MicrolibError as exc:
                self.show_error(str(exc))
                self._update_vox()
                return
            self._save(wf.changes_for(ends=ends, length_px=length, value_um=self.um.value() or None))

    def _on_tolerance(self, v: int) -> None:
        self.tol_label.setText(str(v))
        if self._loading:
            return
        self._update_mask()
        if not self.tolerance.isSliderDown():  # keyboard or programmatic change: save now
            self._save_controls()

    def _on_um(self) -> None:
        if self._loading or self._inputs is None:
            return
        self._save(wf.changes_for(length_px=self.ann.get("bar_length_px"), value_um=self.um.value() or None))

    def _on_no_bar(self, on: bool) -> None:
        if not self._loading and self._inputs is not None:
            self._save(wf.no_bar_changes(on))

    def _on_typed_vox(self) -> None:
        if self._loading or self._inputs is None or not self.typed_vox.value() > 0:
            return
        self._save(wf.scale_changes(um_per_px=self.typed_vox.value()))

    def _on_scale_unknown(self, on: bool) -> None:
        if self._loading or self._inputs is None:
            return
        self._save(wf.scale_changes(unknown=True) if on else {"scale_source": None})

    def add_box(self) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        self.view.set_box((int(w * 0.6), int(h * 0.85), w - 4, h - 4))
        self._save_controls()

    def _save_controls(self) -> None:
        """Save the tolerance and the box as they are now (with the saved colour)."""
        if self._loading or self._inputs is None:
            return
        colour = wf.bar_colour(self.ann)
        self._save(wf.changes_for(colour=colour, tol=self.tolerance.value(), bar_box=self.view.box()))

    def _save(self, changes: dict) -> None:
        eid = self.entry_id
        if eid is None or self._inputs is None:
            return
        self.save(wf.save, self.library, eid, changes, original=self.image)

    # -- auto-detection -------------------------------------------------------------------------
    def run_auto(self) -> None:
        """Detect the bar in the background; the result is saved when it lands (same entry only)."""
        if self.image is None or self._auto_job is not None:
            return
        self._auto_job = self.jobs.start(detect_job, {"image": self.image}, tag=(self.library.root, self.entry_id))
        self._auto_job.finished.connect(self._auto_finished)
        self.auto_btn.setEnabled(False)
        self.status.setText("Looking for the scale bar and reading its label…")

    def auto_running(self) -> bool:
        return self._auto_job is not None

    def _auto_finished(self, ev) -> None:
        tag, self._auto_job = self._auto_job.tag, None
        self.auto_btn.setEnabled(self.entry_id is not None)
        if ev.state != DONE:
            self.status.setText("")
            self.show_error(ev.error or "scale-bar detection failed")
            return
        if tag != (self.library.root, self.entry_id):
            return  # another entry is shown now
        det = ev.result
        self._save(wf.changes_for(colour=det.colour, tol=self.tolerance.value(), bar_box=det.box,
                                  ends=det.bar_ends, length_px=det.bar_length_px,
                                  value_um=det.value_um or self.um.value() or None))
        read = (f"label read as “{det.label_text}”"
                + ("" if det.label_sure else f": check it ({det.extra.get('label_check') or 'unsure'})")
                if det.label_text else "label not read: type its value")
        self.status.setText(f"Found a {det.bar_length_px:.1f} px bar ({det.corner} corner); {read}.")

    # -- previews ------------------------------------------------------------------------------------
    def bar_length(self) -> float | None:
        v = self.ann.get("bar_length_px")
        return float(v) if v else None

    def _update_mask(self) -> None:
        colour = wf.bar_colour(self.ann)
        if self.image is None or colour is None:
            self.mask = None
            self.view.set_overlay(None)
            self.count_label.setText("0")
            self.colour_label.setText("—")
            return
        self.colour_label.setText(", ".join(f"{c:.0f}" for c in colour))
        try:
            self.mask = sb.bar_mask(self.image, colour, float(self.tolerance.value()), self.view.box())
        except MicrolibError as exc:
            self.status.setText(str(exc))
            return
        self.view.set_overlay(mask_rgba(self.mask))
        self.count_label.setText(str(int(self.mask.sum())))

    def _update_vox(self) -> None:
        ends = self.ann.get("bar_ends") or []
        self.view.set_markers([tuple(p) for p in ends])
        length = self.bar_length()
        self.length_label.setText("—" if length is None else f"{length:.1f} px")
        if length and self.um.value() > 0:
            self.vox_label.setText(f"{sb.voxel_size(length, self.um.value()):.5g}")
        elif self.ann.get("vox_size"):
            self.vox_label.setText(f"{self.ann['vox_size']:.5g} (typed)")
        elif self.ann.get("scale_source") == "unknown":
            self.vox_label.setText("unknown")
        else:
            self.vox_label.setText("—")

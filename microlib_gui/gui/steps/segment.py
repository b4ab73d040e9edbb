"""The Segment step: thresholds on a histogram, a live phase overlay, volume fractions.

One draggable line per threshold on a pyqtgraph histogram; while a line moves,
the overlay and the volume fractions follow (on arrays, within the preview
budget); when it is dropped, the thresholds are saved through
:mod:`microlib_gui.core.workflow.segment` (annotations and ``_segmented.png`` in
one transaction, undoable). "Auto" runs multi-Otsu on the sharpened image.
"Uneven lighting" corrects a smooth light field first (auto: when it is
detected); the histogram, the overlay and the volume fractions follow, and the
choice is saved with the thresholds as one edit. Grayscale and colour entries
are not segmented.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox,
)

from ...core import segment as sg
from ...core.errors import MicrolibError
from ...core.workflow import segment as wf
from ..widgets.image_view import PHASE_COLOURS, AnnotationHistory, ImageView, lay_out_view_and_side
from .base import StepPanel

KINDS = {"n-phase (segment)": None, "grayscale (keep)": "grayscale", "colour (keep)": "colour"}
#: The uneven-lighting control: its items and the ``background`` mode each asks for.
LIGHTING = {"auto (correct when uneven)": "auto", "on (divide by the light)": "divide",
            "on (subtract a background)": "subtract", "off": "off"}
#: The histogram's x axis: the grey levels of an 8-bit image (thresholds live there).
GREY_RANGE = (0.0, 255.0)


def keep_lines(label: QLabel, lines: int) -> None:
    """Give a label whose text changes a fixed height of ``lines`` wrapped lines, and no say in the
    column's width, so that a longer text never moves the controls around it."""
    label.setWordWrap(True)
    label.setFixedHeight(lines * label.fontMetrics().lineSpacing() + 4)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)


class Panel(StepPanel):
    step = "segment"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self._inputs: wf.SegmentInputs | None = None  # read afresh on every entry event
        self._work_key = None  # what self.work/self.preview were computed from (a cache, not state)
        self.work: np.ndarray | None = None
        self.preview = None
        self.lines: list[pg.InfiniteLine] = []
        self._loading = False

        self.view = ImageView()
        self.view.setObjectName("segmentView")
        self.hist = pg.PlotWidget()
        self.hist.setObjectName("segmentHistogram")
        self.hist.setLabel("bottom", "grey level")
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.setMinimumHeight(150)
        # The x axis is the data range, fixed: auto-range padding showed -50..280.
        self.hist.getViewBox().enableAutoRange(x=False)
        self.hist.setXRange(*GREY_RANGE, padding=0)
        self.hist.setLimits(xMin=GREY_RANGE[0], xMax=GREY_RANGE[1])
        self.hist_curve = self.hist.plot([0, 1], [0], stepMode="center", fillLevel=0,
                                         brush=(120, 120, 120, 150), pen=pg.mkPen("w"))

        self.kind = QComboBox()
        self.kind.addItems(list(KINDS))
        self.kind.setToolTip("Grayscale and colour entries are kept as they are (not segmented)")
        self.n_spin = QSpinBox()
        self.n_spin.setRange(2, sg.MAX_PHASES)
        self.n_spin.setToolTip("Number of phases (changing it spreads new thresholds evenly)")
        self.auto_btn = QPushButton("Auto")
        self.auto_btn.setToolTip("Multi-Otsu on the sharpened image; number of phases estimated (A)")
        self.auto_btn.setShortcut("A")
        self.auto_n = QCheckBox("estimate number of phases")
        self.auto_n.setChecked(True)
        self.sharpen = QCheckBox("sharpen (undo 1 px blur)")
        self.sharpen.setChecked(True)
        self.lighting = QComboBox()
        self.lighting.setObjectName("segmentLighting")
        self.lighting.addItems(list(LIGHTING))
        self.lighting.setToolTip("Correct uneven lighting before thresholding: a smooth light field is fitted "
                                 "with the phases and divided out (or subtracted). Auto corrects when the "
                                 "light varies enough to matter.")
        self.light_label = QLabel("")
        self.light_label.setObjectName("segmentLightingStatus")
        keep_lines(self.light_label, 2)  # its text changes with the mode: the rows below must not move
        self.light_label.setToolTip("The spread of the fitted light field (5th to 95th percentile) as a share of the "
                                    f"mean brightness; auto corrects from {sg.UNEVEN_LIMIT:.0%} when the corrected "
                                    "image fits its phases better.")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.vf_label = QLabel("")
        self.vf_label.setObjectName("volumeFractions")
        keep_lines(self.vf_label, 2)  # many phases wrap
        self.status = QLabel("")
        self.status.setObjectName("segmentStatus")
        keep_lines(self.status, 2)
        self.history = AnnotationHistory(self)

        form = QFormLayout()
        form.addRow("Entry kind", self.kind)
        form.addRow("Phases", self.n_spin)
        row = QHBoxLayout()
        row.addWidget(self.auto_btn)
        row.addWidget(self.auto_n)
        form.addRow(row)
        form.addRow(self.sharpen)
        form.addRow("Uneven lighting", self.lighting)
        form.addRow("", self.light_label)
        form.addRow("Overlay opacity", self.opacity)
        form.addRow("Volume fractions", self.vf_label)
        lay_out_view_and_side(self, self.view, [form, (self.hist, 1), self.history.buttons(), self.status],
                              side_stretch=2)

        self.auto_btn.clicked.connect(self.run_auto)
        self.n_spin.valueChanged.connect(self._on_n_changed)
        self.opacity.valueChanged.connect(lambda _v: self._refresh_overlay())
        self.sharpen.toggled.connect(self._on_sharpen)
        self.lighting.currentIndexChanged.connect(self._on_lighting)
        self.kind.currentIndexChanged.connect(self._on_kind)

    @property
    def gray(self) -> np.ndarray | None:
        return None if self._inputs is None else self._inputs.gray

    # -- showing the entry -----------------------------------------------------------------
    def load_entry(self, entry_id):
        self._inputs = None
        self.history.refresh()
        if entry_id is None:
            self._work_key = None
            self.view.set_image(None)
            self._set_lines([])
            self.status.setText("No entry selected.")
            return
        self._inputs = inp = wf.inputs(self.library, entry_id)
        ann = inp.annotations
        self._loading = True
        try:
            kind = ann.get("data_type")
            self.kind.setCurrentIndex(1 if kind == "grayscale" else 2 if kind == "colour" else 0)
            saved = wf.saved_thresholds(ann)
            self.sharpen.setChecked(bool(wf.saved_sigma(ann)) if saved is not None else True)
            self.lighting.setCurrentIndex(list(LIGHTING.values()).index(self._saved_mode(ann, saved)))
            n = len(saved) + 1 if saved is not None else int(ann.get("n_phases") or 2)
            self.n_spin.setValue(n)
            self._prepare_work(n)
            t = saved if saved is not None else self._even_thresholds(n)
            self._set_lines(t)
        finally:
            self._loading = False
        self.status.setText(self._saved_text(ann, saved))
        self._update_preview()

    @staticmethod
    def _saved_mode(ann: dict, saved) -> str:
        """The lighting mode to show: as saved; an entry segmented before the control existed: off."""
        mode = ann.get("background_mode")
        if mode in LIGHTING.values():
            return mode
        if saved is not None:
            return wf.saved_background(ann) or "off"
        return "auto"

    @staticmethod
    def _saved_text(ann: dict, saved) -> str:
        kind = ann.get("data_type")
        if kind in wf.KEPT_TYPES:
            return f"Kept as {kind}: no segmentation."
        if saved is None:
            return "Not segmented yet: press Auto or drag the thresholds."
        light = "; lighting corrected" if wf.saved_background(ann) else ""
        return (f"Saved {len(saved) + 1} phases (thresholds {', '.join(f'{v:.1f}' for v in saved)}"
                + ("; sharpened" if wf.saved_sigma(ann) else "") + light + ").")

    def lighting_mode(self) -> str:
        return LIGHTING[self.lighting.currentText()]

    def _prepare_work(self, n_phases: int | None = None) -> None:
        """The work image (corrected, sharpened) of the controls, its histogram and the shown image."""
        from ...core.preprocess import apply_geometry

        sigma = sg.DEBLUR_SIGMA if self.sharpen.isChecked() else 0.0
        mode = self.lighting_mode()
        n = int(n_phases or self.n_spin.value())
        ann = self._inputs.annotations
        segmented = self.kind.currentIndex() == 0
        key = (self.library.root, self.entry_id, str(ann.get("crop")), ann.get("rotation"), sigma, mode, n, segmented,
               self._inputs.gray.shape, float(self._inputs.gray.sum()))
        if key == self._work_key:
            return
        self._work_key = key
        gray = self._inputs.gray
        try:
            bg, uneven = wf.background_fit(gray, mode, n)
        except MicrolibError as exc:  # "on" for an image that cannot be fitted: say so, show it uncorrected
            bg, uneven = None, None
            self.light_label.setText(f"Cannot correct the lighting: {exc}")
        else:
            self.light_label.setText(self._lighting_text(mode, bg, uneven))
        self.work = sg.work_image(gray, sigma, bg) if bg is not None else wf.work_image(gray, sigma)
        self.preview = sg.ThresholdPreview(self.work)
        # Thresholds apply to the work image clipped to 0-255 (ThresholdPreview): so does the histogram.
        hist, edges = np.histogram(np.clip(self.work, *GREY_RANGE), bins=128, range=GREY_RANGE)
        self.hist_curve.setData(edges, hist)
        # The image shown is what is thresholded: corrected (not sharpened) when a correction applies.
        shown = (sg.correct_background(gray, bg) / 255.0 if bg is not None and segmented
                 else apply_geometry(self._inputs.original, ann.get("crop"), ann.get("rotation")))
        self.view.set_image(shown, keep_view=True)

    @staticmethod
    def _lighting_text(mode: str, bg, uneven) -> str:
        """One short line (the layout must not move): what the lighting control did."""
        measured = "" if uneven is None else f" (light varies by {uneven:.0%})"
        if bg is not None:
            return f"Corrected{measured}: " + ("divided out." if bg.method == "divide" else "background subtracted.")
        if mode == "auto":
            return f"Even enough{measured}: not corrected."
        return "Not corrected."

    # -- thresholds ------------------------------------------------------------------------
    def _even_thresholds(self, n: int) -> list[float]:
        lo, hi = np.percentile(self.work, [2, 98]) if self.work is not None else (0, 255)
        return [float(lo + (hi - lo) * (k + 1) / n) for k in range(n - 1)]

    def _set_lines(self, thresholds) -> None:
        for ln in self.lines:
            self.hist.removeItem(ln)
        self.lines = []
        for k, t in enumerate(sorted(thresholds)):
            ln = pg.InfiniteLine(pos=float(t), angle=90, movable=True,
                                 pen=pg.mkPen(tuple(int(c) for c in PHASE_COLOURS[(k + 1) % len(PHASE_COLOURS)]), width=3),
                                 hoverPen=pg.mkPen("y", width=4), label="{value:.0f}",
                                 labelOpts={"position": 0.9, "color": "w"}, bounds=GREY_RANGE)
            ln.sigPositionChanged.connect(lambda *_: self._update_preview())
            ln.sigPositionChangeFinished.connect(lambda *_: self.commit("thresholds"))
            self.hist.addItem(ln)
            self.lines.append(ln)

    def thresholds(self) -> list[float]:
        return sorted(float(ln.value()) for ln in self.lines)

    # -- preview ---------------------------------------------------------------------------------
    def _update_preview(self) -> None:
        if self.work is None or not self.lines or self.kind.currentIndex() != 0 or self._inputs is None:
            self.view.set_overlay(None)
            self.vf_label.setText("—")
            return
        vf = self.preview.fractions(self.thresholds())
        self.vf_label.setText("  ".join(
            f"<span style='color: rgb{tuple(int(c) for c in PHASE_COLOURS[k])}'>■</span> {v:.3f}"
            for k, v in enumerate(vf)))
        self._refresh_overlay()

    def _refresh_overlay(self) -> None:
        if self.work is None or not self.lines or self.kind.currentIndex() != 0 or self._inputs is None:
            self.view.set_overlay(None)
            return
        self.view.set_overlay(self.preview.rgba(self.thresholds(), PHASE_COLOURS, self.opacity.value() / 100))

    # -- actions ---------------------------------------------------------------------------------
    def run_auto(self) -> None:
        if self._inputs is None:
            return
        try:
            n = None if self.auto_n.isChecked() else self.n_spin.value()
            t = wf.auto_thresholds(self.gray, n, sg.DEBLUR_SIGMA if self.sharpen.isChecked() else 0.0,
                                   background=self.lighting_mode())
        except MicrolibError as exc:
            self.show_error(str(exc))
            return
        self._loading = True
        self.n_spin.setValue(len(t) + 1)
        self._loading = False
        self._prepare_work(len(t) + 1)  # the light field is fitted for that many phases
        self._set_lines(t)
        self._update_preview()
        self.commit("auto")

    def _on_n_changed(self, n: int) -> None:
        if self._loading or self.work is None:
            return
        self._prepare_work(n)
        self._set_lines(self._even_thresholds(n))
        self._update_preview()
        self.commit("thresholds")

    def _on_lighting(self, _i: int) -> None:
        """Another lighting mode: a new work image; automatic thresholds are redone on it, dragged ones kept."""
        if self._loading or self._inputs is None:
            return
        if self._inputs.annotations.get("segment_method", "auto") == "auto" and self.kind.currentIndex() == 0:
            self.run_auto()  # saves
            return
        self._prepare_work()
        self._update_preview()
        self.commit("thresholds")

    def _on_sharpen(self, _on: bool) -> None:
        if self._loading or self._inputs is None:
            return
        self._prepare_work()
        self._update_preview()
        self.commit("thresholds")

    def _on_kind(self, _i: int) -> None:
        if self._loading or self._inputs is None:
            return
        self._prepare_work()
        self._update_preview()
        self.commit("thresholds")

    def commit(self, method: str) -> None:
        """Save what the controls show as one edit (annotations + ``_segmented.png``)."""
        eid = self.entry_id
        if eid is None or self._loading or self._inputs is None:
            return
        kind = KINDS[self.kind.currentText()]
        self.save(wf.save, self.library, eid, thresholds=None if kind else self.thresholds(),
                  deblur_sigma=sg.DEBLUR_SIGMA if self.sharpen.isChecked() else 0.0, method=method,
                  data_type=kind, gray=self._inputs.gray, background=self.lighting_mode())

"""The Inpaint step: remove the scale bar by inpainting only the masked pixels.

Before/after views with the mask outlined, a method choice (MicroLib's GAN or
the fast biharmonic preview), Start/Stop with a progress bar, ETA and a live
preview of the region being optimised, Accept (writes ``_inpainted.png`` and
``_inpaint.gif``) and Re-sample (a new latent from the same trained GAN).
What is inpainted comes from :mod:`microlib_gui.core.workflow.inpaint` on every
entry event: re-segmenting or re-masking makes a result waiting for Accept
stale (it is dropped, and says so). Work runs through the window's job runner.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
    QPushButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget,
)
from scipy import ndimage

from ...core.errors import MicrolibError
from ...core.inpaint import DEFAULT_BLEND, DEFAULT_ITERS, DEFAULT_OPT_ITERS, DEFAULT_RESTARTS
from ...core.jobs import CANCELLED, DONE, Finished, fmt_duration
from ...core.workflow import inpaint as wf
from ...core.sysinfo import detect_devices
from ..widgets.array_image import ImageBox
from ..widgets.scroll import bar_width, scroll_column
from .base import StepPanel

OUTLINE = (255, 40, 40)


def outlined(display: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """RGB copy of ``display`` with a line drawn just outside the mask."""
    rgb = display if display.ndim == 3 else np.repeat(display[..., None], 3, axis=-1)
    rgb = rgb.copy()
    if mask is not None:
        ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
        rgb[ring] = OUTLINE
    return rgb


def gan_inpaint_estimate(iters: int, batch: int, opt_iters: int, cuda: bool) -> float:
    """Rough seconds for one image, scaled from measurements (docs/benchmarks.md, "Inpainting"):
    37 s on an H100 with the defaults (1000 iterations × batch 32, 300 latent steps), and 883 s on
    a 2-core CPU for 300 × 8 with 300 latent steps (CPU core-seconds divided by the cores here)."""
    import os

    if cuda:
        return 37.0 * (0.85 * iters * batch / (1000 * 32) + 0.15 * opt_iters / 300)
    cores = max(1, min(os.cpu_count() or 1, 32))
    return 883.0 * 2 / cores * (0.8 * iters * batch / (300 * 8) + 0.2 * opt_iters / 300)


class Panel(StepPanel):
    step = "inpaint"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.inputs: wf.InpaintInputs | None = None  # read afresh on every entry event
        self.job = None  # JobHandle; its tag: (library root, entry id, input signature, params)
        #: a finished result awaiting Accept: {"result", "params", "key"}; dropped when the inputs change
        self.pending: dict | None = None

        self.before = ImageBox("Before")
        self.after = ImageBox("After")
        self.preview = ImageBox("Live preview")
        self.preview.setMinimumSize(160, 120)
        # A shown picture's size must not claim space (a label's size hint is its pixmap, scaled to the
        # last size): "After" ended up half as wide as "Before". Equal columns, whatever they show.
        for box in (self.before, self.after, self.preview):
            box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        views = QGridLayout()
        views.addWidget(QLabel("<b>Before</b> (mask outlined)"), 0, 0)
        views.addWidget(QLabel("<b>After</b> (mask outlined)"), 0, 1)
        views.addWidget(self.before, 1, 0)
        views.addWidget(self.after, 1, 1)
        views.setColumnStretch(0, 1)
        views.setColumnStretch(1, 1)
        views.setRowStretch(1, 1)

        self.info = QLabel()
        self.info.setObjectName("inpaintInfo")
        self.info.setWordWrap(True)
        self.info.setMinimumHeight(4 * self.info.fontMetrics().height() + 6)  # room for the state line
        self.method = QComboBox()
        self.method.addItem("GAN (MicroLib)", "gan")
        self.method.addItem("Fast preview (biharmonic)", "fast")
        self.method.currentIndexChanged.connect(self._update_buttons)
        self.iters = self._spin(1, 100_000, DEFAULT_ITERS)
        self.opt_iters = self._spin(1, 100_000, DEFAULT_OPT_ITERS)
        self.batch = self._spin(1, 512, 32)
        self.seed = self._spin(0, 2**31 - 1, 0)
        self.restarts = self._spin(1, 64, DEFAULT_RESTARTS)
        self.restarts.setToolTip("Latents fitted at once per masked region; the one matching the border best "
                                 "is kept (1: MicroLib's single fit)")
        self.blend = QDoubleSpinBox()
        self.blend.setRange(0.0, 8.0)
        self.blend.setSingleStep(0.5)
        self.blend.setDecimals(1)
        self.blend.setValue(DEFAULT_BLEND)
        self.blend.setSuffix(" px")
        self.blend.setToolTip("Width of the join with the smooth continuation of the known pixels "
                              "(0: MicroLib's raw paste)")
        self.device = QComboBox()
        for d in ("auto", "cpu", "cuda"):
            self.device.addItem(d, d)
        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Training iterations", self.iters)
        form.addRow("Latent steps per region", self.opt_iters)
        form.addRow("Batch size", self.batch)
        form.addRow("Seed", self.seed)
        form.addRow("Latent fits per region", self.restarts)
        form.addRow("Border join", self.blend)
        form.addRow("Device", self.device)
        self._cuda = detect_devices()[0]
        self.estimate = QLabel()
        self.estimate.setObjectName("inpaintEstimate")
        self.estimate.setWordWrap(True)
        # The GAN's estimate is three lines, the fast one's a few words: a fixed height over the
        # form's whole width, so that the buttons below stay put when the method changes.
        self.estimate.setFixedHeight(3 * self.estimate.fontMetrics().lineSpacing() + 4)
        self.estimate.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.estimate.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        form.addRow(self.estimate)
        for w in (self.iters, self.batch, self.opt_iters):
            w.valueChanged.connect(lambda *_: self._update_estimate())
        self.device.currentIndexChanged.connect(lambda *_: self._update_estimate())
        self.method.currentIndexChanged.connect(lambda *_: self._update_estimate())

        self.start_btn = QPushButton("Start")
        self.stop_btn = QPushButton("Stop")
        self.accept_btn = QPushButton("Accept")
        self.resample_btn = QPushButton("Re-sample")
        self.no_bar_btn = QPushButton("No bar to remove: use the image as it is")
        self.no_bar_btn.setObjectName("noBarButton")
        self.no_bar_btn.setToolTip("For micrographs without a burnt-in scale bar: the training image is the "
                                   "segmented crop")
        self.no_bar_btn.clicked.connect(self.use_without_bar)
        self.start_btn.clicked.connect(lambda: self.start())
        self.stop_btn.clicked.connect(self.stop)
        self.accept_btn.clicked.connect(self.accept_result)
        self.resample_btn.clicked.connect(self.resample)
        buttons = QHBoxLayout()
        for b in (self.start_btn, self.stop_btn, self.resample_btn, self.accept_btn):
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setObjectName("inpaintStatus")
        self.status.setWordWrap(True)
        self.status.setMinimumHeight(2 * self.status.fontMetrics().height() + 6)

        side = QVBoxLayout()
        side.addWidget(self.info)
        box = QGroupBox("Settings")
        box.setLayout(form)
        side.addWidget(box)
        side.addLayout(buttons)
        side.addWidget(self.no_bar_btn)
        side.addWidget(self.progress)
        side.addWidget(self.status)
        side.addWidget(QLabel("<b>Live preview</b>"))
        side.addWidget(self.preview, 1)
        lay = QHBoxLayout(self)
        left = QWidget()
        left.setLayout(views)
        lay.addWidget(left, 3)
        right = QWidget()
        right.setLayout(side)
        # the settings column scrolls rather than setting the window's least height (a 768 px screen)
        right_scroll = scroll_column(right, "inpaintSettingsScroll")
        right_scroll.setMaximumWidth(max(380 + bar_width(right_scroll), right_scroll.minimumWidth()))
        lay.addWidget(right_scroll, 1)

        self._update_buttons()
        self._update_estimate()

    @staticmethod
    def _spin(lo: int, hi: int, value: int) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(value)
        return s

    # -- entry ---------------------------------------------------------------------
    def _key(self) -> tuple | None:
        """What a result must have been made from to be accepted for the entry shown now."""
        if self.entry_id is None or self.inputs is None:
            return None
        return (str(self.library.root), self.entry_id, self.inputs.signature)

    def load_entry(self, entry_id: int | None) -> None:
        self.inputs = None
        if not self.running and self.pending is None:  # what the last job said is over: the info says the state
            self.status.setText("")
            self.progress.setValue(0)
            self.preview.set_array(None)
        if entry_id is not None:
            try:
                self.inputs = wf.inputs(self.library, entry_id)
            except MicrolibError as exc:
                self._show_inputs(f"Cannot inpaint this entry: {exc}")
                self._drop_stale_work()
                return
        self._drop_stale_work()
        if self.inputs is None:
            self._show_inputs("No entry selected.")
            return
        img = self.inputs.image
        text = f"Input: {self.inputs.description}, {img.shape[1]}×{img.shape[0]} px."
        if self.inputs.no_bar:
            text += "<br>No scale bar in this micrograph (Scale bar step): use it as it is."
        elif self.inputs.mask is None:
            text += ("<br><b>No scale-bar mask</b>: mark the bar in the Scale bar step, or, if this micrograph "
                     "has no bar, use it as it is.")
        else:
            share = 100 * self.inputs.mask.mean()
            text += f"<br>Mask: {int(self.inputs.mask.sum())} px ({share:.2f}% of the image)."
        status = self.library.get_entry(entry_id).steps.get("inpaint")
        if status == "done" and self.pending is None and not self.running:
            text += "<br>✔ Training image saved and up to date."
        elif status == "stale" and self.pending is None and not self.running:
            text += "<br>↻ Saved training image out of date (an earlier step changed): Start again."
        self.info.setText(text)
        self.before.set_array(outlined(img.display(img.original), self.inputs.mask))
        if self.pending is not None:
            self.after.set_array(outlined(img.display(self.pending["result"]["output"]), self.inputs.mask))
        elif not self.running:
            self.after.set_array(self._saved_image())
        self._update_buttons()

    def _saved_image(self):
        """The saved training image, shown in "After" when no new result is waiting."""
        path = wf.saved_path(self.library, self.entry_id)
        if path is None:
            return None
        from ...core.images import load_image

        try:
            return load_image(path).as_uint8()
        except MicrolibError:
            return None

    def _show_inputs(self, text: str) -> None:
        self.before.set_array(None)
        self.after.set_array(None)
        self.preview.set_array(None)
        self.info.setText(text)
        self._update_buttons()

    def _drop_stale_work(self) -> None:
        """A result or a running job made from other inputs than the entry's current ones goes."""
        key = self._key()
        if self.pending is not None and self.pending["key"] != key:
            self.pending = None
            self.progress.setValue(0)
            self.preview.set_array(None)
            self.status.setText("The segmentation, mask or entry changed: the unsaved result was dropped. "
                                "Start again.")
        if self.running and self.job.tag[:3] != key:
            self._abandon_job()
            self.progress.setValue(0)
            self.preview.set_array(None)
            self.status.setText("The segmentation, mask or entry changed: the running job was stopped. "
                                "Start again.")

    # -- jobs ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    @property
    def result(self) -> dict | None:
        return None if self.pending is None else self.pending["result"]

    def _params(self) -> dict:
        return {"method": self.method.currentData(), "iters": self.iters.value(),
                "opt_iters": self.opt_iters.value(), "batch_size": self.batch.value(), "device": self.device.currentData(),
                "seed": self.seed.value(), "restarts": self.restarts.value(), "blend": self.blend.value()}

    def start(self, generator_state: dict | None = None) -> None:
        if self.inputs is None or self.inputs.mask is None or self.running:
            return
        params = self._params()
        full = {"inputs": self.inputs, **params}
        if generator_state:
            full["generator_state"] = generator_state
        try:
            # GAN training is heavy: its own process, so a crash cannot take the GUI down.
            self.job = self.jobs.start(wf.job, full, process=params["method"] == "gan", tag=(*self._key(), params))
        except (OSError, MicrolibError) as exc:
            self.show_error(f"cannot start inpainting: {exc}")
            return
        h = self.job
        h.progress.connect(lambda ev, h=h: h is self.job and self._on_progress(ev))
        h.finished.connect(lambda ev, h=h: self._finished(h, ev))
        self.pending = None
        self.after.set_array(None)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self._update_buttons()

    def stop(self) -> None:
        if self.running:
            self.job.cancel()
            self.status.setText("Stopping…")

    def resample(self) -> None:
        """Try another latent: next seed, same trained generator when there is one."""
        if self.result is None or self.running:
            return
        state = self.result.get("generator_state")
        self.seed.setValue(self.seed.value() + 1)
        self.start(generator_state=state)

    def _on_progress(self, ev) -> None:
        self.progress.setValue(int(1000 * ev.fraction))
        eta = f" — about {ev.eta_s:.0f} s left" if ev.eta_s is not None and ev.step < ev.total else ""
        self.status.setText(f"{ev.message}{eta}")
        if "preview" in ev.images:
            self.preview.set_array(ev.images["preview"])

    def _finished(self, handle, ev: Finished) -> None:
        if handle is not self.job:
            return  # abandoned: its inputs changed (_drop_stale_work said so)
        self.job = None
        tag = handle.tag
        if ev.state == DONE:
            if tag[:3] != self._key():
                self._update_buttons()
                return
            self.pending = {"result": ev.result, "params": dict(tag[3]), "key": tag[:3]}
            img = self.inputs.image
            self.after.set_array(outlined(img.display(ev.result["output"]), self.inputs.mask))
            t = ev.result.get("timings", {}).get("total_s", 0.0)
            self.status.setText(f"Done in {t:.1f} s on {ev.result.get('device', 'cpu')}: check the result, "
                                "then Accept (or Re-sample).")
            self.progress.setValue(1000)
        elif ev.state == CANCELLED:
            self.status.setText("Stopped. Nothing was saved.")
        else:
            self.status.setText(f"Failed: {ev.error}")
            self.show_error(ev.error or "inpainting failed")
        self._update_buttons()

    def accept_result(self) -> None:
        if self.pending is None or self.entry_id is None or self.inputs is None:
            return
        if self.pending["key"] != self._key():
            self._drop_stale_work()
            self._update_buttons()
            return
        try:
            wf.save(self.library, self.entry_id, self.pending["result"], self.inputs, self.pending["params"])
        except (OSError, MicrolibError) as exc:
            self.show_error(f"cannot save the result: {exc}")
            return
        self.pending = None
        self.status.setText("Saved the training image (_inpainted.png) and the animation.")
        self.changed()

    def use_without_bar(self) -> None:
        """No bar to remove: save the segmented crop as the training image."""
        if self.inputs is None or self.entry_id is None or self.running:
            return
        try:
            wf.save_without_bar(self.library, self.entry_id, self.inputs)
        except (OSError, MicrolibError) as exc:
            self.show_error(f"cannot save the training image: {exc}")
            return
        self.pending = None
        self.status.setText("Saved the image as it is as the training image (no bar removed).")
        self.changed()

    def _abandon_job(self) -> None:
        if self.running:
            self.job.cancel()
            self.job.kill()
        self.job = None

    def confirm_close(self) -> bool:
        """Closing the window stops a running job (nothing unsaved is lost: results need Accept)."""
        self._abandon_job()
        return True

    def _update_estimate(self) -> None:
        if self.method.currentData() != "gan":
            self.estimate.setText("Estimate: under a second")
            return
        cuda = self._cuda and self.device.currentData() in ("auto", "cuda")
        est = gan_inpaint_estimate(self.iters.value(), self.batch.value(), self.opt_iters.value(), cuda)
        text = f"Estimate: about {fmt_duration(est)} per image on the {'GPU' if cuda else 'CPU'} (rough)"
        if not cuda and est > 600:
            text += ": on a CPU use the fast method, or fewer iterations for a first look"
        self.estimate.setText(text)

    def _update_buttons(self) -> None:
        ready = self.inputs is not None and self.inputs.mask is not None
        busy = self.running
        self.no_bar_btn.setEnabled(self.inputs is not None and not busy)
        gan = self.method.currentData() == "gan"
        self.start_btn.setEnabled(ready and not busy)
        self.stop_btn.setEnabled(busy)
        self.accept_btn.setEnabled(self.result is not None and not busy)
        self.resample_btn.setEnabled(self.result is not None and not busy and self.result.get("method") == "gan")
        for w in (self.iters, self.opt_iters, self.batch, self.device, self.restarts, self.blend):
            w.setEnabled(gan and not busy)
        self.method.setEnabled(not busy)

"""The Train step: SliceGAN training in its own process, with live progress.

A thin panel over :mod:`microlib_gui.core.workflow.train`, which owns the run
lifecycle (folders ``train/run-NNN/``, run numbers, curves, logs, publishing).
On every event of the live entry model the panel re-reads the entry's inputs
and runs from the store and shows the selected run's own curves and log. Jobs
go through the window's job runner on its ``"train"`` queue, so several entries
can wait their turn; a run's folder and row are made when its turn comes. A
completed run is published into the entry; a stopped one keeps its checkpoint
and is resumed, or its generator used, only when the user says so.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
    QListWidgetItem, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QSplitter,
    QVBoxLayout, QWidget,
)

from ...core.errors import MicrolibError
from ...core.jobs import FAILED, Finished, Progress, fmt_duration
from ...core.slicegan import presets as presets_mod
from ...core.sysinfo import detect_devices
from ...core.workflow import train as wf
from ..widgets.convergence_plot import ConvergencePlot
from ..widgets.loss_plot import LossPlot
from ..widgets.progress import show_progress
from ..widgets.scroll import bar_width, scroll_column
from .base import StepPanel

QUEUE = "train"

#: The networks offered, in this order; unknown presets follow, then the ones for tests
#: (:data:`FOR_TESTS`), after a separator and labelled so: they are too small for a library entry.
PRESET_LABELS = {"draft": "Draft (for a CPU)", "microlib": "MicroLib (paper network)",
                 "tiny": "Tiny — for tests", "check": "Check — for tests"}
FOR_TESTS = ("tiny", "check")
#: What the paper network gives, when presets.py has no measured note for it (docs/benchmarks.md).
MICROLIB_QUALITY = "errors ≤ 5 % on average on a GPU"
#: Lines kept for the texts that change with the settings: rows keep their height, the buttons stay put.
NOTE_LINES, ESTIMATE_LINES, STATUS_LINES = 6, 4, 2


def preset_notes() -> dict:
    """What each preset was measured to give (``presets.PRESET_NOTES``; empty where it has none)."""
    return dict(getattr(presets_mod, "PRESET_NOTES", {}) or {})


def is_for_tests(name: str) -> bool:
    return name in FOR_TESTS or bool((preset_notes().get(name) or {}).get("for_tests"))


def cpu_time_text(note: dict) -> str:
    """``about 18 min on 2 CPU cores`` from a preset's note (``cpu_minutes``; the notes' CPU has 2 cores)."""
    minutes = note.get("cpu_minutes")
    if minutes is None:
        return ""
    return f"about {minutes:g} min on {note.get('cpu_cores', 2)} CPU cores"


def quality_text(note: dict) -> str:
    """The measured errors of a preset's note: the worst of its images (``vf_error_max``,
    ``sa_error_max``; ``vf_error_max_matched``: with the phase fractions matched) or the mean over
    them on a GPU (``vf_error_mean``, ``sa_error_mean``)."""
    n = len(note["images"]) if note.get("images") else note.get("n_images")
    on = f" on {n} MicroLib images" if n else ""
    if note.get("vf_error_max") is not None and note.get("sa_error_max") is not None:
        text = f"vf error ≤ {_pct_up(note['vf_error_max'])} %, surface area ≤ {_pct_up(note['sa_error_max'])} %{on}"
        if note.get("vf_error_max_matched") is not None:
            text += f" (vf {_pct_up(note['vf_error_max_matched'])} % with matched phase fractions)"
        return text
    if note.get("vf_error_mean") is not None and note.get("sa_error_mean") is not None:
        where = [x for x in (note.get("gpu"), note.get("gpu_seconds") and f"{fmt_duration(note['gpu_seconds'])} a run")
                 if x]
        return (f"volume-fraction error {note['vf_error_mean'] * 100:.1f} %, surface-area error "
                f"{note['sa_error_mean'] * 100:.1f} %, on average{on} on a GPU"
                + (f" ({', '.join(where)})" if where else ""))
    return ""


def _pct_up(fraction: float) -> int:
    """A measured error as a bound in whole % (13.7 % → 14)."""
    return math.ceil(float(fraction) * 100 - 1e-9)


def gpu_quality_text(note: dict) -> str:
    """``errors ≤ 5 % on average on a GPU``: the paper network's, in short (the larger of its mean errors over the
    images measured; the MicroLib line gives them in full)."""
    means = [note[k] for k in ("vf_error_mean", "sa_error_mean") if note.get(k) is not None]
    return f"errors ≤ {_pct_up(max(means))} % on average on a GPU" if means else MICROLIB_QUALITY


def best_check(points: list[tuple[int, dict]], min_iters: int = 0) -> int | None:
    """The check iteration, at or after ``min_iters``, with the smallest of the larger of its two errors
    (vf, surface area): the trainer's best (``core.slicegan.convergence.Tracker``), for the live plot
    between two writes of run.json."""
    checks = [(max(sc.get("vf_error", 0.0), sc.get("sa_error", 0.0)), it) for it, sc in points
              if ("vf_error" in sc or "sa_error" in sc) and it >= min_iters]
    return min(checks)[1] if checks else None


def _errors(sc: dict) -> str:
    return ", ".join(f"{name} {sc[k] * 100:.1f} %" for k, name in (("vf_error", "vf"), ("sa_error", "surface area"))
                     if k in sc)


def convergence_text(points: list[tuple[int, dict]], tol: float | None, record: dict, enabled: bool,
                     ended: bool) -> str:
    """The status line under the convergence plot.

    Parameters
    ----------
    points : list of (iteration, scalars)
        The run's reports; those with ``vf_error``/``sa_error`` (fractions) are convergence checks.
    tol : float or None
        The target (fraction) for both errors.
    record : dict
        What run.json says: ``converged_at``, ``stop_reason`` ("converged" or "plateau"),
        ``best_iteration``, ``iteration`` (where a plateau stopped it) and ``plateau`` (the checks without
        a better one that stop it).
    enabled : bool
        The run checks convergence (``converge`` on).
    ended : bool
        The run is done (no "yet").
    """
    checks = [(it, sc) for it, sc in points if "vf_error" in sc or "sa_error" in sc]
    target = f" (target {tol * 100:g} %)" if tol else ""
    if record.get("converged_at") is not None:
        return f"Converged at iteration {record['converged_at']}."
    if record.get("stop_reason") == "plateau":
        best = dict(checks).get(record.get("best_iteration"), {})
        since = f"in the last {record['plateau']}" if record.get("plateau") else "for a while"
        return (f"Stopped at iteration {record.get('iteration')}: no better check {since}; best at iteration "
                f"{record.get('best_iteration')}: {_errors(best)}{target}.")
    if not checks:
        return ("Convergence: no check yet." if enabled else
                "Convergence check off for this run (Stop when converged).")
    it, sc = checks[-1]
    text = f"{'Not converged' if ended else 'Not converged yet'}: {_errors(sc)}{target}, iteration {it}"
    best = record.get("best_iteration")
    if ended and best is not None and best != it and best in dict(checks):
        text += f"; the generator kept is the best check's, iteration {best} ({_errors(dict(checks)[best])})"
    return text + "."


class _Job:
    """One training job this window started: which library, entry and run it is for."""

    def __init__(self, library, entry_id: int, name: str, params: dict | None, resume_id: int | None,
                 resume_iters: int | None = None):
        self.library, self.entry_id, self.name = library, entry_id, name
        self.params, self.resume_id = params, resume_id
        self.resume_iters = resume_iters  #: a new total for the resumed run (None: its own)
        self.run: wf.Run | None = None  #: set when the job's turn comes
        self.handle = None
        self.last: Progress | None = None

    def key(self):
        return (str(self.library.root), self.entry_id)


class Panel(StepPanel):
    step = "train"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.detach_on_exit = False  # set by "Keep running" when the app closes
        #: this window's training jobs not finished yet (queued or running), oldest first
        self.active: list[_Job] = []
        #: extra train() parameters (e.g. log_every=1 for quick looks); empty by default
        self.overrides: dict = {}
        self.last_finished: Finished | None = None
        #: what the user picked, each for one (library, entry): a file for a quick try, the selected run
        self._chosen: tuple | None = None
        self._selected: tuple | None = None
        #: the latest sample slices of each run trained in this window (progress events; the run
        #: folder keeps them too, wf.sample_slices, for runs trained before this window opened)
        self._slices: dict[tuple, dict] = {}
        self.cuda, self.device_text = detect_devices()
        self._build()

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        self.image_info = QLabel()
        self.image_info.setObjectName("trainImageInfo")
        self.image_info.setWordWrap(True)
        self.choose_btn = QPushButton("Choose an image file for a quick try…")
        self.choose_btn.clicked.connect(lambda: self.choose_image())
        self.generator_info = QLabel()
        self.generator_info.setObjectName("generatorInfo")
        self.generator_info.setWordWrap(True)
        for lab, lines in ((self.image_info, 3), (self.generator_info, 2)):  # wrapped text is not cut off
            lab.setMinimumHeight(lab.fontMetrics().lineSpacing() * lines)

        settings = QGroupBox("Settings (MicroLib's defaults)")
        f = QFormLayout(settings)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("preset")
        self._fill_presets()
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        f.addRow("Network", self.preset_combo)
        self.preset_note = self._fixed_lines_label("presetNote", NOTE_LINES)
        f.addRow("", self.preset_note)
        self.iters_spin = QSpinBox()
        self.iters_spin.setObjectName("iterations")
        self.iters_spin.setRange(1, 1_000_000)
        self.iters_spin.valueChanged.connect(self._update_estimate)
        f.addRow("Iterations", self.iters_spin)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device")
        self.device_combo.addItem("Auto", "auto")
        self.device_combo.addItem("GPU (CUDA)", "cuda")
        self.device_combo.addItem("CPU", "cpu")
        if not self.cuda:
            self.device_combo.model().item(1).setEnabled(False)
        self.device_combo.currentIndexChanged.connect(self._update_estimate)
        f.addRow("Device", self.device_combo)
        f.addRow("", QLabel(f"<i>detected: {self.device_text}</i>"))
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seed")
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        f.addRow("Seed", self.seed_spin)
        self.type_combo = QComboBox()
        self.type_combo.setObjectName("imageType")
        for t in ("auto", "nphase", "grayscale", "colour"):
            self.type_combo.addItem(t, t)
        f.addRow("Image type", self.type_combo)
        self.layers_combo = QComboBox()
        self.layers_combo.setObjectName("generatorLayers")
        self.layers_combo.addItem("Resize (no checkerboard)", "resize")
        self.layers_combo.addItem("Transposed (published)", "transpose")
        self.layers_combo.setToolTip("How the generator upsamples. Resize: nearest-neighbour ×2, then a 3³ "
                                     "convolution; no checkerboard or tiling, and faster to a good generator over "
                                     "ten MicroLib images (docs/benchmarks.md). Transposed: MicroLib's published "
                                     "layers. Either way the generator is saved in the published SliceGAN format.")
        f.addRow("Upsampling", self.layers_combo)
        self.aniso_check = QCheckBox("Anisotropic: three images (slices ⟂ x, y, z)")
        self.aniso_check.setObjectName("anisotropic")
        self.aniso_check.toggled.connect(self._aniso_toggled)
        f.addRow(self.aniso_check)
        self.augment_check = QCheckBox("Show the critic flipped and rotated patches (isotropic)")
        self.augment_check.setObjectName("augment")
        self.augment_check.setToolTip("Each real patch is shown under a random flip or transpose: lower 3D surface-area "
                                      "error in our measurements (docs/slicegan.md). Off: the published patches.")
        f.addRow(self.augment_check)
        self.converge_check = QCheckBox("Stop when converged")
        self.converge_check.setObjectName("converge")
        self.converge_check.setToolTip("Every few hundred iterations, compare a generated volume's volume fractions "
                                       "and surface area with the training image's; stop once both are within "
                                       "the target (the network's default: on for MicroLib)")
        f.addRow(self.converge_check)
        self.aniso_paths: list[Path | None] = [None, None, None]
        self.aniso_btns = []
        aniso_row = QHBoxLayout()
        for i, ax in enumerate("xyz"):
            b = QPushButton(f"Image ⟂ {ax}…")
            b.clicked.connect(lambda _c=False, i=i: self.choose_aniso(i))
            b.setEnabled(False)  # always shown: showing rows would move the buttons below (issue 20)
            self.aniso_btns.append(b)
            aniso_row.addWidget(b)
        f.addRow(aniso_row)
        self.estimate_label = self._fixed_lines_label("estimate", ESTIMATE_LINES)
        f.addRow("Estimate", self.estimate_label)

        self.start_btn = QPushButton("Start")
        self.start_btn.setObjectName("startTraining")
        self.start_btn.clicked.connect(lambda: self.start())
        self.queue_btn = QPushButton("Add to queue")
        self.queue_btn.clicked.connect(lambda: self.start())
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setObjectName("stopTraining")
        self.stop_btn.setToolTip("Stop now, keeping the last checkpoint (the entry's generator is not replaced)")
        self.stop_btn.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        for b in (self.start_btn, self.queue_btn, self.stop_btn):
            buttons.addWidget(b)

        self.queue_list = QListWidget()
        self.queue_list.setObjectName("trainQueue")
        self.queue_list.setMaximumHeight(80)
        row_h = self.queue_list.fontMetrics().lineSpacing()
        self.queue_list.setMinimumHeight(row_h * 2 + 12)  # not Qt's 70 px: the window fits a 900 px screen
        self.runs_list = QListWidget()
        self.runs_list.setObjectName("runsList")
        self.runs_list.setMinimumHeight(row_h * 2 + 12)
        self.runs_list.currentRowChanged.connect(self._run_picked)
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setObjectName("resumeTraining")
        self.resume_btn.setToolTip("Continue the selected stopped run from its checkpoint (same run, same curves), "
                                   "to its own total, or to the Iterations above when they are more")
        self.resume_btn.clicked.connect(lambda: self.resume())
        self.publish_btn = QPushButton("Use this run's generator")
        self.publish_btn.setObjectName("publishRun")
        self.publish_btn.setToolTip("Make the selected run's generator the entry's (Inspect and Export are then redone)")
        self.publish_btn.clicked.connect(lambda: self.publish_selected())
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(self.resume_btn)
        run_buttons.addWidget(self.publish_btn)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(self.image_info)
        lv.addWidget(self.choose_btn)
        lv.addWidget(self.generator_info)
        lv.addWidget(settings)
        lv.addLayout(buttons)
        lv.addWidget(QLabel("<b>Queue</b>"))
        lv.addWidget(self.queue_list)
        lv.addWidget(QLabel("<b>Runs of this entry</b>"))
        lv.addWidget(self.runs_list, 1)
        lv.addLayout(run_buttons)

        # the selected run
        self.iter_label = QLabel("Not training.")
        self.iter_label.setObjectName("iterationLabel")
        self.iter_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.eta_label = QLabel()
        self.eta_label.setObjectName("eta")
        self.loss_plot = LossPlot()
        self.conv_plot = ConvergencePlot()
        self.conv_status = self._fixed_lines_label("convergenceStatus", STATUS_LINES)
        self.slice_labels = {}
        slices = QHBoxLayout()
        for k in ("slice_x", "slice_y", "slice_z"):
            box = QVBoxLayout()
            lab = QLabel("—")
            lab.setObjectName(k)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setMinimumSize(128, 128)
            lab.setStyleSheet("QLabel { background: #202020; color: #bbb; }")
            self.slice_labels[k] = lab
            box.addWidget(QLabel(f"sample slice {k[-1]}"))
            box.addWidget(lab)
            slices.addLayout(box)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("runLog")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.iter_label)
        rv.addWidget(self.progress)
        rv.addWidget(self.eta_label)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.conv_plot, 1)
        rv.addLayout(plots, 2)
        rv.addWidget(self.conv_status)
        rv.addLayout(slices)
        rv.addWidget(self.log_view, 1)

        # the settings column scrolls rather than setting the window's least height (it must fit
        # a 768 px laptop screen); its width stays what its contents need
        left_scroll = scroll_column(left, "trainSettingsScroll")
        left_scroll.setMinimumWidth(left.sizeHint().width() + bar_width(left_scroll))
        split = QSplitter()
        split.addWidget(left_scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<h2>Train a 3D generator (SliceGAN)</h2>"))
        lay.addWidget(split, 1)
        self._preset_changed()
        self.load_entry(None)

    @staticmethod
    def _fixed_lines_label(name: str, lines: int) -> QLabel:
        """A wrapped label of a fixed height: its text changes with the settings, the layout does not."""
        lab = QLabel()
        lab.setObjectName(name)
        lab.setWordWrap(True)
        lab.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        lab.setFixedHeight(lab.fontMetrics().lineSpacing() * lines + 4)
        return lab

    # -- settings ------------------------------------------------------------------
    def _fill_presets(self) -> None:
        """The networks: Draft and MicroLib first, the test presets last; Draft preselected without a GPU."""
        known = [n for n in PRESET_LABELS if n in presets_mod.PRESETS]
        known += [n for n in presets_mod.PRESETS if n not in PRESET_LABELS]
        for n in (n for n in known if not is_for_tests(n)):
            self.preset_combo.addItem(PRESET_LABELS.get(n, n), n)
        self.preset_combo.insertSeparator(self.preset_combo.count())
        for n in (n for n in known if is_for_tests(n)):
            self.preset_combo.addItem(PRESET_LABELS.get(n, f"{n} — for tests"), n)
            self.preset_combo.setItemData(self.preset_combo.count() - 1,
                                          "A small network for tests and smoke runs: it learns little",
                                          Qt.ItemDataRole.ToolTipRole)
        default = "microlib" if self.cuda or "draft" not in presets_mod.PRESETS else "draft"
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(default))

    def _preset_changed(self, *_):
        p = presets_mod.get_preset(self.preset_combo.currentData())
        self.iters_spin.setValue(p.iters)
        self.augment_check.setChecked(p.augment)
        self.converge_check.setChecked(bool(getattr(p, "converge", False)))
        self.layers_combo.setCurrentIndex(self.layers_combo.findData(p.upsampling))
        self._update_estimate()

    def _preset_note(self) -> str:
        """What the chosen network gives: measured time and quality, and the paper network's on this machine."""
        name = self.preset_combo.currentData()
        notes = preset_notes()
        if is_for_tests(name):
            return "<i>For tests</i>: a small network that learns little. Use Draft or MicroLib for an entry."
        if name == "draft":
            draft = notes.get("draft") or {}
            text = "; ".join(p for p in (cpu_time_text(draft), quality_text(draft)) if p)
            full = presets_mod.get_preset("microlib")
            cuda = self.cuda and self.device_combo.currentData() in ("auto", "cuda")
            try:
                measured = wf.measured_speed(self.library, "microlib", cuda)
            except MicrolibError:
                measured = None
            est = wf.estimate_seconds("microlib", full.iters, cuda, measured)
            text = (text + ". " if text else "") + (
                f"The full MicroLib network: about {fmt_duration(est)} on this {'GPU' if cuda else 'CPU'} "
                f"({full.iters} iterations); {gpu_quality_text(notes.get('microlib') or {})}.")
        elif name == "microlib":
            text = "The paper's network: " + (quality_text(notes.get("microlib") or {})
                                              or f"volume-fraction and surface-area {MICROLIB_QUALITY}") + "."
        else:
            text = "; ".join(p for p in (cpu_time_text(notes.get(name) or {}),
                                         quality_text(notes.get(name) or {})) if p)
        return text[:1].upper() + text[1:] if text else ""

    def _estimate(self) -> tuple[float | None, bool, str]:
        """(seconds, on the GPU, where the speed comes from) for the current settings."""
        preset = self.preset_combo.currentData()
        cuda = self.cuda and self.device_combo.currentData() in ("auto", "cuda")
        iters = self.iters_spin.value()
        try:
            measured = wf.measured_speed(self.library, preset, cuda)
        except MicrolibError:
            measured = None
        if measured:
            return wf.estimate_seconds(preset, iters, cuda, measured), cuda, "from an earlier run"
        note = preset_notes().get(preset) or {}
        if not cuda and note.get("cpu_minutes"):  # the preset's measured CPU time, scaled by iterations and cores
            cores = note.get("cpu_cores", 2)
            spi = (note["cpu_minutes"] * 60.0 / presets_mod.get_preset(preset).iters
                   * cores / max(1, os.cpu_count() or 1))
            return spi * iters, cuda, f"from the network's measured time on a {cores}-core CPU"
        return (wf.estimate_seconds(preset, iters, cuda, None), cuda,
                "rough: from our measurements on an H100 / a 2-core CPU")

    def _update_estimate(self, *_):
        note = self._preset_note()
        self.preset_note.setText(note)
        self.preset_note.setToolTip(note)  # the whole text, should a narrow window cut it
        est, cuda, how = self._estimate()
        text = f"about {fmt_duration(est)} on the {'GPU' if cuda else 'CPU'} ({how})"
        if est is not None and not cuda and est > wf.LONG_CPU_RUN_S:
            text += ". On a CPU, consider fewer iterations, or a GPU machine (README; `microlib build` on a cluster)"
        self.estimate_label.setText(text)
        self.estimate_label.setToolTip(text)

    def _confirm_long_cpu_run(self) -> bool:
        """Ask before a CPU run estimated at more than LONG_CPU_RUN_S (MicroLib's network on a laptop)."""
        est, cuda, _ = self._estimate()
        if cuda or est is None or est <= wf.LONG_CPU_RUN_S:
            return True
        box = QMessageBox(self)
        box.setObjectName("longCpuRun")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("A long training run")
        box.setText(f"Training {self.iters_spin.value()} iterations on this CPU will take about "
                    f"{fmt_duration(est)}.")
        box.setInformativeText("A GPU does it in minutes (README: installing a CUDA build; or `microlib build` "
                               "on a cluster). Fewer iterations give a first look sooner. Start anyway?")
        start = box.addButton("Start anyway", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is start

    def _aniso_toggled(self, on: bool) -> None:
        for b in self.aniso_btns:
            b.setEnabled(on)
        self.augment_check.setEnabled(not on)  # three images keep their published orientation
        self._update_buttons()

    def choose_aniso(self, i: int, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, f"Training image ⟂ {'xyz'[i]}", "",
                                                  "Images (*.png *.tif *.tiff *.jpg)")
        if path:
            self.aniso_paths[i] = Path(path)
            self.aniso_btns[i].setText(f"⟂ {'xyz'[i]}: {Path(path).name}")
            self._update_buttons()

    def choose_image(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Training image (segmented)", "",
                                                  "Images (*.png *.tif *.tiff *.jpg)")
        if path and self.entry_id is not None:
            self._chosen = (self._key(), Path(path))
            self.reload()

    # -- what is shown: re-read on every event ------------------------------------------
    def _key(self):
        return (str(self.library.root), self.entry_id)

    def _chosen_image(self) -> Path | None:
        return self._chosen[1] if self._chosen and self._chosen[0] == self._key() else None

    def _jobs_of_entry(self) -> list[_Job]:
        return [j for j in self.active if j.key() == self._key()]

    def _live(self, run: wf.Run) -> _Job | None:
        """This window's running job of ``run``, if any."""
        return next((j for j in self._jobs_of_entry() if j.run is not None and j.run.id == run.id
                     and j.handle is not None and j.handle.running), None)

    def load_entry(self, entry_id: int | None) -> None:
        self._runs: list[wf.Run] = []
        self._inputs = None
        if entry_id is None:
            self.image_info.setText("No entry selected.")
            self.generator_info.setText("")
        else:
            self._inputs = wf.inputs(self.library, entry_id)
            chosen = self._chosen_image()
            if self._inputs.ready:
                self.image_info.setText(f"Training image: <b>{Path(self._inputs.images[0]).name}</b> "
                                        "(from the Inpaint step)")
            elif chosen is not None:
                self.image_info.setText(f"Training image (chosen for a quick try): <b>{chosen.name}</b>")
            else:
                self.image_info.setText(f"<b>{self._inputs.reason}</b>. An image file can still be chosen "
                                        "for a quick try.")
            mine = {j.run.id for j in self.active if j.run is not None and j.key() == self._key()}
            wf.recover_runs(self.library, entry_id, skip=mine)
            self._runs = wf.runs(self.library, entry_id)
            info = wf.generator_info(self.library, entry_id)
            self.generator_info.setText(f"This entry's generator: <b>{info['text']}</b>" if info else
                                        "This entry has no trained generator yet.")
        self._fill_runs()
        self._show_selected()
        self._refresh_queue()
        self._update_buttons()
        self._update_estimate()

    def _fill_runs(self) -> None:
        self.runs_list.blockSignals(True)
        self.runs_list.clear()
        for run in self._runs:
            item = QListWidgetItem(self._run_label(run))
            item.setData(Qt.ItemDataRole.UserRole, run.id)
            self.runs_list.addItem(item)
        ids = [r.id for r in self._runs]
        sel = self._selected[1] if self._selected and self._selected[0] == self._key() else None
        if sel not in ids:
            live = next((r.id for r in self._runs if self._live(r)), None)
            sel = live if live is not None else (ids[-1] if ids else None)
        if sel is not None:
            self.runs_list.setCurrentRow(ids.index(sel))
        self.runs_list.blockSignals(False)

    def _run_label(self, run: wf.Run) -> str:
        job = self._live(run)
        if job is not None and job.last is not None:
            return f"run {run.number} · running · {job.last.step} it of {job.last.total}"
        return run.label

    def selected_run(self) -> wf.Run | None:
        row = self.runs_list.currentRow()
        if row < 0 or row >= len(self._runs):
            return None
        return self._runs[row]

    def _run_picked(self, row: int) -> None:
        run = self._runs[row] if 0 <= row < len(self._runs) else None
        self._selected = (self._key(), run.id) if run is not None else None
        self._show_selected()
        self._update_buttons()

    def _show_selected(self) -> None:
        """The selected run's own curves and log; live progress only while it trains here."""
        run = self.selected_run()
        self.loss_plot.clear()
        for step, scalars in wf.curves(run) if run is not None else ():
            self.loss_plot.add_point(step, scalars)
        self._show_convergence(run)
        self.log_view.setPlainText(wf.log_text(run) if run is not None else "")
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())
        job = self._live(run) if run is not None else None
        if job is not None and job.last is not None:
            self._show_progress(job, job.last)
            return
        # this window's latest, else what the run folder keeps (a run trained before a restart)
        images = (self._slices.get((str(self.library.root), run.id)) or wf.sample_slices(run)) if run is not None else {}
        for k, lab in self.slice_labels.items():
            if k in images:
                self._show_slice(k, images[k])
            else:
                lab.clear()
                lab.setText("—")
        self.eta_label.setText("")
        if run is None:
            self.iter_label.setText("Not training.")
            self.progress.setValue(0)
            return
        self.progress.setRange(0, max(run.total, 1))
        # a run that converged is done before its total: a full bar
        self.progress.setValue(run.total if run.status == "done" else run.iteration)
        self.iter_label.setText(self._run_state(run))

    # -- convergence ----------------------------------------------------------------------
    @staticmethod
    def _run_json(run: wf.Run) -> dict:
        from ...core.slicegan.train import read_run

        try:
            return read_run(run.out)
        except MicrolibError:
            return {}

    @staticmethod
    def _run_setting(run: wf.Run, state: dict, key: str, default=None):
        """A setting of ``run``: its run.json's preset, else its parameters, else its network's preset."""
        stored = state.get("preset") or {}
        if key in stored:
            return stored[key]
        if run.params.get(key) is not None:
            return run.params[key]
        try:
            return getattr(presets_mod.get_preset(run.params.get("preset", "microlib")), key, default)
        except MicrolibError:
            return default

    def _run_convergence_settings(self, run: wf.Run, state: dict) -> tuple[bool, float | None, int]:
        """(checks convergence, target, first iteration that counts) of ``run``."""
        tol = self._run_setting(run, state, "converge_tol")
        return (bool(self._run_setting(run, state, "converge", False)), None if tol is None else float(tol),
                int(self._run_setting(run, state, "converge_min_iters", 0) or 0))

    def _show_convergence(self, run: wf.Run | None) -> None:
        """The selected run's convergence checks, from its curves file and run.json (never a kept copy)."""
        self.conv_plot.clear()
        if run is None:
            self.conv_plot.set_tolerance(None)
            self.conv_status.setText("")
            return
        points = wf.curves(run)
        for step, scalars in points:
            self.conv_plot.add_point(step, scalars)
        state = self._run_json(run)
        enabled, tol, min_iters = self._run_convergence_settings(run, state)
        self.conv_plot.set_tolerance(tol)
        # run.json's best (the saved generator's) once written; with no checks it is just the last iteration
        best = state.get("best_iteration") if state.get("convergence") else None
        self.conv_plot.set_best(best if best is not None else best_check(points, min_iters))
        record = {**state, "plateau": self._run_setting(run, state, "converge_plateau")}
        self.conv_status.setText(convergence_text(points, tol, record, enabled, run.status == "done"))

    def _live_convergence(self, job: _Job, ev: Progress) -> None:
        """A progress event of the run on screen: its check (if it carries one) on the plot and status line."""
        msg = ev.message or ""
        stopped = re.match(r"(converged|stopped) at iteration \d+", msg)  # the last event of a run that stops
        if not self.conv_plot.add_point(ev.step, ev.scalars or {}) and stopped is None:
            return
        _, tol, min_iters = self._run_convergence_settings(job.run, {})
        self.conv_plot.set_best(best_check(self.conv_plot.checks(), min_iters))
        if stopped is not None:
            self.conv_status.setText(msg[:1].upper() + msg[1:] + ".")
        else:
            self.conv_status.setText(convergence_text([(ev.step, ev.scalars)], tol, {}, True, False))

    @staticmethod
    def _run_state(run: wf.Run) -> str:
        if run.status == "running":
            return f"Run {run.number}: training (iteration {run.iteration} of {run.total})…"
        if run.status == "done" and run.iteration < run.total:
            return f"Run {run.number}: done, {run.iteration} iterations (converged; {run.total} asked for)."
        if run.status == "done":
            return f"Run {run.number}: done, {run.iteration} iterations."
        text = f"Run {run.number}: {run.status} at iteration {run.iteration} of {run.total}"
        if run.message:
            text += f" — {run.message}"
        if run.resumable:
            text += ". Its checkpoint is kept: Resume continues it"
            text += ", or use its generator." if run.has_generator else "."
        return text

    def _refresh_queue(self) -> None:
        self.queue_list.clear()
        for j in self.active:
            if j.handle is not None and j.handle.running:
                self.queue_list.addItem(f"▶ {j.name} (training)")
            elif j.handle is not None and j.handle.queued:
                self.queue_list.addItem(f"… {j.name} (queued)")

    def _update_buttons(self) -> None:
        eid = self.entry_id
        busy = bool(self._jobs_of_entry()) if eid is not None else False
        if self.aniso_check.isChecked():
            have_image = all(p is not None for p in self.aniso_paths)
        else:
            have_image = bool(self._inputs and self._inputs.ready) or self._chosen_image() is not None
        can_train = eid is not None and have_image
        self.start_btn.setEnabled(can_train and not busy)
        self.queue_btn.setEnabled(can_train and not busy)
        self.stop_btn.setEnabled(busy)
        run = self.selected_run()
        self.resume_btn.setEnabled(not busy and run is not None and run.resumable)
        self.publish_btn.setEnabled(not busy and run is not None and run.status != "running"
                                    and run.has_generator and not self._is_published(run))

    def _is_published(self, run: wf.Run) -> bool:
        info = wf.generator_info(self.library, run.entry_id)
        return bool(info and info.get("run_id") == run.id and info.get("iteration") == run.iteration)

    # -- start / resume / stop ----------------------------------------------------------
    def _training_images(self) -> list[str]:
        if self.aniso_check.isChecked():
            if any(p is None for p in self.aniso_paths):
                raise MicrolibError("anisotropic mode needs three images (slices perpendicular to x, y and z)")
            return [str(p) for p in self.aniso_paths]
        if self._inputs is not None and self._inputs.ready:
            return list(self._inputs.images)
        chosen = self._chosen_image()
        if chosen is None:
            raise MicrolibError((self._inputs.reason if self._inputs else "no training image")
                                + ", or choose an image file")
        return [str(chosen)]

    def start(self) -> _Job | None:
        """Queue training of the current entry (starts at once when nothing else trains)."""
        if self.entry_id is None:
            self.show_error("Select an entry first.")
            return None
        if self._jobs_of_entry():
            self.show_error("This entry is already queued or training.")
            return None
        try:
            inp = wf.inputs(self.library, self.entry_id)
            params = wf.run_params(inp, images=self._training_images(), preset=self.preset_combo.currentData(),
                                   iters=self.iters_spin.value(), device=self.device_combo.currentData(),
                                   seed=self.seed_spin.value(), imtype=self.type_combo.currentData(),
                                   augment=self.augment_check.isChecked(),
                                   converge=self.converge_check.isChecked(), g_layers=self._chosen_layers(),
                                   **self.overrides)
        except MicrolibError as exc:
            self.show_error(str(exc))
            return None
        if not self._confirm_long_cpu_run():
            return None
        return self._queue(_Job(self.library, self.entry_id, self.library.get_entry(self.entry_id).name, params, None))

    def _chosen_layers(self) -> str | None:
        """The generator layers picked, when they are not the preset's own (None: the preset's)."""
        chosen = self.layers_combo.currentData()
        return None if chosen == presets_mod.get_preset(self.preset_combo.currentData()).upsampling else chosen

    def resume(self, run: wf.Run | None = None) -> _Job | None:
        """Continue the selected stopped run (or ``run``) from its checkpoint: the same run goes on."""
        run = run or self.selected_run()
        if run is None or not run.resumable:
            self.show_error("Nothing to resume: select a stopped run that has a checkpoint.")
            return None
        if self._jobs_of_entry():
            self.show_error("This entry is already queued or training.")
            return None
        # more iterations than the run's own total in the form: the run goes on to that many
        iters = self.iters_spin.value() if self.iters_spin.value() > run.total else None
        return self._queue(_Job(self.library, self.entry_id, self.library.get_entry(self.entry_id).name, None,
                                run.id, iters))

    def _queue(self, job: _Job) -> _Job:
        self.active.append(job)
        self.last_finished = None
        h = self.ctx.jobs.start(wf.job, {}, process=True, queue=QUEUE, prepare=lambda _h, j=job: self._prepare(j),
                                tag=job)
        job.handle = h
        h.progress.connect(lambda ev, j=job: self._on_progress(j, ev))
        h.finished.connect(lambda ev, j=job: self._on_finished(j, ev))
        h.started.connect(self.changed)
        if job.handle.done and job in self.active:  # it could not start: already finished
            self._on_finished(job, job.handle.result)
        self.reload()
        return job

    def _prepare(self, job: _Job) -> dict:
        """When the job's turn comes: the run's folder and row (a new run, or the stopped one again)."""
        lib = job.library
        if job.resume_id is not None:
            run = wf.get_run(lib, job.entry_id, job.resume_id)
            if run is None:
                raise MicrolibError("the run to resume is no longer in the library")
            job.run = wf.resume(lib, run, iters=job.resume_iters)
        else:
            job.run = wf.new_run(lib, job.entry_id, job.params)
        if job.key() == self._key():
            self._selected = (job.key(), job.run.id)  # show the run that starts
        return wf.job_params(job.run)

    def stop(self) -> None:
        """Stop this entry's training (it keeps its last checkpoint) or drop it from the queue."""
        for job in self._jobs_of_entry():
            job.handle.cancel()
            if job.handle.running:
                self.iter_label.setText("Stopping… (saving a checkpoint)")
                self.eta_label.setText("")
        self.ctx.jobs.poll()  # a queued job is dropped now

    @property
    def running(self) -> bool:
        return any(not j.handle.done for j in self.active if j.handle is not None)

    # -- job events ----------------------------------------------------------------------------
    def _on_progress(self, job: _Job, ev: Progress) -> None:
        job.last = ev
        if ev.images and job.run is not None:
            self._slices[(str(job.library.root), job.run.id)] = ev.images
        run = self.selected_run()
        if job.run is None or run is None or job.key() != self._key() or run.id != job.run.id:
            return  # another run is on screen: its own curves stay
        self._show_progress(job, ev)
        self.loss_plot.add_point(ev.step, ev.scalars)
        self._live_convergence(job, ev)
        row = self.runs_list.currentRow()
        if row >= 0:
            self.runs_list.item(row).setText(self._run_label(run))
        if ev.message:
            self.log_view.appendPlainText(ev.message + " " + " ".join(
                f"{k}={v:.4g}" for k, v in ev.scalars.items()))

    def _show_progress(self, job: _Job, ev: Progress) -> None:
        self.iter_label.setText(f"{job.name}, run {job.run.number}: iteration {ev.step} / {ev.total}")
        show_progress(self.progress, ev)
        spi = ev.scalars.get("s_per_iter")
        eta = spi * (ev.total - ev.step) if spi and np.isfinite(spi) else ev.eta_s
        self.eta_label.setText(f"ETA {fmt_duration(eta)}" + (f" · {spi:.2f} s/iteration" if spi else ""))
        for k, img in ev.images.items():
            if k in self.slice_labels:
                self._show_slice(k, img)

    def _show_slice(self, key: str, img: np.ndarray) -> None:
        from PySide6.QtGui import QPixmap

        from ..widgets.array_image import to_qimage

        pix = QPixmap.fromImage(to_qimage(np.ascontiguousarray(img)))
        self.slice_labels[key].setPixmap(pix.scaled(128, 128, Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.FastTransformation))

    def _on_finished(self, job: _Job, ev: Finished) -> None:
        if job not in self.active:
            return
        self.active.remove(job)
        self.last_finished = ev
        run = None
        if job.run is not None:
            try:
                run = wf.finish(job.library, job.entry_id, job.run, ev)
            except MicrolibError as exc:
                self.show_error(f"Training of {job.name}: {exc}")
        if job.key() == self._key():
            self.eta_label.setText("")
        self.changed()
        self.reload()  # the queue and buttons, also when nothing in the store changed
        if ev.state == FAILED:
            msg = run.message if run is not None and run.message else ev.error
            self.show_error(f"Training of {job.name} failed: {msg}")

    # -- a run's generator --------------------------------------------------------------------
    def publish_selected(self, run: wf.Run | None = None) -> bool:
        """Make the selected run's generator the entry's, asking first when that replaces one."""
        run = run or self.selected_run()
        if run is None or not run.has_generator:
            self.show_error("Select a run that has a generator (it saves one at each checkpoint).")
            return False
        current = wf.generator_info(self.library, run.entry_id)
        mine = f"run {run.number}, " + (f"{run.iteration} iterations" if run.iteration >= run.total else
                                        f"stopped at iteration {run.iteration} of {run.total}")
        if current is not None and not self._ask_replace(current["text"], mine):
            return False
        try:
            wf.publish(self.library, run.entry_id, run)
        except MicrolibError as exc:
            self.show_error(str(exc))
            return False
        self.changed()
        return True

    def _ask_replace(self, current: str, new: str) -> bool:
        box = QMessageBox(self)
        box.setObjectName("replaceGenerator")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Replace the entry's generator?")
        box.setText(f"This entry already has a generator ({current}). Replace it with {new}?")
        box.setInformativeText("Inspect and Export are then redone from the new generator.")
        replace = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is replace

    # -- closing ------------------------------------------------------------------------------
    def ask_close(self) -> str:
        """Ask what to do with running training: ``"stop"``, ``"keep"`` or ``"cancel"``."""
        box = QMessageBox(self)
        box.setObjectName("closeTrainingBox")
        box.setWindowTitle("Training is running")
        box.setText("Training is still running. Stop it (the last checkpoint is kept, Resume continues "
                    "later) or keep it running after the window closes?")
        stop = box.addButton("Stop training", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return "stop" if clicked is stop else "keep" if clicked is keep else "cancel"

    def confirm_close(self) -> bool:
        """Called by the main window before closing: False vetoes the close."""
        if not self.running:
            return True
        answer = self.ask_close()
        if answer == "cancel":
            return False
        for job in list(self.active):
            if job.handle.queued:
                job.handle.cancel()
        # "keep": the worker process outlives the app (the main window exits without
        # waiting for it); the next start finds the run ended and records it (recover_runs).
        self.detach_on_exit = answer == "keep"
        if answer == "stop":
            for job in list(self.active):
                if job.handle.running:
                    job.handle.cancel()
                    job.handle.wait(timeout=60)  # emits finished: the run is recorded as stopped
        return True

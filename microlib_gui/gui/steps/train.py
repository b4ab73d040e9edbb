"""The Train step: SliceGAN training in its own process, with live progress.

Training runs as ``ProcessJob("microlib_gui.core.slicegan.train:train_job")`` so a
crash or out-of-memory there never takes the GUI down; several entries can be
queued (:class:`~microlib_gui.core.jobs.JobQueue`). Each run has a folder
``microstructureNNN/train/run-DATE-TIME-NNN/`` (checkpoint, ``run.json``, ``train.log``) and a
row in the library's runs table. When a run stops or ends, its generator is
published into the entry as ``_Gen.pt``/``_params.data``/``_Disc.pt``
(:func:`microlib_gui.core.export.publish_training`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
    QListWidgetItem, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QSplitter, QVBoxLayout,
    QWidget,
)

from ...core.errors import MicrolibError
from ...core.jobs import fmt_duration
from ...core.sysinfo import detect_devices
from ...core.jobs import CANCELLED, DONE, FAILED, Finished, JobQueue, ProcessJob, Progress
from ..widgets.loss_plot import LossPlot
from ..widgets.progress import show_progress
from .base import StepPanel

JOB_TARGET = "microlib_gui.core.slicegan.train:train_job"
RUN_KIND = "train"


#: CPU runs estimated longer than this get advice in the panel and a question before they start.
LONG_CPU_RUN_S = 12 * 3600

#: Measured seconds per generator iteration (docs/benchmarks.md): on one H100, and on the CPU
#: as core-seconds (2-core development machine, shared with other work), scaled by the cores here.
MEASURED_SPEED = {"microlib": {"cuda": 0.047, "cpu_core_s": 240.0}, "tiny": {"cuda": 0.01, "cpu_core_s": 0.8}}


def estimate_seconds(preset: str, iters: int, cuda: bool, measured_s_per_iter: float | None = None) -> float | None:
    """Rough time for ``iters`` iterations: this entry's measured speed if known, else our measured
    speeds (H100; CPU core-seconds divided by the cores here), else from the network's FLOPs."""
    if measured_s_per_iter:
        return measured_s_per_iter * iters
    cores = max(1, min(os.cpu_count() or 1, 32))
    known = MEASURED_SPEED.get(preset)
    if known:
        return iters * (known["cuda"] if cuda else known["cpu_core_s"] / cores)
    try:
        from ...core.slicegan.presets import get_preset

        flops = get_preset(preset).iteration_flops(2)
        rate = 240e12 if cuda else 40e9 * cores  # sustained FLOP/s measured with the microlib preset
        return flops * iters / rate
    except Exception:  # noqa: BLE001
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


class Panel(StepPanel):
    step = "train"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.detach_on_exit = False  # set by "Keep running" when the app closes
        self.queue = JobQueue()
        #: label -> {"entry_id", "run_id", "out", "library"} for queued and running jobs
        self.jobs: dict[str, dict] = {}
        #: extra train() parameters (e.g. log_every=1 for quick looks); empty by default
        self.overrides: dict = {}
        self.image_path: Path | None = None
        self.events_seen = 0
        self.last_finished: Finished | None = None
        self.cuda, self.device_text = detect_devices()
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        self.image_info = QLabel()
        self.image_info.setObjectName("trainImageInfo")
        self.image_info.setWordWrap(True)
        self.choose_btn = QPushButton("Choose an image file for a quick try…")
        self.choose_btn.clicked.connect(lambda: self.choose_image())

        settings = QGroupBox("Settings (MicroLib's defaults)")
        f = QFormLayout(settings)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("preset")
        self.preset_combo.addItem("MicroLib (paper network)", "microlib")
        self.preset_combo.addItem("Tiny (quick CPU try)", "tiny")
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        f.addRow("Network", self.preset_combo)
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
        self.aniso_check = QCheckBox("Anisotropic: three images (slices ⟂ x, y, z)")
        self.aniso_check.setObjectName("anisotropic")
        self.aniso_check.toggled.connect(self._aniso_toggled)
        f.addRow(self.aniso_check)
        self.augment_check = QCheckBox("Show the critic flipped and rotated patches (isotropic)")
        self.augment_check.setObjectName("augment")
        self.augment_check.setToolTip("Each real patch is shown under a random flip or transpose: lower 3D surface-area "
                                      "error in our measurements (docs/slicegan.md). Off: the published patches.")
        f.addRow(self.augment_check)
        self.aniso_paths: list[Path | None] = [None, None, None]
        self.aniso_btns = []
        for i, ax in enumerate("xyz"):
            b = QPushButton(f"Image ⟂ {ax}…")
            b.clicked.connect(lambda _c=False, i=i: self.choose_aniso(i))
            b.setVisible(False)
            self.aniso_btns.append(b)
            f.addRow(b)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimate")
        self.estimate_label.setWordWrap(True)
        f.addRow("Estimate", self.estimate_label)

        self.start_btn = QPushButton("Start")
        self.start_btn.setObjectName("startTraining")
        self.start_btn.clicked.connect(lambda: self.start())
        self.queue_btn = QPushButton("Add to queue")
        self.queue_btn.clicked.connect(lambda: self.start())
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setObjectName("stopTraining")
        self.stop_btn.setToolTip("Stop now, keeping the last checkpoint")
        self.stop_btn.clicked.connect(self.stop)
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setObjectName("resumeTraining")
        self.resume_btn.clicked.connect(lambda: self.start(resume=True))
        buttons = QHBoxLayout()
        for b in (self.start_btn, self.queue_btn, self.stop_btn, self.resume_btn):
            buttons.addWidget(b)

        self.queue_list = QListWidget()
        self.queue_list.setObjectName("trainQueue")
        self.queue_list.setMaximumHeight(80)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(self.image_info)
        lv.addWidget(self.choose_btn)
        lv.addWidget(settings)
        lv.addLayout(buttons)
        lv.addWidget(QLabel("<b>Queue</b>"))
        lv.addWidget(self.queue_list)
        lv.addWidget(QLabel("<b>Runs of this entry</b>"))
        self.runs_list = QListWidget()
        self.runs_list.setObjectName("runsList")
        self.runs_list.currentRowChanged.connect(self._show_run_log)
        lv.addWidget(self.runs_list, 1)

        # live view
        self.iter_label = QLabel("Not training.")
        self.iter_label.setObjectName("iterationLabel")
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.eta_label = QLabel()
        self.loss_plot = LossPlot()
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
        rv.addWidget(self.loss_plot, 2)
        rv.addLayout(slices)
        rv.addWidget(self.log_view, 1)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<h2>Train a 3D generator (SliceGAN)</h2>"))
        lay.addWidget(split, 1)
        self._preset_changed()
        self._update_buttons()

    # -- settings ------------------------------------------------------------------
    def _preset_changed(self, *_):
        from ...core.slicegan.presets import get_preset

        p = get_preset(self.preset_combo.currentData())
        self.iters_spin.setValue(p.iters)
        self.augment_check.setChecked(p.augment)
        self._update_estimate()

    def _estimate(self, preset: str) -> tuple[float | None, bool, float | None]:
        """(seconds, on the GPU, measured s/iteration or None) for the current settings."""
        cuda = self.cuda and self.device_combo.currentData() in ("auto", "cuda")
        measured = self._measured_speed()
        return estimate_seconds(preset, self.iters_spin.value(), cuda, measured), cuda, measured

    def _confirm_long_cpu_run(self, preset: str) -> bool:
        """Ask before a CPU run estimated at more than LONG_CPU_RUN_S (MicroLib's network on a laptop)."""
        est, cuda, _ = self._estimate(preset)
        if cuda or est is None or est <= LONG_CPU_RUN_S:
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

    def _measured_speed(self) -> float | None:
        """s/iteration of the latest finished run with the same preset and device kind."""
        if self.entry_id is None:
            return None
        preset = self.preset_combo.currentData()
        for r in reversed(self.library.runs(kind=RUN_KIND)):
            t = r.get("timings") or {}
            if r["params"].get("preset") == preset and t.get("s_per_iter"):
                return float(t["s_per_iter"])
        return None

    def _update_estimate(self, *_):
        est, cuda, measured = self._estimate(self.preset_combo.currentData())
        how = "from an earlier run" if measured else "rough: from our measurements on an H100 / a 2-core CPU"
        text = f"about {fmt_duration(est)} on the {'GPU' if cuda else 'CPU'} ({how})"
        if est is not None and not cuda and est > LONG_CPU_RUN_S:
            text += ". On a CPU, consider fewer iterations, or a GPU machine (README; `microlib build` on a cluster)"
        self.estimate_label.setText(text)

    def _aniso_toggled(self, on: bool) -> None:
        for b in self.aniso_btns:
            b.setVisible(on)
        self.augment_check.setEnabled(not on)  # three images keep their published orientation

    def choose_aniso(self, i: int, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, f"Training image ⟂ {'xyz'[i]}", "",
                                                  "Images (*.png *.tif *.tiff *.jpg)")
        if path:
            self.aniso_paths[i] = Path(path)
            self.aniso_btns[i].setText(f"⟂ {'xyz'[i]}: {Path(path).name}")

    def choose_image(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Training image (segmented)", "",
                                                  "Images (*.png *.tif *.tiff *.jpg)")
        if path:
            self.image_path = Path(path)
            self.image_info.setText(f"Training image (chosen for a quick try): <b>{self.image_path.name}</b>")
            self._update_buttons()

    # -- entry ---------------------------------------------------------------------
    def load_entry(self, entry_id: int | None) -> None:
        self.image_path = None
        if entry_id is None:
            self.image_info.setText("No entry selected.")
        else:
            p = self.library.entry_file(entry_id, "_inpainted.png")
            if p.exists():
                self.image_path = p
                self.image_info.setText(f"Training image: <b>{p.name}</b> (from the Inpaint step)")
            else:
                self.image_info.setText("<b>The Inpaint step must be done first</b>: this entry has no "
                                        "inpainted training image yet. You can still choose an image file "
                                        "for a quick try.")
            self.recover_runs(entry_id)
        self.refresh_runs()
        self._update_buttons()
        self._update_estimate()

    def activated(self) -> None:
        self.refresh_runs()

    def _training_images(self) -> list[str]:
        if self.aniso_check.isChecked():
            if any(p is None for p in self.aniso_paths):
                raise MicrolibError("anisotropic mode needs three images (slices perpendicular to x, y and z)")
            return [str(p) for p in self.aniso_paths]
        if self.image_path is None:
            raise MicrolibError("no training image: do the Inpaint step first, or choose an image file")
        return [str(self.image_path)]

    # -- start / stop / resume -------------------------------------------------------------
    def start(self, resume: bool = False) -> str | None:
        """Queue training of the current entry (starts at once when nothing else runs)."""
        if self.entry_id is None:
            self.show_error("Select an entry first.")
            return None
        eid = self.entry_id
        if any(j["entry_id"] == eid for j in self.jobs.values()):
            self.show_error("This entry is already queued or training.")
            return None
        lib = self.library
        try:
            if resume:
                run = self.latest_run(eid)
                if run is None or not (Path(run["params"]["out"]) / "checkpoint.pt").exists():
                    raise MicrolibError("nothing to resume: this entry has no stopped run with a checkpoint")
                out = Path(run["params"]["out"])
                images = run["params"]["images"]
                preset = run["params"]["preset"]
            else:
                images = self._training_images()
                preset = self.preset_combo.currentData()
                out = None
        except MicrolibError as exc:
            self.show_error(str(exc))
            return None
        if not resume and not self._confirm_long_cpu_run(preset):
            return None
        params = {"images": images, "preset": preset, "iters": self.iters_spin.value(),
                  "device": self.device_combo.currentData(), "seed": self.seed_spin.value(),
                  "imtype": self.type_combo.currentData(), "resume": resume,
                  "augment": self.augment_check.isChecked(),  # a resumed run keeps its own setting
                  **self.overrides}
        label = f"{lib.root}:{eid}:{time.time():.6f}"
        info = {"entry_id": eid, "library": lib, "params": params, "out": out, "run_id": None,
                "name": lib.get_entry(eid).name}
        self.jobs[label] = info

        def factory(info=info, params=params):
            # Called when the job's turn comes: the run folder and record are made then.
            lib = info["library"]
            if info["out"] is None:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                info["out"] = lib.entry_dir(info["entry_id"]) / "train" / f"run-{stamp}-{os.getpid() % 1000:03d}"
            out = Path(info["out"])
            out.mkdir(parents=True, exist_ok=True)
            info["log"] = out / "train.log"
            full = {**params, "out": str(out)}
            info["run_id"] = lib.start_run(info["entry_id"], RUN_KIND, full, seed=params["seed"],
                                           log=str(info["log"]))
            self._log(info, f"{'resumed' if params['resume'] else 'started'} run {info['run_id']} "
                            f"({params['preset']}, {params['iters']} iterations, device {params['device']}, "
                            f"seed {params['seed']})")
            job = ProcessJob(JOB_TARGET, full)
            info["job"] = job
            return job

        def started_factory(factory=factory, info=info):
            job = factory()
            job.start()
            # The pid lets a reopened app tell a run still going in the background from a finished one.
            (Path(info["out"]) / "worker.pid").write_text(str(job.pid))
            job.start = lambda: job  # JobQueue calls start() on what the factory returns
            return job

        self.queue.add(label, started_factory)
        if not resume:  # a resumed run continues the same curves
            self.loss_plot.clear()
        self.events_seen = 0
        self.last_finished = None
        self._refresh_queue()
        self.poll()
        return label

    def stop(self) -> None:
        """Stop the running job (keeps its last checkpoint) or drop this entry from the queue."""
        cur = self.queue.current
        if cur is not None and self.jobs.get(cur[0], {}).get("entry_id") == self.entry_id:
            cur[1].cancel()
            self.iter_label.setText("Stopping… (saving a checkpoint)")
            return
        for label, _f in list(self.queue.pending):
            if self.jobs.get(label, {}).get("entry_id") == self.entry_id:
                self.queue.pending = [(lb, f) for lb, f in self.queue.pending if lb != label]
                self.jobs.pop(label, None)
        if cur is not None and self.entry_id is None:
            cur[1].cancel()
        self._refresh_queue()

    @property
    def running(self) -> bool:
        return self.queue.current is not None or bool(self.queue.pending)

    # -- polling -------------------------------------------------------------------------
    def poll(self) -> None:
        try:
            batches = self.queue.poll()
        except Exception as exc:  # noqa: BLE001 - a worker that cannot start must not kill the GUI
            self.show_error(f"training could not start: {' '.join(str(exc).split())[:200]}")
            if self.queue.current is not None:
                self.jobs.pop(self.queue.current[0], None)
                self.queue.current = None
            return
        for label, events in batches:
            info = self.jobs.get(label)
            if info is None:
                continue
            for ev in events:
                if isinstance(ev, Progress):
                    self._on_progress(info, ev)
                elif isinstance(ev, Finished):
                    self._on_finished(label, info, ev)
        if batches or self.queue.current is not None:
            self._refresh_queue()
            self._update_buttons()

    def _on_progress(self, info: dict, ev: Progress) -> None:
        self.events_seen += 1
        self.iter_label.setText(f"{info['name']}: iteration {ev.step} / {ev.total}")
        show_progress(self.progress, ev)
        spi = ev.scalars.get("s_per_iter")
        eta = spi * (ev.total - ev.step) if spi and np.isfinite(spi) else ev.eta_s
        self.eta_label.setText(f"ETA {fmt_duration(eta)}" + (f" · {spi:.2f} s/iteration" if spi else ""))
        self.loss_plot.add_point(ev.step, ev.scalars)
        for k, img in ev.images.items():
            if k in self.slice_labels:
                self._show_slice(k, img)
        self._log(info, f"iteration {ev.step}/{ev.total} " + " ".join(
            f"{k}={v:.4g}" for k, v in ev.scalars.items()))

    def _show_slice(self, key: str, img: np.ndarray) -> None:
        from PySide6.QtGui import QPixmap

        from ..widgets.array_image import to_qimage

        pix = QPixmap.fromImage(to_qimage(np.ascontiguousarray(img)))
        self.slice_labels[key].setPixmap(pix.scaled(128, 128, Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.FastTransformation))

    def _on_finished(self, label: str, info: dict, ev: Finished) -> None:
        from ...core.export import publish_training

        self.last_finished = ev
        self.jobs.pop(label, None)
        lib, eid, run_id = info["library"], info["entry_id"], info.get("run_id")
        res = ev.result if isinstance(ev.result, dict) else {}
        status = {DONE: "done", CANCELLED: "stopped", FAILED: "failed"}[ev.state]
        files = []
        msg = ev.error or ""
        try:
            if ev.state in (DONE, CANCELLED) and info.get("out") and any(Path(info["out"]).glob("*_Gen.pt")):
                files = [p.name for p in publish_training(lib, eid, info["out"], run_id=run_id)]
                if ev.state == DONE:
                    lib.set_step_status(eid, "train", "done")
                    lib.mark_later_steps_stale(eid, "train")
        except MicrolibError as exc:
            msg = str(exc)
        if ev.state == FAILED and "out of memory" in msg.lower():
            msg = ("out of memory while training: try the Tiny network or a smaller batch, "
                   "or train on the CPU (Device → CPU)")
        timings = {"seconds": res.get("seconds"), "s_per_iter": res.get("s_per_iter"),
                   "iteration": res.get("iteration")}
        if run_id is not None:
            lib.finish_run(run_id, status, timings={k: v for k, v in timings.items() if v is not None},
                           files=files, message=msg or None)
        self._log(info, f"{status}" + (f": {msg}" if msg else "") + (f"; published {', '.join(files)}" if files else ""))
        if ev.details:
            self._log(info, ev.details)
        self.iter_label.setText(f"{info['name']}: training {status}" + (f" — {msg}" if msg else ""))
        if eid == self.ctx.entry_id or self.ctx.entry_id is None:
            self.refresh_runs()
        self.ctx.notify_updated(eid)
        self._update_estimate()  # now from the measured speed
        if ev.state == FAILED:
            self.show_error(f"Training of {info['name']} failed: {msg}")

    def _log(self, info: dict, line: str) -> None:
        text = time.strftime("%H:%M:%S ") + line
        log = info.get("log")
        if log is not None:
            try:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
            except OSError:
                pass
        if info.get("entry_id") == self.entry_id:
            self.log_view.appendPlainText(text)

    # -- runs -------------------------------------------------------------------------------
    def latest_run(self, entry_id: int) -> dict | None:
        runs = [r for r in self.library.runs(entry_id, kind=RUN_KIND) if r["params"].get("out")]
        return runs[-1] if runs else None

    def recover_runs(self, entry_id: int) -> None:
        """Runs left 'running' by an app that was closed: still alive, or finished while we were away?"""
        mine = {j.get("run_id") for j in self.jobs.values()}
        for r in self.library.runs(entry_id, kind=RUN_KIND):
            if r["status"] != "running" or r["id"] in mine:
                continue
            out = Path(r["params"].get("out", ""))
            pid_file = out / "worker.pid"
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                pid = None
            if pid is not None and _pid_alive(pid):
                continue  # still training in the background
            try:
                state = json.loads((out / "run.json").read_text())
            except (OSError, ValueError):
                state = {}
            it, total = state.get("iteration", 0), state.get("preset", {}).get("iters")
            status = "done" if total and it >= total else "stopped"
            files = []
            if any(out.glob("*_Gen.pt")):
                from ...core.export import publish_training

                try:
                    files = [p.name for p in publish_training(self.library, entry_id, out, run_id=r["id"])]
                except MicrolibError:
                    pass
            self.library.finish_run(r["id"], status, timings={"iteration": it}, files=files,
                                    message="finished while the app was closed")

    def refresh_runs(self) -> None:
        self.runs_list.clear()
        if self.entry_id is None:
            return
        for r in self.library.runs(self.entry_id, kind=RUN_KIND):
            started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"]))
            it = (r.get("timings") or {}).get("iteration")
            text = f"run {r['id']} · {r['status']} · {started}" + (f" · {it} it" if it else "")
            if r.get("message"):
                text += f" · {r['message']}"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, r["id"])
            self.runs_list.addItem(item)
        if self.runs_list.count():
            self.runs_list.setCurrentRow(self.runs_list.count() - 1)

    def _show_run_log(self, row: int) -> None:
        if row < 0 or self.entry_id is None:
            return
        rid = self.runs_list.item(row).data(Qt.ItemDataRole.UserRole)
        run = next((r for r in self.library.runs(self.entry_id, kind=RUN_KIND) if r["id"] == rid), None)
        text = ""
        if run and run.get("log"):
            try:
                text = Path(run["log"]).read_text(encoding="utf-8")
            except OSError:
                text = "(log not found)"
        self.log_view.setPlainText(text)

    def _refresh_queue(self) -> None:
        self.queue_list.clear()
        if self.queue.current is not None and self.queue.current[0] in self.jobs:
            self.queue_list.addItem(f"▶ {self.jobs[self.queue.current[0]]['name']} (training)")
        for label, _f in self.queue.pending:
            if label in self.jobs:
                self.queue_list.addItem(f"… {self.jobs[label]['name']} (queued)")

    def _update_buttons(self) -> None:
        eid = self.entry_id
        busy = any(j["entry_id"] == eid for j in self.jobs.values())
        can_train = eid is not None and (self.image_path is not None or self.aniso_check.isChecked())
        self.start_btn.setEnabled(can_train and not busy)
        self.queue_btn.setEnabled(can_train and not busy)
        self.stop_btn.setEnabled(busy)
        run = self.latest_run(eid) if eid is not None else None
        self.resume_btn.setEnabled(not busy and run is not None and run["status"] != "running"
                                   and (Path(run["params"]["out"]) / "checkpoint.pt").exists())

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
        self.queue.pending.clear()
        # "keep": the worker process outlives the app (the main window exits without
        # waiting for it); the next start finds the finished run and publishes it.
        self.detach_on_exit = answer == "keep"
        if answer == "stop" and self.queue.current is not None:
            label, job = self.queue.current
            job.cancel()
            fin = job.wait(timeout=60)
            if fin is not None and label in self.jobs:
                self._on_finished(label, self.jobs[label], fin)
        self.timer.stop()
        return True

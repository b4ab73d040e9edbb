"""The Inspect step: the generated volume in napari (embedded), Generate controls, statistics.

Generation runs in a background thread (:class:`~microlib_gui.core.jobs.ThreadJob`
around :func:`microlib_gui.core.export.generate_entry_volume`), tiled and streamed
to ``microstructureNNN.tif``; the volume is then opened memory-mapped, so large
volumes are shown lazily. The Stats tab holds the statistics view (2D image vs
3D volume) when that widget is available.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QTabWidget,
    QVBoxLayout, QWidget,
)

from ...core.errors import MicrolibError
from ...core.jobs import CANCELLED, DONE, Finished, Progress, ThreadJob
from ..widgets.napari_view import NapariView, open_volume_lazily
from ..widgets.progress import show_progress
from .base import StepPanel


class Panel(StepPanel):
    step = "inspect"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.job: ThreadJob | None = None
        self.stats_job: ThreadJob | None = None
        self.last_finished: Finished | None = None
        self.view = NapariView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("inspectTabs")
        self.tabs.addTab(self.view, "3D view")
        self.stats_view = self._make_stats_view()
        self.tabs.addTab(self.stats_view, "Stats")

        gen = QGroupBox("Generate")
        f = QFormLayout(gen)
        self.size_spin = QSpinBox()
        self.size_spin.setObjectName("genSize")
        self.size_spin.setRange(8, 4096)
        self.size_spin.setValue(128)
        self.size_spin.setSuffix(" voxels per side")
        f.addRow("Size", self.size_spin)
        per = QHBoxLayout()
        self.periodic = {}
        for ax in "xyz":
            c = QCheckBox(ax)
            c.setObjectName(f"periodic_{ax}")
            self.periodic[ax] = c
            per.addWidget(c)
        f.addRow("Periodic axes", per)
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("genSeed")
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        f.addRow("Seed", self.seed_spin)
        self.gen_btn = QPushButton("Generate")
        self.gen_btn.setObjectName("generate")
        self.gen_btn.clicked.connect(self.generate)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(lambda: self.job and self.job.cancel())
        row = QHBoxLayout()
        row.addWidget(self.gen_btn)
        row.addWidget(self.cancel_btn)
        f.addRow(row)
        self.progress = QProgressBar()
        self.progress.setObjectName("genProgress")
        f.addRow(self.progress)
        self.status = QLabel()
        self.status.setObjectName("inspectStatus")
        self.status.setWordWrap(True)
        self.stats_btn = QPushButton("Compute statistics")
        self.stats_btn.clicked.connect(self.compute_stats)
        f.addRow(self.stats_btn)

        side = QWidget()
        sv = QVBoxLayout(side)
        sv.addWidget(gen)
        sv.addWidget(self.status)  # outside the form: a wrapped label there gets one line's height
        sv.addStretch(1)
        side.setMaximumWidth(320)
        lay = QHBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(side)

        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.poll)
        self._update_buttons()

    def _make_stats_view(self) -> QWidget:
        try:
            from ..widgets.stats_view import StatsView
        except ImportError:
            w = QLabel("The statistics view is not available in this version.")
            w.setObjectName("statsUnavailable")
            return w
        return StatsView()

    # -- entry ------------------------------------------------------------------------
    def load_entry(self, entry_id: int | None) -> None:
        self.view.clear()
        self.view.set_training_image(None)
        self.status.setText("")
        if entry_id is None:
            self._update_buttons()
            return
        lib = self.library
        img = lib.entry_file(entry_id, "_inpainted.png")
        if img.exists():
            from ...core.images import load_image

            try:
                self.view.set_training_image(load_image(img).as_uint8())
            except MicrolibError:
                pass
        if lib.entry_file(entry_id, ".tif").exists():
            self.show_volume()
        elif lib.entry_file(entry_id, "_Gen.pt").exists():
            self.status.setText("Trained generator found: choose a size and Generate.")
        else:
            self.status.setText("No trained generator yet: do the Train step first.")
        self._update_buttons()

    def show_volume(self) -> None:
        from ...core.export import entry_vox_size

        eid = self.entry_id
        path = self.library.entry_file(eid, ".tif")
        try:
            vol = open_volume_lazily(path)
            self.view.set_volume(vol, name=path.stem, vox_size_um=entry_vox_size(self.library, eid))
        except MicrolibError as exc:
            self.show_error(str(exc))

    def _update_buttons(self) -> None:
        eid = self.entry_id
        has_gen = eid is not None and self.library.entry_file(eid, "_Gen.pt").exists()
        busy = self.job is not None and not self.job.done
        self.gen_btn.setEnabled(has_gen and not busy)
        self.cancel_btn.setEnabled(busy)
        has_vol = eid is not None and self.library.entry_file(eid, ".tif").exists()
        self.stats_btn.setEnabled(has_vol and hasattr(self.stats_view, "set_results")
                                  and self.library.entry_file(eid, "_inpainted.png").exists())

    # -- generate -------------------------------------------------------------------------
    def generate(self) -> None:
        from ...core.export import generate_entry_volume

        if self.entry_id is None:
            return
        periodic = tuple(self.periodic[a].isChecked() for a in "xyz")
        params = {"library_root": str(self.library.root), "entry_id": self.entry_id,
                  "size": self.size_spin.value(), "periodic": periodic, "seed": self.seed_spin.value()}
        self.view.clear()
        self.progress.setRange(0, 0)  # busy until the first block reports
        self.status.setText("Generating…")
        self.last_finished = None
        self.job = ThreadJob(generate_entry_volume, params).start()
        self._job_entry = self.entry_id
        self.timer.start()
        self._update_buttons()

    def compute_stats(self) -> None:
        eid = self.entry_id
        if eid is None:
            return
        self.status.setText("Computing statistics…")
        from ...core.report import entry_stats_job

        # Stored as _stats.json/_stats.png with provenance, so reports and builds reuse it.
        vol_path = self.library.entry_file(eid, ".tif")
        small = vol_path.exists() and vol_path.stat().st_size <= 128 ** 3 + 65536
        self._stats_entry = eid
        self.stats_job = ThreadJob(entry_stats_job, {"library_root": str(self.library.root), "entry_id": eid,
                                                     "tortuosity": small}).start()
        self.timer.start()

    def poll(self) -> None:
        if self.job is not None:
            for ev in self.job.poll():
                if isinstance(ev, Progress):
                    show_progress(self.progress, ev)
                    self.status.setText(f"Generating: {ev.message}")
                elif isinstance(ev, Finished):
                    self._generated(ev)
        if self.stats_job is not None:
            for ev in self.stats_job.poll():
                if isinstance(ev, Finished):
                    self.stats_job = None
                    if ev.state == DONE:
                        self.stats_view.set_results(ev.result)
                        self.tabs.setCurrentIndex(1)
                        self.status.setText("Statistics computed and saved with the entry.")
                        self.ctx.notify_updated(self._stats_entry)
                    elif ev.error:
                        self.show_error(ev.error)
        if (self.job is None or self.job.done) and self.stats_job is None:
            self.timer.stop()

    def _generated(self, ev: Finished) -> None:
        self.last_finished = ev
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ev.state == DONE else 0)
        eid = self._job_entry
        if ev.state == DONE:
            shape = ev.result.get("shape")
            secs = ev.result.get("seconds") or 0.0
            self.status.setText(f"Generated {' × '.join(map(str, shape or []))} voxels in {secs:.1f} s.")
            self.library.set_step_status(eid, "inspect", "done")
            self.library.mark_later_steps_stale(eid, "inspect")
            self.ctx.notify_updated(eid)
            if eid == self.entry_id:
                self.show_volume()
        elif ev.state == CANCELLED:
            self.status.setText("Generation cancelled.")
        else:
            self.status.setText(f"Generation failed: {ev.error}")
            self.show_error(ev.error or "generation failed")
        self._update_buttons()

"""The Inspect step: the generated volume in napari (embedded), Generate controls, statistics.

Every event of the live entry model re-reads the entry through
:mod:`microlib_gui.core.workflow.generate` and :mod:`~microlib_gui.core.workflow.stats`:
whether it has a generator and which run it came from, whether its volume was
made by that generator (a volume of an earlier generator is said to be out of
date and is not shown as current), and its saved statistics (shown when the
entry is opened, also after a restart). Generating and computing statistics run
through the window's job runner; the job saves, and the event that follows
redraws the panel.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QTabWidget,
    QVBoxLayout, QWidget,
)

from ...core.errors import MicrolibError
from ...core.jobs import CANCELLED, DONE, Finished
from ...core.library import layout as L
from ...core.workflow import generate, stats
from ..widgets.napari_view import NapariView, open_volume_lazily
from ..widgets.progress import show_progress
from .base import StepPanel

#: Statistics of volumes up to this size include the (slow) tortuosity solve.
TORTUOSITY_MAX_BYTES = 128 ** 3 + 65536
#: A cancelled statistics job still running after this long has its process ended.
STATS_KILL_AFTER_MS = 1500


def _file_key(path: Path) -> tuple | None:
    """Tells one version of a file from another (what is on screen is re-read only when it changed)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


class Panel(StepPanel):
    step = "inspect"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.gen_job = None  #: the Generate job (a JobHandle) while it runs
        self.stats_job = None  #: the statistics job while it runs
        self._stats_stage = ""  #: the stage the statistics job reported last
        self._stats_cancelling = False
        self._shown: dict[str, tuple | None] = {"volume": None, "image": None, "stats": None}
        self.view = NapariView(jobs=self.jobs)  # the isosurface is computed through the runner
        self.tabs = QTabWidget()
        self.tabs.setObjectName("inspectTabs")
        self.tabs.addTab(self.view, "3D view")
        self.stats_view = self._make_stats_view()
        self.tabs.addTab(self.stats_view, "Stats")

        gen = QGroupBox("Generate")
        f = QFormLayout(gen)
        self.gen_info = QLabel()
        self.gen_info.setObjectName("generatorInfo")
        self.gen_info.setWordWrap(True)
        f.addRow(self.gen_info)
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
        self.match_vf = QCheckBox("Match the training image's phase fractions")
        self.match_vf.setObjectName("matchVf")
        self.match_vf.setToolTip("Shift the generator's per-phase outputs (fitted on the volume itself) so the "
                                 "volume has the training image's phase fractions. Statistics then show the "
                                 "fractions before and after.")
        f.addRow(self.match_vf)
        self.gen_btn = QPushButton("Generate")
        self.gen_btn.setObjectName("generate")
        self.gen_btn.clicked.connect(self.generate)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setObjectName("cancelGenerate")
        self.cancel_btn.setToolTip("Stop the generation: nothing is saved, the volume saved before stays.")
        self.cancel_btn.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.gen_btn)
        row.addWidget(self.cancel_btn)
        f.addRow(row)
        self.progress = QProgressBar()
        self.progress.setObjectName("genProgress")
        f.addRow(self.progress)
        self.stats_btn = QPushButton("Compute statistics")
        self.stats_btn.setObjectName("computeStats")
        self.stats_btn.clicked.connect(self.compute_stats)
        self.stats_cancel_btn = QPushButton("Cancel")
        self.stats_cancel_btn.setObjectName("cancelStats")
        self.stats_cancel_btn.setToolTip("Stop the statistics: nothing is saved, the statistics saved before stay.")
        self.stats_cancel_btn.clicked.connect(self.cancel_stats)
        srow = QHBoxLayout()
        srow.addWidget(self.stats_btn, 1)
        srow.addWidget(self.stats_cancel_btn)
        f.addRow(srow)
        #: the statistics job's stage (shown while it runs)
        self.stats_progress = QProgressBar()
        self.stats_progress.setObjectName("statsProgress")
        self.stats_progress.setVisible(False)
        f.addRow(self.stats_progress)
        #: the entry's volume as it stands (from the store, on every event)
        self.status = QLabel()
        self.status.setObjectName("inspectStatus")
        self.status.setWordWrap(True)
        #: what the last job of this panel did (progress, errors)
        self.job_status = QLabel()
        self.job_status.setObjectName("inspectJobStatus")
        self.job_status.setWordWrap(True)

        side = QWidget()
        sv = QVBoxLayout(side)
        sv.addWidget(gen)
        sv.addWidget(self.status)  # outside the form: a wrapped label there gets one line's height
        sv.addWidget(self.job_status)
        sv.addStretch(1)
        side.setMaximumWidth(320)
        lay = QHBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(side)
        ctx.library_changed.connect(lambda: self.job_status.setText(""))
        self._update_buttons(None, None, None)

    def _make_stats_view(self) -> QWidget:
        try:
            from ..widgets.stats_view import StatsView
        except ImportError:
            w = QLabel("The statistics view is not available in this version.")
            w.setObjectName("statsUnavailable")
            return w
        return StatsView()

    @property
    def generating(self) -> bool:
        return self.gen_job is not None and not self.gen_job.done

    @property
    def computing(self) -> bool:
        return self.stats_job is not None and not self.stats_job.done

    # -- entry ------------------------------------------------------------------------
    def load_entry(self, entry_id: int | None) -> None:
        if entry_id is None:
            self._show_volume(None)
            self._show_image(None)
            self._show_stats(None)
            self.gen_info.setText("No entry selected.")
            self.status.setText("")
            self._update_buttons(None, None, None)
            return
        lib = self.library
        gin = generate.inputs(lib, entry_id)
        vol = generate.volume_state(lib, entry_id)
        sin = stats.inputs(lib, entry_id)
        self.gen_info.setText(f"Generator: {generate.describe_generator(gin.info)}." if gin.ready
                              else f"No generator: {gin.reason}.")
        self._show_image(sin.image if sin.image.exists() else None)
        if vol.current:
            p = vol.params
            made = " × ".join([str(p["size"])] * 3) + " voxels, " if p.get("size") else ""
            matched = ", phase fractions matched to the training image" if p.get("match_vf") else ""
            self.status.setText(f"✔ Volume {vol.path.name}: {made}seed {p.get('seed', 0)}, "
                                f"from {generate.describe_generator(p.get('generator'))}{matched}.")
            self._show_volume(vol.path)
        elif vol.exists:
            if not self.generating:
                self.job_status.setText("")  # what the last job made is not current any more
            self.status.setText(f"↻ The volume {vol.path.name} is out of date: {vol.reason}. "
                                + ("Generate it again." if gin.ready else ""))
            self._show_volume(None, "Volume out of date: not shown (generate again).")
        else:
            self._show_volume(None)
            self.status.setText("No volume yet: choose a size and Generate." if gin.ready else "")
        self._show_stats(stats.saved(lib, entry_id))
        self._update_buttons(gin, vol, sin)

    def _show_volume(self, path: Path | None, note: str = "") -> None:
        key = None if path is None else (str(self.library.root), self.entry_id, _file_key(path))
        if key == self._shown["volume"] and key is not None:
            return  # the same file is on screen already
        self._shown["volume"] = key
        self.view.clear()
        if path is None:
            if note:
                self.view.info.setText(note)
            return
        from ...core.export import entry_vox_size

        try:
            self.view.set_volume(open_volume_lazily(path), name=path.stem,
                                 vox_size_um=entry_vox_size(self.library, self.entry_id))
        except MicrolibError as exc:
            self._shown["volume"] = None
            self.show_error(str(exc))

    def _show_image(self, path: Path | None) -> None:
        key = None if path is None else _file_key(path)
        if key == self._shown["image"]:
            return
        self._shown["image"] = key
        if path is None:
            self.view.set_training_image(None)
            return
        from ...core.images import load_image

        try:
            self.view.set_training_image(load_image(path).as_uint8())
        except MicrolibError:
            self.view.set_training_image(None)

    def _show_stats(self, kept: stats.SavedStats | None) -> None:
        if not hasattr(self.stats_view, "set_results"):
            return
        if kept is None or kept.result is None:
            self.stats_view.set_results(None)
            return
        self.stats_view.set_results(kept.result, note="" if kept.current else
                                    f"Out of date: {kept.reason}. Compute the statistics again.")

    def _update_buttons(self, gin, vol, sin) -> None:
        # not while statistics run: a new volume would make them describe a file the entry no longer
        # has, and their save is then refused (cancel them to generate at once)
        self.gen_btn.setEnabled(bool(gin and gin.ready) and not self.generating and not self.computing)
        # each Cancel stops its own job: two live Cancel buttons during statistics read as one
        self.cancel_btn.setEnabled(self.generating)
        self.stats_cancel_btn.setEnabled(self.computing and not self._stats_cancelling)
        self.stats_btn.setEnabled(bool(sin and sin.ready and vol and vol.current) and not self.computing
                                  and not self.generating and hasattr(self.stats_view, "set_results"))

    # -- generate -------------------------------------------------------------------------
    def generate(self) -> None:
        if self.entry_id is None or self.generating:
            return
        periodic = [self.periodic[a].isChecked() for a in "xyz"]
        params = {"library_root": str(self.library.root), "entry_id": self.entry_id,
                  "size": self.size_spin.value(), "periodic": periodic, "seed": self.seed_spin.value(),
                  "match_vf": self.match_vf.isChecked()}
        self.progress.setRange(0, 0)  # busy until the first block reports
        self.job_status.setText("Generating…")
        h = self.gen_job = self.jobs.start(generate.run_job, params, tag=(str(self.library.root), self.entry_id))
        h.progress.connect(lambda ev, h=h: h is self.gen_job and self._gen_progress(ev))
        h.finished.connect(lambda ev, h=h: self._generated(h, ev))
        self.reload()

    def _gen_progress(self, ev) -> None:
        show_progress(self.progress, ev)
        self.job_status.setText(f"Generating: {ev.message}")

    def _generated(self, handle, ev: Finished) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ev.state == DONE else 0)
        here = handle.tag == (str(self.library.root), self.entry_id)
        if ev.state == DONE:
            shape = " × ".join(map(str, ev.result.get("shape") or []))
            where = "" if here else f" for {Path(ev.result['path']).stem}"
            self.job_status.setText(f"Generated {shape} voxels{where} in {ev.result.get('seconds') or 0.0:.1f} s.")
        elif ev.state == CANCELLED:
            self.job_status.setText("Generation cancelled: nothing was saved.")
        else:
            self.job_status.setText(f"Generation failed: {ev.error}")
            self.show_error(ev.error or "generation failed")
        if not self.changed():  # the job saved; the event may have come already
            self.reload()

    def cancel(self) -> None:
        """Stop the generation (the statistics have their own Cancel)."""
        if self.gen_job is not None and not self.gen_job.done:
            self.gen_job.cancel()

    # -- statistics -------------------------------------------------------------------------
    def compute_stats(self) -> None:
        eid = self.entry_id
        if eid is None or self.computing:
            return
        vol = self.library.entry_file(eid, L.VOLUME.suffix)
        small = vol.exists() and vol.stat().st_size <= TORTUOSITY_MAX_BYTES
        self.job_status.setText("Computing statistics…")
        self._stats_stage, self._stats_cancelling = "", False
        self.stats_progress.setRange(0, 0)  # busy while the worker process starts
        self.stats_progress.setFormat("starting…")
        self.stats_progress.setVisible(True)
        # Its own process: matplotlib (the figure) is not safe to run in a thread beside the GUI.
        h = self.stats_job = self.jobs.start(stats.run_job, {"library_root": str(self.library.root), "entry_id": eid,
                                                            "tortuosity": small}, process=True)
        h.progress.connect(lambda ev, h=h: h is self.stats_job and self._stats_progress(ev))
        h.finished.connect(lambda ev, h=h: self._stats_done(h, ev))
        self.reload()

    def _stats_progress(self, ev) -> None:
        self._stats_stage = ev.message
        show_progress(self.stats_progress, ev, text=True)
        if not self._stats_cancelling:
            self.job_status.setText(f"Statistics: {ev.message}…")

    def cancel_stats(self) -> None:
        """Stop the statistics job: at its next stage, or by ending its process soon after."""
        h = self.stats_job
        if h is None or h.done or self._stats_cancelling:
            return
        self._stats_cancelling = True
        h.cancel()
        self.job_status.setText("Cancelling the statistics…")
        self.stats_progress.setFormat("cancelling…")
        QTimer.singleShot(STATS_KILL_AFTER_MS, lambda h=h: self._end_stats_process(h))
        self.reload()  # the Cancel button greys out

    def _end_stats_process(self, h) -> None:
        # A stage can run for seconds (the tortuosity solve between its checks, the worker's
        # start-up): end the process rather than wait. Never while it saves: the save is atomic,
        # but a result that was saved would then be reported as cancelled.
        if h.running and self._stats_stage != stats.SAVING:
            h.kill()

    def _stats_done(self, handle, ev: Finished) -> None:
        if handle is not self.stats_job:
            return
        self.stats_progress.setVisible(False)
        self._stats_cancelling = False
        if ev.state == DONE:
            self.tabs.setCurrentIndex(1)
            self.job_status.setText("Statistics computed and saved with the entry.")
        elif ev.state == CANCELLED:
            self.job_status.setText("Statistics cancelled: nothing was saved"
                                    + ("; the statistics saved before are still shown." if
                                       getattr(self.stats_view, "result", None) else "."))
        else:
            self.job_status.setText(f"Statistics failed: {ev.error}")
            self.show_error(ev.error or "statistics failed")
        if not self.changed():
            self.reload()

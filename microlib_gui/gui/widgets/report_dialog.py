"""View → Library report: the MicroLib Figure 4 comparison of every entry, 2D against 3D.

Runs :func:`microlib_gui.core.workflow.report.library_report_job` in a background thread
(each entry's statistics are computed once and reused while its files are
unchanged), then shows the figure, says which entries were flagged or skipped,
and offers the folder holding ``library_stats.png`` and ``library_stats.csv``.
The CLI twin is ``microlib report LIBRARY --out DIR``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QScrollArea,
    QVBoxLayout,
)

from ...core.jobs import CANCELLED, DONE, Finished
from ...core.workflow.report import library_report_job
from .progress import show_progress
from .screen_fit import resize_within_screen


class LibraryReportDialog(QDialog):
    def __init__(self, library, jobs, parent=None):
        """``jobs``: the window's job runner (:class:`microlib_gui.gui.jobrunner.JobRunner`)."""
        super().__init__(parent)
        self.setWindowTitle("Library report: 2D against 3D statistics")
        self.library = library
        self.jobs = jobs
        self.job = None  # JobHandle
        self.result: dict | None = None

        self.out_edit = QLineEdit(str(Path(library.root) / "reports"))
        self.out_edit.setObjectName("reportFolder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        self.recompute = QCheckBox("Recompute entries whose statistics are up to date")
        self.run_btn = QPushButton("Create report")
        self.run_btn.setObjectName("createReport")
        self.run_btn.setDefault(True)
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.job and self.job.cancel())
        self.open_btn = QPushButton("Open folder")
        self.open_btn.setEnabled(False)
        self.open_btn.clicked.connect(self._open_folder)
        self.progress = QProgressBar()
        self.status = QLabel("Compares each entry's training image with its generated volume (volume "
                             "fraction, surface area, two-point correlation), as in MicroLib's Figure 4.")
        self.status.setWordWrap(True)
        self.status.setObjectName("reportStatus")
        self.figure = QLabel()
        self.figure.setObjectName("reportFigure")
        self.figure.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.figure)
        scroll.setWidgetResizable(True)

        row = QHBoxLayout()
        row.addWidget(QLabel("Folder"))
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.recompute, 1)
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        buttons.addWidget(self.open_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(scroll, 1)
        resize_within_screen(self, 1000, 760)


    def _choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the report", self.out_edit.text())
        if d:
            self.out_edit.setText(d)

    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def start(self) -> None:
        if self.running():
            return
        out = self.out_edit.text().strip()
        if not out:
            self.status.setText("Choose a folder for the report.")
            return
        self.result = None
        # Its own process: matplotlib (the figures) is not safe to run in a thread beside the GUI.
        self.job = self.jobs.start(library_report_job, {"library_root": str(self.library.root), "out_dir": out,
                                                         "recompute": self.recompute.isChecked()}, process=True)
        self.job.progress.connect(self._progress)
        self.job.finished.connect(self._finished)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.open_btn.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText("Computing statistics…")

    def _progress(self, ev) -> None:
        show_progress(self.progress, ev)
        self.status.setText(f"{ev.step}/{ev.total}: {ev.message}")

    def _finished(self, ev: Finished) -> None:
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ev.state == DONE else 0)
        if ev.state == CANCELLED:
            self.status.setText("Cancelled; statistics already computed are kept with their entries.")
            return
        if ev.state != DONE:
            self.status.setText(f"The report failed: {ev.error}")
            return
        r = self.result = ev.result
        lines = [f"{len(r['computed'])} entries compared, {len(r['flagged'])} flagged (error above 5 %)"
                 + (": " + ", ".join(r["flagged"]) if r["flagged"] else ".")]
        if r["skipped"]:
            lines.append(f"{len(r['skipped'])} skipped (no training image or no generated volume yet): "
                         + ", ".join(s["name"] for s in r["skipped"][:8]) + (" …" if len(r["skipped"]) > 8 else ""))
        lines.append(f"Written: {r['png']} and {Path(r['csv']).name}")
        self.status.setText("\n".join(lines))
        pix = QPixmap(r["png"])
        if not pix.isNull():
            self.figure.setPixmap(pix.scaledToWidth(min(pix.width(), 940), Qt.TransformationMode.SmoothTransformation))
        self.open_btn.setEnabled(True)

    def _open_folder(self) -> None:
        if self.result:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.result["png"]).parent)))

    def reject(self) -> None:  # Esc / close: stop the work first
        if self.running():
            self.job.cancel()
        super().reject()

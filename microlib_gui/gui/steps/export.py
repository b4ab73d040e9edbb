"""The Export step: write entries in the MicroLib dataset layout, list what was written.

Runs :func:`microlib_gui.core.export.export_job` in a background thread; the
table shows every file of the layout with its status (written, copied,
generated, missing — with the reason — or failed).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from ...core.jobs import DONE, Finished, Progress, ThreadJob
from ..widgets.progress import show_progress
from .base import StepPanel

_STATUS_MARK = {"written": "✔ written", "copied": "✔ copied", "generated": "✔ generated",
                "missing": "– missing", "failed": "✖ failed"}


class Panel(StepPanel):
    step = "export"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.job: ThreadJob | None = None
        self.last_finished: Finished | None = None
        self.results: list[dict] = []
        self._job_ids: list[int] | None = None
        self.out_edit = QLineEdit(str(QSettings().value("export/last", "")))
        self.out_edit.setObjectName("exportFolder")
        self.out_edit.setPlaceholderText("output folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_folder)
        self.media_check = QCheckBox("Render a missing movie and strip from the volume")
        self.media_check.setChecked(True)
        self.entry_btn = QPushButton("Export this entry")
        self.entry_btn.setObjectName("exportEntry")
        self.entry_btn.clicked.connect(lambda: self.export(all_entries=False))
        self.all_btn = QPushButton("Export all entries")
        self.all_btn.setObjectName("exportAll")
        self.all_btn.clicked.connect(lambda: self.export(all_entries=True))
        self.open_btn = QPushButton("Open folder")
        self.open_btn.setObjectName("openFolder")
        self.open_btn.clicked.connect(self.open_folder)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setObjectName("exportStatus")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("exportFiles")
        self.table.setHorizontalHeaderLabels(["File", "Status", "Details"])
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)

        row = QHBoxLayout()
        row.addWidget(QLabel("Output folder"))
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        buttons = QHBoxLayout()
        for b in (self.entry_btn, self.all_btn, self.open_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        intro = QLabel("<h2>Export in the MicroLib dataset layout</h2>"
                       "<p>One folder per entry (<code>microstructureNNN/</code>: volume .tif with its voxel "
                       "size, rotation .mp4, _long.png, inpainting animation, training image, original, "
                       "SliceGAN _Gen.pt/_Disc.pt/_params.data) and <code>data_anns.json</code>.</p>")
        intro.setWordWrap(True)  # long rich text must not set the window's minimum width
        lay.addWidget(intro)
        lay.addLayout(row)
        lay.addWidget(self.media_check)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.poll)
        self._update_buttons()

    def load_entry(self, entry_id: int | None) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.job is not None and not self.job.done
        self.entry_btn.setEnabled(not busy and self.entry_id is not None)
        self.all_btn.setEnabled(not busy)
        self.open_btn.setEnabled(bool(self.out_edit.text().strip()) and Path(self.out_edit.text()).is_dir())

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", self.out_edit.text())
        if path:
            self.out_edit.setText(path)
            self._update_buttons()

    def export(self, all_entries: bool = False) -> None:
        from ...core.export import export_job

        out = self.out_edit.text().strip()
        if not out:
            self.show_error("Choose an output folder first.")
            return
        if Path(out).exists() and not Path(out).is_dir():
            self.show_error(f"{out} is a file, not a folder.")
            return
        QSettings().setValue("export/last", out)
        ids = None if all_entries else [self.entry_id]
        self._job_ids = ids
        self.table.setRowCount(0)
        self.results = []
        self.last_finished = None
        self.status.setText("Exporting…")
        self.job = ThreadJob(export_job, {"library_root": str(self.library.root), "entry_ids": ids,
                                          "out_dir": out, "media": self.media_check.isChecked()}).start()
        self.timer.start()
        self._update_buttons()

    def poll(self) -> None:
        if self.job is None:
            self.timer.stop()
            return
        for ev in self.job.poll():
            if isinstance(ev, Progress):
                show_progress(self.progress, ev)
                self.status.setText(ev.message)
            elif isinstance(ev, Finished):
                self._finished(ev)
        if self.job.done:
            self.timer.stop()
            self._update_buttons()

    def _finished(self, ev: Finished) -> None:
        self.last_finished = ev
        if ev.state != DONE:
            self.status.setText(f"Export stopped: {ev.error or ev.state}")
            if ev.error:
                self.show_error(ev.error)
            return
        self.results = ev.result
        self.progress.setValue(self.progress.maximum())
        rows = [(it, r["folder"]) for r in self.results for it in r["items"]]
        self.table.setRowCount(len(rows))
        for i, (it, _folder) in enumerate(rows):
            for j, text in enumerate((it["name"], _STATUS_MARK.get(it["status"], it["status"]), it["detail"])):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        n_ok = sum(1 for it, _ in rows if it["status"] in ("written", "copied", "generated"))
        n_fail = sum(1 for it, _ in rows if it["status"] == "failed")
        self.status.setText(f"{n_ok} files written for {len(self.results)} entr{'y' if len(self.results) == 1 else 'ies'}"
                            f" in {self.out_edit.text()}" + (f"; {n_fail} failed" if n_fail else "")
                            + " — and data_anns.json.")
        for r in self.results:
            if not any(it["status"] == "failed" for it in r["items"]):
                self.library.set_step_status(r["entry_id"], "export", "done")
                self.ctx.notify_updated(r["entry_id"])

    def open_folder(self) -> None:
        out = self.out_edit.text().strip()
        if out and Path(out).is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(out))

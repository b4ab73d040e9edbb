"""The Export step: write entries in the MicroLib dataset layout, and show what was exported where.

Every event re-reads the current entry through
:mod:`microlib_gui.core.workflow.export`: its last export (``_export.json``: the
folder, the time, each file of the layout with its status — written, copied,
generated, missing with the reason, or failed) and whether it still matches the
entry (a new generator or volume makes it out of date). The output folder is
the library's own (``LIBRARY/export``) unless the user chose another for this
library; after File → Open library it is the new library's. Before writing into
a folder that holds another library's entry (or its ``data_anns.json``) the
panel asks; the export runs on the window's job runner.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from ...core.errors import MicrolibError
from ...core.jobs import CANCELLED, DONE, Finished
from ...core.workflow import export as wf
from ..widgets.progress import show_progress
from .base import StepPanel

_STATUS_MARK = {"written": "✔ written", "copied": "✔ copied", "generated": "✔ generated",
                "missing": "– missing", "failed": "✖ failed"}
_SHOWN_CONFLICTS = 6


def _settings():
    from ..settings import make_settings

    return make_settings()


def folder_key(library) -> str:
    """The setting that remembers the export folder chosen for one library (by its uuid)."""
    return f"export/folder/{library.uuid}"


class Panel(StepPanel):
    step = "export"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.job = None  #: the export job (a JobHandle) while it runs
        self.out_edit = QLineEdit()
        self.out_edit.setObjectName("exportFolder")
        self.out_edit.setPlaceholderText("output folder")
        self.out_edit.textChanged.connect(lambda _t: self._update_buttons())
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_folder)
        default_btn = QPushButton("Library's folder")
        default_btn.setObjectName("exportDefaultFolder")
        default_btn.setToolTip("LIBRARY/export: the folder this library exports to unless you choose another")
        default_btn.clicked.connect(lambda: self.out_edit.setText(str(wf.default_folder(self.library))))
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
        #: the entry's export as it stands (from the store, on every event)
        self.state = QLabel()
        self.state.setObjectName("exportState")
        self.state.setWordWrap(True)
        #: what the last export of this panel did
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
        row.addWidget(default_btn)
        buttons = QHBoxLayout()
        for b in (self.entry_btn, self.all_btn, self.open_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        intro = QLabel("<h2>Export in the MicroLib dataset layout</h2>"
                       "<p>One folder per entry (<code>microstructureNNN/</code>: volume .tif with its voxel "
                       "size, rotation .mp4, _long.png, inpainting animation, training image, original, "
                       "SliceGAN _Gen.pt/_Disc.pt/_params.data with the generator's _meta.json, and "
                       "_export.json naming this library and the entry) and <code>data_anns.json</code>.</p>")
        intro.setWordWrap(True)  # long rich text must not set the window's minimum width
        lay.addWidget(intro)
        lay.addLayout(row)
        lay.addWidget(self.media_check)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.state)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        ctx.library_changed.connect(self._library_changed)
        self._library_changed()

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    # -- the library's folder ---------------------------------------------------------------
    def _library_changed(self) -> None:
        """Another library: its own export folder, nothing shown of the previous one."""
        try:
            saved = _settings().value(folder_key(self.library))
            self.out_edit.setText(str(saved) if saved else str(wf.default_folder(self.library)))
        except MicrolibError:
            self.out_edit.setText("")
        self.status.setText("")
        self.progress.reset()
        if not self.running:
            self.job = None  # a finished export of the previous library says nothing here

    def out_dir(self) -> Path:
        text = self.out_edit.text().strip()
        return Path(text).expanduser() if text else wf.default_folder(self.library)

    # -- entry -------------------------------------------------------------------------------
    def load_entry(self, entry_id: int | None) -> None:
        self.table.setRowCount(0)
        if entry_id is None:
            self.state.setText("No entry selected.")
            self._update_buttons()
            return
        inp = wf.inputs(self.library, entry_id)
        last = inp.last
        if last is None:
            text = "Not exported yet."
        else:
            when = str(last.get("exported", "")).replace("T", " ")[:16]
            where = f"Exported to {last.get('folder', '?')}" + (f" on {when}" if when else "")
            text = f"✔ {where}." if inp.last_current else f"↻ {where}, but {inp.last_reason}: export again."
            self._fill_table(last.get("files") or [])
        if inp.volume.stale:
            text += (f"<br><b>The volume is out of date</b>: {inp.volume.reason}. Generate it again in the Inspect "
                     "step; until then an export leaves the volume, movie and strip out.")
        elif not inp.volume.exists:
            text += "<br>No volume yet: an export leaves the volume, movie and strip out (Inspect → Generate)."
        self.state.setText(text)
        self._update_buttons()

    def _fill_table(self, files: list[dict]) -> None:
        self.table.setRowCount(len(files))
        for i, it in enumerate(files):
            cells = (it.get("name", ""), _STATUS_MARK.get(it.get("status"), str(it.get("status"))),
                     it.get("detail", ""))
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _update_buttons(self) -> None:
        self.entry_btn.setEnabled(not self.running and self.entry_id is not None)
        self.all_btn.setEnabled(not self.running)
        self.open_btn.setEnabled(self.out_dir().is_dir())

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", str(self.out_dir()))
        if path:
            self.out_edit.setText(path)

    # -- export --------------------------------------------------------------------------------
    def ask_overwrite(self, found: list[str]) -> bool:
        """Ask before replacing another library's entries; True to overwrite."""
        shown = "\n".join(f"• {c}" for c in found[:_SHOWN_CONFLICTS])
        more = f"\n… and {len(found) - _SHOWN_CONFLICTS} more" if len(found) > _SHOWN_CONFLICTS else ""
        box = QMessageBox(QMessageBox.Icon.Warning, "Overwrite?",
                          f"The export folder holds what this library did not export:\n\n{shown}{more}\n\n"
                          "Overwrite it with this library's entries?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("exportOverwrite")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def export(self, all_entries: bool = False) -> None:
        if self.running or (not all_entries and self.entry_id is None):
            return
        lib, out = self.library, self.out_dir()
        ids = None if all_entries else [self.entry_id]
        try:
            found = wf.conflicts(lib, ids, out)
        except MicrolibError as exc:
            self.show_error(str(exc))
            return
        if found and not self.ask_overwrite(found):
            self.status.setText(f"Nothing exported: {out} holds another library's entries.")
            return
        settings = _settings()
        if out == wf.default_folder(lib):
            settings.remove(folder_key(lib))
        else:
            settings.setValue(folder_key(lib), str(out))
        self.out_edit.setText(str(out))
        self.status.setText("Exporting…")
        self.progress.setRange(0, 0)
        h = self.job = self.jobs.start(wf.run_job, {"library_root": str(lib.root), "entry_ids": ids,
                                                    "out_dir": str(out), "media": self.media_check.isChecked(),
                                                    "overwrite": bool(found)}, tag=str(lib.root))
        h.progress.connect(lambda ev, h=h: h is self.job and self._on_progress(ev))
        h.finished.connect(lambda ev, h=h: self._finished(h, ev))
        self._update_buttons()

    def _on_progress(self, ev) -> None:
        show_progress(self.progress, ev)
        self.status.setText(ev.message)

    def _finished(self, handle, ev: Finished) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ev.state == DONE else 0)
        if handle.tag != str(self.library.root):
            self.status.setText("")  # another library is open now: nothing of this export is shown
        elif ev.state == DONE:
            rows = [it for r in ev.result for it in r["items"]]
            n_ok = sum(1 for it in rows if it["status"] in ("written", "copied", "generated"))
            n_fail = sum(1 for it in rows if it["status"] == "failed")
            n = len(ev.result)
            self.status.setText(f"{n_ok} files written for {n} entr{'y' if n == 1 else 'ies'} in "
                                f"{handle.params['out_dir']}" + (f"; {n_fail} failed" if n_fail else "")
                                + " — and data_anns.json.")
        elif ev.state == CANCELLED:
            self.status.setText("Export cancelled: the entries written so far are listed in data_anns.json.")
        else:
            self.status.setText(f"Export stopped: {ev.error}")
            self.show_error(ev.error or "export failed")
        if not self.changed():
            self.reload()

    def open_folder(self) -> None:
        out = self.out_dir()
        if out.is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))


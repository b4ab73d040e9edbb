"""The wizard shell: step list, entry selector, Back/Next, menus.

The main window only switches panels and tells them which entry is current
(through :class:`~.context.AppContext`); each step's panel does its own work.
"""

from __future__ import annotations

import html
import importlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import APP_NAME, __version__
from ..core.errors import MicrolibError
from ..core.steps import DONE, STALE, STEP_TITLES, STEPS
from ..core.library import DB_NAME, Library
from .context import AppContext
from .steps.base import NotBuiltPanel, StepPanel
from .widgets.screen_fit import resize_within_screen

_STATUS_MARK = {DONE: "✔", STALE: "↻"}


def exit_now(code: int) -> None:
    """Leave the app without waiting for worker processes (kept-running training)."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def load_panel(ctx: AppContext, step: str) -> StepPanel:
    """The panel of ``step`` from ``gui/steps/<step>.py``, or a 'not built yet' panel."""
    try:
        module = importlib.import_module(f"{__package__}.steps.{step}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(f"steps.{step}"):
            return NotBuiltPanel(ctx, step, STEP_TITLES[step])
        raise
    return module.Panel(ctx)


class MainWindow(QMainWindow):
    def __init__(self, library: Library, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings or QSettings()
        self.ctx = AppContext(library)
        self.setWindowTitle(f"{APP_NAME} — {library.root}")

        # Left: entry selector + step list
        self.entry_combo = QComboBox()
        self.entry_combo.setObjectName("entrySelector")
        self.entry_combo.currentIndexChanged.connect(self._on_combo)
        self.step_list = QListWidget()
        self.step_list.setObjectName("stepList")
        for step in STEPS:
            self.step_list.addItem(QListWidgetItem(STEP_TITLES[step]))
        self.step_list.currentRowChanged.connect(self._show_step)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("<b>Entry</b>"))
        ll.addWidget(self.entry_combo)
        ll.addWidget(QLabel("<b>Steps</b>"))
        ll.addWidget(self.step_list, 1)
        self.entry_info = QLabel()
        self.entry_info.setWordWrap(True)
        self.entry_info.setObjectName("entryInfo")
        ll.addWidget(self.entry_info)

        # Right: the stacked panels and Back/Next
        self.stack = QStackedWidget()
        self.panels: dict[str, StepPanel] = {}
        for step in STEPS:
            panel = load_panel(self.ctx, step)
            self.panels[step] = panel
            self.stack.addWidget(panel)
        self.back_btn = QPushButton("◀ Back")
        self.next_btn = QPushButton("Next ▶")
        self.back_btn.setShortcut(QKeySequence("Alt+Left"))
        self.next_btn.setShortcut(QKeySequence("Alt+Right"))
        self.back_btn.clicked.connect(lambda: self.go(self.current_index() - 1))
        self.next_btn.clicked.connect(lambda: self.go(self.current_index() + 1))
        nav = QHBoxLayout()
        nav.addWidget(self.back_btn)
        nav.addStretch(1)
        nav.addWidget(self.next_btn)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(self.stack, 1)
        rl.addLayout(nav)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([240, 1000])
        self.setCentralWidget(split)
        self.jobs_dock = None
        self.jobs_view = None
        self._build_menus()

        self.ctx.entries_changed.connect(self.refresh_entries)
        self.ctx.entry_changed.connect(lambda _id: self.refresh_steps())
        self.refresh_entries()
        self.step_list.setCurrentRow(0)
        self._restore_geometry()

    # -- menus -----------------------------------------------------------------
    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open image as new entry…", self.open_image, QKeySequence.StandardKey.Open)
        self._action(m, "Open &library…", self.open_library_dialog)
        m.addSeparator()
        self._action(m, "&Import annotations…", self.import_annotations)
        self._action(m, "&Export annotations…", self.export_annotations)
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        v = self.menuBar().addMenu("&View")
        self._action(v, "&Jobs (library build)", self.toggle_jobs, QKeySequence("Ctrl+J"))
        self._action(v, "Library &report (2D vs 3D)…", self.show_report, QKeySequence("Ctrl+R"))
        h = self.menuBar().addMenu("&Help")
        self._action(h, "&User guide", self.show_guide, QKeySequence.StandardKey.HelpContents)
        self._action(h, "&About", self.about)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(shortcut)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    # -- navigation -------------------------------------------------------------
    def current_index(self) -> int:
        return self.step_list.currentRow()

    def go(self, index: int) -> None:
        if 0 <= index < len(STEPS):
            self.step_list.setCurrentRow(index)

    def go_to_step(self, step: str) -> None:
        self.go(STEPS.index(step))

    def _show_step(self, index: int) -> None:
        if index < 0:
            return
        self.stack.setCurrentIndex(index)
        self.back_btn.setEnabled(index > 0)
        self.next_btn.setEnabled(index < len(STEPS) - 1)
        self.panels[STEPS[index]].activated()

    # -- entries ------------------------------------------------------------------
    def refresh_entries(self) -> None:
        current = self.ctx.entry_id
        self.entry_combo.blockSignals(True)
        self.entry_combo.clear()
        try:
            entries = self.ctx.library.list_entries()
        except MicrolibError as exc:
            entries = []
            self.error(str(exc))
        for e in entries:
            label = e.title + (" [excluded]" if e.excluded else "")
            self.entry_combo.addItem(label, e.id)
        self.entry_combo.blockSignals(False)
        ids = [e.id for e in entries]
        if current in ids:
            self.entry_combo.setCurrentIndex(ids.index(current))
        elif ids:
            self.entry_combo.setCurrentIndex(0)
            self.ctx.set_entry(ids[0])
        else:
            self.ctx.set_entry(None)
        self.refresh_steps()

    def _on_combo(self, index: int) -> None:
        eid = self.entry_combo.itemData(index)
        self.ctx.set_entry(eid if eid is not None else None)

    def select_entry(self, entry_id: int) -> None:
        idx = self.entry_combo.findData(entry_id)
        if idx >= 0:
            self.entry_combo.setCurrentIndex(idx)

    def refresh_steps(self) -> None:
        """Show the current entry's progress through the steps in the step list."""
        status = {}
        info = "No entry selected."
        if self.ctx.entry_id is not None:
            try:
                e = self.ctx.library.get_entry(self.ctx.entry_id)
                status = e.steps
                info = f"{e.name}<br>source: {e.source}"
                if e.metadata.get("original_filename") and e.source != "demo":
                    info += f"<br>file: {html.escape(str(e.metadata['original_filename']))}"
                if e.metadata.get("demo"):
                    info += "<br><i>demo entry (generated, not a real micrograph)</i>"
                if e.excluded:
                    info += f"<br><b>excluded:</b> {e.exclusion_reason}"
                idx = self.entry_combo.findData(e.id)
                if idx >= 0 and self.entry_combo.currentIndex() != idx:
                    self.entry_combo.blockSignals(True)
                    self.entry_combo.setCurrentIndex(idx)
                    self.entry_combo.blockSignals(False)
            except MicrolibError:
                pass
        for row, step in enumerate(STEPS):
            mark = _STATUS_MARK.get(status.get(step, ""), "  ")
            self.step_list.item(row).setText(f"{mark} {row + 1}. {STEP_TITLES[step]}")
        self.entry_info.setText(info)

    # -- file actions ---------------------------------------------------------------
    def open_image(self, path: str | None = None) -> int | None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open micrograph", "",
                                                  "Images (*.png *.jpg *.jpeg *.tif *.tiff);;All files (*)")
        if not path:
            return None
        try:
            entry = self.ctx.library.add_entry(path, source="local")
        except MicrolibError as exc:
            self.error(str(exc))
            return None
        self.ctx.refresh()
        self.select_entry(entry.id)
        return entry.id

    def open_library_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open or create a library folder")
        if path:
            self.open_library(path)

    def open_library(self, path: str | Path) -> bool:
        folder = Path(path).expanduser()
        if folder.is_dir() and not (folder / DB_NAME).exists() and any(folder.iterdir()):
            if not self._confirm_new_library(folder):
                return False
        try:
            lib = Library(path)
        except MicrolibError as exc:
            self.error(str(exc))
            return False
        self.settings.setValue("library/last", str(lib.root))
        self.setWindowTitle(f"{APP_NAME} — {lib.root}")
        self.ctx.set_library(lib)
        return True

    def _confirm_new_library(self, folder: Path) -> bool:
        """A folder that holds files but no library: make it one only when the user says so."""
        box = QMessageBox(self)
        box.setObjectName("notALibrary")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Not a library")
        box.setText(f"{folder} is not a MicroLib Studio library, and it is not empty.")
        box.setInformativeText("Make it a library? A library.sqlite and one folder per entry will be added "
                               "beside what is there; nothing there is changed.")
        make = box.addButton("Make it a library", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is make

    def import_annotations(self, path: str | None = None, images_dir: str | None = None) -> None:
        """File → Import annotations: a MicroLib annotation file or a data_anns.json (``images_dir``: add images).

        Records of local entries this library does not hold are named in a one-line box, which
        offers to import again with the folder of their images (importing twice changes nothing).
        """
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import annotations", "", "JSON (*.json)")
        if not path:
            return
        from ..core.workflow.browse import import_annotations

        try:
            res = import_annotations(self.ctx.library, path, images_dir=images_dir)
        except (OSError, MicrolibError) as exc:
            self.error(str(exc))
            return
        self.ctx.refresh()
        skipped = res.get("not_applied") or []
        self.statusBar().showMessage(res["text"].capitalize() + (f", {len(skipped)} not applied" if skipped else "")
                                     + ".", 8000)
        if skipped:
            box = self._not_applied_box(skipped)
            add = box.addButton("Add from images folder…", QMessageBox.ButtonRole.ActionRole)
            box.exec()
            if box.clickedButton() is add:
                folder = QFileDialog.getExistingDirectory(self, "Folder holding the images of those entries")
                if folder:
                    self.import_annotations(path, images_dir=folder)

    def _not_applied_box(self, skipped: list[dict]) -> QMessageBox:
        """One line naming the records an import could not apply (a local entry of another library)."""
        shown = "; ".join(r["reason"] for r in skipped[:3]) + (f" (and {len(skipped) - 3} more)"
                                                               if len(skipped) > 3 else "")
        box = QMessageBox(QMessageBox.Icon.Information, "Annotations not applied",
                          f"{len(skipped)} record{'s' if len(skipped) > 1 else ''} not applied: {shown}.",
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("annotationsNotApplied")
        return box

    def _ask_overwrite_annotations(self, found: list[Path]) -> bool:
        """Ask before replacing a data_anns.json / microlib_anns.json; True to overwrite."""
        names = " and ".join(p.name for p in found)
        box = QMessageBox(QMessageBox.Icon.Warning, "Overwrite?",
                          f"{found[0].parent} already holds {names}. Overwrite "
                          f"{'them' if len(found) > 1 else 'it'} with this library's annotations?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("annotationsOverwrite")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def export_annotations(self, folder: str | None = None) -> None:
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Export data_anns.json and MicroLib annotations to")
        if not folder:
            return
        found = [p for p in (Path(folder) / "data_anns.json", Path(folder) / "microlib_anns.json")
                 if p.exists() or p.is_symlink()]
        if found and not self._ask_overwrite_annotations(found):
            self.statusBar().showMessage("Export cancelled: nothing was overwritten", 8000)
            return
        try:
            self.ctx.library.export_data_anns(Path(folder) / "data_anns.json")
            self.ctx.library.export_microlib_anns(Path(folder) / "microlib_anns.json")
        except (OSError, MicrolibError) as exc:
            self.error(str(exc))
            return
        self.statusBar().showMessage(f"Wrote data_anns.json and microlib_anns.json to {folder}", 8000)

    def show_jobs(self) -> None:
        """The Jobs view (queued/running/done/failed builds per entry) in a dock."""
        if self.jobs_dock is None:
            from PySide6.QtWidgets import QDockWidget

            from .widgets.jobs_view import JobsView

            self.jobs_view = JobsView(self.ctx)
            self.jobs_dock = QDockWidget("Jobs", self)
            self.jobs_dock.setObjectName("jobsDock")
            self.jobs_dock.setWidget(self.jobs_view)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        size = self.size()
        self.jobs_dock.show()
        self.jobs_dock.raise_()
        self.layout().activate()  # the window's least size with the dock in it, now rather than later
        if not self.jobs_dock.isFloating() and self.minimumSizeHint().height() > size.height():
            # docked, it pushes the window past its height (off a laptop screen): float it over the
            # lower part of the window instead; double-clicking its title docks it again
            self.jobs_dock.setFloating(True)
            self.layout().activate()
            self.resize(size)
            h = max(self.jobs_dock.minimumSizeHint().height(), 260)
            self.jobs_dock.setGeometry(self.x() + 40, self.y() + self.height() - h - 40, self.width() - 80, h)

    def toggle_jobs(self) -> None:
        """Ctrl+J: show the Jobs dock, or hide it when it is showing."""
        if self.jobs_dock is not None and self.jobs_dock.isVisible():
            self.jobs_dock.hide()
        else:
            self.show_jobs()

    def show_report(self) -> None:
        """The library-wide 2D-vs-3D report (MicroLib Figure 4) in a dialog."""
        from .widgets.report_dialog import LibraryReportDialog

        self.report_dialog = LibraryReportDialog(self.ctx.library, self.ctx.jobs, self)
        self.report_dialog.show()

    def show_guide(self) -> None:
        """The README and docs/, rendered in a dialog (works offline)."""
        from .widgets.guide_dialog import GuideDialog

        self.guide_dialog = GuideDialog(self)
        self.guide_dialog.show()

    def about(self) -> QMessageBox:
        from ..core.sysinfo import summary_lines

        box = QMessageBox(self)
        box.setWindowTitle(f"About {APP_NAME}")
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setText(
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Curate micrographs, inpaint scale bars, train SliceGAN generators and inspect "
            "3D microstructures — in MicroLib's dataset layout.</p>"
            "<p>Based on MicroLib (Kench, Squires, Dahari, Cooper, <i>Scientific Data</i> 2022) and "
            "SliceGAN (Kench &amp; Cooper, <i>Nature Machine Intelligence</i> 2021). Micrographs from "
            "the DoITPoMS Micrograph Library, University of Cambridge, under its own licence terms.</p>")
        lines = summary_lines()
        box.setInformativeText(lines[3])  # the compute device: what most questions are about
        box.setDetailedText("\n".join(lines))  # the same as `microlib info`, to copy into a report
        box.setObjectName("aboutBox")
        box.open()
        return box

    def error(self, message: str) -> None:
        QMessageBox.warning(self, APP_NAME, message)

    # -- geometry -------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, (QByteArray, bytes)) and geo:
            self.restoreGeometry(geo)
        else:
            resize_within_screen(self, 1280, 820)  # the first run: a laptop screen is 768 px high

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        for panel in self.panels.values():
            veto = getattr(panel, "confirm_close", None)
            if veto is not None and not veto():
                event.ignore()
                return
        if self.jobs_view is not None:
            self.jobs_view.stop()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("library/last", str(self.ctx.library.root))
        super().closeEvent(event)
        if any(getattr(p, "detach_on_exit", False) for p in self.panels.values()):
            # Python would otherwise wait at exit for the training process it started.
            # Everything the app wrote is committed (atomic files, transactions).
            self.settings.sync()
            exit_now(0)

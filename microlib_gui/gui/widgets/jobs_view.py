"""The Jobs view: every entry's build job (queued, running, done, failed), its log, cancel, retry.

A thin view over :mod:`microlib_gui.core.build`: the state is read from the
library's build folder (and ``squeue`` for SLURM jobs) in a background thread
every few seconds, so builds started from the command line or another window
show up too, and the GUI thread never waits on the cluster.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QPlainTextEdit,
    QPushButton, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ...core import build as B
from ...core.build.state import open_library

COLUMNS = ("Entry", "State", "Step", "Steps", "Executor", "Message", "Updated")
STATE_COLOURS = {
    B.QUEUED: "#8a8f98", B.RUNNING: "#2f7ed8", B.DONE: "#2e9e4f", B.FAILED: "#d64545",
    B.CANCELLED: "#b7791f", B.UNAVAILABLE: "#8e5bd6",
}
STEP_MARK = {B.DONE: "✓", B.SKIPPED: "=", B.RUNNING: "▶", B.FAILED: "✗", B.CANCELLED: "■",
             B.UNAVAILABLE: "∅", B.QUEUED: "·"}
LOG_TAIL_BYTES = 200_000


def _read_jobs(ctx, library_root: str) -> list[dict]:
    return [j.to_dict() for j in B.entry_jobs(open_library(library_root))]


def _run_build(ctx, library_root: str, entry_ids: list[int] | None, options: dict) -> str | None:
    lib = open_library(library_root)
    opts = B.BuildOptions(**options)
    ids = entry_ids if entry_ids is not None else B.select_entries(lib, all_curated=True)
    plan = B.plan_build(lib, ids, opts)
    return B.start_build(lib, plan, opts, should_stop=lambda: ctx.cancelled)


def _cancel(ctx, library_root: str, entry_ids: list[int]) -> int:
    return len(B.cancel_jobs(open_library(library_root), entry_ids))


def _tail(path: str | None) -> str:
    if not path:
        return ""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = p.stat().st_size
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class JobsView(QWidget):
    """Build jobs of the library in ``ctx`` (an :class:`~microlib_gui.gui.context.AppContext`)."""

    #: Emitted with the jobs' dicts after each refresh (for a status bar, tests).
    jobs_refreshed = Signal(list)

    def __init__(self, ctx, parent=None, refresh_ms: int = 2000):
        super().__init__(parent)
        self.ctx = ctx
        self.jobs: list[dict] = []
        self._reader = None  # the window's job runner reads the build state in the background
        self._workers: list = []  # builds and cancels started here (JobHandles)
        self._log_path: str | None = None
        self.quiet_errors = False  # tests: report errors in the summary line only

        # -- controls: what to build, where ------------------------------------------------
        self.steps_edit = QLineEdit(",".join(B.PIPELINE))
        self.steps_edit.setToolTip("Steps to run, in order: " + ", ".join(B.ALL_STEPS)
                                   + " ('selftest' is a quick diagnostic)")
        self.executor_combo = QComboBox()
        self.executor_combo.addItems(["local", "slurm"])
        self.parallel_spin = QSpinBox()
        self.parallel_spin.setRange(1, 256)
        self.parallel_spin.setPrefix("× ")
        self.parallel_spin.setToolTip("Jobs at once")
        self.partition_edit = QLineEdit()
        self.partition_edit.setPlaceholderText("partition")
        self.partition_edit.setMaximumWidth(110)
        self.build_btn = QPushButton("Build curated entries")
        self.build_entry_btn = QPushButton("Build current entry")
        bar = QHBoxLayout()
        for w in (QLabel("Steps"), self.steps_edit, QLabel("on"), self.executor_combo, self.parallel_spin,
                  self.partition_edit, self.build_entry_btn, self.build_btn):
            bar.addWidget(w)
        bar.setStretchFactor(self.steps_edit, 1)

        # -- the table ------------------------------------------------------------------
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(COLUMNS.index("Message"), QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel("no build jobs yet")
        self.cancel_btn = QPushButton("Cancel selected")
        self.retry_btn = QPushButton("Retry selected")
        self.refresh_btn = QPushButton("Refresh")
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        for w in (self.refresh_btn, self.cancel_btn, self.retry_btn):
            row.addWidget(w)

        # -- the log ----------------------------------------------------------------------
        self.log_title = QLabel("Log")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setFont(QFont("monospace", 9))
        self.log_view.setPlaceholderText("Select a job to see its log.")
        # The table and the log side by side, each at least three rows high: the dock then takes
        # little height, and opening it (Ctrl+J) leaves the step above its room on a laptop screen.
        lines = QFontMetrics(self.log_view.font()).lineSpacing()
        self.log_view.setMinimumHeight(3 * lines + 12)
        row_h = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + 2 * row_h + 6)
        left = QWidget()
        tl = QVBoxLayout(left)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.table)
        tl.addLayout(row)
        right = QWidget()
        bl = QVBoxLayout(right)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.log_title)
        bl.addWidget(self.log_view)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(split, 1)

        self.build_btn.clicked.connect(lambda: self.start_build(None))
        self.build_entry_btn.clicked.connect(self._build_current)
        self.cancel_btn.clicked.connect(self.cancel_selected)
        self.retry_btn.clicked.connect(self.retry_selected)
        self.refresh_btn.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._show_log)
        self.ctx.library_changed.connect(self.refresh)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(max(100, int(refresh_ms)))
        self._update_buttons()
        self.refresh()

    # -- reading state (in a thread) -----------------------------------------------------------
    def refresh(self) -> None:
        """Read the jobs again (in the background; the table updates when it is done)."""
        if self._reader is None:
            root = str(self.ctx.library.root)
            self._reader = self.ctx.jobs.start(_read_jobs, {"library_root": root}, tag=root)
            self._reader.finished.connect(self._read_done)

    def _read_done(self, fin) -> None:
        root, self._reader = self._reader.tag, None
        if root != str(self.ctx.library.root):  # File > Open library meanwhile: read the new one
            self.refresh()
        elif fin.result is not None:
            self._set_jobs(fin.result)
        elif fin.error:
            self.summary.setText(f"cannot read the build state: {fin.error}")

    def _worker(self, fn, params: dict) -> None:
        """Start a build or a cancel; the table is read again when it ends."""
        h = self.ctx.jobs.start(fn, params)
        self._workers.append(h)

        def ended(fin, h=h):
            self._workers.remove(h)
            if fin.error:
                self._error(fin.error)
            self.refresh()

        h.finished.connect(ended)

    def _tick(self) -> None:
        """The build runs elsewhere (its own processes, a cluster): read its state every few seconds."""
        self.refresh()
        if self._log_path:
            self._show_log(keep_scroll=True)

    def _set_jobs(self, jobs: list[dict]) -> None:
        selected = set(self.selected_entries())
        self.jobs = jobs
        self.table.setRowCount(len(jobs))
        counts: dict[str, int] = {}
        for r, j in enumerate(jobs):
            counts[j["state"]] = counts.get(j["state"], 0) + 1
            steps = " ".join(f"{STEP_MARK.get(v, '?')}{s}" for s, v in j["step_states"].items())
            ext = j["executor"] + (f" {j['external_id']}" if j.get("external_id") else "")
            upd = time.strftime("%H:%M:%S", time.localtime(j["updated"])) if j.get("updated") else ""
            values = (j["entry"], j["state"], j.get("step") or "", steps, ext, j.get("message") or "", upd)
            for c, v in enumerate(values):
                item = QTableWidgetItem(str(v))
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole, j["entry_id"])
                if c == 1:
                    item.setForeground(QBrush(QColor(STATE_COLOURS.get(j["state"], "#000000"))))
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                if c == COLUMNS.index("Message"):
                    item.setToolTip(str(v))
                self.table.setItem(r, c, item)
            # No need to tell the panels: the live entry model sees the build's commits itself.
        self.table.blockSignals(True)
        for r, j in enumerate(jobs):
            if j["entry_id"] in selected:
                self.table.selectRow(r)
        self.table.blockSignals(False)
        order = (B.QUEUED, B.RUNNING, B.DONE, B.FAILED, B.CANCELLED, B.UNAVAILABLE)
        self.summary.setText(" · ".join(f"{counts[s]} {s}" for s in order if counts.get(s)) or "no build jobs yet")
        self._update_buttons()
        self.jobs_refreshed.emit(jobs)

    # -- selection, log ---------------------------------------------------------------------------
    def selected_jobs(self) -> list[dict]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.jobs[r] for r in rows if r < len(self.jobs)]

    def selected_entries(self) -> list[int]:
        return [j["entry_id"] for j in self.selected_jobs()]

    def select_entry(self, entry_id: int) -> None:
        for r, j in enumerate(self.jobs):
            if j["entry_id"] == entry_id:
                self.table.selectRow(r)

    def _show_log(self, keep_scroll: bool = False) -> None:
        jobs = self.selected_jobs()
        self._update_buttons()
        if not jobs:
            self._log_path = None
            self.log_title.setText("Log")
            self.log_view.setPlainText("")
            return
        j = jobs[0]
        self._log_path = j.get("log")
        text = _tail(j.get("log"))
        sched = _tail(j.get("scheduler_log"))
        if sched.strip():
            text += f"\n--- scheduler log ({Path(j['scheduler_log']).name}) ---\n" + sched
        self.log_title.setText(f"Log of {j['entry']}, build {j['build_id']}: {j.get('log') or ''}")
        if text != self.log_view.toPlainText():
            bar = self.log_view.verticalScrollBar()
            at_end = bar.value() >= bar.maximum() - 2
            self.log_view.setPlainText(text or "(no log yet)")
            if at_end or not keep_scroll:
                bar.setValue(bar.maximum())

    def _update_buttons(self) -> None:
        jobs = self.selected_jobs()
        self.cancel_btn.setEnabled(any(j["state"] in B.ACTIVE for j in jobs))
        self.retry_btn.setEnabled(any(j["state"] in (B.FAILED, B.CANCELLED, B.UNAVAILABLE) for j in jobs))
        self.build_entry_btn.setEnabled(self.ctx.entry_id is not None)

    # -- actions ------------------------------------------------------------------------------------
    def _options(self) -> dict:
        steps = B.parse_steps(self.steps_edit.text())
        return B.BuildOptions(steps=steps, executor=self.executor_combo.currentText(),
                              max_parallel=self.parallel_spin.value(),
                              partition=self.partition_edit.text().strip() or None).to_dict()

    def start_build(self, entry_ids: list[int] | None, options: dict | None = None) -> None:
        """Build ``entry_ids`` (None: every curated entry) with the options shown (or ``options``)."""
        try:
            opts = options if options is not None else self._options()
        except B.BuildError as exc:
            self._error(str(exc))
            return
        self._worker(_run_build, {"library_root": str(self.ctx.library.root), "entry_ids": entry_ids,
                                  "options": opts})
        QTimer.singleShot(300, self.refresh)

    def _build_current(self) -> None:
        if self.ctx.entry_id is not None:
            self.start_build([int(self.ctx.entry_id)])

    def cancel_selected(self) -> None:
        ids = [j["entry_id"] for j in self.selected_jobs() if j["state"] in B.ACTIVE]
        if ids:
            self._worker(_cancel, {"library_root": str(self.ctx.library.root), "entry_ids": ids})

    def retry_selected(self) -> None:
        """Run the selected failed/cancelled/unavailable jobs again, as their build was run."""
        by_build: dict[str, list[int]] = {}
        for j in self.selected_jobs():
            if j["state"] in (B.FAILED, B.CANCELLED, B.UNAVAILABLE):
                by_build.setdefault(j["build_id"], []).append(j["entry_id"])
        for build_id, ids in by_build.items():
            opts = B.options_of(self.ctx.library, build_id)
            opts.retry_failed = True
            self.start_build(ids, opts.to_dict())

    def _error(self, text: str) -> None:
        self.summary.setText(f"⚠ {text}")
        if self.isVisible() and not self.quiet_errors:
            QMessageBox.warning(self, "Build", text)

    def stop(self) -> None:
        """Stop polling and any local build this view started (their finished steps are kept)."""
        self._timer.stop()
        for w in self._workers:
            w.cancel()

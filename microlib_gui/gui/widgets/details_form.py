"""The Details editor: an entry's record (MicroLib's data_anns fields) as a small form.

A plain widget: it shows a :class:`~microlib_gui.core.workflow.details.Details`
and hands the typed values back; the Browse panel saves them through the
workflow. Read-only until Edit is pressed; Save and Cancel end the edit.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from ...core.annotations import split_list
from ...core.workflow.details import EDITABLE, LIST_FIELDS

#: Label of each field, as DoITPoMS and MicroLib name it.
LABELS = {
    "name": "Name", "data_type": "Data type", "brief_descr": "Description", "keywords": "Keywords",
    "category": "Categories", "element": "Elements", "technique": "Technique", "long_desc": "Further information",
    "contributor": "Contributor", "organisation": "Organisation", "original_filename": "Original file",
}
_SHOWN = ("name", "data_type", "original_filename")


class DetailsForm(QGroupBox):
    """The record of one library entry; ``save_requested(values)`` when Save is pressed."""

    save_requested = Signal(dict)

    def __init__(self, parent=None):
        super().__init__("Details (data_anns.json)", parent)
        self.setObjectName("detailsForm")
        # read-only fields look read-only: Edit makes them white
        self.setStyleSheet("QLineEdit[readOnly=\"true\"], QPlainTextEdit[readOnly=\"true\"] {background: #f0f0f0}")
        self.details = None
        self.editing = False
        form = QFormLayout()
        form.setContentsMargins(4, 2, 4, 2)
        self.labels: dict[str, QLabel] = {}
        self.edits: dict[str, QLineEdit | QPlainTextEdit] = {}
        for f in _SHOWN:
            self.labels[f] = QLabel()
            self.labels[f].setObjectName(f"details_{f}")
            form.addRow(LABELS[f], self.labels[f])
        for f in EDITABLE:
            if f == "long_desc":
                w = QPlainTextEdit()
                w.setMaximumHeight(3 * w.fontMetrics().lineSpacing() + 12)  # three lines, then it scrolls
            else:
                w = QLineEdit()
                if f in LIST_FIELDS:
                    w.setPlaceholderText("comma-separated")
            w.setObjectName(f"details_{f}")
            self.edits[f] = w
            form.addRow(LABELS[f], w)
        self.edit_btn = QPushButton("Edit")
        self.edit_btn.setObjectName("detailsEdit")
        self.edit_btn.setToolTip("Edit this entry's description, keywords, ... (saved as one undoable edit)")
        self.edit_btn.clicked.connect(lambda: self.set_editing(True))
        self.save_btn = QPushButton("Save")
        self.save_btn.setObjectName("detailsSave")
        self.save_btn.clicked.connect(lambda: self.save_requested.emit(self.values()))
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setObjectName("detailsCancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.note = QLabel()
        self.note.setObjectName("detailsNote")
        self.note.setStyleSheet("color:#666")
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.note, 1)
        for b in (self.edit_btn, self.save_btn, self.cancel_btn):
            self.buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addLayout(self.buttons)
        self.set_editing(False)

    # -- showing ----------------------------------------------------------------------
    def show_details(self, details) -> None:
        """Show ``details`` (None: hide); an edit in progress of the same entry keeps what was typed."""
        same = details is not None and self.details is not None and details.entry_id == self.details.entry_id
        self.details = details
        self.setVisible(details is not None)
        if details is None:
            return
        if not (same and self.editing):
            self.set_editing(False)
            self._fill(details.record)
        rec = details.record
        self.labels["name"].setText(rec["name"])
        self.labels["data_type"].setText(rec["data_type"] or "(not segmented yet)")
        self.labels["original_filename"].setText(rec["original_filename"] or "—")
        edited = [LABELS[f] for f in EDITABLE if f in details.edited]
        over = " over DoITPoMS" if details.source == "doitpoms" else ""
        self.note.setText(f"Edited{over}: {', '.join(edited)}" if edited else "")

    def _fill(self, rec: dict) -> None:
        for f, w in self.edits.items():
            v = rec.get(f)
            text = ", ".join(v) if isinstance(v, list) else str(v or "")
            if isinstance(w, QPlainTextEdit):
                w.setPlainText(text)
            else:
                w.setText(text)
                w.setCursorPosition(0)

    # -- editing ------------------------------------------------------------------------
    def set_editing(self, on: bool) -> None:
        self.editing = bool(on)
        for w in self.edits.values():
            w.setReadOnly(not on)
            w.style().unpolish(w)  # the style sheet's [readOnly] look follows
            w.style().polish(w)
        self.edit_btn.setVisible(not on)
        self.save_btn.setVisible(on)
        self.cancel_btn.setVisible(on)
        if on:
            self.edits["brief_descr"].setFocus()

    def cancel(self) -> None:
        """Drop what was typed: the saved record again."""
        self.set_editing(False)
        if self.details is not None:
            self._fill(self.details.record)

    def values(self) -> dict:
        """What the fields hold now: text, lists split at commas."""
        out = {}
        for f, w in self.edits.items():
            text = w.toPlainText() if isinstance(w, QPlainTextEdit) else w.text()
            out[f] = split_list(text) if f in LIST_FIELDS else text
        return out

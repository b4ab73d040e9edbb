"""State shared by the main window and the step panels: the library and current entry.

Panels never talk to each other; they listen to these signals (as napari's Qt
views listen to model events).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..core.store import Library


class AppContext(QObject):
    #: The library object was replaced (File → Open library).
    library_changed = Signal()
    #: The current entry changed: new id, or -1 for none.
    entry_changed = Signal(int)
    #: Something about an entry changed (annotations, step status, files).
    entry_updated = Signal(int)
    #: Entries were added/removed/excluded.
    entries_changed = Signal()

    def __init__(self, library: Library):
        super().__init__()
        self.library = library
        self.entry_id: int | None = None

    def set_library(self, library: Library) -> None:
        self.library = library
        self.entry_id = None
        self.library_changed.emit()
        self.entries_changed.emit()
        self.entry_changed.emit(-1)

    def set_entry(self, entry_id: int | None) -> None:
        if entry_id == self.entry_id:
            return
        self.entry_id = entry_id
        self.entry_changed.emit(-1 if entry_id is None else int(entry_id))

    def notify_updated(self, entry_id: int | None = None) -> None:
        eid = self.entry_id if entry_id is None else entry_id
        if eid is not None:
            self.entry_updated.emit(int(eid))

"""The live entry model: the library, the current entry, and one event for every change of it.

Whatever changes the current entry — a panel's save, a finished job, Undo/Redo,
the build or a CLI call in another process, File → Open library, choosing
another entry — the model emits :attr:`AppContext.entry_changed` once, and every
panel re-reads what it shows from the store. Changes are found by asking the
database (:class:`~microlib_gui.core.library.ChangeWatcher`, polled on a timer and
checked at once by :meth:`AppContext.refresh` after an in-process save), so no
writer has to remember to tell anyone. Panels hold no entry state across events
(napari's evented models, Qt views subscribing).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.errors import MicrolibError
from ..core.library import Library
from .jobrunner import JobRunner

#: How often the database is checked for changes made outside this window (ms).
POLL_MS = 500


class AppContext(QObject):
    #: The library object was replaced (File → Open library); entry_changed follows.
    library_changed = Signal()
    #: The one event: the current entry (id, or -1 for none) was chosen or changed in any way.
    entry_changed = Signal(int)
    #: Entries were added, removed, renamed or (un)excluded.
    entries_changed = Signal()

    def __init__(self, library: Library, poll_ms: int = POLL_MS):
        super().__init__()
        self.library = library
        self.entry_id: int | None = None
        #: the one job runner of the window (long work: inpaint, train, generate, stats, export)
        self.jobs = JobRunner(self)
        self._watcher = library.watch()
        self._entry_sig = None
        self._entries_sig = self._safe(library.entries_signature)
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    @staticmethod
    def _safe(fn, *args):
        try:
            return fn(*args)
        except MicrolibError:
            return None

    def set_library(self, library: Library) -> None:
        self._watcher.close()
        self.library = library
        self._watcher = library.watch()
        self.entry_id = None
        self._entry_sig = None
        self._entries_sig = self._safe(library.entries_signature)
        self.library_changed.emit()
        self.entries_changed.emit()
        self.entry_changed.emit(-1)

    def set_entry(self, entry_id: int | None) -> None:
        if entry_id == self.entry_id:
            return
        self.entry_id = entry_id
        self._entry_sig = None if entry_id is None else self._safe(self.library.entry_signature, entry_id)
        self.entry_changed.emit(-1 if entry_id is None else int(entry_id))

    def refresh(self) -> bool:
        """Emit the events for whatever changed since the last check; True if the current entry changed.

        Panels call it right after a save so the event comes at once; the timer
        calls it for changes made elsewhere.
        """
        entries = self._safe(self.library.entries_signature)
        if entries != self._entries_sig:
            self._entries_sig = entries
            self.entries_changed.emit()
        if self.entry_id is None:
            return False
        sig = self._safe(self.library.entry_signature, self.entry_id)
        if sig == self._entry_sig:
            return False
        self._entry_sig = sig
        self.entry_changed.emit(int(self.entry_id))
        return True

    def _poll(self) -> None:
        if self._watcher.changed():
            self.refresh()

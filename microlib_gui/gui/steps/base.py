"""Base class of the wizard's step panels, and the panel shown for steps not built yet."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from ...core.errors import MicrolibError
from ..context import AppContext


class StepPanel(QWidget):
    """A panel of the wizard. Knows one entry at a time and keeps no copy of its state.

    Subclasses set ``step`` (a key of :data:`microlib_gui.core.steps.STEPS`) and
    override :meth:`load_entry`, which re-reads everything the panel shows from
    the store (through :mod:`microlib_gui.core.workflow`). It runs on every event
    of the live entry model while the panel is visible, and when the panel is
    shown after events it missed. Edits go through ``workflow.<step>.save``,
    then :meth:`changed` announces them.
    """

    step: str = ""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self._stale_view = True
        ctx.entry_changed.connect(self._on_entry_event)

    @property
    def library(self):
        return self.ctx.library

    @property
    def entry_id(self) -> int | None:
        return self.ctx.entry_id

    @property
    def jobs(self):
        return self.ctx.jobs

    def _on_entry_event(self, _entry_id: int) -> None:
        if self.isVisible():
            self.reload()
        else:
            self._stale_view = True  # re-read when shown: hidden panels do no work

    def reload(self) -> None:
        """Re-read the current entry and show it."""
        self._stale_view = False
        try:
            self.load_entry(self.entry_id)
        except MicrolibError as exc:
            self.show_error(str(exc))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if self._stale_view:
            self.reload()

    def changed(self) -> bool:
        """After a save: let the live model emit its event now (every panel re-reads).

        False when the save changed nothing (then no event comes)."""
        return self.ctx.refresh()

    def save(self, fn, *args, **kwargs) -> bool:
        """Run a workflow save ``fn(*args, **kwargs)`` for an edit; False when it was refused.

        A refused edit is explained in a dialog; either way the panel ends up
        showing what is saved (the event re-reads it; with no change, no event
        comes, so the panel re-reads itself).
        """
        try:
            fn(*args, **kwargs)
        except MicrolibError as exc:
            self.show_error(str(exc))
            self.reload()
            return False
        if not self.changed():
            self.reload()
        return True

    def load_entry(self, entry_id: int | None) -> None:
        """Show ``entry_id`` (None: no entry selected), read afresh from the store."""

    def activated(self) -> None:
        """Called when the panel becomes the visible step."""

    def show_error(self, message: str) -> None:
        """A one-line reason in a dialog; never a traceback."""
        QMessageBox.warning(self, "MicroLib Studio", message)


class NotBuiltPanel(StepPanel):
    """Shown for a step whose panel is not built yet — says so plainly, fakes nothing."""

    def __init__(self, ctx: AppContext, step: str, title: str, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.step = step
        lay = QVBoxLayout(self)
        label = QLabel(
            f"<h2>{title}</h2><p>This step is not built yet in this version of MicroLib Studio.</p>"
            f"<p>Its command-line twin, where one exists, is listed by <code>microlib --help</code>.</p>"
        )
        label.setObjectName("notBuiltLabel")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        lay.addWidget(label)

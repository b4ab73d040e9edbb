"""Base class of the wizard's step panels, and the panel shown for steps not built yet."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from ...core.errors import MicrolibError
from ..context import AppContext


class StepPanel(QWidget):
    """A panel of the wizard. Knows one entry at a time.

    Subclasses set ``step`` (a key of :data:`microlib_gui.core.steps.STEPS`) and
    override :meth:`load_entry`; they read and write the library through core
    and call ``self.ctx.notify_updated()`` after a change.
    """

    step: str = ""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        ctx.entry_changed.connect(self._on_entry_changed)
        ctx.library_changed.connect(lambda: self._on_entry_changed(-1))

    @property
    def library(self):
        return self.ctx.library

    @property
    def entry_id(self) -> int | None:
        return self.ctx.entry_id

    def _on_entry_changed(self, entry_id: int) -> None:
        try:
            self.load_entry(None if entry_id < 0 else entry_id)
        except MicrolibError as exc:
            self.show_error(str(exc))

    def load_entry(self, entry_id: int | None) -> None:
        """Show ``entry_id`` (None: no entry selected)."""

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

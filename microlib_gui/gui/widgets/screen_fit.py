"""Window sizes that fit the screen a window is on (a 1366 × 768 laptop included)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

#: Share of the screen's free area a dialog may take at most: its title bar and the panel stay in view.
SCREEN_SHARE = 0.9


def resize_within_screen(widget: QWidget, width: int, height: int) -> None:
    """Resize ``widget`` to ``width`` × ``height``, or less where its screen's free area is smaller."""
    screen = widget.screen()
    if screen is not None:
        free = screen.availableGeometry()
        width = min(width, int(free.width() * SCREEN_SHARE))
        height = min(height, int(free.height() * SCREEN_SHARE))
    widget.resize(width, height)

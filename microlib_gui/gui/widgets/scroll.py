"""A settings column that scrolls vertically instead of setting the window's least height."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def scroll_column(widget: QWidget, name: str) -> QScrollArea:
    """``widget`` in a frameless, vertically scrolling area named ``name``: a tall column of
    settings then fits a 768 px screen. It never gets narrower than the widget's rows need
    (plus :func:`bar_width`): it does not scroll sideways, so a narrower one cut them off on the
    right; a caller may set a larger minimum or a maximum."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width() + bar_width(area))
    return area


def bar_width(area: QScrollArea) -> int:
    """The width the vertical scroll bar takes when it shows."""
    return area.verticalScrollBar().sizeHint().width()

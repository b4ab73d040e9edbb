"""A settings column that scrolls vertically instead of setting the window's least height."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def scroll_column(widget: QWidget, name: str) -> QScrollArea:
    """``widget`` in a frameless, vertically scrolling area named ``name``: a tall column of
    settings then fits a 768 px screen; its width is left to the caller (contents plus
    :func:`bar_width`)."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


def bar_width(area: QScrollArea) -> int:
    """The width the vertical scroll bar takes when it shows."""
    return area.verticalScrollBar().sizeHint().width()

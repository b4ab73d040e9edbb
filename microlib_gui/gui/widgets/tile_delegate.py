"""How the Browse grid paints a tile: thumbnail, number, description, and a state pill."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from .browse_model import ITEM_ROLE

#: Thumbnail box and grid cell of a tile (px).
THUMB = QSize(120, 96)
GRID = QSize(164, 150)

#: Pill colour of each item state (``Item.state``).
STATE_COLOURS = {"excluded": "#b02a37", "demo": "#6c757d", "in library": "#198754"}


class TileDelegate(QStyledItemDelegate):
    """Paints a tile of any model that gives an ``Item`` under :data:`ITEM_ROLE`."""

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 - Qt naming
        return GRID

    def paint(self, painter: QPainter, option, index) -> None:
        item = index.data(ITEM_ROLE)
        if item is None:
            return
        painter.save()
        r = option.rect.adjusted(3, 3, -3, -3)
        pal = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(pal.highlight().color(), 2))
            painter.setBrush(pal.highlight().color().lighter(170))
            painter.drawRoundedRect(r, 6, 6)
        pix = index.data(Qt.ItemDataRole.DecorationRole)  # asks for the thumbnail if not there yet
        box = QRect(r.left() + (r.width() - THUMB.width()) // 2, r.top() + 4, THUMB.width(), THUMB.height())
        if pix is not None and not pix.isNull():
            scaled = pix.scaled(THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            painter.drawPixmap(box.left() + (box.width() - scaled.width()) // 2,
                               box.top() + (box.height() - scaled.height()) // 2, scaled)
        else:
            painter.fillRect(box, QColor("#e6e6e6"))
            painter.setPen(QColor("#999"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "…")
        fm = QFontMetrics(option.font)
        y = box.bottom() + 4
        head = f"No. {item.doitpoms_id}" if item.doitpoms_id else (f"Entry {item.entry.id}" if item.entry else "")
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(pal.text().color())
        painter.drawText(QRect(r.left() + 4, y, r.width() - 8, fm.height()), Qt.AlignmentFlag.AlignLeft, head)
        badge = item.state
        if badge:
            painter.setFont(option.font)
            w = fm.horizontalAdvance(badge) + 10
            pill = QRect(r.right() - w - 2, y, w, fm.height())
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(STATE_COLOURS[badge]))
            painter.drawRoundedRect(pill, 7, 7)
            painter.setPen(QColor("white"))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, badge)
        painter.setFont(option.font)
        painter.setPen(pal.text().color())
        text = fm.elidedText(item.title, Qt.TextElideMode.ElideRight, r.width() - 8)
        painter.drawText(QRect(r.left() + 4, y + fm.height() + 2, r.width() - 8, fm.height()),
                         Qt.AlignmentFlag.AlignLeft, text)
        painter.restore()

"""Arrays shown as pictures: QImage conversion and a label that scales an array to fit."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy


def to_qimage(arr: np.ndarray) -> QImage:
    """A uint8 gray ``(H, W)`` or RGB ``(H, W, 3)`` array as a QImage (copied)."""
    a = np.ascontiguousarray(arr)
    h, w = a.shape[:2]
    if a.ndim == 2:
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()


class ImageBox(QLabel):
    """A label that shows an array scaled to fit, keeping its aspect ratio."""

    def __init__(self, title: str):
        super().__init__()
        self.title = title
        self._pix: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("QLabel { background: #202020; color: #bbbbbb; }")
        self.clear_image(title)

    def set_array(self, arr: np.ndarray | None) -> None:
        if arr is None:
            self.clear_image(self.title)
            return
        self._pix = QPixmap.fromImage(to_qimage(arr))
        self._rescale()

    def clear_image(self, text: str) -> None:
        self._pix = None
        self.setPixmap(QPixmap())
        self.setText(text)

    def has_image(self) -> bool:
        return self._pix is not None

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pix is not None:
            self.setPixmap(self._pix.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.FastTransformation))

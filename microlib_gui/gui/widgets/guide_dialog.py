"""Help → User guide: the README and docs/*.md, rendered offline in the app.

Qt renders Markdown itself (``QTextBrowser.setMarkdown``); links between the
pages open the linked page here, web links open in the browser.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QHBoxLayout, QListWidget, QListWidgetItem, QTextBrowser

from ...core.paths import docs_dir
from .screen_fit import resize_within_screen

#: Page titles for the list, in reading order (other pages follow, by name).
ORDER = {"README.md": "Overview (README)", "library.md": "The library", "doitpoms.md": "DoITPoMS browser",
         "preprocessing.md": "Crop, segment, scale bar", "inpainting.md": "Inpainting",
         "slicegan.md": "SliceGAN training and generation", "train_inspect_export.md": "Train, Inspect, Export",
         "statistics.md": "Statistics and reports", "cluster.md": "Builds on a cluster",
         "installer.md": "The desktop build", "reliability.md": "Reliability", "benchmarks.md": "Benchmarks",
         "development.md": "Development"}


def guide_pages() -> list[Path]:
    """The guide's Markdown files: the README first, then docs/ in :data:`ORDER`."""
    d = docs_dir()
    readme = next((p for p in (d.parent / "README.md", d / "README.md") if p.is_file()), None)
    pages = [readme] if readme else []
    docs = sorted(d.glob("*.md")) if d.is_dir() else []
    rank = {name: i for i, name in enumerate(ORDER)}
    pages += sorted((p for p in docs if p.name != "README.md"), key=lambda p: (rank.get(p.name, 99), p.name))
    return pages


class GuideDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("MicroLib Studio — user guide")
        self.pages = {p.name: p for p in guide_pages()}
        self.list = QListWidget()
        self.list.setObjectName("guidePages")
        self.list.setMaximumWidth(240)
        for name in self.pages:
            item = QListWidgetItem(ORDER.get(name, name))
            item.setData(256, name)
            self.list.addItem(item)
        self.text = QTextBrowser()
        self.text.setObjectName("guideText")
        self.text.setOpenLinks(False)
        self.text.anchorClicked.connect(self._follow)
        self.list.currentRowChanged.connect(lambda row: self.show_page(self.list.item(row).data(256))
                                            if row >= 0 else None)
        lay = QHBoxLayout(self)
        lay.addWidget(self.list)
        lay.addWidget(self.text, 1)
        resize_within_screen(self, 1100, 760)
        if self.pages:
            self.list.setCurrentRow(0)
        else:
            self.text.setPlainText("The user guide is not part of this installation.")

    def show_page(self, name: str) -> None:
        path = self.pages.get(name)
        if path is None:
            return
        self.current = name
        self.text.setMarkdown(path.read_text(encoding="utf-8", errors="replace"))
        for row in range(self.list.count()):
            if self.list.item(row).data(256) == name and self.list.currentRow() != row:
                self.list.setCurrentRow(row)

    def _follow(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)
            return
        name = Path(url.path()).name
        if name in self.pages:
            self.show_page(name)
            if url.fragment():
                self.text.scrollToAnchor(url.fragment())
        elif url.fragment():
            self.text.scrollToAnchor(url.fragment())

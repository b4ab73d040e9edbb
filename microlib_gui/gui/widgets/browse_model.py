"""The Browse step's list: one item per micrograph (a DoITPoMS record, a library entry, or both).

:func:`merge_items` joins the cached DoITPoMS records with the library's
entries; :class:`BrowseModel` holds them for a list view and asks for a
thumbnail only when a tile is painted (:attr:`BrowseModel.thumbnail_needed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QPixmap

from ...core.doitpoms import Record
from ...core.doitpoms.client import matches
from ...core.library import Entry

#: Role under which the model gives the :class:`Item` itself (the tile delegate paints from it).
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1

#: Record fields a library entry keeps in its metadata (shown when the record is not cached).
RECORD_FIELDS = ("brief_descr", "long_desc", "keywords", "category", "element", "technique",
                 "contributor", "organisation", "licence")


@dataclass
class Item:
    """One tile of the grid: a DoITPoMS record, a library entry, or both."""

    key: str
    record: Record | None = None
    entry: Entry | None = None
    #: A library entry's record (:func:`microlib_gui.core.workflow.details.records`): its edits over DoITPoMS's
    details: dict | None = None

    @property
    def doitpoms_id(self) -> int | None:
        if self.record is not None:
            return self.record.id
        return self.entry.doitpoms_id if self.entry is not None else None

    @property
    def title(self) -> str:
        if self.details is not None and self.details.get("brief_descr"):
            return self.details["brief_descr"]
        if self.record is not None and self.record.brief_descr:
            return self.record.brief_descr
        if self.entry is not None:
            return self.entry.metadata.get("brief_descr") or self.entry.name
        return ""

    @property
    def state(self) -> str:
        """``"excluded"``, ``"demo"``, ``"in library"``, or ``""`` for a record not in the library."""
        if self.entry is None:
            return ""
        if self.entry.excluded:
            return "excluded"
        return "demo" if self.entry.source == "demo" else "in library"

    def label(self) -> str:
        head = f"No. {self.doitpoms_id}" if self.doitpoms_id else (self.entry.name if self.entry else "")
        badge = {"excluded": "✖ excluded", "": ""}.get(self.state, f"● {self.state}")
        text = self.title if len(self.title) <= 38 else self.title[:36] + "…"
        return "\n".join(x for x in (head, text, badge) if x)

    def search_record(self) -> Record | None:
        """What search and filters look at: a library entry's record (its edits included), else DoITPoMS's."""
        rec = self.record
        d = self.details
        if d is None and rec is None and self.entry is not None:
            d = self.entry.metadata  # no record read: the metadata as stored
        if d is None:
            return rec
        out = Record(id=rec.id if rec is not None else 0, brief_descr=self.title,
                     long_desc=str(d.get("long_desc") or ""), keywords=_listed(d.get("keywords")),
                     category=_listed(d.get("category")), element=_listed(d.get("element")),
                     technique=str(d.get("technique") or ""), contributor=str(d.get("contributor") or ""),
                     organisation=str(d.get("organisation") or ""),
                     composition=rec.composition if rec is not None else "")
        if self.entry is not None:
            # the entry's name, source and original file find it too
            out.contributor = " ".join(x for x in (out.contributor, self.entry.name, self.entry.source,
                                                   str(d.get("original_filename") or "")) if x)
        return out

    def matches(self, text: str, category: str | None, technique: str | None, element: str | None) -> bool:
        rec = self.search_record()
        return rec is not None and matches(rec, text, category, technique, element)


def _listed(v) -> list[str]:
    """A list field as a list (an older library's metadata may hold ``"a, b"``)."""
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v]
    return [x.strip() for x in str(v or "").split(",") if x.strip()]


def merge_items(records: list[Record], entries: list[Entry], details: dict[int, dict] | None = None) -> list[Item]:
    """One item per micrograph, DoITPoMS numbers first (in order), then local entries by id.

    An entry imported from DoITPoMS joins its record's item; when the record is
    not cached, the entry's metadata stands in for it. ``details`` (entry id →
    record) are the entries' records with their edits: what search finds them by.
    """
    details = details or {}
    items: dict[str, Item] = {f"d{r.id}": Item(f"d{r.id}", record=r) for r in records}
    for e in entries:
        if e.doitpoms_id is not None:
            key = f"d{e.doitpoms_id}"
            item = items.setdefault(key, Item(key))
            item.entry = e
            if item.record is None:
                item.record = Record(id=e.doitpoms_id, **{k: e.metadata[k] for k in RECORD_FIELDS
                                                          if k in e.metadata})
        else:
            item = items[f"e{e.id}"] = Item(f"e{e.id}", entry=e)
        item.details = details.get(e.id)
    return sorted(items.values(), key=lambda it: (it.doitpoms_id is None, it.doitpoms_id or 0,
                                                  it.entry.id if it.entry else 0))


def filter_values(items: list[Item]) -> tuple[set[str], set[str], set[str]]:
    """The categories, techniques and elements found in ``items`` (for the filter boxes)."""
    cats, techs, elems = set(), set(), set()
    for it in items:
        rec = it.search_record()
        if rec is not None:
            cats.update(rec.category)
            if rec.technique:
                techs.add(rec.technique)
            elems.update(rec.element)
    return cats, techs, elems


class BrowseModel(QAbstractListModel):
    """The visible tiles; thumbnails are asked for only when a tile is painted."""

    thumbnail_needed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.all: list[Item] = []
        self.items: list[Item] = []
        self.thumbs: dict[str, QPixmap] = {}
        self._asked: set[str] = set()
        self._row_of: dict[str, int] = {}

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt naming
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.items):
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.label()
        if role == Qt.ItemDataRole.DecorationRole:
            pix = self.thumbs.get(item.key)
            if pix is None and item.key not in self._asked:
                self._asked.add(item.key)
                self.thumbnail_needed.emit(item.key)
            return pix
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.title
        if role == Qt.ItemDataRole.ForegroundRole and item.state == "excluded":
            return QColor("#a33")
        if role == Qt.ItemDataRole.UserRole:
            return item.key
        if role == ITEM_ROLE:
            return item
        return None

    def item(self, key: str) -> Item | None:
        """The item of ``key`` among all items (shown or filtered out), or None."""
        return next((it for it in self.all if it.key == key), None)

    def set_items(self, items: list[Item], visible: list[Item]) -> None:
        self.beginResetModel()
        self.all = items
        self.items = visible
        self._row_of = {it.key: r for r, it in enumerate(visible)}
        self.endResetModel()

    def set_thumbnail(self, key: str, pix: QPixmap) -> None:
        self.thumbs[key] = pix
        row = self._row_of.get(key)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def item_changed(self, key: str) -> None:
        """Repaint ``key``'s tile after its item was updated in place."""
        row = self._row_of.get(key)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def forget_thumbnail(self, key: str) -> None:
        """Drop ``key``'s thumbnail so the next paint asks for it again (a better one exists)."""
        self._asked.discard(key)
        self.thumbs.pop(key, None)

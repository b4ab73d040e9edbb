"""Browse step: find DoITPoMS micrographs, read their records, add them to the library.

The grid lists every micrograph seen on the DoITPoMS browse pages (cached, so
it works offline) together with the library's own entries (local and demo
ones too). Network work — refreshing the listing, thumbnails, large images,
imports — runs in background threads; the GUI thread only reads local files.
The list model is :mod:`..widgets.browse_model`, the tiles are painted by
:mod:`..widgets.tile_delegate`. A library entry's record (description, keywords,
...: :mod:`microlib_gui.core.workflow.details`) is edited in the Details form
(:mod:`..widgets.details_form`); search finds entries by it.
"""

from __future__ import annotations

import html
import os
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ...core.doitpoms import Cache, Client, DoitpomsError
from ...core.doitpoms.importer import import_micrographs, pending_import
from ...core.errors import MicrolibError
from ...core.jobs import CANCELLED, DONE, FAILED, Finished
from ...core.steps import EXCLUSION_REASONS
from ...core.workflow import details
from ..jobrunner import JobHandle
from ..settings import make_settings
from ..widgets.browse_model import BrowseModel, Item, filter_values, merge_items
from ..widgets.details_form import DetailsForm
from ..widgets.scroll import scroll_column
from ..widgets.image_view import AnnotationHistory
from ..widgets.tile_delegate import GRID, THUMB, TileDelegate
from .base import StepPanel

ANY = "(any)"


class _Relay(QObject):
    """Carries results from worker threads to the GUI thread (queued signals)."""

    thumb = Signal(str, QImage)
    large = Signal(str, QImage, str)


def _image_from_bytes(raw: bytes, max_side: int | None = None) -> QImage:
    img = QImage.fromData(raw)
    if not img.isNull() and max_side and max(img.width(), img.height()) > max_side:
        img = img.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    return img


class Panel(StepPanel):
    step = "browse"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.client = self._make_client()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="browse")
        self._relay = _Relay()
        self._relay.thumb.connect(self._on_thumb)
        self._relay.large.connect(self._on_large)
        self._refresh_job: JobHandle | None = None
        self._import_job: JobHandle | None = None
        self._current: Item | None = None
        self._shown_root = None  # the library the detail pane's item came from
        self._refreshed_once = False
        self._entry_keys: set[str] = set()
        self._build_ui()
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self.apply_filter)
        ctx.entries_changed.connect(self.reload_grid)
        self.destroyed.connect(lambda *_: self._pool.shutdown(wait=False, cancel_futures=True))
        self.reload_grid()

    # -- setup -------------------------------------------------------------------
    def _make_client(self) -> Client:
        """A client for ``$MICROLIB_DOITPOMS_URL``, else the saved address, else the public site."""
        url = None
        try:
            url = make_settings().value("doitpoms/base_url") or None
        except Exception:  # noqa: BLE001 - settings are a convenience, the default always works
            url = None
        url = os.environ.get("MICROLIB_DOITPOMS_URL") or url
        try:
            return Client(url)
        except DoitpomsError:
            return Client()  # a bad saved address: fall back to the public site
        except MicrolibError:
            import tempfile

            # The user cache folder cannot be used: keep this session's pages in a temp folder.
            return Client(url, cache=Cache(tempfile.mkdtemp(prefix="microlib-cache-")))

    def set_base_url(self, url: str | None = None) -> bool:
        """Point the panel at another DoITPoMS address (a mirror); saved for next time."""
        url = (url if url is not None else self.url_edit.text()).strip()
        try:
            client = Client(url, cache=self.client.cache)
        except MicrolibError as exc:
            self.status.setText(str(exc))
            return False
        self.client = client
        self.url_edit.setText(client.base_url)
        try:
            settings = make_settings()
            settings.setValue("doitpoms/base_url", client.base_url)
            settings.sync()
        except Exception:  # noqa: BLE001 - not being able to save the address is not fatal
            pass
        self.banner_row.setVisible(False)
        self.refresh()
        return True

    def _build_ui(self) -> None:
        lay = QVBoxLayout(self)
        self.banner = QLabel()
        self.banner.setObjectName("offlineBanner")
        self.banner.setStyleSheet("background:#fff3cd; color:#664d03; padding:6px; border:1px solid #ffe69c;")
        self.banner.setWordWrap(True)
        self.retry_btn = QPushButton("Try online again")
        self.retry_btn.clicked.connect(self.go_online)
        brow = QHBoxLayout()
        brow.addWidget(self.banner, 1)
        brow.addWidget(self.retry_btn)
        self.banner_row = QWidget()
        self.banner_row.setLayout(brow)
        self.banner_row.setVisible(False)
        lay.addWidget(self.banner_row)

        bar = QHBoxLayout()
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search descriptions, keywords, composition…")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.category_box, self.technique_box, self.element_box = QComboBox(), QComboBox(), QComboBox()
        for box, tip in ((self.category_box, "Category"), (self.technique_box, "Technique"),
                         (self.element_box, "Element")):
            box.setToolTip(tip)
            box.setMinimumContentsLength(8)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.currentIndexChanged.connect(lambda _i: self.apply_filter())
        self.refresh_btn = QPushButton("Refresh from DoITPoMS")
        self.refresh_btn.clicked.connect(self.refresh)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.refresh_btn)
        lay.addLayout(bar)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Category"))
        filters.addWidget(self.category_box, 2)
        filters.addWidget(QLabel("Technique"))
        filters.addWidget(self.technique_box, 2)
        filters.addWidget(QLabel("Element"))
        filters.addWidget(self.element_box, 1)
        lay.addLayout(filters)
        self.count_label = QLabel()
        self.count_label.setObjectName("browseCount")
        lay.addWidget(self.count_label)

        self.model = BrowseModel(self)
        self.model.thumbnail_needed.connect(self._load_thumb)
        self.view = QListView()
        self.view.setObjectName("browseGrid")
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)  # lets the view lay out hundreds of tiles without asking each
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(100)
        self.view.setIconSize(THUMB)
        self.view.setGridSize(GRID)
        self.view.setItemDelegate(TileDelegate(self.view))
        self.view.setSpacing(2)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._on_selection())

        detail = QWidget()
        dl = QVBoxLayout(detail)
        self.image_label = QLabel("Select a micrograph")
        self.image_label.setObjectName("browseLargeImage")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # neither the shown picture nor the record's text claims height: the column scrolls when the
        # Details form does not fit, and these two take what is left (they shrink first)
        self.image_label.setMinimumSize(240, 120)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.record_view = QTextBrowser()
        self.record_view.setObjectName("browseRecord")
        self.record_view.setMinimumHeight(60)
        self.record_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.record_view.setOpenExternalLinks(True)
        self.details_form = DetailsForm()
        self.details_form.save_requested.connect(self._save_details)
        self.details_form.setVisible(False)
        self.history = AnnotationHistory(self)
        self.details_form.buttons.insertWidget(1, self.history.buttons())
        self.add_btn = QPushButton("Add to library")
        self.add_btn.setObjectName("browseAdd")
        self.add_btn.clicked.connect(self.add_selected)
        self.reason_box = QComboBox()
        self.reason_box.addItems(list(EXCLUSION_REASONS))
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note (optional)")
        self.note_edit.setMinimumWidth(120)
        self.exclude_btn = QPushButton("Exclude")
        self.exclude_btn.clicked.connect(self.exclude_selected)
        self.include_btn = QPushButton("Include again")
        self.include_btn.clicked.connect(lambda: self.exclude_selected(include=True))
        self.resume_btn = QPushButton()
        self.resume_btn.setObjectName("browseResume")
        self.resume_btn.setToolTip("An earlier import did not finish: add the micrographs it left")
        self.resume_btn.clicked.connect(self.resume_import)
        self.resume_btn.setVisible(False)
        self.cancel_btn = QPushButton("Cancel import")
        self.cancel_btn.setObjectName("browseCancel")
        self.cancel_btn.clicked.connect(self.cancel_import)
        self.cancel_btn.setVisible(False)
        row1 = QHBoxLayout()
        row1.addWidget(self.add_btn)
        row1.addWidget(self.resume_btn)
        row1.addWidget(self.cancel_btn)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Exclude as"))
        row2.addWidget(self.reason_box)
        row2.addWidget(self.note_edit, 1)
        row2b = QHBoxLayout()
        row2b.addStretch(1)
        row2b.addWidget(self.exclude_btn)
        row2b.addWidget(self.include_btn)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel()
        self.status.setObjectName("browseStatus")
        self.status.setWordWrap(True)
        dl.addWidget(self.image_label, 3)
        dl.addWidget(self.record_view, 1)
        dl.addWidget(self.details_form, 0)
        dl.addLayout(row1)
        dl.addLayout(row2)
        dl.addLayout(row2b)
        dl.addWidget(self.progress)
        dl.addWidget(self.status)
        row3 = QHBoxLayout()
        self.url_edit = QLineEdit(self.client.base_url)
        self.url_edit.setObjectName("doitpomsUrl")
        self.url_edit.setToolTip("Address of the DoITPoMS Micrograph Library or of a mirror of it")
        self.url_edit.returnPressed.connect(self.set_base_url)
        url_btn = QPushButton("Use address")
        url_btn.clicked.connect(lambda: self.set_base_url())
        row3.addWidget(QLabel("DoITPoMS address"))
        row3.addWidget(self.url_edit, 1)
        row3.addWidget(url_btn)
        dl.addLayout(row3)

        # the detail column scrolls: with the Details form shown it needs about 1000 px, more than a
        # laptop screen (the window grew past 768 px when an entry was selected)
        detail_scroll = scroll_column(detail, "browseDetailScroll")
        split = QSplitter()
        split.addWidget(self.view)
        split.addWidget(detail_scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([700, 560])
        lay.addWidget(split, 1)
        self._update_buttons()

    # -- data ----------------------------------------------------------------------
    def reload_grid(self) -> None:
        """Rebuild the tiles from the cached DoITPoMS records and the library (local reads only).

        On start, after a refresh and whenever entries are added, removed or
        (un)excluded; an event of the current entry only re-reads its tile (:meth:`load_entry`).
        """
        try:
            records = self.client.known_records()
        except MicrolibError as exc:
            records = []
            self.status.setText(str(exc))
        try:
            entries = self.library.list_entries()
        except MicrolibError as exc:
            entries = []
            self.status.setText(str(exc))
        try:
            recs = details.records(self.library)
        except MicrolibError as exc:
            recs = {}
            self.status.setText(str(exc))
        items = merge_items(records, entries, recs)
        with_entry = {it.key for it in items if it.entry is not None}
        for key in with_entry - self._entry_keys:  # newly added: the library's copy is the better thumbnail
            self.model.forget_thumbnail(key)
        self._entry_keys = with_entry
        self._fill_filters(items)
        self.model.all = items
        self.apply_filter()
        self._repoint_current(items)

    def _repoint_current(self, items: list[Item]) -> None:
        """The detail pane shows the rebuilt item (another library's, after File → Open library), never an old copy."""
        if self._current is None:
            return
        new = next((it for it in items if it.key == self._current.key), None)
        if new is None or self._shown_root != self.library.root:
            self._current = None
            self.record_view.setHtml("<p>Select a micrograph</p>")
            self.image_label.setPixmap(QPixmap())
            self.image_label.setText("Select a micrograph")
            self.details_form.show_details(None)
            return
        self._current = new
        self.record_view.setHtml(self._record_html(new))
        self._show_details(new)

    def _fill_filters(self, items: list[Item]) -> None:
        cats, techs, elems = filter_values(items)
        for box, values in ((self.category_box, cats), (self.technique_box, techs), (self.element_box, elems)):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItem(ANY)
            box.addItems(sorted(values, key=str.lower))
            idx = box.findText(current)
            box.setCurrentIndex(max(0, idx))
            box.blockSignals(False)

    def apply_filter(self) -> None:
        text = self.search_edit.text()
        cat, tech, elem = (None if b.currentText() in ("", ANY) else b.currentText()
                           for b in (self.category_box, self.technique_box, self.element_box))
        keep = {it.key for it in self.selected_items()}
        visible = [it for it in self.model.all if it.matches(text, cat, tech, elem)]
        self.model.set_items(self.model.all, visible)
        sel = self.view.selectionModel()
        for row, it in enumerate(visible):
            if it.key in keep:
                sel.select(self.model.index(row), sel.SelectionFlag.Select)
        self.count_label.setText(f"{len(visible)} of {len(self.model.all)} micrographs shown")

    def item(self, key: str) -> Item | None:
        return self.model.item(key)

    def selected_items(self) -> list[Item]:
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        return [self.model.items[r] for r in rows if r < len(self.model.items)]

    # -- network (background) --------------------------------------------------------
    def activated(self) -> None:
        if not self._refreshed_once:
            self.refresh()

    def refresh(self) -> None:
        """Fetch the listing and unseen records in the background."""
        if self._refresh_job is not None and not self._refresh_job.done:
            return
        self._refreshed_once = True
        client = self.client

        def work(ctx):
            return client.search("", fetch=True, on_progress=lambda d, t, m: ctx.report(d, t, m))

        self._refresh_job = self.jobs.start(work)
        self._refresh_job.finished.connect(self._refresh_finished)
        self.refresh_btn.setEnabled(False)
        self.status.setText("Refreshing the DoITPoMS listing…")

    def go_online(self) -> None:
        self.client.go_online()
        self.banner_row.setVisible(False)
        self.refresh()

    def _show_offline(self) -> None:
        reason = self.client.offline_reason or "the library cannot be reached"
        self.banner.setText(f"<b>Offline</b> — {html.escape(reason)}. Showing cached DoITPoMS records and "
                            "the library's own entries.")
        self.banner_row.setVisible(True)

    def _load_thumb(self, key: str) -> None:
        item = self.item(key)
        if item is None:
            return
        path = self._library_original(item)
        client = self.client
        did = item.doitpoms_id

        def work() -> None:
            try:
                raw = path.read_bytes() if path is not None else client.thumbnail(did) if did else None
            except (OSError, MicrolibError):
                raw = None
            if raw:
                img = _image_from_bytes(raw, max(THUMB.width(), THUMB.height()))
                if not img.isNull():
                    self._relay.thumb.emit(key, img)

        self._pool.submit(work)

    def _library_original(self, item: Item):
        if item.entry is None:
            return None
        try:
            return self.library.original_path(item.entry.id)
        except MicrolibError:
            return None

    def _on_thumb(self, key: str, img: QImage) -> None:
        self.model.set_thumbnail(key, QPixmap.fromImage(img))

    def _on_large(self, key: str, img: QImage, error: str) -> None:
        if self._current is None or self._current.key != key:
            return  # the user has moved on
        if error or img.isNull():
            self.image_label.setPixmap(QPixmap())
            self.image_label.setText(error or "no image")
            if self.client.offline:
                self._show_offline()
            return
        self._large = QPixmap.fromImage(img)
        self._fit_large()

    def _fit_large(self) -> None:
        pix = getattr(self, "_large", None)
        if pix is not None and not pix.isNull():
            self.image_label.setPixmap(pix.scaled(self.image_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._fit_large()

    # -- selection and detail -----------------------------------------------------------
    def _on_selection(self) -> None:
        items = self.selected_items()
        self._update_buttons()
        if len(items) != 1:
            if len(items) > 1:
                self.record_view.setHtml(f"<p>{len(items)} micrographs selected.</p>")
                self.details_form.show_details(None)
            return
        self.open_item(items[0])

    def open_item(self, item: Item) -> None:
        """Show ``item`` in the detail pane; load its large image in the background."""
        self._current = item
        self._shown_root = self.library.root
        self._large = None
        self.record_view.setHtml(self._record_html(item))
        self._show_details(item)
        self.image_label.setPixmap(QPixmap())
        self.image_label.setText("Loading image…")
        if item.entry is not None:
            self.ctx.set_entry(item.entry.id)
        path = self._library_original(item)
        client, did, key = self.client, item.doitpoms_id, item.key

        def work() -> None:
            try:
                raw = path.read_bytes() if path is not None else client.large_image(did)
                img = _image_from_bytes(raw, 1600)
                self._relay.large.emit(key, img, "" if not img.isNull() else "the image cannot be shown")
            except (OSError, MicrolibError) as exc:
                self._relay.large.emit(key, QImage(), str(exc))

        self._pool.submit(work)

    def _show_details(self, item: Item | None) -> None:
        """The Details form for a library entry's item (read afresh), hidden for other items."""
        d = None
        if item is not None and item.entry is not None:
            try:
                d = details.inputs(self.library, item.entry.id)
            except MicrolibError:
                d = None  # removed meanwhile: the entries event rebuilds the grid
        self.details_form.show_details(d)
        self.history.refresh()

    def _save_details(self, values: dict) -> None:
        """Save the form's values: one undoable edit of the entry's record."""
        item = self._current
        if item is None or item.entry is None:
            return
        if self.save(details.save, self.library, item.entry.id, **values):
            self.details_form.set_editing(False)
            self._show_details(item)
            self.status.setText(f"Saved the details of {item.entry.name}.")

    @staticmethod
    def _record_html(item: Item) -> str:
        e = html.escape
        rec = item.record
        parts = [f"<h3>{e(item.title)}</h3>"]
        if item.entry is not None:
            state = f"In the library as <b>{e(item.entry.name)}</b> ({e(item.entry.source)})."
            if item.entry.excluded:
                state += f"<br><span style='color:#a33'><b>Excluded:</b> {e(item.entry.exclusion_reason or '')}"
                if item.entry.exclusion_note:
                    state += f" — {e(item.entry.exclusion_note)}"
                state += "</span>"
            parts.append(f"<p>{state}</p>")
            if item.entry.metadata.get("demo"):
                parts.append("<p><i>Demo entry: procedurally generated, not a real micrograph.</i></p>")
        if rec is not None:
            rows = [("DoITPoMS no.", str(rec.id) if rec.id else ""), ("Further information", rec.long_desc),
                    ("Keywords", ", ".join(rec.keywords)), ("Categories", ", ".join(rec.category)),
                    ("Composition", rec.composition), ("Elements", " ".join(rec.element)),
                    ("Technique", rec.technique), ("Contributor", rec.contributor),
                    ("Organisation", rec.organisation), ("Licence", rec.licence)]
            if item.entry is not None:  # the Details form below shows (and edits) the record's fields
                rows = [r for r in rows if r[0] in ("DoITPoMS no.", "Composition", "Licence")]
            parts.append("<table cellspacing='4'>" + "".join(
                f"<tr><td valign='top'><b>{e(k)}</b></td><td>{e(v)}</td></tr>" for k, v in rows if v) + "</table>")
            if rec.url:
                parts.append(f"<p><a href='{e(rec.url)}'>{e(rec.url)}</a></p>")
            if rec.errors:
                parts.append("<p style='color:#777'>Not read from the page: "
                             + e("; ".join(f"{k} ({v})" for k, v in rec.errors.items())) + "</p>")
        return "".join(parts)

    def _update_buttons(self) -> None:
        idle = self._import_job is None or self._import_job.done
        try:
            pending = pending_import(self.library.root, self.client.cache) if idle else []
        except MicrolibError:
            pending = []
        self.resume_btn.setText(f"Resume import ({len(pending)} left)")
        self.resume_btn.setVisible(bool(pending))
        items = self.selected_items()
        self.add_btn.setEnabled(any(it.entry is None and it.doitpoms_id for it in items)
                                and (self._import_job is None or self._import_job.done))
        in_lib = any(it.entry is not None for it in items)
        self.exclude_btn.setEnabled(in_lib)
        self.include_btn.setEnabled(any(it.entry is not None and it.entry.excluded for it in items))

    def load_entry(self, entry_id: int | None) -> None:
        """Re-read the current entry's tile and record; the selection follows the user, not the entry."""
        if entry_id is not None:
            try:
                entry = self.library.get_entry(entry_id)
            except MicrolibError:
                entry = None  # removed meanwhile: the entries event rebuilds the grid
            if entry is not None:
                self._update_entry_item(entry)
        self._update_buttons()

    def _update_entry_item(self, entry) -> None:
        """Show a changed entry (excluded elsewhere, a new reason or note) without rebuilding the grid."""
        item = next((it for it in self.model.all if it.entry is not None and it.entry.id == entry.id), None)
        if item is None:
            return

        def shown(e):
            return e.name, e.source, e.excluded, e.exclusion_reason, e.exclusion_note, e.metadata

        try:
            record = details.inputs(self.library, entry.id).record
        except MicrolibError:
            record = item.details
        changed = shown(item.entry) != shown(entry)
        record_changed = record != item.details
        item.entry, item.details = entry, record
        if changed or record_changed:
            self.model.item_changed(item.key)
            if self._current is item:
                self.record_view.setHtml(self._record_html(item))
        if self._current is item:
            self._show_details(item)  # an edit, an Undo, a change made elsewhere: the form follows
        if record_changed and (self.search_edit.text().strip() or any(
                b.currentText() not in ("", ANY) for b in (self.category_box, self.technique_box, self.element_box))):
            self.apply_filter()  # the entry may match the search now, or no longer

    # -- actions --------------------------------------------------------------------------
    def add_selected(self) -> list[int]:
        """Import the selected DoITPoMS micrographs not yet in the library (background job)."""
        ids = [it.doitpoms_id for it in self.selected_items() if it.entry is None and it.doitpoms_id]
        return self._start_import(ids)

    def resume_import(self) -> list[int]:
        """Continue an import that did not finish (cancelled, closed, or the server failed)."""
        try:
            ids = pending_import(self.library.root, self.client.cache)
        except MicrolibError:
            ids = []
        return self._start_import(ids)

    def _start_import(self, ids: list[int]) -> list[int]:
        if not ids or (self._import_job is not None and not self._import_job.done):
            return []
        self._import_job = self.jobs.start(import_micrographs, {"library": str(self.library.root), "ids": ids,
                                                                "client": self.client})
        self._import_job.progress.connect(self._import_progress)
        self._import_job.finished.connect(self._import_finished)
        self.progress.setRange(0, len(ids))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setText(f"Adding {len(ids)} micrograph(s)…")
        self._update_buttons()
        self.resume_btn.setVisible(False)
        self.cancel_btn.setVisible(True)
        return ids

    def cancel_import(self) -> None:
        """Stop the running import after the micrograph in hand; the rest can be resumed."""
        if self._import_job is not None and not self._import_job.done:
            self._import_job.cancel()
            self.status.setText("Cancelling after the current micrograph…")

    def exclude_selected(self, include: bool = False) -> None:
        """Exclude the selected library entries for the chosen reason (or include them again)."""
        reason = None if include else self.reason_box.currentText()
        note = "" if include else self.note_edit.text().strip()
        from ...core.workflow.browse import exclude

        try:
            changed = exclude(self.library, [it.entry.id for it in self.selected_items() if it.entry is not None],
                              reason, note)
        except MicrolibError as exc:
            self.show_error(str(exc))
            self.changed()
            return
        if not changed:
            self.status.setText("Only micrographs in the library can be excluded: add them first.")
            return
        self.status.setText(("Included again: " if include else f"Excluded ({reason}): ")
                            + ", ".join(str(i) for i in changed))
        self.changed()  # the live model emits entries_changed (the grid reloads) and the entry's event
        current = self._current.key if self._current else None
        if current and self.item(current):
            self.open_item(self.item(current))

    def _import_progress(self, ev) -> None:
        self.progress.setValue(ev.step)
        self.status.setText(ev.message)

    def _refresh_finished(self, ev: Finished) -> None:
        self.refresh_btn.setEnabled(True)
        self.reload_grid()
        if ev.state == DONE and ev.result is not None:
            res = ev.result
            if res.offline:
                self._show_offline()
                self.status.setText("Offline: showing what was seen before.")
            else:
                self.banner_row.setVisible(False)
                self.status.setText("DoITPoMS listing up to date.")
            if res.errors:
                self.status.setText(self.status.text() + f" {len(res.errors)} records could not be read.")
            elif res.message and not res.offline:
                self.status.setText(res.message)
        elif ev.state == FAILED:
            self.status.setText(f"Refresh failed: {ev.error}")

    def _import_finished(self, ev: Finished) -> None:
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)
        self.changed()  # entries were added: the grid reloads (badges, library thumbnails)
        self._update_buttons()
        if ev.state == DONE:
            res = ev.result
            msg = f"Added {len(res['added'])} micrograph(s)."
            if res["failed"]:
                msg += " Failed: " + "; ".join(res["failed"].values())
            if res["offline"]:
                self._show_offline()
            self.status.setText(msg)
        elif ev.state == CANCELLED:
            self.status.setText("Import cancelled; what was added is kept, the rest can be resumed.")
        else:
            self.status.setText(f"Import failed: {ev.error or ev.state}")

    @property
    def busy(self) -> bool:
        return any(j is not None and not j.done for j in (self._refresh_job, self._import_job))


__all__ = ["Panel", "DoitpomsError"]

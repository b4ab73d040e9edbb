"""Import and export: MicroLib's ``data_anns.json``, its per-image annotation file, pending annotations.

An import is all or nothing: the whole file (and, with ``images_dir``, every image
it adds) is read and validated before anything is written, then applied in one
transaction. One bad record, or one corrupt image, refuses the whole import and
the library is as it was.

MicroLib's annotation file keys its records (``"0"``, ``"1"``, ...). A key is kept
with the annotations it came with (``microlib_key``) so an export writes the file
back as it was. Two files may use one key for different micrographs; both are
kept: the one imported later keeps the micrograph's earlier key, or gets the
next free one, and the import says so (``renamed``). An export gives every record
its own key in the same way, so no record is ever dropped for a clash.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json
from ..errors import AnnotationError, MicrolibError
from ..text import clean_text, clean_value, show
from .db import from_json, to_json
from .entries import _KEY, PreparedEntry, entry_name


class _Keys:
    """Which micrograph holds which MicroLib key; hands out free keys (the next integer)."""

    def __init__(self, held: dict[str, int]):
        self.held = dict(held)  # key -> holder
        self.own = {h: k for k, h in self.held.items()}  # holder -> key
        nums = [int(k) for k in self.held if k.isascii() and k.isdigit() and len(k) < 12]
        self._next = max(nums, default=-1) + 1

    def free(self) -> str:
        while str(self._next) in self.held:
            self._next += 1
        return str(self._next)

    def take(self, holder: int, wanted: str | None) -> str:
        """The key ``holder`` gets: ``wanted`` if nobody else holds it, else its own or a free one."""
        if wanted is not None and self.held.get(wanted, holder) == holder:
            key = wanted
        else:
            key = self.own.get(holder) or self.free()
        old = self.own.get(holder)
        if old is not None and old != key and self.held.get(old) == holder:
            del self.held[old]
        self.held[key], self.own[holder] = holder, key
        return key


def _find_image(images_dir: str | os.PathLike, data_path: str, entry_id: int) -> Path | None:
    """The image of a record in ``images_dir`` (see :meth:`InterchangeMixin.import_microlib_anns`), or None."""
    from .layout import ORIGINAL_EXT, ORIGINAL_STEM

    folder, name = Path(images_dir), Path(data_path).name
    sub = folder / entry_name(entry_id)
    candidates = [folder / name, sub / name] + [sub / (entry_name(entry_id) + ORIGINAL_STEM + ext)
                                                for ext in dict.fromkeys(ORIGINAL_EXT.values())]
    return next((p for p in candidates if name and p.is_file()), None)


class InterchangeMixin:
    """MicroLib's files in and out; annotations waiting for their micrograph."""

    # -- dataset-level data_anns.json ---------------------------------------------
    def export_data_anns(self, path: str | os.PathLike, entries: list[int] | None = None) -> Path:
        """Write the dataset-level ``data_anns.json`` in MicroLib's schema."""
        from ..annotations import entry_to_data_anns

        chosen = [e for e in self.list_entries(include_excluded=False) if entries is None or e.id in entries]
        doc = {}
        for i, e in enumerate(chosen, start=1):
            # lossy: a library written before text was checked on the way in still exports
            doc[str(i)] = clean_value(entry_to_data_anns(e, self.get_annotations(e.id)), f"entry {e.name}",
                                      lossy=True)
        return atomic_write_json(path, doc)

    def import_data_anns(self, path: str | os.PathLike) -> int:
        """Apply a ``data_anns.json`` to entries with matching names; returns how many it names.

        Every record is validated first; then all are applied in one transaction. Two
        records naming one entry (``12`` and ``microstructure012``) refuse the file.
        """
        from ..annotations import read_data_anns

        records = read_data_anns(path)  # the whole file, validated: nothing written yet
        now = time.time()
        with self._db() as con:
            find = self._resolver(con)
            edited = self._record_edits(con)
            named: dict[int, str] = {}
            meta_edits, ann_edits = [], []
            for name, meta, data_type in records:
                eid = find(name)
                if eid is None:
                    continue
                if eid in named:
                    raise AnnotationError(f"{Path(path).name}: records {show(named[eid])} and {show(name)} both "
                                          f"name entry {entry_name(eid)}")
                named[eid] = name
                meta_edits.append((eid, meta))
                # the file's values are the record now: an edit of one of its fields goes (undoably)
                ann = {f: None for f in edited.get(eid, ()) if f in meta}
                if data_type:
                    ann["data_type"] = data_type
                if ann:
                    ann_edits.append((eid, ann))
            self._update_metadata_many(con, meta_edits, now)
            self._set_annotations_many(con, ann_edits, now)
        return len(named)

    @staticmethod
    def _record_edits(con) -> dict[int, set[str]]:
        """Entries whose annotations edit their record (Details): entry id → the fields edited."""
        from ..annotations import RECORD_FIELDS

        rows = con.execute(
            "SELECT e.id, a.data FROM entries e JOIN annotations a ON a.entry_id = e.id AND a.version = e.ann_version "
            "WHERE " + " OR ".join("json_extract(a.data, ?) IS NOT NULL" for _ in RECORD_FIELDS),
            [f"$.{f}" for f in RECORD_FIELDS]).fetchall()
        out: dict[int, set[str]] = {}
        for eid, data in rows:
            ann = from_json(data, f"the annotations of entry {eid}")
            out[eid] = {f for f in RECORD_FIELDS if ann.get(f) is not None}
        return out

    @staticmethod
    def _update_metadata_many(con, edits: list[tuple[int, dict[str, Any]]], now: float) -> None:
        """Merge cleaned metadata changes into many entries in the open transaction."""
        ids = sorted({eid for eid, _ in edits})
        meta: dict[int, tuple[str, dict[str, Any]]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for eid, name, text in con.execute(f"SELECT id, name, metadata FROM entries WHERE id IN "
                                               f"({','.join('?' * len(chunk))})", chunk):
                meta[eid] = (name, from_json(text, f"the metadata of entry {name}"))
        rows = []
        for eid, changes in edits:
            name, old = meta[eid]
            new = {**old, **clean_value(changes, f"metadata of {name}")}
            if new != old:
                rows.append((to_json(new, f"metadata of {name}"), now, eid))
                meta[eid] = (name, new)
        con.executemany("UPDATE entries SET metadata = ?, updated = ? WHERE id = ?", rows)

    @staticmethod
    def _resolver(con):
        """``find(name)``: the entry id a record's name names (as :meth:`find_entry`), or None."""
        by_name = {r["name"]: r["id"] for r in con.execute("SELECT id, name FROM entries")}
        by_did = {r["doitpoms_id"]: r["id"] for r in
                  con.execute("SELECT id, doitpoms_id FROM entries WHERE doitpoms_id IS NOT NULL")}
        ids = set(by_name.values())

        def find(name: str) -> int | None:
            if name in by_name:
                return by_name[name]
            m = _KEY.fullmatch(name.strip())
            if m is None or len(m.group(3)) > 12:
                return None
            n = int(m.group(3))
            return by_did.get(n) if m.group(2) else (n if n in ids else None)

        return find

    # -- MicroLib's per-image annotation file -------------------------------
    def import_microlib_anns(self, path: str | os.PathLike, images_dir: str | os.PathLike | None = None
                             ) -> dict[str, list]:
        """Import a MicroLib annotation file (``microlib-prelabelled_anns.json`` format).

        A record names its micrograph by its ``data_path``: a DoITPoMS id
        (``.../000012.png``) or an entry's original as an export writes it
        (``microstructure10001_original.png``, entry 10001; ``microstructure012_original.png``
        is DoITPoMS micrograph 12, whose entry id is its DoITPoMS id).

        - DoITPoMS micrographs already in the library get their annotations at once.
          With ``images_dir``, micrographs found there are added as entries first. The
          rest are kept as pending and applied when that micrograph is added later.
        - A local entry's record (id from 10001) applies to this library's entry of
          that id. With ``images_dir`` holding its image, the image decides: the entry
          of that id if it holds the same picture, else the image is added as a new
          local entry (of that id when free) and annotated. Without either it is not
          applied (``not_applied``): local entries are numbered per library, so it
          names nothing here.

        Images are looked up in ``images_dir`` as ``DIR/<data_path file name>``, then in an
        entry folder ``DIR/microstructureNNN/`` (a library's, or an Export step's)
        under that name or as ``microstructureNNN_original.png|.jpg|.tif``.

        A record naming an entry by the library's file name is applied without its
        ``data_path`` (the entry's original file is its data_path in an export) and
        without a key the export would give it anyway (its id), so importing a
        library's own export changes nothing.

        All or nothing: every record and every image is checked before anything is
        written, then everything is applied in one transaction.

        Returns ``{"applied": [...], "added": [...], "pending": [...], "renamed": [...],
        "not_applied": [...], "moved": [...]}``: entry ids (a DoITPoMS micrograph's is its
        DoITPoMS id; ``pending`` lists DoITPoMS ids; an entry added is applied too); ``renamed`` lists ``{"key",
        "micrograph", "as", "held_by"}`` for records whose key another micrograph of this
        library already had; ``not_applied`` lists ``{"key", "entry", "reason"}``;
        ``moved`` lists ``{"key", "entry", "as"}`` for a local entry's image added under
        another id because this library's entry of its id is another picture.
        """
        from ..annotations import DOITPOMS_IDS, entry_id_from_data_path, read_microlib_anns

        records = read_microlib_anns(path)  # validates the whole file before any write
        source_file = clean_text(Path(path).name, "file name", key=True, lossy=True)
        result: dict[str, list] = {"applied": [], "added": [], "pending": [], "renamed": [], "not_applied": [],
                                   "moved": []}
        with self._db() as con:
            existing = {r["doitpoms_id"]: r["id"] for r in
                        con.execute("SELECT id, doitpoms_id FROM entries WHERE doitpoms_id IS NOT NULL")}
            ids = {r[0] for r in con.execute("SELECT id FROM entries")}
        # per record: the entry it applies to (an id), a PreparedEntry to add, or None (pending / not applied)
        target: dict[int, int | PreparedEntry | None] = {}
        for i, (did, ann) in enumerate(records):
            img = _find_image(images_dir, ann["data_path"], did) if images_dir is not None else None
            if did in DOITPOMS_IDS:
                if did in existing:
                    target[i] = existing[did]
                elif img is not None:
                    # checked now (decoded), kept as its hash: re-read when written
                    target[i] = self._prepare_entry(img, source="doitpoms", doitpoms_id=did, keep_bytes=False)
                else:
                    target[i] = None
            elif did in ids and (img is None or self._holds_image(did, img)):
                target[i] = did
            elif img is not None:
                target[i] = self._prepare_entry(img, source="local", entry_id=None if did in ids else did,
                                                keep_bytes=False)
            else:
                target[i] = None
                where = (f" and {Path(images_dir).name or images_dir} holds no image of it" if images_dir is not None
                         else " (import with the folder of its image to add it)")
                result["not_applied"].append({"key": ann["microlib_key"], "entry": entry_name(did),
                                              "reason": f"local entry {entry_name(did)} is not in this library{where}"})
        added_dirs: list[Path] = []
        now = time.time()
        try:
            with self._db() as con:
                # entries of a chosen id first: one numbered next could otherwise take that id
                order = sorted((i for i, t in target.items() if isinstance(t, PreparedEntry)),
                               key=lambda i: target[i].entry_id is None and target[i].doitpoms_id is None)
                for i in order:
                    p = target[i]
                    eid = self._insert_entry(con, p)
                    added_dirs.append(self.entry_dir(eid))
                    target[i] = eid
                    result["added"].append(eid)
                    if p.doitpoms_id is None and eid != records[i][0]:
                        result["moved"].append({"key": records[i][1]["microlib_key"],
                                                "entry": entry_name(records[i][0]), "as": entry_name(eid)})
                keys = _Keys(self._microlib_keys(con))
                pending, edits = [], []
                for i, (did, ann) in enumerate(records):
                    eid = target[i]
                    if eid is None and did not in DOITPOMS_IDS:
                        continue  # not applied: listed above
                    holder = did if did in DOITPOMS_IDS else -eid  # as _microlib_keys names holders
                    wanted = ann["microlib_key"]
                    if eid is not None and entry_id_from_data_path(ann["data_path"]) is not None:
                        # named by the library's own file name: what an export writes back anyway
                        ann = {k: v for k, v in ann.items() if k != "data_path"}
                        # its key, when it is the id the record named (an export's key for an entry without one)
                        if wanted == str(did) and keys.held.get(wanted, holder) == holder:
                            ann.pop("microlib_key")
                    if "microlib_key" in ann:
                        held_by = keys.held.get(wanted)
                        key = keys.take(holder, wanted)
                        if key != wanted:
                            ann = {**ann, "microlib_key": key}
                            result["renamed"].append({"key": wanted, "micrograph": did, "as": key,
                                                      "held_by": held_by})
                    if eid is not None:
                        edits.append((eid, ann))
                        result["applied"].append(eid)
                    else:
                        pending.append((did, to_json(ann, f"annotations of micrograph {did}"), source_file, now))
                        result["pending"].append(did)
                self._set_annotations_many(con, edits, now)
                con.executemany(
                    "INSERT INTO pending_annotations (doitpoms_id, data, source_file, created) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(doitpoms_id) DO UPDATE SET data = excluded.data, source_file = excluded.source_file",
                    pending)
        except BaseException:
            for d in added_dirs:  # their rows were rolled back: the files are orphans
                shutil.rmtree(d, ignore_errors=True)
            raise
        return result

    def _holds_image(self, entry_id: int, image: Path) -> bool:
        """Whether the entry's original is the picture in ``image`` (the same bytes, or the same pixels)."""
        from ..images import load_image
        from .provenance import sha256_file

        try:
            mine = self.original_path(entry_id)
            if sha256_file(mine) == sha256_file(image):
                return True
            a, b = load_image(mine), load_image(image)
        except (OSError, MicrolibError):
            # an unreadable original is no match; an unreadable image is refused when it is prepared
            return False
        return a.kind == b.kind and a.shape == b.shape and bool(np.array_equal(a.as_uint8(), b.as_uint8()))

    @staticmethod
    def _microlib_keys(con) -> dict[str, int]:
        """MicroLib keys now held: key -> DoITPoMS id (an entry without one: minus its entry id)."""
        held: dict[str, int] = {}
        rows = con.execute(
            "SELECT COALESCE(e.doitpoms_id, -e.id), json_extract(a.data, '$.microlib_key') FROM entries e "
            "JOIN annotations a ON a.entry_id = e.id AND a.version = e.ann_version "
            "UNION ALL SELECT doitpoms_id, json_extract(data, '$.microlib_key') FROM pending_annotations")
        for holder, key in rows:
            if isinstance(key, str):
                held.setdefault(key, holder)
        return held

    def pending_annotations(self) -> dict[int, dict[str, Any]]:
        with self._db() as con:
            rows = con.execute("SELECT doitpoms_id, data FROM pending_annotations ORDER BY doitpoms_id").fetchall()
        return {r["doitpoms_id"]: from_json(r["data"], f"the pending annotations of micrograph {r['doitpoms_id']}")
                for r in rows}

    def drop_pending_annotations(self, doitpoms_ids: list[int] | None = None) -> list[int]:
        """Forget pending imported annotations (None: all of them); returns the ids dropped."""
        with self._db() as con:
            have = [r[0] for r in con.execute("SELECT doitpoms_id FROM pending_annotations ORDER BY doitpoms_id")]
            drop = have if doitpoms_ids is None else [d for d in have if d in set(doitpoms_ids)]
            con.executemany("DELETE FROM pending_annotations WHERE doitpoms_id = ?", [(d,) for d in drop])
        return drop

    def apply_pending_annotations(self, entry_id: int) -> bool:
        """Apply pending imported annotations to a DoITPoMS entry; True if there were any."""
        entry = self.get_entry(entry_id)
        if entry.doitpoms_id is None:
            return False
        with self._db() as con:
            return self._apply_pending(con, entry.id, entry.doitpoms_id)

    def _apply_pending(self, con, entry_id: int, doitpoms_id: int) -> bool:
        row = con.execute("SELECT data FROM pending_annotations WHERE doitpoms_id = ?", (doitpoms_id,)).fetchone()
        if row is None:
            return False
        # lossy: a pending row stored before text was checked on the way in is applied, not stuck
        ann = clean_value(from_json(row["data"], f"the pending annotations of micrograph {doitpoms_id}"),
                          "pending annotations", lossy=True)
        self._set_annotations(con, entry_id, ann)
        con.execute("DELETE FROM pending_annotations WHERE doitpoms_id = ?", (doitpoms_id,))
        return True

    def export_microlib_anns(self, path: str | os.PathLike) -> Path:
        """Write every annotated entry (and pending imports) in MicroLib's annotation format.

        Keys imported from a MicroLib file are kept; other entries are keyed by
        id. Every record gets a key of its own (a key two records claim stays with
        the first by id; the other gets the next free one): nothing is dropped.
        """
        from ..annotations import to_microlib_ann

        with self._db() as con:
            rows = con.execute(
                "SELECT e.id, e.name, e.doitpoms_id, e.metadata, a.data FROM entries e "
                "JOIN annotations a ON a.entry_id = e.id AND a.version = e.ann_version ORDER BY e.id").fetchall()
            pending = con.execute("SELECT doitpoms_id, data FROM pending_annotations").fetchall()
        recs: list[tuple[int, dict[str, Any]]] = []
        for r in rows:
            ann = from_json(r["data"], f"the annotations of entry {r['name']}")
            if not ann:
                continue
            meta = from_json(r["metadata"], f"the metadata of entry {r['name']}")
            ann.setdefault("data_path", meta.get("original_file", ""))
            recs.append((r["doitpoms_id"] or r["id"], ann))
        recs += [(r["doitpoms_id"], from_json(r["data"], f"the pending annotations of micrograph {r['doitpoms_id']}"))
                 for r in pending]
        recs.sort(key=lambda r: r[0])
        # keys: first every record's own MicroLib key (the first by id keeps it), then the rest by id
        claimed: set[str] = set()
        chosen: list[str | None] = []
        for _sort_id, ann in recs:
            wanted = ann.get("microlib_key")
            if isinstance(wanted, str):  # lossy, as the values below
                wanted = clean_text(wanted, "MicroLib key", key=True, lossy=True)
            ok = isinstance(wanted, str) and wanted not in claimed
            if ok:
                claimed.add(wanted)
            chosen.append(wanted if ok else None)
        keys = _Keys(dict.fromkeys(claimed, 0))
        doc: dict[str, Any] = {}
        for (sort_id, ann), key in zip(recs, chosen):
            if key is None:
                key = str(sort_id) if str(sort_id) not in keys.held else keys.free()
                keys.held[key] = sort_id
            # lossy: a library written before text was checked on the way in still exports
            doc[key] = clean_value(to_microlib_ann(ann), f"the annotations of {entry_name(sort_id)}", lossy=True)
        return atomic_write_json(path, doc)


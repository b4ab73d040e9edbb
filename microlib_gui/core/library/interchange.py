"""Import and export: MicroLib's ``data_anns.json``, its per-image annotation file, pending annotations."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..errors import StoreError


class InterchangeMixin:
    """MicroLib's files in and out; annotations waiting for their micrograph."""

    # -- import / export ------------------------------------------------------
    def export_data_anns(self, path: str | os.PathLike, entries: list[int] | None = None) -> Path:
        """Write the dataset-level ``data_anns.json`` in MicroLib's schema."""
        from ..annotations import entry_to_data_anns

        chosen = [e for e in self.list_entries(include_excluded=False) if entries is None or e.id in entries]
        doc = {}
        for i, e in enumerate(chosen, start=1):
            doc[str(i)] = entry_to_data_anns(e, self.get_annotations(e.id))
        return atomic_write_json(path, doc)

    def import_data_anns(self, path: str | os.PathLike) -> int:
        """Apply a ``data_anns.json`` to entries with matching names; returns how many changed."""
        from ..annotations import read_data_anns

        changed = 0
        for name, meta, data_type in read_data_anns(path):
            try:
                entry = self.find_entry(name)
            except StoreError:
                continue
            self.update_metadata(entry.id, meta)
            if data_type:
                self.set_annotations(entry.id, {"data_type": data_type})
            changed += 1
        return changed

    # -- MicroLib's per-image annotation file -------------------------------
    def import_microlib_anns(self, path: str | os.PathLike, images_dir: str | os.PathLike | None = None
                             ) -> dict[str, list[int]]:
        """Import a MicroLib annotation file (``microlib-prelabelled_anns.json`` format).

        Annotations for micrographs already in the library are applied at once.
        With ``images_dir``, micrographs found there by the file name in
        ``data_path`` are added as entries first. The rest are kept as pending and
        applied when that DoITPoMS micrograph is added later.

        Returns ``{"applied": [...], "added": [...], "pending": [...]}`` (DoITPoMS ids).
        """
        from ..annotations import read_microlib_anns

        records = read_microlib_anns(path)  # validates the whole file before any write
        result: dict[str, list[int]] = {"applied": [], "added": [], "pending": []}
        existing = {e.doitpoms_id: e.id for e in self.list_entries() if e.doitpoms_id is not None}
        for did, ann in records:
            if did not in existing and images_dir is not None:
                img = Path(images_dir) / Path(ann["data_path"]).name
                if img.exists():
                    self.add_entry(img, source="doitpoms", doitpoms_id=did)
                    existing[did] = did
                    result["added"].append(did)
            if did in existing:
                self.set_annotations(existing[did], ann)
                result["applied"].append(did)
            else:
                with self._db() as con:
                    con.execute(
                        "INSERT INTO pending_annotations (doitpoms_id, data, source_file, created) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(doitpoms_id) DO UPDATE SET data = excluded.data, source_file = excluded.source_file",
                        (did, json.dumps(ann), Path(path).name, time.time()),
                    )
                result["pending"].append(did)
        return result

    def pending_annotations(self) -> dict[int, dict[str, Any]]:
        with self._db() as con:
            rows = con.execute("SELECT doitpoms_id, data FROM pending_annotations ORDER BY doitpoms_id").fetchall()
        return {r["doitpoms_id"]: json.loads(r["data"]) for r in rows}

    def apply_pending_annotations(self, entry_id: int) -> bool:
        """Apply pending imported annotations to a DoITPoMS entry; True if there were any."""
        entry = self.get_entry(entry_id)
        if entry.doitpoms_id is None:
            return False
        with self._db() as con:
            row = con.execute("SELECT data FROM pending_annotations WHERE doitpoms_id = ?",
                              (entry.doitpoms_id,)).fetchone()
        if row is None:
            return False
        self.set_annotations(entry_id, json.loads(row["data"]))
        with self._db() as con:
            con.execute("DELETE FROM pending_annotations WHERE doitpoms_id = ?", (entry.doitpoms_id,))
        return True

    def export_microlib_anns(self, path: str | os.PathLike) -> Path:
        """Write every annotated entry (and pending imports) in MicroLib's annotation format.

        Keys imported from a MicroLib file are kept; other entries are keyed by id.
        """
        from ..annotations import to_microlib_ann

        doc: dict[str, Any] = {}
        rows: list[tuple[int, dict[str, Any]]] = []
        for e in self.list_entries():
            ann = self.get_annotations(e.id)
            if ann:
                ann.setdefault("data_path", e.metadata.get("original_file", ""))
                rows.append((e.doitpoms_id or e.id, ann))
        rows.extend(self.pending_annotations().items())
        for sort_id, ann in sorted(rows, key=lambda r: r[0]):
            doc[str(ann.get("microlib_key", sort_id))] = to_microlib_ann(ann)
        return atomic_write_json(path, doc)

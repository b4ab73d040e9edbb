"""Scale bars of many styles: label reading, picked and automatic masks.

    python bench/scalebar_styles.py [--sets dev,held-out] [--n 60] [--json OUT] [--rows]

Sets: ``dev`` is ``../shared/data/rawlike`` (its own bars and ``bar*.png``);
``tune`` and ``held-out`` are bars of random styles (colours, fonts, sizes, label
placement, units, corners, backing boxes: ``tests/barstyles.py``) burnt into
its ``clean*.png``, drawn from two fixed seeds. The engine was tuned on ``tune``
only; ``held-out`` is what the figures in docs/benchmarks.md report.

Per image: :func:`detect_scale_bar` (bar length, label read: right, wrong,
flagged for checking), the picked mask (a click in the middle of the bar, the
true box grown by 4 px, as ``bench_preprocess.py``) and the automatic mask (the
detected colour and box), scored against the true mask: coverage of the true
pixels and the share of mask pixels more than 2 px from them (stray).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from barstyles import HELD_OUT_SEED, TUNE_SEED, Burnt, load_sources, style_set  # noqa: E402

from microlib_gui.core import scalebar as sb  # noqa: E402


def shared_data() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def mask_scores(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(coverage of the true pixels, share of the mask more than 2 px from them)."""
    cover = float((mask & truth).sum() / max(truth.sum(), 1))
    far = ndi.distance_transform_edt(~truth) > 2
    return cover, float((mask & far).sum() / max(mask.sum(), 1))


def dev_set(folder: Path) -> list[Burnt]:
    """The raw-like micrographs as :class:`Burnt` records (their bars drawn by the data set's maker)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out = []
    for key, rec in manifest.items():
        raw = np.asarray(Image.open(folder / f"raw{key}.png").convert("RGB"))
        truth = np.asarray(Image.open(folder / f"bar{key}.png")) > 0
        ys, xs = np.nonzero(truth)
        y = int(ys.max()) - 2  # the bar is the lowest long run of the truth
        row = xs[ys == y]
        bar_box = (int(row.min()), y - 1, int(row.max()) + 1, y + 1)
        out.append(Burnt(raw=raw, clean=raw, mask=truth, value_um=float(rec["bar"]["label_um"]),
                         bar_len_px=float(rec["bar"]["bar_len_px"]), bar_box=bar_box,
                         label_box=tuple(rec["bar"]["box_xyxy"]), style=None, source=f"raw{key}"))
    return out


def styled_set(name: str, n: int, folder: Path) -> list[Burnt]:
    """``tune``, ``held-out`` or a seed of your own (a number)."""
    seed = {"tune": TUNE_SEED, "held-out": HELD_OUT_SEED}.get(name)
    return style_set(int(name) if seed is None else seed, n, load_sources(folder))


def evaluate(b: Burnt, tolerance: float = sb.DEFAULT_TOLERANCE) -> dict:
    """Detection, label and mask figures of one burnt micrograph."""
    row = {"source": b.source, "text": b.style.text if b.style else None, "true_um": b.value_um}
    if b.style is not None:
        row["style"] = b.describe()
    ys, xs = np.nonzero(b.mask)
    box = (int(xs.min()) - 4, int(ys.min()) - 4, int(xs.max()) + 5, int(ys.max()) + 5)
    x0, y0, x1, y1 = b.bar_box
    px, py = (x0 + x1) // 2, (y0 + y1) // 2
    colour = sb.pick_colour(b.raw, px, py)
    row["pick_coverage"], row["pick_stray"] = mask_scores(sb.bar_mask(b.raw, colour, tolerance, box), b.mask)
    t0 = time.perf_counter()
    try:
        det = sb.detect_scale_bar(b.raw)
    except sb.ScaleBarError as exc:
        row.update(detected=False, error=str(exc), detect_s=time.perf_counter() - t0, outcome="no bar")
        return row
    row["detect_s"] = time.perf_counter() - t0
    row["detected"] = True
    row["length_error_px"] = abs(det.bar_length_px - b.bar_len_px)
    row["auto_coverage"], row["auto_stray"] = mask_scores(sb.bar_mask(b.raw, det.colour, tolerance, det.box), b.mask)
    sure = bool(getattr(det, "label_sure", det.label_reader == "template"))
    row.update(read=det.label_text, value_um=det.value_um, sure=sure, reader=det.label_reader,
               check=det.extra.get("label_check"))
    lb = b.label_box
    if det.label_box is not None and b.style is not None:  # share of the true label's box the found box covers
        ix = max(0, min(lb[2], det.label_box[2]) - max(lb[0], det.label_box[0]))
        iy = max(0, min(lb[3], det.label_box[3]) - max(lb[1], det.label_box[1]))
        row["label_box_cover"] = ix * iy / ((lb[2] - lb[0]) * (lb[3] - lb[1]))
    if det.value_um is None:
        row["outcome"] = "not read"
    elif abs(det.value_um / b.value_um - 1) <= 1e-6:
        row["outcome"] = "right" if sure else "right, flagged"
    else:
        row["outcome"] = "wrong" if sure else "wrong, flagged"
    return row


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    det = [r for r in rows if r["detected"]]
    count = lambda o: sum(1 for r in rows if r["outcome"] == o)  # noqa: E731
    mean = lambda k, rs: float(np.mean([r[k] for r in rs])) if rs else None  # noqa: E731
    boxes = [r["label_box_cover"] for r in rows if "label_box_cover" in r]
    return {
        "images": n, "bars_found": len(det),
        "label_read_right": (count("right") + count("right, flagged")) / n,
        "label_right_sure": count("right") / n, "label_right_flagged": count("right, flagged") / n,
        "label_not_read": count("not read") / n, "label_wrong_flagged": count("wrong, flagged") / n,
        "label_wrong_sure": count("wrong") / n,
        "label_box_cover_mean": float(np.mean(boxes)) if boxes else None,
        "label_box_cover_min": float(np.min(boxes)) if boxes else None,
        "max_length_error_px": max((r["length_error_px"] for r in det), default=None),
        "pick_coverage": mean("pick_coverage", rows), "pick_stray": mean("pick_stray", rows),
        "pick_stray_max": max(r["pick_stray"] for r in rows),
        "auto_coverage": mean("auto_coverage", det), "auto_stray": mean("auto_stray", det),
        "detect_s_median": float(np.median([r["detect_s"] for r in rows])),
    }


def run(sets: list[str], n: int) -> dict:
    folder = shared_data() / "rawlike"
    out = {}
    for name in sets:
        burnts = dev_set(folder) if name == "dev" else styled_set(name, n, folder)
        rows = [evaluate(b) for b in burnts]
        out[name] = {"summary": summarise(rows), "rows": rows}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev,held-out", help="comma-separated: dev, tune, held-out, or a seed")
    ap.add_argument("--n", type=int, default=60, help="images per generated set")
    ap.add_argument("--json", help="write all figures (with per-image rows) here")
    ap.add_argument("--rows", action="store_true", help="print the images whose label or mask failed")
    args = ap.parse_args(argv)
    res = run(args.sets.split(","), args.n)
    res["machine"] = f"{platform.machine()} {os.cpu_count()} CPU"
    for name, r in res.items():
        if name == "machine":
            continue
        print(name, json.dumps(r["summary"], indent=1))
        if args.rows:
            for row in r["rows"]:
                bad = row["outcome"] != "right" or row["pick_stray"] > 0.05 or row["pick_coverage"] < 0.99
                if bad:
                    print("  ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Preprocessing figures: quality on ../shared/data/rawlike and preview speed at 2048x2048.

    python bench/bench_preprocess.py [--quality] [--speed] [--json OUT]

Quality: auto segmentation accuracy / volume-fraction error against ``seg*.png``;
scale-bar masks (pick on the bar + manifest box grown by 4 px; and automatic
detection) against ``bar*.png``; MicroLib's rule at the same tolerance for comparison.
Speed: median wall time of each live preview on a 2048x2048 image.
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

from microlib_gui.core import scalebar as sb
from microlib_gui.core import segment as sg
from microlib_gui.core.images import load_image


def shared_rawlike() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / "rawlike"


def best_order_accuracy(pred: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    """Accuracy with the label order that fits best (auto labels may come in either order)."""
    from itertools import permutations

    n = int(max(pred.max(), truth.max())) + 1
    best = (-1.0, pred)
    for perm in permutations(range(n)):
        mapped = np.asarray(perm, np.uint8)[pred]
        acc = float((mapped == truth).mean())
        if acc > best[0]:
            best = (acc, mapped)
    return best


def mask_scores(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(coverage of the true pixels, share of the mask more than 2 px from them)."""
    cover = float((mask & truth).sum() / max(truth.sum(), 1))
    far = ndi.distance_transform_edt(~truth) > 2
    return cover, float((mask & far).sum() / max(mask.sum(), 1))


def pick_on_bar(truth: np.ndarray) -> tuple[int, int]:
    """A pixel in the middle of the bar (the lowest long run of the truth, two rows up)."""
    ys, xs = np.nonzero(truth)
    y = int(ys.max()) - 2
    return int(np.median(xs[ys == y])), y


def quality(folder: Path, tolerance: float = sb.DEFAULT_TOLERANCE) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    seg_rows, pick_rows, auto_rows, ml_rows, vox_rows = [], [], [], [], []
    for key, rec in manifest.items():
        img = load_image(folder / f"raw{key}.png").data
        truth_bar = np.asarray(Image.open(folder / f"bar{key}.png")) > 0
        if (folder / f"seg{key}.png").exists():
            truth = np.asarray(Image.open(folder / f"seg{key}.png"))
            res = sg.segment(img, ignore=truth_bar)
            keep = ~truth_bar
            acc, mapped = best_order_accuracy(res.labels[keep], truth[keep])
            n = int(truth.max()) + 1
            vf = sg.volume_fractions(mapped, n)
            vt = sg.volume_fractions(truth[keep], n)
            seg_rows.append({"id": key, "accuracy": acc, "n_phases": res.n_phases,
                             "vf_error": float(np.mean(np.abs(np.subtract(vf, vt))))})
        x0, y0, x1, y1 = rec["bar"]["box_xyxy"]
        box = (x0 - 4, y0 - 4, x1 + 4, y1 + 4)
        px, py = pick_on_bar(truth_bar)
        colour = sb.pick_colour(img, px, py)
        pick_rows.append(dict(zip(("coverage", "stray"), mask_scores(sb.bar_mask(img, colour, tolerance, box), truth_bar))))
        ml_rows.append(dict(zip(("coverage", "stray"), mask_scores(sb.microlib_mask(img, colour, tolerance, box), truth_bar))))
        det = sb.detect_scale_bar(img)
        cov, stray = mask_scores(sb.bar_mask(img, det.colour, tolerance, det.box), truth_bar)
        auto_rows.append({"id": key, "coverage": cov, "stray": stray})
        true_vox = rec["bar"]["um_per_px"]
        vox_rows.append({"id": key, "read": det.label_text, "true_um": rec["bar"]["label_um"],
                         "length_px": det.bar_length_px, "true_length_px": rec["bar"]["bar_len_px"],
                         "vox_rel_error": None if det.um_per_px is None else abs(det.um_per_px / true_vox - 1)})
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    read = [r for r in vox_rows if r["vox_rel_error"] is not None]
    return {
        "segmentation": {"images": len(seg_rows), "mean_accuracy": mean(seg_rows, "accuracy"),
                         "mean_vf_error": mean(seg_rows, "vf_error"), "rows": seg_rows},
        "mask_pick": {"images": len(pick_rows), "mean_coverage": mean(pick_rows, "coverage"),
                      "mean_stray": mean(pick_rows, "stray"), "tolerance": tolerance},
        "mask_microlib_rule": {"mean_coverage": mean(ml_rows, "coverage"), "mean_stray": mean(ml_rows, "stray")},
        "mask_auto": {"mean_coverage": mean(auto_rows, "coverage"), "mean_stray": mean(auto_rows, "stray"),
                      "rows": auto_rows},
        "voxel_size": {"labels_read": len(read), "images": len(vox_rows),
                       "wrong_reads": sum(1 for r in vox_rows if r["read"] and r["vox_rel_error"] > 0.02),
                       "max_rel_error_where_read": max((r["vox_rel_error"] for r in read), default=None),
                       "max_length_error_px": max(abs(r["length_px"] - r["true_length_px"]) for r in vox_rows),
                       "rows": vox_rows},
    }


def speed(repeats: int = 15) -> dict:
    """Median ms of each preview on a 2048x2048 synthetic micrograph with a bar."""
    from microlib_gui.gui.widgets.image_view import PHASE_COLOURS, labels_rgba, mask_rgba

    rng = np.random.default_rng(0)
    size = 2048
    field = ndi.gaussian_filter(rng.standard_normal((size, size)), 6)
    gray = np.where(field > 0, 200.0, 70.0) + rng.normal(0, 8, (size, size))
    img = np.clip(gray, 0, 255).astype(np.uint8)
    img[1950:1962, 1500:1900] = 255  # the bar
    work = sg.deblur(img.astype(np.float32))
    box = (1480, 1900, 1920, 1980)
    prev = sg.ThresholdPreview(work)

    def t(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    return {
        "threshold_preview_ms (vf + RGBA overlay, 2 phases)": t(lambda: (prev.fractions([130.0]),
                                                                        prev.rgba([130.0], PHASE_COLOURS, 0.45))),
        "threshold_preview_3phase_ms": t(lambda: (prev.fractions([90.0, 160.0]),
                                                  prev.rgba([90.0, 160.0], PHASE_COLOURS, 0.45))),
        "threshold_preview_setup_once_per_entry_ms": t(lambda: sg.ThresholdPreview(work)),
        "naive_threshold_overlay_ms (labels, vf, overlay on floats)": t(lambda: labels_rgba(
            sg.apply_thresholds(work, [130.0]), 0.45) is not None and sg.volume_fractions(sg.apply_thresholds(work, [130.0]), 2)),
        "mask_preview_box_ms (bar_mask + overlay)": t(lambda: mask_rgba(sb.bar_mask(img, 255, 10, box))),
        "mask_preview_whole_image_ms": t(lambda: mask_rgba(sb.bar_mask(img, 255, 10, None))),
        "deblur_once_per_entry_ms": t(lambda: sg.deblur(img.astype(np.float32))),
        "auto_detect_ms": t(lambda: sb.detect_scale_bar(img)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    if not (args.quality or args.speed):
        args.quality = args.speed = True
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"}
    if args.quality:
        folder = shared_rawlike()
        if not (folder / "manifest.json").exists():
            print(f"shared data not found at {folder}", file=sys.stderr)
            return 2
        out["quality"] = quality(folder)
    if args.speed:
        out["speed"] = speed()
    text = json.dumps(out, indent=2, default=float)
    if args.json:
        Path(args.json).write_text(text)
    summary = {k: v for k, v in out.items()}
    if "quality" in summary:
        summary["quality"] = {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in out["quality"].items()}
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inpainting quality and speed on the rawlike set (issue 5, "Quality").

For every ``segNNN.png`` (true labels) with its ``barNNN.png`` (mask): hide the
masked pixels, inpaint them, and score the result against the truth
(:mod:`microlib_gui.core.inpaint.quality`). Writes ``inpaint_<method>.json``
and ``inpaint.md`` (a short table) into ``--out``.

Needs numpy, scipy, scikit-image, torch and this repository on ``PYTHONPATH``
(no Qt, no install)::

    PYTHONPATH=. python3 bench/bench_inpaint.py --method fast --out /tmp/bench
    PYTHONPATH=. python3 bench/bench_inpaint.py --method gan --device cuda --out "$OUT" --budget 420
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.inpaint import DEFAULT_ITERS, DEFAULT_OPT_ITERS, inpaint  # noqa: E402
from microlib_gui.core.inpaint.quality import labelled_cases, score, summarise  # noqa: E402


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} ({platform.processor() or platform.machine()}, torch {torch.__version__}, {gpu})"


def run(method: str, data: Path, ids: list[str] | None, budget_s: float | None, partial: Path | None = None,
        **opts) -> dict:
    """Score `method` on the labelled raw-like images; rows so far also go to `partial` after each image."""
    rows = []
    skipped = []
    t_start = time.perf_counter()
    for i, seg, bar, hidden in labelled_cases(data / "rawlike", ids):
        spent = time.perf_counter() - t_start
        mean = spent / len(rows) if rows else 0.0
        if budget_s is not None and rows and spent + mean > budget_s:
            skipped.append(i)
            continue
        t0 = time.perf_counter()
        res = inpaint(hidden, bar, method=method, kind="labels", **opts)
        dt = time.perf_counter() - t0
        row = {"id": i, "seconds": dt, "regions": res["regions"], "device": res.get("device", "cpu"),
               **score(res["output"], seg, hidden, bar)}
        rows.append(row)
        if partial is not None:  # a run cut short still leaves its scored images
            partial.write_text(json.dumps({"method": method, "options": opts, "images": rows}, indent=2))
        print(f"{method} {i}: {dt:.2f} s, exact outside {row['exact_outside']}, pf err {row['pf_err_inpainted_pp']:.2f} pp "
              f"(truth {row['pf_err_truth_pp']:.2f}), seam ratio {row['seam_ratio']:.2f}", flush=True)
    if not rows:
        raise SystemExit(f"no seg*.png (of the ids asked for) under {data / 'rawlike'}")
    summary = summarise(rows)
    summary.update({
        "method": method, "options": opts, "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
        "seconds_max": float(np.max([r["seconds"] for r in rows])), "skipped_for_time": skipped,
        "target_pf_met": summary["pf_err_inpainted_pp"] <= summary["pf_err_truth_pp"] + 2.0,
        "target_seam_met": summary["seam_ratio_pooled"] <= 1.25,
    })
    return {"summary": summary, "images": rows}


def markdown(results: list[dict], host: str) -> str:
    lines = [f"Machine: {host}", "",
             "| method | options | images | exact outside | pf err inpainted (pp) | pf err truth (pp) | "
             "seam ratio pooled (truth) | s/image mean (max) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        opts = ", ".join(f"{k}={v}" for k, v in s["options"].items()) or "-"
        lines.append(
            f"| {s['method']} | {opts} | {s['images']}" + (f" ({len(s['skipped_for_time'])} skipped for time)"
                                                          if s["skipped_for_time"] else "")
            + f" | {s['all_exact_outside']} | {s['pf_err_inpainted_pp']:.2f} | {s['pf_err_truth_pp']:.2f} | "
              f"{s['seam_ratio_pooled']:.2f} ({s['seam_ratio_truth_pooled']:.2f}) | {s['seconds_mean']:.2f} ({s['seconds_max']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    ap.add_argument("--method", choices=("fast", "gan", "both"), default="fast")
    ap.add_argument("--ids", help="comma-separated image ids, e.g. 001,612 (default: all)")
    ap.add_argument("--iters", type=int, default=DEFAULT_ITERS)
    ap.add_argument("--opt-iters", type=int, default=DEFAULT_OPT_ITERS)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=None, help="stop starting GAN images after this many seconds")
    ap.add_argument("--out", default=str(REPO / "bench" / "_out"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = args.ids.split(",") if args.ids else None
    host = machine()
    results = []
    if args.method in ("fast", "both"):
        inpaint(np.eye(64, dtype=np.uint8), np.pad(np.ones((4, 4)), 30), method="fast")  # warm-up imports
        results.append(run("fast", Path(args.data), ids, None))
    if args.method in ("gan", "both"):
        opts = {"iters": args.iters, "opt_iters": args.opt_iters, "batch_size": args.batch_size,
                "device": args.device, "seed": args.seed}
        results.append(run("gan", Path(args.data), ids, args.budget, partial=out / "inpaint_gan.partial.json", **opts))
    for r in results:
        r["summary"]["machine"] = host
        (out / f"inpaint_{r['summary']['method']}.json").write_text(json.dumps(r, indent=2))
    table = markdown(results, host)
    (out / "inpaint.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

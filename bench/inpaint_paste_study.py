"""Paste variants of saved GAN fills, scored on the CPU (no GPU needed).

Reads the fill probabilities that `bench_inpaint_variants.py --save-fills` wrote
on the GPU machine (one or more .npz files) and scores each way of writing them
into the mask: the feathered join with the smooth continuation
(`blend_border`, width in px) and the border majority passes (`harmonise`).

    python3 bench/inpaint_paste_study.py DATA FILLS.npz [FILLS2.npz ...] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from microlib_gui.core.inpaint.data import prepare_image  # noqa: E402
from microlib_gui.core.inpaint.gan import paste  # noqa: E402
from microlib_gui.core.inpaint.quality import labelled_cases, score, summarise  # noqa: E402

BLENDS = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
HARMONISE = {"raw": (0, 0), "w2p2": (2, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("fills", nargs="+")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows: dict[str, list] = {f"blend{b:g}_{h}": [] for b in BLENDS for h in HARMONISE}
    paste_s: list[float] = []
    for f in a.fills:
        saved = np.load(f)
        for i, seg, bar, hidden in labelled_cases(Path(a.data) / "rawlike", saved.files):
            img = prepare_image(hidden, "labels")
            probs = saved[i].astype(np.float32)
            for b in BLENDS:
                for h, hv in HARMONISE.items():
                    t0 = time.perf_counter()
                    out = paste(img, probs, bar, blend=b, harmonise=hv)
                    paste_s.append(time.perf_counter() - t0)
                    rows[f"blend{b:g}_{h}"].append({"id": i, **score(out, seg, hidden, bar)})
    result = {k: summarise(v) for k, v in rows.items()}
    print(f"{'variant':<16} images  pf err (truth)   seam pooled (truth)  pf target  seam target")
    for k, v in result.items():
        print(f"{k:<16} {v['images']:>6}  {v['pf_err_inpainted_pp']:6.2f} ({v['pf_err_truth_pp']:.2f})   "
              f"{v['seam_ratio_pooled']:5.2f} ({v['seam_ratio_truth_pooled']:.2f})        "
              f"{'met' if v['pf_err_inpainted_pp'] <= v['pf_err_truth_pp'] + 2 else 'NOT met':<9}  "
              f"{'met' if v['seam_ratio_pooled'] <= 1.25 else 'NOT met'}")
    print(f"paste time per image: mean {np.mean(paste_s):.3f} s, max {np.max(paste_s):.3f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": result, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seam study for GAN inpainting: the raw fill vs `harmonise_border` variants, one GAN run per image.

    python3 bench/gpu_inpaint_seam.py DATA_DIR OUT_DIR [--budget 330]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from microlib_gui.core.inpaint import inpaint  # noqa: E402
from microlib_gui.core.inpaint.data import read_pixels  # noqa: E402
from microlib_gui.core.inpaint.gan import harmonise_border  # noqa: E402
from microlib_gui.core.inpaint.quality import score, summarise  # noqa: E402

VARIANTS = {"raw": (0, 0), "w1p1": (1, 1), "w2p2": (2, 2), "w3p3": (3, 3)}


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    budget = float(sys.argv[sys.argv.index("--budget") + 1]) if "--budget" in sys.argv else 330.0
    rows = {k: [] for k in VARIANTS}
    t_start = time.perf_counter()
    for p in sorted((data / "rawlike").glob("seg*.png")):
        if time.perf_counter() - t_start > budget:
            break
        i = p.stem[3:]
        seg = read_pixels(p)
        bar = read_pixels(p.with_name(f"bar{i}.png")) > 0
        hidden = seg.copy()
        hidden[bar] = 0
        res = inpaint(hidden, bar, method="gan", kind="labels", device="cuda", seed=0, harmonise=(0, 0))
        raw = res["output"]
        for name, (w, n) in VARIANTS.items():
            lab = harmonise_border(raw, bar, w, n)
            rows[name].append({"id": i, **score(lab, seg, hidden, bar)})
        print(i, {k: round(v[-1]["seam_ratio"], 2) for k, v in rows.items()}, flush=True)
    result = {k: summarise(v) for k, v in rows.items()}
    (out / "seam.json").write_text(json.dumps(result, indent=1))
    for k, v in result.items():
        print(k, f"images {v['images']} pf {v['pf_err_inpainted_pp']:.2f} (truth {v['pf_err_truth_pp']:.2f}) "
                 f"seam {v['seam_ratio_pooled']:.2f} (truth {v['seam_ratio_truth_pooled']:.2f})")


if __name__ == "__main__":
    main()

"""GAN inpainting variants on one trained generator per image (paired comparison).

For each labelled raw-like image the GAN is trained once; then the latent fit is
redone with each number of restarts, and each fill is scored raw and with
`harmonise_border`. Also reports the phase fractions of unconstrained samples of
the generator against the image's known pixels (is the generator itself biased?).

    python3 bench/bench_inpaint_variants.py --data DATA --out OUT [--restarts 1,8] [--budget S] [--ids 001,006]
        [--save-fills FILLS.npz]   # then: python3 bench/inpaint_paste_study.py DATA FILLS.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from microlib_gui.core.inpaint.data import prepare_image  # noqa: E402
from microlib_gui.core.inpaint.gan import NZ, Generator, harmonise_border, inpaint_gan  # noqa: E402
from microlib_gui.core.inpaint.quality import labelled_cases, score, summarise  # noqa: E402

HARMONISE = {"raw": (0, 0), "w2p2": (2, 2)}


def sample_bias(state: dict, img, known: np.ndarray, device: str, n: int = 8) -> float:
    """Mean |phase fraction of random generator samples − fraction of the known pixels|, in pp."""
    g = Generator(img.channels, True)
    g.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    g = g.to(device).eval()
    with torch.no_grad():
        lab = g(torch.randn(n, NZ, 8, 8, device=device)).argmax(dim=1).cpu().numpy()
    nph = img.n_phases
    gen = np.bincount(lab.ravel(), minlength=nph)[:nph] / lab.size
    ref = np.bincount(img.labels[known].ravel(), minlength=nph)[:nph] / max(1, int(known.sum()))
    return float(100 * np.abs(gen - ref).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--restarts", default="1,8")
    ap.add_argument("--ids")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--opt-iters", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--budget", type=float, default=1e9, help="stop starting images after this many seconds")
    ap.add_argument("--save-fills", help="write the last restarts variant's fill probabilities (float16) to this .npz,"
                                         " to study paste variants offline")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    restarts = [int(x) for x in a.restarts.split(",")]
    rows: dict[str, list] = {f"r{r}_{h}": [] for r in restarts for h in HARMONISE}
    extra = []
    fills: dict[str, np.ndarray] = {}
    t_start = time.perf_counter()
    for i, seg, bar, hidden in labelled_cases(Path(a.data) / "rawlike", a.ids.split(",") if a.ids else None):
        if time.perf_counter() - t_start > a.budget:
            print("budget spent; stopping before", i, flush=True)
            break
        img = prepare_image(hidden, "labels")
        t0 = time.perf_counter()
        trained = inpaint_gan(img, bar, iters=a.iters, opt_iters=1, batch_size=a.batch_size, device=a.device,
                              seed=0, harmonise=(0, 0), restarts=1, blend=0)
        info = {"id": i, "train_s": time.perf_counter() - t0,
                "sample_bias_pp": sample_bias(trained["generator_state"], img, ~bar, a.device)}
        for r in restarts:
            t1 = time.perf_counter()
            res = inpaint_gan(img, bar, opt_iters=a.opt_iters, device=a.device, seed=0, harmonise=(0, 0),
                              restarts=r, generator_state=trained["generator_state"], blend=0,
                              return_probabilities=bool(a.save_fills))
            if a.save_fills:
                fills[i] = res["probabilities"].astype(np.float16)
            info[f"fit_s_r{r}"] = time.perf_counter() - t1
            for h, (w, n) in HARMONISE.items():
                rows[f"r{r}_{h}"].append({"id": i, **score(harmonise_border(res["output"], bar, w, n), seg, hidden, bar)})
        extra.append(info)
        print(json.dumps(info), {k: round(v[-1]["seam_ratio"], 2) for k, v in rows.items()},
              {k: round(v[-1]["pf_err_inpainted_pp"], 2) for k, v in rows.items()}, flush=True)
        (out / "variants.json").write_text(json.dumps({"rows": rows, "images": extra}, indent=1))
        if a.save_fills:
            np.savez_compressed(a.save_fills, **fills)
    result = {k: summarise(v) for k, v in rows.items() if v}
    (out / "variants.json").write_text(json.dumps({"summary": result, "rows": rows, "images": extra}, indent=1))
    for k, v in result.items():
        print(k, f"images {v['images']} pf {v['pf_err_inpainted_pp']:.2f} (truth {v['pf_err_truth_pp']:.2f}) "
                 f"seam {v['seam_ratio_pooled']:.2f} (truth {v['seam_ratio_truth_pooled']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Phase fractions on target (``microlib generate --match-vf``): what matching does to the errors.

For each MicroLib micrograph: train a small generator (default: the ``check`` preset on the CPU,
or take the run folder left by an earlier call), generate one volume twice from the same latent,
raw and with per-phase logit offsets fitted on that volume (:mod:`microlib_gui.core.slicegan.calibrate`),
and compare both with the image (:func:`microlib_gui.core.stats.compare`): relative
volume-fraction error (the image's rarer phase), relative surface-area error, and the largest
two-point-correlation difference (rarer phase, r ≤ 50 px). Prints a Markdown table.

    python bench/match_vf.py [--images 001,054,237] [--iters 600] [--size 128] [--preset check]
                             [--device cpu] [--threads 1] [--out bench/_out/match_vf] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.images import load_labels  # noqa: E402
from microlib_gui.core.jobs import run_inline  # noqa: E402
from microlib_gui.core.slicegan.calibrate import calibrate, training_fractions  # noqa: E402
from microlib_gui.core.slicegan.generate import generate, load_model  # noqa: E402
from microlib_gui.core.slicegan.train import read_run, train  # noqa: E402
from microlib_gui.core.stats.compare import compare  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "microlib"


def trained(image: Path, out: Path, preset: str, iters: int, device: str, seed: int) -> tuple[Path, float | None]:
    """A run folder of ``image`` at ``iters`` iterations (trained now unless one is there)."""
    if (out / "run.json").exists():
        done = read_run(out)
        if done.get("iteration") == iters and done["preset"]["name"] == preset:
            return out, None
        raise SystemExit(f"{out} holds another run: remove it or choose --out")
    t0 = time.monotonic()
    run_inline(train, {"images": [str(image)], "out": str(out), "preset": preset, "iters": iters,
                       "device": device, "seed": seed, "log_every": max(1, iters // 4), "checkpoint_every": iters})
    return out, time.monotonic() - t0


def score(lab: np.ndarray, vol: np.ndarray, phase: int, device: str) -> dict:
    c = compare(lab, vol, tortuosity=False, device="cuda" if device.startswith("cuda") else "cpu", r_max=50)
    e = c["errors"]
    return {"vf": e["volume_fraction"][phase], "sa": e["surface_area"], "tpc": e["two_point"][phase],
            "vf3": c["volume3d"]["volume_fraction"][phase], "vf2": c["image2d"]["volume_fraction"][phase]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="001,054,237", help="MicroLib ids (../shared/data/microlib/microNNN.png)")
    ap.add_argument("--preset", default="check")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--gen-seed", type=int, default=1, help="seed of the generated volume's latent")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench" / "_out" / "match_vf"))
    ap.add_argument("--data", default=str(DATA), help="folder of the microNNN.png images")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    print("| image | 2D vf | vf error raw → matched | surface-area error raw → matched | 2PC error raw → matched "
          "| offset | training | generate raw / matched (fit) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in a.images.split(","):
        image = Path(a.data) / f"micro{name.strip()}.png"
        run, train_s = trained(image, Path(a.out) / f"micro{name.strip()}_{a.preset}_{a.iters}", a.preset, a.iters,
                               a.device, a.seed)
        G, meta = load_model(run)
        lab = load_labels(image)
        vf2 = np.bincount(lab.ravel(), minlength=2)[:2] / lab.size
        phase = int(np.argmin(vf2))  # the rarer phase, as the library's figures plot it
        plan = dict(size=a.size, seed=a.gen_seed, device=a.device)
        t0 = time.monotonic()
        raw_vol = generate(G, **plan)
        t_raw = time.monotonic() - t0
        t0 = time.monotonic()
        cal = calibrate(G, training_fractions([image], meta.get("phases")), **plan)
        t_fit = time.monotonic() - t0
        t0 = time.monotonic()
        cal_vol = generate(G, offsets=cal["offsets"], **plan)
        t_cal = time.monotonic() - t0
        r, m = score(lab, raw_vol, phase, a.device), score(lab, cal_vol, phase, a.device)
        off = cal["offsets"][1] - cal["offsets"][0]
        rows.append({"image": image.stem, "phase": phase, "raw": r, "matched": m, "offset": off,
                     "train_s": train_s, "generate_s": [t_raw, t_cal], "fit_s": t_fit})
        trained_txt = f"{train_s:.0f} s" if train_s is not None else "(earlier run)"
        print(f"| {image.stem} (phase {phase}) | {r['vf2']:.3f} | {100 * r['vf']:.1f} % → {100 * m['vf']:.2f} % "
              f"| {100 * r['sa']:.1f} % → {100 * m['sa']:.1f} % | {r['tpc']:.4f} → {m['tpc']:.4f} | {off:+.3f} "
              f"| {trained_txt} | {t_raw:.1f} / {t_cal:.1f} s ({t_fit:.1f} s) |", flush=True)
    for key in ("vf", "sa", "tpc"):
        raw = np.mean([row["raw"][key] for row in rows])
        mat = np.mean([row["matched"][key] for row in rows])
        print(f"mean {key}: raw {raw:.4f}, matched {mat:.4f}")
    out = Path(a.out) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

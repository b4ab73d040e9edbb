"""CPU seconds per iteration of the draft preset with transposed and with resize layers.

Each variant trains ``--iters`` iterations after ``--warmup`` (one process, one torch thread by
default, alternating variants ``--rounds`` times so that a change of machine load hits both);
prints the median process CPU time and wall time per iteration. Command::

    OMP_WAIT_POLICY=PASSIVE python bench/draft_layers_speed.py --image micro237.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.presets import get_preset
    from microlib_gui.core.slicegan.train import Trainer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--preset", default="draft")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    base = get_preset(a.preset)
    variants = {"transpose": replace(base, g_layers=()), "resize": replace(base, g_layers=("resize",) * len(base.gp))}
    imgs = load_training_images([a.image], "auto", min_side=base.img_side)
    out = {k: {"cpu": [], "wall": []} for k in variants}
    for _ in range(a.rounds):
        for name, p in variants.items():
            torch.manual_seed(0)
            tr = Trainer(p, imgs, torch.device("cpu"), "fp32", False)
            for _ in range(a.warmup):
                tr.step()
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(a.iters):
                tr.step()
            out[name]["cpu"].append((time.process_time() - c0) / a.iters)
            out[name]["wall"].append((time.perf_counter() - w0) / a.iters)
    res = {k: {m: round(statistics.median(v[m]), 4) for m in v} for k, v in out.items()}
    print(json.dumps({"preset": a.preset, "threads": a.threads, "iters": a.iters, "rounds": a.rounds, **res}))


if __name__ == "__main__":
    main()

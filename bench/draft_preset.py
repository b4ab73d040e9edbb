"""A draft SliceGAN preset for a CPU-only laptop (issue 21): train candidates, time and score them.

For each candidate and MicroLib micrograph: train on the CPU with N torch threads (wall time and
the process's CPU time, user + system, both recorded), generate a 128³ volume (and, with
``--big``, a 320³ one) from the saved generator, and compare it with the image
(:func:`microlib_gui.core.stats.compare`: relative volume-fraction error of the image's rarer
phase, relative surface-area error, largest two-point-correlation difference of that phase,
r ≤ 50 px) and look for stripes and tiling (:func:`microlib_gui.core.stats.artefacts.stripe_score`:
the sharpest peak of the volume's line spectra over the image's). Writes ``results.json`` (one
row per run, appended) and prints a Markdown table.

The 20-minute target is for an idle 2-core machine: with both threads busy, wall ≈ CPU time / 2
there, so the table also gives ``CPU / threads`` as the idle estimate when the machine is shared.
Run it with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine: threads then sleep instead of
spinning while the other is descheduled, and the CPU time is the work's.

``--at 300,600,1000`` scores one run at each of those iterations (it continues from its
checkpoint); ``--resume`` carries on runs left in ``--out``; ``--rescore`` trains nothing and
scores the runs there at 128³ and 320³, raw and with ``--match-vf``'s phase-fraction offsets.

    OMP_WAIT_POLICY=PASSIVE python bench/draft_preset.py --candidates draft --images 001,054,237
        [--iters N | --at N1,N2,...] [--resume] [--rescore] [--threads 2] [--big]
        [--out bench/_out/draft] [--data DIR] [--list]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.images import load_labels  # noqa: E402
from microlib_gui.core.jobs import run_inline  # noqa: E402
from microlib_gui.core.slicegan.generate import generate, load_model  # noqa: E402
from microlib_gui.core.slicegan.presets import PRESETS, Preset  # noqa: E402
from microlib_gui.core.slicegan.train import read_run, train  # noqa: E402
from microlib_gui.core.stats.artefacts import stripe_score  # noqa: E402
from microlib_gui.core.stats.compare import compare  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "microlib"

#: The tiny network's shape with a 64 px field of view: five generator layers, five critic layers.
_FIVE = dict(img_side=64, gp=(2, 2, 2, 2, 3), dp=(1, 1, 1, 1, 0))
_FAST = dict(lr=1e-3, critic_iters=2, ema=0.99)
#: Candidates: (base preset, overrides). Registered in this process's preset table only.
CANDIDATES = {
    "check": ("check", {}),
    "w32": ("check", dict(g_hidden=(64, 32, 16), d_hidden=(16, 32, 64), batch_g=8, batch_d=4, batch_real=16)),
    "f64": ("check", dict(**_FIVE, g_hidden=(64, 32, 16, 8), d_hidden=(8, 16, 32, 64))),
    "f64w": ("check", dict(**_FIVE, g_hidden=(128, 64, 32, 16), d_hidden=(16, 32, 64, 128))),
    "f64s": ("check", dict(**_FIVE, g_hidden=(32, 16, 8, 8), d_hidden=(8, 8, 16, 32))),
    "f64lr4": ("check", dict(**_FIVE, g_hidden=(64, 32, 16, 8), d_hidden=(8, 16, 32, 64), lr=1e-4,
                             critic_iters=5)),
    "f64c5": ("check", dict(**_FIVE, g_hidden=(64, 32, 16, 8), d_hidden=(8, 16, 32, 64), critic_iters=5)),
    "f64b": ("check", dict(**_FIVE, g_hidden=(64, 32, 16, 8), d_hidden=(8, 16, 32, 64), batch_g=8, batch_d=4,
                           batch_real=16)),
}


def candidate(name: str) -> Preset:
    """The preset of a candidate (a preset of the table, or one of :data:`CANDIDATES`)."""
    if name in CANDIDATES:
        base, over = CANDIDATES[name]
        p = replace(PRESETS[base], name=name, **over)
        PRESETS[name] = p  # train() looks presets up by name
        return p
    return PRESETS[name]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_timed(image: Path, out: Path, name: str, iters: int, seed: int, resume: bool) -> dict:
    """Train one candidate up to ``iters`` (continuing ``out`` when ``resume``); wall and CPU
    seconds of this stretch of training alone."""
    p = candidate(name)
    wall0, cpu0 = time.monotonic(), cpu_seconds()

    def progress(ev):
        print(f"  {out.name}: {ev.message}, CPU {cpu_seconds() - cpu0:.0f} s, wall {time.monotonic() - wall0:.0f} s",
              file=sys.stderr, flush=True)

    res = run_inline(train, {"images": [str(image)], "out": str(out), "preset": name, "iters": iters,
                             "device": "cpu", "seed": seed, "log_every": 50, "checkpoint_every": iters,
                             "resume": resume}, on_progress=progress)
    return {"wall_s": time.monotonic() - wall0, "cpu_s": cpu_seconds() - cpu0, "s_per_iter": res["s_per_iter"],
            "preset": p.to_dict()}


def score(lab: np.ndarray, vol: np.ndarray) -> dict:
    """Errors of ``vol`` against ``lab`` for the image's rarer phase, and the stripe score."""
    vf2 = np.bincount(lab.ravel(), minlength=2) / lab.size
    phase = int(np.argmin(vf2[:2]))
    c = compare(lab, vol, tortuosity=False, device="cpu", r_max=50)
    e = c["errors"]
    st = stripe_score(vol, lab)
    return {"phase": phase, "vf": e["volume_fraction"][phase], "sa": e["surface_area"],
            "tpc": e["two_point"][phase], "stripe": st["score"], "stripe_period": st["period"],
            "sa_axes": c["volume3d"]["surface_area_axes"]}


def previous_rows(a) -> list[dict]:
    results = Path(a.out) / "results.json"
    return json.loads(results.read_text()) if results.exists() else []


def save_slices(vol: np.ndarray, path: Path) -> None:
    """The middle slices perpendicular to x, y and z side by side (grey levels spread over 0-255)."""
    from PIL import Image

    m = vol.shape[0] // 2
    row = np.concatenate([vol[m], np.full((vol.shape[1], 4), vol.max()), vol[:, m], np.full((vol.shape[1], 4),
                          vol.max()), vol[:, :, m]], axis=1)
    Image.fromarray((row * (255 // max(int(vol.max()), 1))).astype(np.uint8)).save(path)


def run_one(name: str, image: Path, stages: list[int], a):
    """Train ``name`` on ``image``, scoring the generator at each of ``stages`` (iterations, rising;
    the run continues from its checkpoint, which gives the same generator as one uninterrupted run).
    Yields one row per stage, with wall and CPU time from the start."""
    out = Path(a.out) / f"{image.stem}_{name}_s{a.seed}"
    wall = cpu = 0.0
    done = 0
    if out.exists():
        if not a.resume:
            raise SystemExit(f"{out} exists: remove it, choose --out or pass --resume")
        done = read_run(out)["iteration"]
        last = [r for r in previous_rows(a) if not r.get("rescore") and (r["candidate"], r["image"], r["seed"],
                                                                         r["iters"]) == (name, image.stem, a.seed, done)]
        if not last:
            raise SystemExit(f"{out}: no row of results.json at iteration {done} to continue the times from")
        wall, cpu = last[-1]["wall_s"], last[-1]["cpu_s"]
        stages = [s for s in stages if s > done]
    lab = load_labels(image)
    for i, iters in enumerate(stages):
        row = {"candidate": name, "image": image.stem, "iters": iters, "seed": a.seed, "threads": a.threads,
               "load_before": os.getloadavg()[0],
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        t = train_timed(image, out, name, iters, a.seed, resume=i > 0 or done > 0)
        wall, cpu = wall + t.pop("wall_s"), cpu + t.pop("cpu_s")
        row.update(t, wall_s=wall, cpu_s=cpu, load_after=os.getloadavg()[0])
        G, _meta = load_model(out)
        t0 = time.monotonic()
        vol = generate(G, size=128, seed=a.gen_seed, device="cpu")
        row["generate128_s"] = time.monotonic() - t0
        row["s128"] = score(lab, vol)
        save_slices(vol, out / f"slices_{iters}.png")
        if a.big and i == len(stages) - 1:
            t0 = time.monotonic()
            vol = generate(G, size=320, seed=a.gen_seed, device="cpu")
            row["generate320_s"] = time.monotonic() - t0
            row["s320"] = score(lab, vol)
        yield row


def table_row(r: dict) -> str:
    s = r["s128"]
    big = r.get("s320")
    big_txt = (f" | {100 * big['vf']:.1f} / {100 * big['sa']:.1f} / {big['tpc']:.3f} / {big['stripe']:.2f}"
               if big else " | –")
    return (f"| {r['image']} | {r['candidate']} | {r['iters']} | {r['wall_s'] / 60:.1f} | {r['cpu_s'] / 60:.1f} "
            f"| {r['cpu_s'] / 60 / r['threads']:.1f} | {100 * s['vf']:.1f} | {100 * s['sa']:.1f} | {s['tpc']:.3f} "
            f"| {s['stripe']:.2f} ({s['stripe_period']:g} px){big_txt} | {r['load_before']:.1f}-{r['load_after']:.1f} |")


HEADER = ("| image | candidate | iters | wall min | CPU min | CPU/threads min | vf % | SA % | 2PC | stripe (period) "
          "| 320³ vf / SA / 2PC / stripe | load |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
          "| --- |")


def rescore(name: str, image: Path, a) -> dict:
    """Score a finished run again at 128³ and 320³, raw and with phase fractions matched to the
    image (``microlib generate --match-vf``: per-phase logit offsets fitted on the same volume)."""
    from microlib_gui.core.slicegan.calibrate import calibrate, training_fractions

    out = Path(a.out) / f"{image.stem}_{name}_s{a.seed}"
    G, meta = load_model(out)
    lab = load_labels(image)
    row = {"candidate": name, "image": image.stem, "iters": read_run(out)["iteration"], "seed": a.seed,
           "rescore": True}
    for size in (128, 320):
        plan = dict(size=size, seed=a.gen_seed, device="cpu")
        row[f"raw{size}"] = score(lab, generate(G, **plan))
        cal = calibrate(G, training_fractions([image], meta.get("phases")), **plan)
        vol = generate(G, offsets=cal["offsets"], **plan)
        row[f"matched{size}"] = score(lab, vol)
        if size == 320:
            save_slices(vol[:256, :256, :256], out / f"slices_matched_{row['iters']}.png")
    return row


def rescore_row(r: dict) -> str:
    cells = " | ".join(f"{100 * r[k]['vf']:.1f} / {100 * r[k]['sa']:.1f} / {r[k]['tpc']:.3f} / {r[k]['stripe']:.2f}"
                       for k in ("raw128", "matched128", "raw320", "matched320"))
    return f"| {r['image']} | {r['candidate']} | {r['iters']} | {cells} |"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", default="draft", help="comma-separated names (presets or bench candidates)")
    ap.add_argument("--images", default="001,054,237", help="MicroLib ids (microNNN.png in --data)")
    ap.add_argument("--iters", type=int, help="generator iterations (default: the preset's)")
    ap.add_argument("--at", help="score at each of these iterations (comma-separated; the run continues)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gen-seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true",
                    help="continue runs left in --out (times continue from results.json)")
    ap.add_argument("--rescore", action="store_true",
                    help="no training: score the runs in --out at 128³ and 320³, raw and phase-fraction matched")
    ap.add_argument("--big", action="store_true", help="also generate and score a 320³ volume")
    ap.add_argument("--out", default=str(REPO / "bench" / "_out" / "draft"))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--list", action="store_true", help="print the candidates' FLOPs per iteration and stop")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    names = [n.strip() for n in a.candidates.split(",")]
    if a.list:
        for n in names:
            p = candidate(n)
            print(f"{n}: {p.iteration_flops(2) / 1e9:.1f} GFLOP per iteration, {p.iters} iterations")
        return
    results = Path(a.out) / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    if a.rescore:
        print("| image | candidate | iters | 128³ raw: vf % / SA % / 2PC / stripe | 128³ matched | 320³ raw "
              "| 320³ matched |\n| --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for n in names:
            for im in a.images.split(","):
                row = rescore(n, Path(a.data) / f"micro{im.strip()}.png", a)
                results.write_text(json.dumps(previous_rows(a) + [row], indent=1))
                print(rescore_row(row), flush=True)
        return
    print(HEADER, flush=True)
    for n in names:
        stages = sorted(int(v) for v in a.at.split(",")) if a.at else [a.iters or candidate(n).iters]
        for im in a.images.split(","):
            for row in run_one(n, Path(a.data) / f"micro{im.strip()}.png", stages, a):
                results.write_text(json.dumps(previous_rows(a) + [row], indent=1))
                print(table_row(row), flush=True)


if __name__ == "__main__":
    main()

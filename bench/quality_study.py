"""Training quality over many MicroLib images, as a user runs them (issues 21 and 22).

For each image, one after another on one device: train with the preset's defaults (the
``microlib`` preset unless told otherwise; ``--set`` overrides fields, e.g. ``converge=0``),
generate a 320³ volume with seed 1 from the saved generator, and score it against the image
twice: with the app's statistics (:func:`microlib_gui.core.stats.compare`: relative
volume-fraction and surface-area errors and the largest two-point-correlation difference, of
the image's rarer phase) and with the few independent lines of ``bench_slicegan.py`` (share
of neighbouring pairs that differ). One JSON line per run is appended to ``WORKDIR/results.jsonl``
as each finishes, so a study cut short keeps what it measured.

Commands::

    # start the study in its own session, then wait for it (on a machine held across calls)
    python bench/quality_study.py start --images 001,054,160 --data DATA --workdir /tmp/qs
    python bench/quality_study.py collect --workdir /tmp/qs --wait 550 --out RESULTS_DIR
    # or in the foreground
    python bench/quality_study.py run --images 001 --data DATA --workdir /tmp/qs --device cpu --preset check

``collect`` writes ``results.jsonl``, ``table.md`` (per image and the mean) and the training
logs' tails to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _image_path(data: Path, spec: str) -> Path:
    p = Path(spec)
    if p.suffix:
        return p
    return data / "microlib" / f"micro{int(spec):03d}.png"


def _overrides(text: str) -> dict:
    out = {}
    # commas inside [...] belong to a JSON list (g_layers=["resize","resize"])
    for part in filter(None, re.split(r",(?![^\[]*\])", text or "")):
        k, _, v = part.partition("=")
        out[k.strip()] = json.loads(v) if v.strip() not in ("", None) else None
    return out


def score(image: Path, vol: np.ndarray, device: str) -> dict:
    """Errors of a generated label volume against its training image (two scorings)."""
    from bench_slicegan import labels_2d, surface_share, volume_fraction

    from microlib_gui.core.images import load_labels
    from microlib_gui.core.stats.compare import compare

    img = load_labels(image)
    res = compare(img, vol, tortuosity=False, device=device)
    ph = res["headline_phase"]
    err = res["errors"]
    lab2 = labels_2d(image)
    top = (vol == vol.max()).astype(np.uint8)
    vf2, vf3, sa2, sa3 = volume_fraction(lab2), volume_fraction(top), surface_share(lab2), surface_share(top)
    from microlib_gui.core.stats.artefacts import stripe_score

    stripes = stripe_score(vol, img)
    return {"phase": ph, "stripe_score": round(stripes["score"], 2), "stripe_period": round(stripes["period"], 1), "vf2d": res["image2d"]["volume_fraction"][ph],
            "vf3d": res["volume3d"]["volume_fraction"][ph],
            "vf_err": err["volume_fraction"][ph], "sa_err": err["surface_area"], "s2_err": err["two_point"][ph],
            "flagged": res["flag"]["flagged"],
            "indep_vf_err": abs(vf2 - vf3) / vf2, "indep_sa_err": abs(sa2 - sa3) / sa2}


def run_one(image: Path, workdir: Path, a) -> dict:
    from microlib_gui.core.jobs import run_inline
    from microlib_gui.core.slicegan.generate import generate, load_model

    name = image.stem + (f"_s{a.seed}" if a.seed else "") + (f"_{a.tag}" if a.tag else "")
    out = workdir / name
    log = open(workdir / f"{name}.log", "w")

    def show(ev):
        log.write(f"{time.strftime('%H:%M:%S')} {ev.step}/{ev.total} {ev.message} "
                  + " ".join(f"{k}={v:.4g}" for k, v in ev.scalars.items()) + "\n")
        log.flush()

    params = {"images": [str(image)], "out": str(out), "device": a.device, "seed": a.seed, "preset": a.preset,
              **_overrides(a.set)}
    t0 = time.monotonic()
    r = run_inline("microlib_gui.core.slicegan.train:train", params, on_progress=show)
    wall = time.monotonic() - t0
    G, meta = load_model(out)
    t1 = time.monotonic()
    vol = generate(G, size=a.size, seed=1, device=a.device)
    t_gen = time.monotonic() - t1
    first = score(image, vol, a.device)
    # more volumes of the same generator: one 320³ volume is a noisy judge of images with large
    # or sparse features, so the mean over several seeds is reported beside seed 1's figures
    seeds = [int(x) for x in str(a.score_seeds).split(",") if x.strip()]
    per_seed = {1: first}
    for s in seeds:
        if s != 1:
            per_seed[s] = score(image, generate(G, size=a.size, seed=s, device=a.device), a.device)
    extra = {}
    if len(per_seed) > 1:
        for k in ("vf_err", "sa_err", "s2_err"):
            vals = [v[k] for v in per_seed.values()]  # the same phase: the image's rarer one
            extra[f"{k}_seeds"] = [round(float(x), 5) for x in vals]
            extra[f"{k}_mean"] = float(np.mean(vals))
    row = {"image": image.stem, "seed": a.seed, "preset": a.preset, "set": a.set, "tag": a.tag,
           "iterations": r.get("iteration"), "converged_at": r.get("converged_at"),
           "best_iteration": r.get("best_iteration"), "stop_reason": r.get("stop_reason"),
           "check_seconds": r.get("check_seconds"), "train_seconds": round(r.get("seconds", wall), 1),
           "wall_seconds": round(wall, 1), "s_per_iter": r.get("s_per_iter"), "generate_seconds": round(t_gen, 2),
           "size": a.size, **first, **extra, "score_seeds": sorted(per_seed),
           # every check (iteration, vf/SA/S2 errors of the check volume): stop rules can be replayed
           "convergence": r.get("convergence", [])}
    log.write(json.dumps(row) + "\n")
    log.close()
    return row


def _phases(a) -> list[tuple[str, str, str]]:
    """(images, set, tag) of each phase: ``--phase "IMAGES;SET;TAG"`` (repeatable), else the
    one phase of ``--images``/``--set``/``--tag``."""
    if not a.phase:
        return [(a.images, a.set, a.tag)]
    out = []
    for ph in a.phase:
        parts = (ph.split(";") + ["", ""])[:3]
        out.append(tuple(x.strip() for x in parts))
    return out


def cmd_run(a):
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for images, overrides, tag in _phases(a):
        a.images, a.set, a.tag = images, overrides, tag
        _run_phase(a, workdir)
    (workdir / "DONE").write_text("done\n")


def _run_phase(a, workdir: Path):
    data = Path(a.data)
    for spec in a.images.split(","):
        image = _image_path(data, spec.strip())
        try:
            row = run_one(image, workdir, a)
        except Exception as exc:  # noqa: BLE001 - one failed run must not end the study
            row = {"image": image.stem, "error": f"{type(exc).__name__}: {exc}"}
        with open(workdir / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "convergence"}), flush=True)


def cmd_start(a):
    Path(a.workdir).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "run", *sys.argv[2:]]
    with open(Path(a.workdir) / "study.log", "w") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    print("started", p.pid, flush=True)


def table(rows: list[dict]) -> str:
    """Per run and per variant (tag): the mean and the worst."""
    lines = ["| image | variant | iterations (stop, best) | train s | s/iter | vf error | SA error | 2PC error | "
             "vf / SA, mean of seeds |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    tags = sorted({r.get("tag") or "" for r in rows})
    for tag in tags:
        group = [r for r in rows if (r.get("tag") or "") == tag]
        ok = [r for r in group if "error" not in r]
        for r in group:
            if "error" in r:
                lines.append(f"| {r['image']} | {tag} | failed: {r['error']} | | | | | | |")
                continue
            seeds = (f"{100 * r['vf_err_mean']:.1f} / {100 * r['sa_err_mean']:.1f} % ({len(r['vf_err_seeds'])})"
                     if "vf_err_mean" in r else "")
            lines.append(f"| {r['image']} | {tag or 'default'} | {r['iterations']} ({r.get('stop_reason') or 'cap'}, "
                         f"best {r['best_iteration']}) | {r['train_seconds']:.0f} | {r.get('s_per_iter') or 0:.4f} | "
                         f"{100 * r['vf_err']:.1f} % | {100 * r['sa_err']:.1f} % | {r['s2_err']:.3f} | {seeds} |")
        if ok:
            m = {k: float(np.mean([r[k] for r in ok])) for k in ("vf_err", "sa_err", "s2_err", "train_seconds")}
            mx = {k: float(np.max([r[k] for r in ok])) for k in ("vf_err", "sa_err")}
            ms = ""
            if all("vf_err_mean" in r for r in ok):
                ms = (f"{100 * np.mean([r['vf_err_mean'] for r in ok]):.1f} / "
                      f"{100 * np.mean([r['sa_err_mean'] for r in ok]):.1f} %")
            lines.append(f"| **mean** ({len(ok)}) | {tag or 'default'} | | {m['train_seconds']:.0f} | | "
                         f"{100 * m['vf_err']:.1f} % | {100 * m['sa_err']:.1f} % | {m['s2_err']:.3f} | {ms} |")
            lines.append(f"| **worst** | {tag or 'default'} | | | | {100 * mx['vf_err']:.1f} % | "
                         f"{100 * mx['sa_err']:.1f} % | | |")
    return "\n".join(lines) + "\n"


def cmd_collect(a):
    workdir = Path(a.workdir)
    t_end = time.monotonic() + a.wait
    while not (workdir / "DONE").exists() and time.monotonic() < t_end:
        time.sleep(5)
    rows = []
    if (workdir / "results.jsonl").exists():
        rows = [json.loads(x) for x in (workdir / "results.jsonl").read_text().splitlines() if x.strip()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "table.md").write_text(table(rows))
    tails = []
    for f in sorted(workdir.glob("*.log")):
        tails.append(f"== {f.name}\n" + "".join(f.read_text(errors="replace").splitlines(True)[-8:]))
    (out / "tails.log").write_text("\n".join(tails))
    print(table(rows))
    print("done" if (workdir / "DONE").exists() else "still running", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "start"):
        p = sub.add_parser(name)
        p.add_argument("--images", default="", help="MicroLib numbers (001,054) or image paths")
        p.add_argument("--phase", action="append", default=[],
                       help='"IMAGES;SET;TAG", repeatable: phases run one after another (e.g. a variant)')
        p.add_argument("--score-seeds", default="1", help="seeds of the scored volumes, e.g. 1,2,3")
        p.add_argument("--data", default=os.environ.get("MICROLIB_SHARED_DATA", str(REPO.parent / "shared" / "data")))
        p.add_argument("--workdir", required=True)
        p.add_argument("--device", default="cuda")
        p.add_argument("--preset", default="microlib")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--size", type=int, default=320)
        p.add_argument("--set", default="", help="train() overrides, e.g. converge=false,iters=3000")
        p.add_argument("--tag", default="", help="suffix of the run folders (variants of one image)")
    c = sub.add_parser("collect")
    c.add_argument("--workdir", required=True)
    c.add_argument("--wait", type=float, default=0)
    c.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    {"run": cmd_run, "start": cmd_start, "collect": cmd_collect}[a.cmd](a)


if __name__ == "__main__":
    main()

"""SliceGAN speed and quality benchmark (CPU or CUDA).

Speed (``speed``): data preparation time, seconds per generator iteration and
TFLOP/s for several training modes, generation times (320³, 512³ to a uint8
label array on the host) and a large volume streamed to a BigTIFF (time, peak
host memory, measured in a child process).

Quality (``quality``): full-length training on several MicroLib images (one
process per run, one run after another), then a 320³ volume from each: volume
fraction and surface area (share of neighbouring voxel/pixel pairs in different
phases, also per axis) of the 3D volume against the 2D training image; the
generator kept every ``--snapshot-every`` iterations is scored too. ``--converge/--no-converge``
(and ``--converge-every``, ``--converge-min-iters``, ``--converge-tol``, ``--converge-patience``,
``--converge-s2-tol``) pass through to the trainings; each row records ``converged_at``,
``best_iteration`` and ``wall_seconds`` (start to saved generator).

Examples::

    python bench/bench_slicegan.py speed --device cuda --json-out speed.json
    python bench/bench_slicegan.py quality IMG1 IMG2 IMG3 --workdir runs --iters 5000
    python bench/bench_slicegan.py quality IMG1 --workdir runs --iters 5000 --converge --snapshot-every 0
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.slicegan.data import PatchSampler, load_training_images  # noqa: E402
from microlib_gui.core.slicegan.generate import generate  # noqa: E402
from microlib_gui.core.slicegan.nets import Generator  # noqa: E402
from microlib_gui.core.slicegan.presets import get_preset  # noqa: E402
from microlib_gui.core.slicegan.train import Trainer, read_run  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def default_image() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return base / "microlib" / "micro006.png"


# -- statistics (a few lines of numpy, independent of core/stats.py) -------------
def labels_2d(path) -> np.ndarray:
    from microlib_gui.core.images import load_image

    g = load_image(path).as_uint8()
    g = g if g.ndim == 2 else g[..., 0]
    return (g == g.max()).astype(np.uint8)  # phase 1 = the brightest grey level


def volume_fraction(lab: np.ndarray) -> float:
    return float(lab.mean())


def surface_share(lab: np.ndarray) -> float:
    """Share of neighbouring pairs (along every axis) whose two voxels differ."""
    diff = pairs = 0
    for ax in range(lab.ndim):
        a = np.diff(lab, axis=ax) != 0
        diff += int(a.sum())
        pairs += a.size
    return diff / pairs


# -- speed -------------------------------------------------------------------------
def bench_prep(image, dev, preset):
    torch.zeros(1, device=dev)
    sync(dev)
    t0 = time.perf_counter()
    imgs = load_training_images([str(image)])
    sampler = PatchSampler(imgs[0], preset.img_side, dev)
    sampler.sample(preset.batch_real)
    sync(dev)
    return time.perf_counter() - t0, imgs


def iteration_flops(preset, nc: int, published: bool) -> float:
    """FLOPs of one generator iteration (see ``Preset.iteration_flops``)."""
    return preset.iteration_flops(nc, published)


def bench_train(imgs, dev, preset, modes, iters, warmup):
    rows = []
    flops = None
    for mode in modes:
        torch.manual_seed(0)
        precision = "fp32" if mode.startswith("fp32") else "bf16"
        pr = replace(preset, critic_axes="joint") if "joint" in mode else preset
        subpixel = False if "convT" in mode else True if "subpixel" in mode else None  # None: the default
        s2d = False if "nos2d" in mode else True if "s2d" in mode else None
        tr = Trainer(pr, imgs, dev, precision, graphs="graphs" in mode,
                     gp="autograd" if "autograd" in mode else "adjoint", subpixel=subpixel,
                     linear_head="nolinhead" not in mode, s2d=s2d)
        try:
            if flops is None:
                flops = iteration_flops(preset, imgs[0].nc, published=True)
            t0 = time.perf_counter()
            for _ in range(warmup):
                tr.step()
            sync(dev)
            warm_s = time.perf_counter() - t0  # cuDNN autotuning and graph capture included
            tr.take_stats()
            t0 = time.perf_counter()
            for _ in range(iters):
                tr.step()
            sync(dev)
            dt = (time.perf_counter() - t0) / iters
            st = tr.take_stats()
            row = {"mode": mode, "s_per_iter": dt, "tflops": flops / dt / 1e12, "graphs_used": tr._graph is not None,
                   "warmup_s": round(warm_s, 2),
                   **{k: round(v, 4) for k, v in st.items()}}
            if dev.type == "cuda":
                row["max_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
        except Exception as exc:  # noqa: BLE001 - report and go on with the next mode
            traceback.print_exc()
            row = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:300]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del tr
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return flops, rows


def bench_generate(dev, sizes, repeats=5):
    G = Generator(get_preset("microlib").net_params(2), "nphase")
    G.eval()
    rows = []
    # (precision, channels-last, sub-pixel convolutions); the first row of each device is the default
    if dev.type == "cuda":
        variants = [("bf16", "1", "1"), ("bf16", "1", "0"), ("bf16", "0", "0"), ("fp32", "1", "1")]
    else:
        variants = [("fp32", "1", "1"), ("fp32", "1", "0"), ("fp32", "0", "0")]
    for precision, cl, sub in variants:
        os.environ["MICROLIB_GEN_CHANNELS_LAST"] = cl
        os.environ["MICROLIB_GEN_SUBPIXEL"] = sub
        for n in sizes:
            generate(G, size=n, seed=0, device=dev.type, precision=precision)  # warm-up (cudnn autotune)
            ts = []
            for r in range(repeats):
                t0 = time.perf_counter()
                vol = generate(G, size=n, seed=r, device=dev.type, precision=precision)
                ts.append(time.perf_counter() - t0)
            rows.append({"size": n, "precision": precision, "channels_last": cl == "1", "subpixel": sub == "1",
                         "median_s": float(np.median(ts)), "min_s": min(ts),
                         "shape": list(vol.shape), "dtype": str(vol.dtype)})
            print(json.dumps(rows[-1]), flush=True)
    os.environ.pop("MICROLIB_GEN_SUBPIXEL", None)
    os.environ.pop("MICROLIB_GEN_CHANNELS_LAST", None)
    return rows


def bench_disk(dev, size, path):
    """Stream a size³ volume to BigTIFF in a child process; report time and peak host memory."""
    code = f"""
import json, resource, sys, time, torch
sys.path.insert(0, {str(REPO)!r})
torch.backends.cudnn.benchmark = True
from microlib_gui.core.slicegan.generate import generate_to_file, generate
from microlib_gui.core.slicegan.nets import Generator
from microlib_gui.core.slicegan.presets import get_preset
G = Generator(get_preset("microlib").net_params(2), "nphase").eval()
generate(G, size=64, device={dev.type!r})  # context + kernels, outside the timing
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
r = generate_to_file(G, {str(path)!r}, size={size}, seed=0, device={dev.type!r})
dt = time.perf_counter() - t0
print(json.dumps({{"size": {size}, "seconds": dt, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "rss_before_gb": rss0 / 1e6, "file_gb": __import__("os").path.getsize({str(path)!r}) / 1e9}}))
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        print(json.dumps({"size": size, "error": "timeout 150 s"}), flush=True)
        Path(path).unlink(missing_ok=True)
        return {"size": size, "error": "timeout 150 s"}
    if out.returncode:
        print(out.stderr[-3000:], flush=True)
        return {"size": size, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    # a reader's check: the file is a BigTIFF of the right shape
    import tifffile

    with tifffile.TiffFile(path) as tf:
        row["pages"] = len(tf.pages)
        row["page_shape"] = list(tf.pages[0].shape)
    Path(path).unlink()
    print(json.dumps(row), flush=True)
    return row


def cmd_speed(a):
    dev = torch.device(a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if a.cudnn_limit is not None:  # engine configurations cuDNN's autotuner tries per shape (0: all)
            torch.backends.cudnn.benchmark_limit = a.cudnn_limit
    # e.g. --set batch_g=4,batch_d=1,batch_real=8,critic_iters=1: MicroLib's network in seconds on a CPU
    preset = get_preset(a.preset, **{k: int(v) for k, v in (kv.split("=") for kv in a.set.split(",") if kv)})
    res = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "preset": a.preset}
    prep, imgs = bench_prep(a.image, dev, preset)
    res["data_prep_s"] = prep
    print(json.dumps({"data_prep_s": prep}), flush=True)
    if "train" in a.sections:
        flops, rows = bench_train(imgs, dev, preset, a.modes.split(","), a.iters, a.warmup)
        res["tflop_per_iter_published"] = flops / 1e12
        res["tflop_per_iter_executed"] = iteration_flops(preset, imgs[0].nc, published=False) / 1e12
        res["train"] = rows
    if "generate" in a.sections:
        res["generate"] = bench_generate(dev, [int(s) for s in a.gen_sizes.split(",")], a.gen_repeats)
    if "disk" in a.sections:
        res["disk"] = bench_disk(dev, a.disk_size, Path(a.disk_path))
    text = json.dumps(res, indent=1)
    if a.json_out:
        Path(a.json_out).write_text(text)
    print(text)


# -- convergence check cost ------------------------------------------------------------
def cmd_check_cost(a):
    """Seconds of a training iteration and of a convergence check (its generator export, the volume,
    the statistics), and the check's share of training at the preset's (or --every) interval."""
    from microlib_gui.core.slicegan.convergence import Figures

    dev = torch.device(a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if a.threads:
        torch.set_num_threads(a.threads)
    preset = get_preset(a.preset, **({"converge_latent": a.latent} if a.latent else {}))
    imgs = load_training_images([str(a.image)], min_side=preset.img_side)
    tr = Trainer(preset, imgs, dev, graphs=False)
    t0 = time.perf_counter()
    fig = Figures([s.image for s in tr.samplers], tr.imtype)
    sync(dev)
    image_s = time.perf_counter() - t0
    for _ in range(a.warmup):
        tr.step()
        tr.check_volume()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(a.iters):
        tr.step()
    sync(dev)
    it_s = (time.perf_counter() - t0) / a.iters
    parts = {"export_s": [], "volume_s": [], "stats_s": []}
    for _ in range(a.checks):
        t0 = time.perf_counter()
        tr.export_generator()
        sync(dev)
        t1 = time.perf_counter()
        vol, _ = tr.check_volume()  # export again + the volume
        sync(dev)
        t2 = time.perf_counter()
        fig.errors(vol)
        t3 = time.perf_counter()
        parts["export_s"].append(t1 - t0)
        parts["volume_s"].append(t2 - t1 - (t1 - t0))
        parts["stats_s"].append(t3 - t2)
    med = {k: float(np.median(v)) for k, v in parts.items()}
    check_s = med["export_s"] + med["volume_s"] + med["stats_s"]
    every = a.every or preset.converge_every
    res = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "preset": a.preset,
           "threads": torch.get_num_threads(), "check_side": int(vol.shape[-1]), "image_figures_s": image_s,
           "s_per_iter": it_s, **med, "check_s": check_s, "every": every,
           "share_of_training": check_s / (check_s + every * it_s)}
    print(json.dumps(res, indent=1))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=1))


# -- quality -------------------------------------------------------------------------
def cmd_quality(a):
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    # one run per image, critic-axes variant and seed; sequential seed-0 runs keep the image's name
    # IMAGE@joint / IMAGE@sequential: that image with that critic update only
    runs = {}
    for sd in map(int, str(a.seeds).split(",")):
        for spec in a.images:
            im, _, only = spec.partition("@")
            for ax in [only] if only else a.critic_axes.split(","):
                name = (Path(im).stem + ("" if ax == "sequential" else f"_{ax}") + ("_aug" if a.augment else "")
                        + ("" if sd == 0 else f"_s{sd}"))
                runs[name] = (Path(im), ax, sd)
    if not a.evaluate_only:
        cmds = []
        for name, (im, axes, sd) in runs.items():
            # the job function directly: the full CLI would import every area's command module
            cmd = [sys.executable, str(Path(__file__).resolve()), "train-one", str(im), "--out", str(work / name),
                   "--iters", str(a.iters), "--device", a.device, "--seed", str(sd),
                   "--snapshot-every", str(a.snapshot_every),
                   *(["--augment"] if a.augment else []),
                   "--preset", a.preset, "--critic-axes", axes] + ([] if a.ema is None else ["--ema", str(a.ema)])
            cmd += _converge_args(a)
            cmds.append((name, cmd + os.environ.get("SLICEGAN_TRAIN_EXTRA", "").split()))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if a.parallel:
            procs = [subprocess.Popen(cmd, stdout=open(work / f"{name}.log", "w"), stderr=subprocess.STDOUT,
                                      cwd=REPO, start_new_session=a.detach, env=env) for name, cmd in cmds]
        else:  # one after another in one background shell: on one GPU that finishes them soonest
            chain = "; ".join(f"{shlex.join(cmd)} > {shlex.quote(str(work / (name + '.log')))} 2>&1" for name, cmd in cmds)
            # detached: no inherited output pipe, so a caller piping our output is not held open
            quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if a.detach else {}
            procs = [subprocess.Popen(["sh", "-c", chain], cwd=REPO, start_new_session=a.detach, env=env, **quiet)]
        print(f"started {len(cmds)} trainings ({'at once' if a.parallel else 'one at a time'}):",
              [p.pid for p in procs], flush=True)
        if a.detach:
            return
    t_end = time.monotonic() + a.wait
    while True:
        its = {}
        for name in runs:
            try:
                info = read_run(work / name)
                # a run that converged is finished before its cap
                its[name] = a.iters if info.get("converged_at") is not None else info.get("iteration", 0)
            except Exception:  # noqa: BLE001 - not started yet
                its[name] = 0
        done = all(v >= a.iters for v in its.values())
        print(time.strftime("%H:%M:%S"), its, flush=True)
        if done or time.monotonic() > t_end:
            break
        time.sleep(20)
    if not done:
        print("not finished:", [n for n, v in its.items() if v < a.iters],
              "(evaluating the finished ones; run again with --evaluate-only for the rest)", flush=True)
        runs = {n: r for n, r in runs.items() if its[n] >= a.iters}
        if not runs:
            return
    from microlib_gui.core.slicegan.generate import load_model

    rows = []
    for name, (im, _, seed) in runs.items():
        lab2 = labels_2d(im)
        sa2, vf2 = surface_share(lab2), volume_fraction(lab2)
        info = read_run(work / name)
        G, meta = load_model(work / name)
        variants = [("saved", G)]
        for snap in sorted((work / name / "snapshots").glob("it*")):
            variants.append((snap.name, load_model(snap)[0]))
        ck = torch.load(work / name / "checkpoint.pt", map_location="cpu", weights_only=True)
        if ck.get("G_ema") is not None:  # a moving-average run also holds the plain generator: compare both
            import copy

            raw = copy.deepcopy(G)
            raw.load_state_dict(ck["G"])
            variants.append(("plain", raw))
        for variant, g in variants:
            vol = generate(g, size=a.size, seed=1, device=a.device)
            # phase 1 of the volume = the brightest grey level (phases are sorted)
            vol = (vol == len(meta["phases"]) - 1).astype(np.uint8)
            vf3, sa3 = volume_fraction(vol), surface_share(vol)
            # per axis: is the extra interface in one direction?
            sa_axes = [float(np.mean(np.diff(vol, axis=ax) != 0)) for ax in range(3)]
            rows.append({"image": name, "seed": seed, "generator": variant, "ema": info["preset"].get("ema", 0.0),
                         "critic_axes": info["preset"].get("critic_axes", "sequential"),
                         "iterations": info["iteration"], "converged_at": info.get("converged_at"),
                         "best_iteration": info.get("best_iteration"),
                         "wall_seconds": _read_json(work / name / WALL_JSON).get("wall_seconds"),
                         "vf2d": vf2, "vf3d": vf3,
                         "vf_err": abs(vf2 - vf3) / vf2, "sa2d": sa2, "sa3d": sa3, "sa_err": abs(sa2 - sa3) / sa2,
                         "sa3d_axes": sa_axes,
                         "sa2d_axes": [float(np.mean(np.diff(lab2, axis=ax) != 0)) for ax in range(2)]})
            print(json.dumps(rows[-1]), flush=True)
            if variant.startswith("it"):
                continue
            import tifffile

            mid = vol[vol.shape[0] // 2] * 255
            tifffile.imwrite(work / f"{name}_{variant}_slice.tif", mid.astype(np.uint8))
    rows_saved = [r for r in rows if r["generator"] == "saved"]
    res = {"rows": rows, "mean_vf_err": float(np.mean([r["vf_err"] for r in rows_saved])),
           "mean_sa_err": float(np.mean([r["sa_err"] for r in rows_saved]))}
    print(json.dumps(res, indent=1))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=1))


#: train-one's record in a run folder: wall seconds from start to the saved generator
WALL_JSON = "bench_wall.json"

CONVERGE_OPTS = ("converge_every", "converge_min_iters", "converge_tol", "converge_patience", "converge_s2_tol")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _converge_args(a) -> list[str]:
    """--converge/--no-converge and the check settings given to quality, for train-one."""
    out = [] if a.converge is None else ["--converge" if a.converge else "--no-converge"]
    for k in CONVERGE_OPTS:
        if getattr(a, k) is not None:
            out += ["--" + k.replace("_", "-"), str(getattr(a, k))]
    return out


def _add_converge_flags(p) -> None:
    p.add_argument("--converge", action=argparse.BooleanOptionalAction, default=None,
                   help="stop when the statistics have converged (default: the preset's)")
    p.add_argument("--converge-every", type=int, default=None, help="iterations between checks")
    p.add_argument("--converge-min-iters", type=int, default=None, help="first iteration that may stop")
    p.add_argument("--converge-tol", type=float, default=None, help="relative vf and surface-area tolerance")
    p.add_argument("--converge-patience", type=int, default=None, help="checks in a row within tolerance")
    p.add_argument("--converge-s2-tol", type=float, default=None, help="two-point correlation tolerance")


def cmd_train_one(a):
    from microlib_gui.core.jobs import run_inline

    def show(ev):
        print(f"{ev.step}/{ev.total} " + " ".join(f"{k}={v:.4g}" for k, v in ev.scalars.items()), flush=True)

    import shutil

    out = Path(a.out)
    params = dict(images=[a.image], out=a.out, device=a.device, seed=a.seed, log_every=250,
                  checkpoint_every=500, graphs=False if a.no_graphs else "auto", ema=a.ema, preset=a.preset,
                  critic_axes=a.critic_axes, augment=a.augment or None, converge=a.converge,
                  **{k: getattr(a, k) for k in CONVERGE_OPTS if getattr(a, k) is not None})
    # in chunks of --snapshot-every iterations (resume is exact), keeping each chunk's generator
    step = a.snapshot_every or a.iters
    t0 = time.monotonic()
    for end in [*range(step, a.iters, step), a.iters]:
        r = run_inline("microlib_gui.core.slicegan.train:train",
                       {**params, "iters": end, "resume": (out / "checkpoint.pt").exists()}, on_progress=show)
        print(json.dumps(r), flush=True)
        (out / WALL_JSON).write_text(json.dumps({"wall_seconds": time.monotonic() - t0, "iteration": r["iteration"],
                                                 "converged_at": r.get("converged_at"),
                                                 "best_iteration": r.get("best_iteration")}))
        if r.get("converged_at") is not None:
            break  # stopped when converged: no further chunks
        if end < a.iters:
            snap = out / "snapshots" / f"it{end:05d}"
            snap.mkdir(parents=True, exist_ok=True)
            for f in out.glob("slicegan_*"):
                shutil.copy2(f, snap / f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--device", default="auto")
    s.add_argument("--preset", default="microlib")
    s.add_argument("--image", default=str(default_image()))
    s.add_argument("--sections", default="train,generate,disk")
    s.add_argument("--modes", default="fp32,bf16,bf16-graphs,bf16-graphs-joint",
                   help="fp32 (TF32) | bf16 | bf16-graphs | bf16-graphs-joint (one critic update for the three axes); "
                        "add -autograd for the published double-backpropagation penalty, -convT for the "
                        "generator's transposed convolutions as such (-subpixel: as sub-pixel convolutions; "
                        "default: sub-pixel on CUDA only), "
                        "-nolinhead for the critic's one-pixel last layer as a convolution (default: a matrix product), "
                        "-s2d / -nos2d for the critic's first layer on space-to-depth input or not (default: on CUDA)")
    s.add_argument("--set", default="", metavar="K=N,...",
                   help="integer preset fields to override, e.g. batch_g=4,batch_d=1,batch_real=8,critic_iters=1")
    s.add_argument("--cudnn-limit", type=int, default=None,
                   help="CUDA: configurations cuDNN's autotuner tries per convolution (torch's default 10; 0: all)")
    s.add_argument("--iters", type=int, default=20)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--gen-sizes", default="320,512")
    s.add_argument("--gen-repeats", type=int, default=5)
    s.add_argument("--disk-size", type=int, default=2048)
    s.add_argument("--disk-path", default="/tmp/slicegan_bench_vol.tif")
    s.add_argument("--json-out")
    s.set_defaults(func=cmd_speed)
    c = sub.add_parser("check-cost", help="seconds of a convergence check against a training iteration")
    c.add_argument("--device", default="auto")
    c.add_argument("--preset", default="check")
    c.add_argument("--image", default=str(default_image()))
    c.add_argument("--iters", type=int, default=20)
    c.add_argument("--checks", type=int, default=5)
    c.add_argument("--warmup", type=int, default=2)
    c.add_argument("--every", type=int, default=0, help="check interval for the share (default: the preset's)")
    c.add_argument("--latent", type=int, default=0, help="latent side of the check volume (default: the preset's)")
    c.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    c.add_argument("--json-out")
    c.set_defaults(func=cmd_check_cost)
    q = sub.add_parser("quality")
    q.add_argument("images", nargs="+")
    q.add_argument("--workdir", required=True)
    q.add_argument("--iters", type=int, default=5000)
    q.add_argument("--device", default="auto")
    q.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1 (one run per image and seed)")
    q.add_argument("--parallel", action="store_true",
                   help="start all runs at once (default: one after another, faster on one GPU)")
    q.add_argument("--ema", type=float, default=None,
                   help="moving-average decay of the saved generator (0: off; default: the preset's)")
    q.add_argument("--critic-axes", default="sequential",
                   help="sequential | joint | separate | sequential,joint (one run per image and variant)")
    q.add_argument("--size", type=int, default=320)
    q.add_argument("--augment", action="store_true",
                   help="real patches under random flips and transposes in every run (runs are named NAME_aug)")
    q.add_argument("--snapshot-every", type=int, default=1000,
                   help="also keep and evaluate the generator every N iterations (0: only the final one)")
    q.add_argument("--preset", default="microlib")
    q.add_argument("--detach", action="store_true", help="start the trainings in their own sessions and return")
    # one process per run: threads of one process cannot capture CUDA graphs while another thread
    # draws random numbers (bench/gpu_slicegan.sh starts MPS so that the processes overlap)
    q.add_argument("--evaluate-only", action="store_true", help="wait for runs already started, then evaluate")
    q.add_argument("--wait", type=float, default=1e9, help="seconds to wait for the trainings")
    q.add_argument("--json-out")
    _add_converge_flags(q)
    q.set_defaults(func=cmd_quality)
    t = sub.add_parser("train-one", help="one training run (used by quality)")
    t.add_argument("image")
    t.add_argument("--out", required=True)
    t.add_argument("--iters", type=int, default=5000)
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ema", type=float, default=None,
                   help="moving-average decay of the saved generator (0: off; default: the preset's)")
    t.add_argument("--critic-axes", default="sequential", choices=["sequential", "joint", "separate"])
    t.add_argument("--no-graphs", action="store_true")
    t.add_argument("--augment", action="store_true")
    t.add_argument("--snapshot-every", type=int, default=0,
                   help="keep the generator every N iterations (quality evaluates each)")
    t.add_argument("--preset", default="microlib")
    _add_converge_flags(t)
    t.set_defaults(func=cmd_train_one)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()

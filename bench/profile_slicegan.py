"""Where a SliceGAN training iteration spends its time (eager mode, no CUDA graph).

Prints (and writes as JSON) a per-phase breakdown timed with CUDA events — the
generator forward of a critic step, each axis' critic update, the gradient
penalty, the generator step — and torch.profiler's table of the kernels that
take the most device time. Use it to decide what to optimise next.

    python bench/profile_slicegan.py --device cuda --json-out prof.json
    python bench/profile_slicegan.py --device cpu --preset tiny --iters 2      # smoke run
    python bench/profile_slicegan.py --device cuda --generate 512              # generation instead
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.slicegan.data import load_training_images  # noqa: E402
from microlib_gui.core.slicegan.presets import get_preset  # noqa: E402
from microlib_gui.core.slicegan.train import Trainer, volume_slices  # noqa: E402


class Timer:
    """Accumulates wall time per phase (device-synchronised, so eager timings are honest)."""

    def __init__(self, dev):
        self.dev, self.t = dev, {}

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def __call__(self, name, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0
        return out


def phased_iteration(tr: Trainer, tm: Timer):
    """One iteration with the same arithmetic as ``Trainer._iteration``, split into timed phases."""
    p = tr.p
    for _ in range(p.critic_iters):
        def gen_fwd():
            with torch.no_grad(), tr._autocast():
                return tr.G(tr._noise(p.batch_d))
        fake = tm("critic step: generator forward (batch %d)" % p.batch_d, gen_fwd)
        for axis in range(3):
            k = axis if tr.anisotropic else 0
            D, opt = tr.Ds[k], tr.optDs[k]
            real = tr._real(axis)
            fs = volume_slices(fake, axis, tr.channels_last)

            def critic():
                opt.zero_grad(set_to_none=True)
                with tr._autocast():
                    out = D(torch.cat([real.to(fs.dtype), fs])).float()
                nr = real.shape[0]
                loss = out[nr:].mean() - out[:nr].mean()
                loss.backward()
                return nr

            nr = tm("critic step: critic fwd+bwd (real + fake slices)", critic)
            tm("critic step: gradient penalty fwd+bwd",
                    lambda: tr._gradient_penalty(D, real, fs[:nr]).backward())
            tm("critic step: Adam", opt.step)
    tm("generator step (forward, 3 critics, backward, Adam)", tr._generator_step)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="microlib")
    ap.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "microlib" / "micro006.png"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--json-out")
    ap.add_argument("--generate", type=int, metavar="SIZE",
                    help="profile generating a SIZE³ volume (untrained generator) instead of training")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    p = get_preset(a.preset)
    if a.generate:
        return profile_generation(a, p, dev)
    imgs = load_training_images([a.image], "auto", min_side=p.img_side)
    torch.manual_seed(0)
    tr = Trainer(p, imgs, dev, "auto", graphs=False)
    for _ in range(a.warmup):
        tr.step()
    tm = Timer(dev)
    for _ in range(a.iters):
        phased_iteration(tr, tm)
    phases = {k: v / a.iters for k, v in tm.t.items()}
    total = sum(phases.values())
    print(f"eager iteration, {a.preset} preset on {a.device}: {total:.4f} s (phases, per iteration)")
    for k, v in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {v:8.4f} s  {100 * v / total:5.1f} %  {k}")

    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(2):
            tr.step()
        tm.sync()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=a.top, max_name_column_width=60)
    print(table)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"device": a.device, "preset": a.preset, "seconds_per_iteration": total,
                                                "phases": phases, "table": table}, indent=1))


def profile_generation(a, p, dev) -> None:
    """Top kernels (and wall time) of generating one ``a.generate``³ uint8 volume."""
    from microlib_gui.core.slicegan.generate import generate
    from microlib_gui.core.slicegan.nets import Generator

    torch.manual_seed(0)
    G = Generator(p.net_params(2), "nphase").eval()
    tm = Timer(dev)
    for _ in range(a.warmup):
        generate(G, size=a.generate, device=a.device)
    for _ in range(a.iters):
        tm("generate", lambda: generate(G, size=a.generate, device=a.device))
    wall = tm.t["generate"] / a.iters
    print(f"generation of {a.generate}^3, {a.preset} preset on {a.device}: {wall:.4f} s (mean of {a.iters})")
    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        generate(G, size=a.generate, device=a.device)
        tm.sync()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=a.top, max_name_column_width=60)
    print(table)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"device": a.device, "preset": a.preset, "size": a.generate,
                                                "seconds": wall, "table": table}, indent=1))


if __name__ == "__main__":
    main()

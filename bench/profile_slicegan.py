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
from microlib_gui.core.slicegan.train import Trainer  # noqa: E402


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
    fakes = tm("critic steps: generator forward (batch %d × %d)" % (p.batch_d, p.critic_iters), tr._critic_fakes)
    for fake in fakes:
        for axis in range(3):
            k = axis if tr.separate else 0
            fs = tr._slices(fake, axis)
            tm(f"critic step: critic update ({tr.gp} penalty)",
               lambda: tr._critic_update(tr.Ds[k], tr.optDs[k], tr._real(axis), fs, fs[:p.batch_real]))
    tm("generator step (forward, 3 critics, backward, Adam)", tr._generator_step)


def graph_ms(fn, reps: int = 20) -> float:
    """Milliseconds per replay of ``fn`` captured as a CUDA graph (no launch overhead)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(reps):
        g.replay()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / reps


def generator_step_parts(tr: Trainer, kernels: bool = True) -> dict:
    """Cumulative parts of the generator step, each graph-timed, and its kernels."""
    p, D = tr.p, tr.Ds[0]

    def fwd():
        with tr._autocast():
            return tr.G(tr._noise(p.batch_g))

    def fwd_critic():
        fake = fwd()
        with tr._autocast():
            slices = tr._slices(fake, (0, 1, 2))
            return -3.0 * D(slices).float().mean()

    def backward():
        tr.optG.zero_grad(set_to_none=True)
        fwd_critic().backward()

    D.requires_grad_(False)
    res = {"  G step part: generator forward (batch %d)" % p.batch_g: graph_ms(fwd),
           "  G step part: + slices + critic forward": graph_ms(fwd_critic),
           "  G step part: + backward": graph_ms(backward)}
    D.requires_grad_(True)
    if not kernels:
        return res
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            tr._generator_step()
        torch.cuda.synchronize()
    print("generator step, eager (3 steps):")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=90))
    return res


def graph_pieces(p, imgs, dev) -> dict:
    """Device time of each piece of an iteration, each captured and replayed as its own graph."""
    out = {}
    # the default (sub-pixel generator layers, adjoint penalty), then each alternative
    for name, kw in (("default", {}), ("transposed generator layers", dict(subpixel=False)),
                     ("autograd penalty", dict(gp="autograd"))):
        torch.manual_seed(0)
        tr = Trainer(p, imgs, dev, "auto", graphs=True, **kw)
        fake = {}

        def gen_fwd():
            with torch.no_grad(), tr._autocast():
                fake["v"] = tr.G(tr._noise(p.batch_d))

        out[f"generator forward (batch {p.batch_d}), {name}"] = graph_ms(gen_fwd)
        out[f"generator forward for all {p.critic_iters} critic steps, {name}"] = graph_ms(tr._critic_fakes)
        gen_fwd()
        fs = tr._slices(fake["v"], 0)
        if "gp" in kw or name == "default":
            out[f"one critic update, {name}"] = graph_ms(
                lambda: tr._critic_update(tr.Ds[0], tr.optDs[0], tr._real(0), fs, fs[:p.batch_real]))
            out[f"critic step (3 updates), {name}"] = graph_ms(lambda: tr._critic_step(fake["v"]))
        if "gp" not in kw:
            out[f"generator step, {name}"] = graph_ms(tr._generator_step)
            out.update({f"{k}, {name}": v for k, v in generator_step_parts(tr, kernels=name == "default").items()})
        out[f"whole iteration, {name}"] = graph_ms(tr._iteration)
        del tr
        torch.cuda.empty_cache()
    for k, v in out.items():
        print(f"  {v:8.2f} ms  {k}", flush=True)
    # kernels of whole iterations replayed from the trainer's own graph
    torch.manual_seed(0)
    tr = Trainer(p, imgs, dev, "auto", graphs=True)
    for _ in range(6):
        tr.step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            tr.step()
        torch.cuda.synchronize()
    print("graph replay (3 iterations), graph used:", tr._graph is not None)
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=90))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="microlib")
    ap.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "microlib" / "micro006.png"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--json-out")
    ap.add_argument("--gp", default="adjoint", choices=["adjoint", "autograd"])
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
    pieces = graph_pieces(p, imgs, dev) if dev.type == "cuda" else {}
    torch.manual_seed(0)
    tr = Trainer(p, imgs, dev, "auto", graphs=False, gp=a.gp)
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
                                                "phases": phases, "graph_pieces_ms": pieces, "table": table},
                                               indent=1))


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
    stages = generation_stages(G, a.generate, dev)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"device": a.device, "preset": a.preset, "size": a.generate,
                                                "seconds": wall, "stages": stages, "table": table}, indent=1))


def generation_stages(G, size, dev) -> dict:
    """Synchronised times of each stage of a one-block generation (bf16 on CUDA, float32 on a CPU)."""
    import torch.nn.functional as F

    from microlib_gui.core.slicegan.generate import Plan
    from microlib_gui.core.slicegan.nets import interleave, subpixel_conv
    from microlib_gui.core.slicegan.subpixel import SubpixelGenerator

    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    fast = SubpixelGenerator(G.to(dev), dtype, channels_last=True)
    plan = Plan(G, size, seed=0)
    tm = Timer(dev)
    for rep in range(3):
        tm.t.clear()
        z = tm("latent to device", lambda: plan.z.to(dev))
        x = z.to(dtype).contiguous(memory_format=torch.channels_last_3d)
        for i, (w8, b8, cout, pad) in enumerate(fast.layers[:-1]):
            y = tm(f"layer {i + 1} conv+bias", lambda: subpixel_conv(x, w8, pad, b8))
            tm(f"layer {i + 1} relu", lambda: F.relu_(y))
            x = tm(f"layer {i + 1} interleave", lambda: interleave(y, cout, pad).contiguous(
                memory_format=torch.channels_last_3d))
            y = None
        lab = tm("last layer: difference conv + sign", lambda: subpixel_conv(x, fast.w_diff, fast.layers[-1][3]) > 0)
        vol = tm("last layer: interleave uint8 + crop", lambda: interleave(lab.to(torch.uint8), 1, fast.layers[-1][3])
                 [0, 0, :size, :size, :size].contiguous())
        tm("to host (pageable numpy)", lambda: vol.cpu().numpy())
        if dev.type == "cuda":
            pinned = tm("pinned host buffer allocation", lambda: torch.empty(vol.shape, dtype=torch.uint8,
                                                                            pin_memory=True))
            tm("to host (into pinned buffer)", lambda: pinned.copy_(vol))
        x = lab = vol = None  # free before the next run
    total = sum(tm.t.values())
    print(f"stages of one {size}^3 generation (third run), total {total:.4f} s:")
    for k, v in tm.t.items():
        print(f"  {v * 1000:8.2f} ms  {k}")
    return dict(tm.t)


if __name__ == "__main__":
    main()

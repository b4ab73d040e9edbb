"""Benchmark the statistics: vf + surface area + S2 up to r on a cube, and TauFactor.

    python bench/bench_stats.py                    # 512^3, r = 100, CPU, all cores
    python bench/bench_stats.py --device cuda      # FFTs with torch on the GPU
    python bench/bench_stats.py --tau 128          # also a tortuosity solve on a 128^3 cube
    taskset -c 0,1 python bench/bench_stats.py     # as on a 2-core machine

Prints one JSON line per measurement: per part the best of --repeat runs; for vf + surface
area + S2 also the best and the median of the per-run totals, the load average (1 min) before
and after, and per run the CPU taken meanwhile by other processes (in cores: 1.0 = one core busy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def _cpu_jiffies():
    """(busy, total) CPU time of the whole machine in jiffies (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4], sum(v)


def _other_cpu(fn):
    """Run ``fn``; return (result, seconds, share of one core used meanwhile by other processes)."""
    a, c0, t0 = _cpu_jiffies(), os.times(), time.perf_counter()
    out = fn()
    el, b, c1 = time.perf_counter() - t0, _cpu_jiffies(), os.times()
    if a is None or b is None:
        return out, el, None
    ours = (c1.user + c1.system - c0.user - c0.system) * os.sysconf("SC_CLK_TCK")
    return out, el, max(0.0, (b[0] - a[0] - ours) / os.sysconf("SC_CLK_TCK") / el)


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--r-max", type=int, default=100)
    ap.add_argument("--phases", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tau", type=int, default=0, metavar="SIDE", help="also time TauFactor on a SIDE^3 cube")
    ap.add_argument("--tau-device", default=None)
    args = ap.parse_args(argv)

    from microlib_gui.core.stats import surface_area, tortuosity, two_point_correlation, volume_fraction
    from microlib_gui.core.stats.metrics import _workers

    rng = np.random.default_rng(0)
    n = args.size
    # The structure does not change the cost; thresholded noise is quick to make.
    vol = np.minimum((rng.random((n, n, n), dtype=np.float32) * args.phases).astype(np.uint8), args.phases - 1)
    info = {"machine": platform.node(), "cpu_count": os.cpu_count(), "workers": _workers(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}
    if args.device != "cpu":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        two_point_correlation(vol[:64, :64, :64], r_max=8, device=args.device)  # warm up CUDA / cuFFT

    load_before = os.getloadavg()[0]
    runs, others = [], []  # (vf, sa, 2pc) seconds of each run, timed back to back as the target reads

    def one_run():
        t_vf, _ = _best(lambda: volume_fraction(vol, args.phases), 1)
        t_sa, _ = _best(lambda: surface_area(vol), 1)
        t_2pc, res = _best(lambda: two_point_correlation(vol, r_max=args.r_max, n_phases=args.phases,
                                                         device=args.device), 1)
        return (t_vf, t_sa, t_2pc), res

    for _ in range(args.repeat):
        (times, res), _, other = _other_cpu(one_run)
        runs.append(times)
        others.append(None if other is None else round(other, 2))
    totals = [sum(r) for r in runs]
    best = [min(col) for col in zip(*runs)]
    print(json.dumps({"bench": "vf+sa+2pc", "shape": [n] * 3, "r_max": args.r_max, "phases": args.phases,
                      "device": args.device, "repeat": args.repeat, "vf_s": round(best[0], 3),
                      "sa_s": round(best[1], 3), "two_point_s": round(best[2], 3),
                      "total_s": round(min(totals), 3), "total_median_s": round(statistics.median(totals), 3),
                      "totals_s": [round(t, 3) for t in totals], "other_cpu": others,
                      "s2_check": round(res["s2"][0][0], 4),
                      "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], **info}))
    if args.tau:
        from scipy import ndimage as ndi

        side = args.tau
        blobs = (ndi.gaussian_filter(rng.random((side,) * 3), 2) > 0.5).astype(np.uint8)
        t_tau, tau = _best(lambda: tortuosity(blobs, phases=[1], device=args.tau_device, max_side=None), 1)
        print(json.dumps({"bench": "tortuosity", "side": side, "device": tau["device"], "seconds": round(t_tau, 2),
                          "tau": tau["phases"][0], **info}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

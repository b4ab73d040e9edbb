"""Critic convolutions in two layouts, timed one kernel at a time on a GPU.

MicroLib's critic layers are kernel-4, stride-2, padding-1 convolutions. The same
layer is a kernel-2, stride-1 convolution of the zero-padded input rearranged
space-to-depth (each 2×2 block of pixels as 4·C channels). This script times the
forward pass, the input gradient (dgrad) and the weight gradient (wgrad) of both
forms for each layer, at the batch of one critic update (576 images) and of the
generator step (6144), bf16 channels-last, each op captured 10 times in a CUDA
graph and replayed. It also times the ReLU written plainly and written straight
into the next layer's space-to-depth buffer (four strided writes).

    python bench/conv_layouts.py [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_slicegan import graph_ms  # noqa: E402

from microlib_gui.core.slicegan.nets import s2d_parts  # noqa: E402

LAYERS = [(2, 64, 64), (64, 128, 32), (128, 256, 16), (256, 512, 8)]  # (in, out, input side)


def timed(fn, reps: int = 10) -> float:
    """Milliseconds per call of ``fn``: ``reps`` calls captured in one CUDA graph, replayed."""
    return graph_ms(lambda: [fn() for _ in range(reps)]) / reps


def cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def conv_times(x, w, stride, padding):
    y = F.conv2d(x, w, None, stride, padding)
    gy = torch.randn_like(y)
    bw = torch.ops.aten.convolution_backward
    common = dict(bias_sizes=None, stride=[stride] * 2, padding=[padding] * 2, dilation=[1, 1],
                  transposed=False, output_padding=[0, 0], groups=1)
    return {
        "fprop": timed(lambda: F.conv2d(x, w, None, stride, padding)),
        "dgrad": timed(lambda: bw(gy, x, w, output_mask=[True, False, False], **common)),
        "wgrad": timed(lambda: bw(gy, x, w, output_mask=[False, True, False], **common)),
    }


def relu_s2d(y, buf):
    """ReLU of y (N, C, H, W) written into buf (N, H/2+1, W/2+1, 2, 2, C): zero-padded by one
    pixel, then each 2×2 block's pixels as channels (the trainer's slice layout)."""
    for dst, src in s2d_parts(buf, y.permute(0, 2, 3, 1), 1):
        torch.clamp_min(src, 0, out=dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json-out")
    ap.add_argument("--batches", default="576,6144")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    rows = []
    for n in map(int, a.batches.split(",")):
        for cin, cout, side in LAYERS:
            bf = dict(device=dev, dtype=torch.bfloat16)
            x = cl(torch.randn(n, cin, side, side, **bf))
            w = cl(torch.randn(cout, cin, 4, 4, **bf))
            x2 = cl(torch.randn(n, 4 * cin, side // 2 + 1, side // 2 + 1, **bf))
            w2 = cl(torch.randn(cout, 4 * cin, 2, 2, **bf))
            row = {"batch": n, "layer": f"{cin}->{cout} @{side}"}
            for k, v in conv_times(x, w, 2, 1).items():
                row[f"k4s2_{k}"] = round(v, 4)
            for k, v in conv_times(x2, w2, 1, 0).items():
                row[f"s2d_{k}"] = round(v, 4)
            y = cl(torch.randn(n, cout, side // 2, side // 2, **bf))
            row["relu"] = round(timed(lambda: F.relu(y)), 4)
            row["relu_bwd"] = round(timed(lambda: torch.ops.aten.threshold_backward(y, y, 0)), 4)
            if side // 2 >= 4 and (side // 2) % 2 == 0:
                buf = torch.zeros(n, side // 4 + 1, side // 4 + 1, 2, 2, cout, **bf)
                row["relu_s2d"] = round(timed(lambda: relu_s2d(y, buf)), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
            del x, w, x2, w2
            torch.cuda.empty_cache()
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

"""``microlib inpaint``: replace the masked pixels of an image (scale bar removal)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import add_json_flag, emit
from ._args import MAX_COORD, count, number, seed


def register(sub) -> None:
    p = sub.add_parser(
        "inpaint",
        help="inpaint the masked pixels of an image (label image or grayscale)",
        description="Replace the pixels under MASK (non-zero = replace) and nothing else. "
                    "IMAGE may be a label image (0..n-1 or 0/255, e.g. from 'microlib segment') or a "
                    "grayscale image. gan: MicroLib's method (trains a GAN on the image; GPU advised); "
                    "fast: biharmonic inpainting in well under a second.",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--mask", required=True, metavar="MASK.png", help="mask image, same size; non-zero = inpaint")
    p.add_argument("--out", required=True, metavar="OUT.png", help="where to write the inpainted image (PNG)")
    p.add_argument("--method", choices=("gan", "fast"), default="gan")
    p.add_argument("--iters", type=count, default=None, metavar="N",
                   help="GAN training iterations (default 1000)")
    p.add_argument("--opt-iters", type=count, default=None, metavar="N",
                   help="latent optimisation steps per masked region (default 300)")
    p.add_argument("--batch-size", type=count, default=32, metavar="N", help="GAN training batch (default 32)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=seed, default=0, metavar="S")
    p.add_argument("--restarts", type=count, default=None, metavar="N",
                   help="GAN: latents fitted per region, the best border match kept (default 8; 1 = MicroLib)")
    p.add_argument("--blend", type=number(0, MAX_COORD), default=None, metavar="PX",
                   help="GAN: width of the join with the smooth continuation of the border "
                        "(default 1; 0 = MicroLib's raw paste)")
    p.add_argument("--kind", choices=("auto", "labels", "gray"), default="auto",
                   help="read IMAGE as labels or as grayscale (auto: at most 16 grey levels = labels)")
    p.add_argument("--gif", metavar="OUT.gif", help="also write the animation of the optimisation")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_json_flag(p)
    p.set_defaults(func=cmd_inpaint)


def _progress_printer(quiet: bool):
    last = [-1]

    def show(p) -> None:
        if quiet:
            return
        pct = int(100 * p.fraction)
        if pct != last[0]:
            last[0] = pct
            eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
            print(f"\r[{pct:3d}%] {p.message}{eta}\033[K", end="", file=sys.stderr, flush=True)

    return show


def cmd_inpaint(args) -> int:
    from ..core.images import save_png
    from ..core.inpaint import (DEFAULT_BLEND, DEFAULT_ITERS, DEFAULT_OPT_ITERS, DEFAULT_RESTARTS, InpaintError,
                                inpaint_job, write_gif)
    from ..core.jobs import run_inline
    from ..core.safefile import check_output_file

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InpaintError(f"{out.name}: the output must be a .png file")
    if args.gif and Path(args.gif).suffix.lower() != ".gif":
        raise InpaintError(f"{Path(args.gif).name}: the animation must be a .gif file")
    # A folder or unwritable place is said now, not after the GAN has trained for an hour.
    check_output_file(out, "the inpainted image", InpaintError)
    if args.gif:
        check_output_file(args.gif, "the animation", InpaintError)
    params = {"image": Path(args.image), "mask": Path(args.mask), "method": args.method, "kind": args.kind,
              "iters": args.iters or DEFAULT_ITERS, "opt_iters": args.opt_iters or DEFAULT_OPT_ITERS,
              "batch_size": args.batch_size, "device": args.device, "seed": args.seed,
              "restarts": DEFAULT_RESTARTS if args.restarts is None else args.restarts,
              "blend": DEFAULT_BLEND if args.blend is None else args.blend}
    if params["restarts"] < 1 or params["blend"] < 0:
        raise InpaintError("--restarts must be at least 1 and --blend at least 0")
    if args.method == "gan" and args.device != "cuda" and not (args.quiet or args.json):
        import torch

        if not torch.cuda.is_available():
            print("microlib: note: no CUDA GPU, training the GAN on the CPU (can take hours at the default "
                  "settings; --method fast gives a result in under a second)", file=sys.stderr)
    res = run_inline(inpaint_job, params, on_progress=_progress_printer(args.quiet or args.json))
    if not (args.quiet or args.json):
        print(file=sys.stderr)
    save_png(out, res["output"])
    gif = str(write_gif(args.gif, res["frames"])) if args.gif else None
    info = {"out": str(out), "gif": gif, "method": res["method"], "kind": res["kind"], "regions": res["regions"],
            "device": res.get("device", "cpu"), "seed": args.seed, "timings": res["timings"]}
    emit(args, info, f"wrote {out} ({res['method']}, {res['regions']} region(s), "
                     f"{res['timings']['total_s']:.1f} s)" + (f" and {gif}" if gif else ""))
    return 0

"""``microlib train IMAGE [IMAGE IMAGE] --out RUN``: train a SliceGAN generator."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from . import add_json_flag, emit
from ._args import count, number, seed


def register(sub) -> None:
    p = sub.add_parser("train", help="train a SliceGAN generator on one image (isotropic) or three (x, y, z)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="training image(s): one, or three for x, y, z")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, generator)")
    p.add_argument("--preset", default="microlib", type=preset_name,
                   help="network and training settings: microlib (default, MicroLib's, for a GPU), "
                        "draft (a CPU in about 20 minutes), tiny and check (tests)")
    p.add_argument("--iters", type=count, help="generator iterations in total (default: the preset's, 5000)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--type", dest="imtype", default="auto", choices=["auto", "nphase", "grayscale", "colour"],
                   help="how to read the image(s) (default: auto)")
    p.add_argument("--checkpoint-every", type=count, metavar="N", help="iterations between checkpoints")
    p.add_argument("--log-every", type=count, metavar="N", help="iterations between progress reports")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="GPU arithmetic")
    p.add_argument("--no-graphs", action="store_true", help="do not capture iterations as CUDA graphs")
    p.add_argument("--ema", type=number(0, 1, hi_open=True), metavar="DECAY",
                   help="save a moving average of the generator's weights with this decay "
                        "(microlib preset: 0.999; 0 saves the plain generator)")
    p.add_argument("--critic-axes", choices=["sequential", "joint", "separate"],
                   help="isotropic runs: one shared critic updated once per axis (sequential, published; "
                        "default) or once for all three (joint, faster), or one critic per axis (separate)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="isotropic runs: show the critic the real patches under random flips and transposes "
                        "(microlib preset: on; --no-augment: the published patches as they are)")
    p.add_argument("--g-layers", choices=["transpose", "resize"],
                   help="new runs: the generator's upsampling layers as transposed convolutions (published) or "
                        "as nearest-neighbour resizing + a 3x3x3 convolution (no checkerboard; the microlib and "
                        "draft presets' default; docs/slicegan.md)")
    add_converge_flag(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_train)


def preset_name(text: str) -> str:
    """A name of the preset table (read when the option is given: the table imports torch)."""
    from ..core.slicegan.presets import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r} (choose from {', '.join(PRESETS)})")
    return text


def add_converge_flag(p) -> None:
    """``--converge/--no-converge`` (shared with ``microlib entry train``)."""
    p.add_argument("--converge", action=argparse.BooleanOptionalAction, default=None,
                   help="check the statistics of a small generated volume against the image every few hundred "
                        "iterations and stop once they agree, saving the best check's generator "
                        "(microlib preset: on; see docs/slicegan.md, \"Stopping when converged\")")


def convergence_line(result: dict) -> str | None:
    """``converged at iteration N (best at M): vf x %, surface area y %`` for a run with checks
    (None without)."""
    checks = result.get("convergence") or []
    best = next((c for c in checks if c["iteration"] == result.get("best_iteration")), None)
    if best is None:
        return None
    at = result.get("converged_at")
    head = f"converged at iteration {at}" if at is not None else \
        f"not converged within {result.get('iteration')} iterations"
    return (f"{head} (best at {best['iteration']}): vf {100 * best['vf_error']:.1f} %, "
            f"surface area {100 * best['sa_error']:.1f} %")


class ProgressBar:
    """A one-line progress bar on stderr (a line per report when stderr is not a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr  # looked up now, not at import (tests swap it)
        self.tty = self.stream.isatty()

    def __call__(self, ev) -> None:
        width = 24
        filled = int(width * ev.fraction)
        eta = f" ETA {_hms(ev.eta_s)}" if ev.eta_s is not None else ""
        sc = ev.scalars
        losses = (f" critic {sc['critic_loss']:.3f} W {sc['wasserstein']:.3f} GP {sc['gradient_penalty']:.3f}"
                  if "critic_loss" in sc else "")
        line = f"[{'#' * filled}{'.' * (width - filled)}] {ev.step}/{ev.total}{eta}{losses}"
        stop = not sc and ev.message.startswith(("converged", "stopped at"))  # the trainer's early stop
        if "vf_error" in sc or stop:
            # a convergence check, or the stop: a line of its own, above the bar
            self.stream.write(("\r" if self.tty else "") + ev.message.ljust(len(line) if self.tty else 0) + "\n")
            if "vf_error" not in sc:
                self.stream.flush()
                return
        if self.tty:
            self.stream.write("\r" + line + ("\n" if ev.step >= ev.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _check_run_folder(out: str, resume: bool) -> None:
    """``--out`` must be a folder (or not exist yet); ``--resume`` needs the checkpoint it continues."""
    from pathlib import Path

    from ..core.slicegan import SliceGANError
    from ..core.slicegan.train import CHECKPOINT

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SliceGANError(f"{path.name}: is a file; --out names the run folder")
    if resume and not (path / CHECKPOINT).is_file():
        where = "does not exist" if not path.exists() else f"holds no {CHECKPOINT}"
        raise SliceGANError(f"--resume: {path} {where}, so there is no run to continue; "
                            "leave out --resume to start one")


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def cmd_train(args) -> int:
    from ..core.jobs import JobCancelled, run_inline

    _check_run_folder(args.out, args.resume)
    cancel = threading.Event()
    # Ctrl+C asks the job to stop: it saves a checkpoint first, so --resume continues from here.
    try:
        old = signal.signal(signal.SIGINT, lambda *a: cancel.set())
    except ValueError:  # not the main thread (embedded use): Ctrl+C handling stays as it was
        old = None
    params = dict(images=args.images, out=args.out, preset=args.preset, iters=args.iters, device=args.device,
                  seed=args.seed, resume=args.resume, imtype=args.imtype, checkpoint_every=args.checkpoint_every,
                  log_every=args.log_every, precision=args.precision,
                  graphs=False if args.no_graphs else "auto", ema=args.ema,
                  critic_axes=args.critic_axes, augment=args.augment, converge=args.converge,
                  g_layers=args.g_layers)
    t0 = time.monotonic()
    try:
        result = run_inline("microlib_gui.core.slicegan.train:train", params, on_progress=ProgressBar(),
                            cancel_event=cancel)
    except JobCancelled:
        print(f"microlib: training stopped; the last checkpoint is in {args.out} (continue with --resume)",
              file=sys.stderr)
        return 130
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    result["wall_seconds"] = time.monotonic() - t0
    conv = convergence_line(result)
    emit(args, result, (conv + "\n" if conv else "")
         + f"trained {result['iteration']} iterations; generator: {result['generator']}")
    return 0

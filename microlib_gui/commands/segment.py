"""``microlib segment IMAGE --phases auto|auto:N|G1,G2 [--crop ...] [--background auto|off|divide|subtract] --out SEG.png``."""

from __future__ import annotations

from pathlib import Path

from . import add_json_flag, emit
from ._args import number


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment a micrograph into phases (labels PNG)")
    p.add_argument("image")
    p.add_argument("--phases", default="auto",
                   help="auto (number of phases estimated), auto:N, or phase grey levels G1,G2[,...] (0-255)")
    p.add_argument("--crop", metavar="x0,y0,x1,y1", help="crop first (pixels of the image)")
    p.add_argument("--rotate", type=number(-360, 360), default=0.0, metavar="DEG",
                   help="rotate first (degrees, counter-clockwise)")
    p.add_argument("--background", default="auto", choices=("auto", "off", "divide", "subtract"),
                   help="correct uneven lighting first: auto (when it is detected; default), off, or always "
                        "(divide: a light field, subtract: an additive background); phase levels then refer "
                        "to the corrected image")
    p.add_argument("--out", required=True, help="labels PNG to write (two phases: 0/255; n phases: spread 0..255)")
    add_json_flag(p)
    p.set_defaults(func=cmd_segment)


def cmd_segment(args) -> int:
    from ..core.images import load_image, save_png
    from ..core.preprocess import apply_geometry
    from ..core.segment import labels_to_png, segment
    from ._args import parse_box, parse_phases_arg

    kwargs = parse_phases_arg(args.phases)
    crop = parse_box(args.crop) if args.crop else None
    img = load_image(args.image)
    data = apply_geometry(img.data, crop=crop, rotation=args.rotate or None)
    seg = segment(data, background=args.background, **kwargs)
    out = save_png(args.out, labels_to_png(seg.labels))
    vf = seg.volume_fractions()
    uneven = None if seg.unevenness is None else round(seg.unevenness, 4)
    obj = {"out": str(Path(out)), "method": seg.method, "n_phases": seg.n_phases,
           "thresholds": [round(t, 2) for t in seg.thresholds], "phases": seg.phases,
           "volume_fractions": [round(v, 5) for v in vf], "shape": list(seg.labels.shape),
           "background": seg.background, "unevenness": uneven}
    emit(args, obj, f"{seg.n_phases} phases ({seg.method}), thresholds "
         + ", ".join(f"{t:.1f}" for t in seg.thresholds)
         + "; volume fractions " + ", ".join(f"{v:.3f}" for v in vf) + f"; {_lighting(seg, args.background)}; wrote {out}")
    return 0


def _lighting(seg, mode: str) -> str:
    """What was done about uneven lighting, in words."""
    measured = "" if seg.unevenness is None else f"unevenness {seg.unevenness:.0%}"
    if seg.background != "off":
        return f"lighting corrected ({seg.background}" + (f", {measured})" if measured else ")")
    if mode == "auto":
        return "lighting even enough, not corrected" + (f" ({measured})" if measured else "")
    return "lighting not corrected"

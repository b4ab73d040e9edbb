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
         + "; volume fractions " + ", ".join(f"{v:.3f}" for v in vf)
         + f"; {lighting_text(seg.background, seg.unevenness, args.background)}; wrote {out}")
    return 0


def lighting_text(applied: str | None, unevenness: float | None, mode: str) -> str:
    """The background correction applied, in words: method and how uneven the light was, or none and why.

    Parameters
    ----------
    applied : str or None
        The correction applied: "divide", "subtract", or "off"/None for none.
    unevenness : float or None
        The spread of the fitted light field as a share of the mean brightness (None: not fitted).
    mode : str
        What was asked: "auto", "off", "divide" or "subtract".
    """
    from ..core.segment import UNEVEN_LIMIT

    measured = "" if unevenness is None else f"unevenness {unevenness:.0%}"
    if applied in ("divide", "subtract"):
        return f"lighting corrected ({applied}" + (f", {measured})" if measured else ")")
    if mode == "off":
        return "lighting not corrected (background correction off)"
    if unevenness is not None and unevenness >= UNEVEN_LIMIT:
        return (f"lighting not corrected: it varies ({measured}) but correcting fits the phases no better "
                "(--background divide forces it)")
    return "lighting even enough, not corrected" + (f" ({measured})" if measured else "")

"""``microlib scalebar IMAGE (--pick X,Y [--box ...] [--tolerance T] | --auto) --out MASK.png``."""

from __future__ import annotations

from . import add_json_flag, emit
from ._args import MAX_UM, number


def register(sub) -> None:
    p = sub.add_parser("scalebar", help="mask a scale bar and its label; measure µm per pixel")
    p.add_argument("image")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--pick", metavar="X,Y", help="a pixel on the bar (its colour is the bar colour)")
    how.add_argument("--auto", action="store_true", help="find the bar, its colour and label automatically")
    p.add_argument("--box", metavar="x0,y0,x1,y1", help="only mask inside this box (with --pick)")
    p.add_argument("--tolerance", type=number(0, 255), default=None, metavar="T",
                   help="colour tolerance in grey levels 0-255 (default 10)")
    p.add_argument("--um", type=number(0, MAX_UM, lo_open=True), metavar="VALUE",
                   help="the bar's length in µm (overrides the label)")
    p.add_argument("--out", required=True, help="mask PNG to write (255 = bar)")
    add_json_flag(p)
    p.set_defaults(func=cmd_scalebar)


def cmd_scalebar(args) -> int:
    from ..core import scalebar as sb
    from ..core.images import load_image, save_png
    from ._args import parse_box, parse_point

    img = load_image(args.image)
    tol = sb.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    obj: dict = {}
    if args.auto:
        if args.box:
            raise sb.ScaleBarError("--box is chosen automatically with --auto; use --pick with --box")
        det = sb.detect_scale_bar(img.data)
        mask = sb.bar_mask(img.data, det.colour, tol, det.box)
        obj.update(det.to_dict())
    else:
        x, y = parse_point(args.pick)
        colour = sb.pick_colour(img.data, x, y)
        box = parse_box(args.box, "--box") if args.box else None
        mask = sb.bar_mask(img.data, colour, tol, box)
        obj.update({"pick": [x, y], "colour": [float(c) for c in colour], "box": list(box) if box else None})
    if not mask.any():
        raise sb.ScaleBarError("no pixel of the bar colour found (check the pick, the box or the tolerance)")
    out = save_png(args.out, mask)
    obj.update({"out": str(out), "tolerance": tol, "mask_pixels": int(mask.sum())})
    if args.um is not None:
        length = obj.get("bar_length_px")
        if not length:
            raise sb.ScaleBarError("--um needs the bar length: use --auto")
        obj["value_um"] = args.um
        obj["um_per_px"] = sb.voxel_size(length, args.um)
    text = f"{obj['mask_pixels']} mask pixels; wrote {out}"
    if obj.get("bar_length_px"):
        text += f"; bar {obj['bar_length_px']} px"
    if obj.get("um_per_px"):
        text += f" = {obj['value_um']:g} µm → {obj['um_per_px']:.5g} µm/px"
    if args.auto and args.um is None:  # the µm come from the label: say how sure, and how to fix it
        text += f"\n{label_advice(obj)}"
    emit(args, obj, text)
    return 0


def label_advice(det: dict) -> str:
    """What the bar's label was read as, and when it is unsure or unread, how to give the value.

    Parameters
    ----------
    det : dict
        A detection as :meth:`microlib_gui.core.scalebar.detect.BarDetection.to_dict` gives it
        (``label_text``, ``value_um``, ``label_sure``, ``label_check``).
    """
    text, value = det.get("label_text"), det.get("value_um")
    if not text or value is None:
        seen = f"label read as “{text}” but no length in µm found" if text else "label not read"
        return f"{seen}: pass its value as --um VALUE (the bar's length in µm, e.g. --um 200) to get the µm per pixel"
    if det.get("label_sure"):
        return f"label read as “{text}”"
    why = det.get("label_check") or "the reading is uncertain"
    return (f"label read as “{text}” but unsure ({why}): check it on the image; if right, pass --um {value:g} "
            "to confirm it, otherwise --um VALUE with the bar's true length in µm")

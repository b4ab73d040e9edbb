"""``microlib generate RUN|NAME_Gen.pt --size N --out VOL.tif|VOL.zarr``: generate a volume.

``microlib generate ENTRY --size N`` generates an entry's volume into the entry,
as the Inspect step's Generate button does (:mod:`microlib_gui.core.workflow.generate`).
"""

from __future__ import annotations

import re
import sys

from . import add_json_flag, emit
from ._args import MAX_COORD, ArgumentError, check_entry_key, read_number, seed


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate a 3D volume from a trained generator")
    p.add_argument("source", metavar="RUN|NAME_Gen.pt|ENTRY",
                   help="a training run folder, a published NAME_Gen.pt (NAME_params.data beside it), or an "
                        "entry of the library (id, microstructureNNN, doitpoms:N): its volume goes into the entry")
    p.add_argument("--size", metavar="N",
                   help="voxels per side, or X,Y,Z (optional with --latent: the latent decides)")
    p.add_argument("--periodic", metavar="AXES", help="axes that tile seamlessly, e.g. x,y,z (sizes there "
                                                      "must be multiples of 32)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random latent (default 0)")
    p.add_argument("--latent", metavar="NOISE.npy", help="use this latent, shape (1, nz, a, b, c)")
    p.add_argument("--out", metavar="VOL.tif|VOL.zarr", help="output volume (BigTIFF or Zarr); not for an ENTRY")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--type", dest="imtype", choices=["nphase", "grayscale", "colour"],
                   help="override the generator's image type (published files do not store it)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="GPU arithmetic")
    p.add_argument("--match-vf", nargs="?", const="", default=None, metavar="IMAGE",
                   help="n-phase: give the volume the phase fractions of the training image (an entry's, the "
                        "run's from its run.json, or IMAGE) with per-phase offsets on the generator's logits, "
                        "fitted on the volume's own logits")
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)


def _parse_size(text):
    from ..core.slicegan import SliceGANError

    if text is None:
        return None
    parts = str(text).split(",")
    if len(parts) not in (1, 3):
        raise SliceGANError(f"--size takes N or X,Y,Z (got {text!r})")
    try:  # whole numbers in ASCII digits, 1..MAX_COORD (the memory check then says what fits)
        vals = [int(read_number(v, "--size", 1, MAX_COORD, integer=True)) for v in parts]
    except ArgumentError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise SliceGANError(f"--size takes a positive N or X,Y,Z (got {text!r}: {why})") from None
    return vals[0] if len(vals) == 1 else tuple(vals)


def _bar(done, total):
    sys.stderr.write(f"\rgenerating: block {done}/{total}" + ("\n" if done == total else ""))
    sys.stderr.flush()


def _generate_entry(args, size, periodic) -> int:
    from pathlib import Path

    from ..core.jobs import run_inline
    from ..core.slicegan import SliceGANError
    from ..core.slicegan.calibrate import describe
    from ..core.workflow import generate
    from . import open_library

    if args.out or args.latent or args.imtype or args.precision != "auto":
        raise SliceGANError("an entry's volume goes into the entry: leave out --out, --latent, --type, --precision")
    if size is None:
        raise SliceGANError("give --size N")
    lib = open_library(args, create=False)
    entry = lib.find_entry(check_entry_key(args.source))
    if args.match_vf:
        raise SliceGANError("an entry's volume is matched to the entry's training image: give --match-vf "
                            "without IMAGE")
    params = {"size": size, "periodic": periodic, "seed": args.seed, "device": args.device,
              "match_vf": args.match_vf is not None}
    quiet = getattr(args, "json", False)
    result = run_inline(generate.run_job, {"library_root": str(lib.root), "entry_id": entry.id, **params},
                        on_progress=None if quiet else (lambda ev: _bar(ev.step, ev.total)))
    shape = "x".join(str(s) for s in result["shape"])
    made_by = generate.describe_generator(result["generator"])
    cal = f"; {describe(result['calibration'])}" if result.get("calibration") else ""
    emit(args, result, f"wrote {Path(result['path'])} ({shape}, from {made_by}, {result['seconds']:.1f} s{cal})")
    return 0


def cmd_generate(args) -> int:
    from pathlib import Path

    from ..core.slicegan import SliceGANError
    from ..core.slicegan.calibrate import calibrate, describe, run_images, training_fractions
    from ..core.slicegan.generate import (check_volume_output, find_generator, generate_to_file, load_latent,
                                          load_model, parse_periodic)

    size = _parse_size(args.size)
    periodic = parse_periodic(args.periodic)
    if re.fullmatch(r"\d+|microstructure\d+|doitpoms:\d+", args.source) and not Path(args.source).exists():
        return _generate_entry(args, size, periodic)
    if not args.out:
        raise SliceGANError("give --out VOL.tif or VOL.zarr")
    check_volume_output(args.out)  # a folder or unwritable place is said now, not after the volume is made
    latent = None
    if args.latent:
        latent = load_latent(args.latent)  # header checked first: numbers only, size within memory
    elif size is None:
        raise SliceGANError("give --size N (or --latent NOISE.npy)")
    G, meta = load_model(args.source, args.imtype)
    plan = dict(size=size, periodic=periodic, seed=args.seed, latent=latent, device=args.device,
                precision=args.precision)
    cal = None
    if args.match_vf is not None:
        images = [args.match_vf] if args.match_vf else run_images(find_generator(args.source))
        cal = calibrate(G, training_fractions(images, meta.get("phases")), **plan)
    result = generate_to_file(G, args.out, progress=_bar, offsets=cal["offsets"] if cal else None, **plan)
    result["imtype"] = meta["imtype"]
    result["phases"] = meta.get("phases")
    if cal:
        result["calibration"] = cal
    shape = "x".join(str(s) for s in result["shape"])
    note = f"; {describe(cal)}" if cal else ""
    emit(args, result, f"wrote {result['path']} ({shape} {meta['imtype']}, {result['seconds']:.1f} s{note})")
    return 0

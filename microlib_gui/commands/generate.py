"""``microlib generate RUN|NAME_Gen.pt --size N --out VOL.tif|VOL.zarr``: generate a volume."""

from __future__ import annotations

import sys

from . import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate a 3D volume from a trained generator")
    p.add_argument("source", metavar="RUN|NAME_Gen.pt",
                   help="a training run folder, or a published NAME_Gen.pt (NAME_params.data beside it)")
    p.add_argument("--size", metavar="N",
                   help="voxels per side, or X,Y,Z (optional with --latent: the latent decides)")
    p.add_argument("--periodic", metavar="AXES", help="axes that tile seamlessly, e.g. x,y,z (sizes there "
                                                      "must be multiples of 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random latent (default 0)")
    p.add_argument("--latent", metavar="NOISE.npy", help="use this latent, shape (1, nz, a, b, c)")
    p.add_argument("--out", required=True, metavar="VOL.tif|VOL.zarr", help="output volume (BigTIFF or Zarr)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--type", dest="imtype", choices=["nphase", "grayscale", "colour"],
                   help="override the generator's image type (published files do not store it)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="GPU arithmetic")
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)


def _parse_size(text):
    from ..core.slicegan import SliceGANError

    if text is None:
        return None
    try:
        vals = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise SliceGANError(f"--size takes N or X,Y,Z (got {text!r})") from None
    if len(vals) not in (1, 3) or min(vals) < 1:
        raise SliceGANError(f"--size takes a positive N or X,Y,Z (got {text!r})")
    return vals[0] if len(vals) == 1 else tuple(vals)


def cmd_generate(args) -> int:
    import numpy as np

    from ..core.slicegan import SliceGANError
    from ..core.slicegan.generate import generate_to_file, load_model, parse_periodic

    size = _parse_size(args.size)
    periodic = parse_periodic(args.periodic)
    latent = None
    if args.latent:
        try:
            latent = np.load(args.latent, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SliceGANError(f"{args.latent}: not a readable .npy array ({exc})") from None
    elif size is None:
        raise SliceGANError("give --size N (or --latent NOISE.npy)")
    G, meta = load_model(args.source, args.imtype)

    def bar(done, total):
        sys.stderr.write(f"\rgenerating: block {done}/{total}" + ("\n" if done == total else ""))
        sys.stderr.flush()

    result = generate_to_file(G, args.out, size=size, periodic=periodic, seed=args.seed, latent=latent,
                              device=args.device, precision=args.precision, progress=bar)
    result["imtype"] = meta["imtype"]
    result["phases"] = meta.get("phases")
    shape = "x".join(str(s) for s in result["shape"])
    emit(args, result, f"wrote {result['path']} ({shape} {meta['imtype']}, {result['seconds']:.1f} s)")
    return 0

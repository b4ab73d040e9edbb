"""``microlib entry ACTION ENTRY ...``: the wizard's actions on a library entry, from the command line.

Each action calls the same :mod:`microlib_gui.core.workflow` step module as the
wizard's panel, so an entry curated here is saved exactly as if it had been
curated in the window (annotations, files, provenance, step status, what
becomes stale; undoable), and a window showing the entry follows at once::

    microlib entry crop 1 --box 0,0,420,400 [--rotate 2.5]     | --reset
    microlib entry segment 1 --thresholds 120 [--sharpen]       | --auto [N] | --keep grayscale
                                 [--background auto|off|divide|subtract]
    microlib entry scalebar 1 --pick 30,470 --box 10,450,90,490 --ends 18,470,75,470 --um 5
    microlib entry scalebar 1 --auto [--um 5]
    microlib entry inpaint 1 [--method fast|gan]
    microlib entry train 1 [--preset microlib|draft|tiny|check] [--iters N] [--resume]
                           [--g-layers transpose|resize] [--converge|--no-converge]
    microlib entry undo 1 | redo 1
    microlib entry status 1 [--json]

Coordinates are pixels of the image the panel shows: the crop box in the
rotated original, the scale bar (pick, box, ends) in the original.
"""

from __future__ import annotations

import argparse

import sys

from ..core.library import layout as L
from . import add_json_flag, emit, open_library
from ._args import (MAX_COORD, MAX_UM, ArgumentError, OneLineParser, count, entry_key, number, parse_auto,
                    parse_box, parse_point, parse_points, parse_thresholds, read_number, seed)
from .train import add_converge_flag
from .scalebar import label_advice
from .segment import lighting_text

ACTIONS = ("crop", "segment", "scalebar", "inpaint", "train", "undo", "redo", "status")


def register(sub) -> None:
    p = sub.add_parser(
        "entry", help="the wizard's steps on one library entry: crop, segment, scalebar, inpaint, undo, redo, status",
        description="Curate a library entry as the wizard does, one step at a time. ENTRY is an id, a name "
                    "(microstructure001) or doitpoms:N.")
    esub = p.add_subparsers(dest="entry_command", metavar="ACTION", required=True, parser_class=OneLineParser)

    q = esub.add_parser("crop", help="rotate, then crop (the box is in the rotated image)")
    _entry_arg(q)
    q.add_argument("--box", metavar="x0,y0,x1,y1", help="the crop box (pixels of the rotated image)")
    q.add_argument("--rotate", metavar="DEG", help="rotation in degrees, counter-clockwise, about the centre")
    q.add_argument("--reset", action="store_true", help="the whole image, not rotated")
    add_json_flag(q)
    q.set_defaults(func=cmd_crop)

    q = esub.add_parser("segment", help="split the cropped image into phases, or keep it grayscale/colour")
    _entry_arg(q)
    q.add_argument("--thresholds", metavar="T1[,T2...]", help="grey levels 0-255 between the phases")
    q.add_argument("--auto", nargs="?", const="", default=None, metavar="N",
                   help="multi-Otsu thresholds (N phases; without N the number is estimated)")
    q.add_argument("--keep", choices=("grayscale", "colour"), help="do not segment: train on the image as it is")
    q.add_argument("--sharpen", action=argparse.BooleanOptionalAction, default=None,
                   help="threshold the sharpened image (undoes a 1 px blur; default: on with --auto, "
                        "off with --thresholds)")
    q.add_argument("--background", default="auto", choices=("auto", "off", "divide", "subtract"),
                   help="correct uneven lighting first: auto (when it is detected; default), off, or always "
                        "(divide: a light field, subtract: an additive background)")
    add_json_flag(q)
    q.set_defaults(func=cmd_segment)

    q = esub.add_parser("scalebar", help="mask the scale bar and give its length (µm per pixel)")
    _entry_arg(q)
    q.add_argument("--pick", metavar="X,Y", help="a pixel of the bar: its colour is the bar colour")
    q.add_argument("--auto", action="store_true", help="find the bar, its colour, box, length and label")
    q.add_argument("--box", metavar="x0,y0,x1,y1", help="mask only inside this box (with --pick)")
    q.add_argument("--tolerance", metavar="T", help="colour tolerance in grey levels (default: the saved one, or 10)")
    q.add_argument("--ends", metavar="X0,Y0,X1,Y1", help="the two ends of the bar (its length in pixels)")
    q.add_argument("--um", metavar="VALUE", help="the bar's length in µm (with --auto: instead of the label read)")
    add_json_flag(q)
    q.set_defaults(func=cmd_scalebar)

    q = esub.add_parser("inpaint", help="remove the scale bar from the training image (→ _inpainted.png)")
    _entry_arg(q)
    q.add_argument("--method", choices=("fast", "gan"), default="fast",
                   help="fast: biharmonic, under a second (default); gan: MicroLib's method (GPU advised)")
    q.add_argument("--iters", type=count, metavar="N", help="GAN training iterations")
    q.add_argument("--opt-iters", type=count, metavar="N", help="GAN latent optimisation steps per region")
    q.add_argument("--batch-size", type=count, metavar="N", help="GAN training batch")
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--seed", type=seed, default=0, metavar="S")
    q.add_argument("--restarts", type=count, metavar="N", help="GAN: latents fitted per region")
    q.add_argument("--blend", type=number(0, MAX_COORD), metavar="PX", help="GAN: width of the join with the border")
    q.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_json_flag(q)
    q.set_defaults(func=cmd_inpaint)

    q = esub.add_parser("train", help="train SliceGAN on the inpainted image (a run in train/run-NNN, published "
                                      "when it completes)")
    _entry_arg(q)
    q.add_argument("--preset", choices=("microlib", "draft", "tiny", "check"), default="microlib",
                   help="network and training settings (default microlib; draft: for a CPU without a GPU; tiny "
                        "and check are for tests)")
    q.add_argument("--iters", type=count, metavar="N", help="generator iterations in total (default: the preset's)")
    q.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    q.add_argument("--seed", type=seed, default=0, metavar="S")
    q.add_argument("--resume", action="store_true",
                   help="continue the entry's latest stopped run from its checkpoint (--iters: a new total)")
    q.add_argument("--g-layers", choices=("transpose", "resize"),
                   help="generator layers of a new run (default: the preset's; microlib: resize)")
    add_converge_flag(q)
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(q)
    q.set_defaults(func=cmd_train)

    for name, what in (("undo", "undo the entry's last annotation edit"), ("redo", "redo an undone edit")):
        q = esub.add_parser(name, help=what)
        _entry_arg(q)
        add_json_flag(q)
        q.set_defaults(func=cmd_undo if name == "undo" else cmd_redo)

    q = esub.add_parser("status", help="the entry's steps (done, to do, stale), files and what can be undone")
    _entry_arg(q)
    add_json_flag(q)
    q.set_defaults(func=cmd_status)


def _entry_arg(q) -> None:
    q.add_argument("entry", type=entry_key, metavar="ENTRY", help="entry id, name (microstructure001) or doitpoms:N")


def _number(text: str | None, what: str, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float | None:
    """An optional number typed after ``what``: finite and in range (None when not given)."""
    return None if text is None else float(read_number(text, what, lo, hi, lo_open=lo_open))


def _one_of(args, names: tuple[str, ...]) -> str:
    given = [n for n in names if getattr(args, n.replace("-", "_")) not in (None, False)]
    if len(given) != 1:
        opts = " | ".join("--" + n for n in names)
        raise ArgumentError(f"give one of {opts}" + (f", not {' and '.join('--' + g for g in given)}" if given else ""))
    return given[0]


def _open(args, readonly: bool = False):
    lib = open_library(args, create=False, readonly=readonly)
    return lib, lib.find_entry(args.entry)


def _changed_text(change, lib=None, entry=None) -> str:
    """"wrote _mask.png; now stale: inpaint", or "nothing changed" (an unchanged value saves nothing)."""
    if change is None or not change.changed:
        return "nothing changed"
    parts = []
    files = sorted(change.files_changed)
    if lib is not None and entry is not None:
        gone = [f for f in files if not lib.entry_file(entry.id, f).exists()]
        files = [f for f in files if f not in gone]
        if gone:
            parts.append("removed " + ", ".join(gone))
    if files:
        parts.insert(0, "wrote " + ", ".join(files))
    if change.stale:
        parts.append("now stale: " + ", ".join(change.stale))
    return "; ".join(parts) or "saved"


def _change_obj(lib, entry, change) -> dict:
    e = lib.get_entry(entry.id)
    files = change.files_changed if change else set()
    return {"entry": e.name, "id": e.id, "changed": bool(change and change.changed),
            "annotations_changed": sorted(change.ann_changed) if change else [],
            "files_written": sorted(f for f in files if lib.entry_file(e.id, f).exists()),
            "files_removed": sorted(f for f in files if not lib.entry_file(e.id, f).exists()),
            "made_stale": list(change.stale) if change else [], "steps": e.steps}


# -- crop ------------------------------------------------------------------------------------
def cmd_crop(args) -> int:
    from ..core.workflow import crop as wf

    lib, entry = _open(args)
    if args.reset and (args.box or args.rotate is not None):
        raise ArgumentError("--reset clears the crop and the rotation: give it alone")
    if not (args.reset or args.box or args.rotate is not None):
        raise ArgumentError("give --box x0,y0,x1,y1 and/or --rotate DEG, or --reset")
    inp = wf.inputs(lib, entry.id)
    if args.reset:
        box, rotation = None, 0.0
    else:
        box = parse_box(args.box, "--box") if args.box else inp.crop
        rotation = _number(args.rotate, "--rotate", -360, 360) if args.rotate is not None else inp.rotation
    change = wf.save(lib, entry.id, box, rotation, shape=inp.original.shape)
    ann = change.annotations
    what = (f"crop {tuple(ann['crop'])}" if ann.get("crop") else "whole image") + (
        f", rotated {ann['rotation']:g}°" if ann.get("rotation") else "")
    emit(args, {**_change_obj(lib, entry, change), "crop": ann.get("crop"), "rotation": ann.get("rotation")},
         f"{entry.name}: {what}; {_changed_text(change, lib, entry)}")
    return 0


# -- segment ---------------------------------------------------------------------------------
def cmd_segment(args) -> int:
    from ..core import segment as sg
    from ..core.workflow import segment as wf

    how = _one_of(args, ("thresholds", "auto", "keep"))
    if how == "keep" and args.sharpen is not None:
        raise ArgumentError("--sharpen applies to a segmentation, not to --keep")
    lib, entry = _open(args)
    inp = wf.inputs(lib, entry.id)
    if how == "keep":
        change = wf.save(lib, entry.id, data_type=args.keep, gray=inp.gray)
        emit(args, {**_change_obj(lib, entry, change), "data_type": args.keep},
             f"{entry.name}: kept as {args.keep}; {_changed_text(change, lib, entry)}")
        return 0
    sharpen = args.sharpen if args.sharpen is not None else how == "auto"
    sigma = sg.DEBLUR_SIGMA if sharpen else 0.0
    if how == "auto":
        thresholds = wf.auto_thresholds(inp.gray, parse_auto(args.auto), sigma, background=args.background)
    else:
        thresholds = parse_thresholds(args.thresholds)
    change = wf.save(lib, entry.id, thresholds=thresholds, deblur_sigma=sigma,
                     method="auto" if how == "auto" else "thresholds", gray=inp.gray, background=args.background)
    ann = change.annotations
    labels = wf.labels_for(inp.gray, ann)
    vf = sg.volume_fractions(labels, int(ann["n_phases"])) if labels is not None else []
    # The fit is cached: this is the correction the save applied, and how uneven the light was.
    applied, uneven = wf.applied_background(inp.gray, args.background, int(ann["n_phases"]))
    emit(args, {**_change_obj(lib, entry, change), "thresholds": ann.get("thresholds"),
                "n_phases": ann.get("n_phases"), "deblur_sigma": ann.get("deblur_sigma"),
                "volume_fractions": [round(v, 5) for v in vf], "background": applied or "off",
                "background_mode": args.background, "unevenness": None if uneven is None else round(uneven, 4)},
         f"{entry.name}: {ann.get('n_phases')} phases, thresholds "
         + ", ".join(f"{t:g}" for t in ann.get("thresholds") or []) + (" (sharpened)" if sharpen else "")
         + "; volume fractions " + ", ".join(f"{v:.3f}" for v in vf)
         + f"; {lighting_text(applied, uneven, args.background)}; {_changed_text(change, lib, entry)}")
    return 0


# -- scale bar -------------------------------------------------------------------------------
def cmd_scalebar(args) -> int:
    from ..core import scalebar as sb
    from ..core.workflow import scalebar as wf

    if args.auto and (args.pick or args.box or args.ends):
        raise ArgumentError("--auto finds the colour, box and ends itself: give it without --pick, --box, --ends")
    if not (args.auto or args.pick or args.box or args.ends or args.tolerance is not None or args.um is not None):
        raise ArgumentError("give --pick X,Y (with --box, --tolerance, --ends, --um) or --auto [--um V]")
    lib, entry = _open(args)
    inp = wf.inputs(lib, entry.id)
    ann = inp.annotations
    tol = _number(args.tolerance, "--tolerance", 0, 255)
    um = _number(args.um, "--um", 0, MAX_UM, lo_open=True)
    tol_now = tol if tol is not None else wf.tolerance(ann)
    length = ann.get("bar_length_px")
    kw: dict = {"tol": tol_now}
    detected = None
    if args.auto:
        detected = det = sb.detect_scale_bar(inp.original)
        kw.update(colour=det.colour, bar_box=det.box, ends=det.bar_ends, length_px=det.bar_length_px)
        length = det.bar_length_px
        um = um if um is not None else det.value_um
    else:
        if args.pick:
            x, y = parse_point(args.pick, "--pick")
            kw.update(colour=sb.pick_colour(inp.original, x, y), pick=(x, y))
        elif wf.bar_colour(ann) is None and (args.box or tol is not None):
            raise ArgumentError("no bar colour yet: give --pick X,Y (a pixel of the bar) or --auto")
        if args.box:
            kw["bar_box"] = parse_box(args.box, "--box")
        if args.ends:
            ends = parse_points(args.ends, "--ends")
            length = sb.length_between(*ends)
            kw.update(ends=ends, length_px=length)
    if um is not None:
        kw.update(value_um=um, length_px=kw.get("length_px") or length)
    change = wf.save(lib, entry.id, wf.changes_for(**kw), inp.original)
    ann = change.annotations
    has_mask = lib.entry_file(entry.id, L.MASK.suffix).exists()
    obj = {**_change_obj(lib, entry, change), "bar_colour": ann.get("bar_colour"), "barbox": ann.get("barbox"),
           "tolerance": wf.tolerance(ann), "bar_length_px": ann.get("bar_length_px"),
           "bar_value_um": ann.get("bar_value_um"), "vox_size": ann.get("vox_size"), "mask": has_mask}
    if detected is not None:
        obj["detected"] = detected.to_dict()
    text = f"{entry.name}: " + ("bar masked" if has_mask else "no bar pixels in the cropped frame")
    if ann.get("bar_length_px"):
        text += f"; bar {ann['bar_length_px']:g} px"
    if ann.get("vox_size"):
        text += f" = {ann['bar_value_um']:g} µm → {ann['vox_size']:.5g} µm/px"
    if detected is not None and args.um is None:  # the µm come from the label: say how sure, and how to fix it
        text += f"; {label_advice(detected.to_dict())}"
    elif ann.get("bar_length_px") and not ann.get("vox_size"):
        text += " (give --um for the µm per pixel)"
    emit(args, obj, text + f"; {_changed_text(change, lib, entry)}")
    return 0


# -- inpaint ---------------------------------------------------------------------------------
def cmd_inpaint(args) -> int:
    from ..core.inpaint import DEFAULT_BLEND, DEFAULT_ITERS, DEFAULT_OPT_ITERS, DEFAULT_RESTARTS
    from ..core.jobs import run_inline
    from ..core.workflow import inpaint as wf
    from .inpaint import _progress_printer

    lib, entry = _open(args)
    inp = wf.inputs(lib, entry.id)
    if inp.mask is None:
        change = wf.save_without_bar(lib, entry.id, inp)
        emit(args, {**_change_obj(lib, entry, change), "method": "none", "input": inp.description},
             f"{entry.name}: no scale bar in the frame: the {inp.description} is the training image as it is; "
             f"{_changed_text(change, lib, entry)}")
        return 0
    params = {"method": args.method, "iters": args.iters or DEFAULT_ITERS,
              "opt_iters": args.opt_iters or DEFAULT_OPT_ITERS, "batch_size": args.batch_size or 32,
              "device": args.device, "seed": args.seed,
              "restarts": args.restarts or DEFAULT_RESTARTS, "blend": DEFAULT_BLEND if args.blend is None else args.blend}
    quiet = args.quiet or args.json
    res = run_inline(wf.job, {**params, "inputs": inp}, on_progress=_progress_printer(quiet))
    if not quiet:
        print(file=sys.stderr)
    change = wf.save(lib, entry.id, res, inp, params)
    emit(args, {**_change_obj(lib, entry, change), "method": res["method"], "input": inp.description,
                "regions": res["regions"], "timings": res["timings"]},
         f"{entry.name}: inpainted the {inp.description} ({res['method']}, {res['regions']} region(s), "
         f"{res['timings']['total_s']:.1f} s); {_changed_text(change, lib, entry)}")
    return 0


# -- train -----------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import signal
    import threading

    from ..core.jobs import CANCELLED, DONE, FAILED, Finished, JobCancelled, run_inline
    from ..core.workflow import train as wf
    from .train import ProgressBar, convergence_line

    lib, entry = _open(args)
    inp = wf.inputs(lib, entry.id)
    if not inp.ready:
        raise ArgumentError(f"{entry.name}: {inp.reason}")
    wf.recover_runs(lib, entry.id)  # a run left "running" by a process that died can be resumed
    if args.resume:
        run = wf.resumable_run(lib, entry.id)
        if run is None:
            raise ArgumentError(f"{entry.name}: no stopped run with a checkpoint to resume")
        run = wf.resume(lib, run, iters=args.iters)
    else:
        run = wf.new_run(lib, entry.id, wf.run_params(inp, preset=args.preset, iters=args.iters, device=args.device,
                                                      seed=args.seed, converge=args.converge,
                                                      g_layers=args.g_layers))
    cancel = threading.Event()
    try:  # Ctrl+C stops the run after a checkpoint, so --resume continues from there
        old = signal.signal(signal.SIGINT, lambda *a: cancel.set())
    except ValueError:  # not the main thread
        old = None
    quiet = args.quiet or args.json
    try:
        res = run_inline(wf.job, wf.job_params(run), on_progress=None if quiet else ProgressBar(),
                         cancel_event=cancel)
    except JobCancelled:
        run = wf.finish(lib, entry.id, run, Finished(CANCELLED))
        print(f"microlib: run {run.number} stopped at iteration {run.iteration}; nothing published "
              f"(continue with: microlib entry train {entry.name} --resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        wf.finish(lib, entry.id, run, Finished(FAILED, error=" ".join(str(exc).split())[:300]))
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    run = wf.finish(lib, entry.id, run, Finished(DONE, result=res))
    if run.status != "done":
        raise ArgumentError(f"{entry.name}: run {run.number} {run.status}" + (f": {run.message}" if run.message else ""))
    e = lib.get_entry(entry.id)
    conv = convergence_line(res)
    emit(args, {"entry": e.name, "id": e.id, "run": run.number, "folder": str(run.out), "iteration": run.iteration,
                "seconds": res.get("seconds"), "steps": e.steps, "converged_at": res.get("converged_at"),
                "best_iteration": res.get("best_iteration"), "convergence": res.get("convergence", [])},
         (f"{e.name}: {conv}\n" if conv else "")
         + f"{e.name}: run {run.number} trained {run.iteration} iterations in {run.out.parent.name}/{run.out.name}; "
         f"published {L.GENERATOR.suffix}")
    return 0


# -- undo / redo / status ----------------------------------------------------------------------
def _move(args, move: int) -> int:
    from ..core.workflow import history

    lib, entry = _open(args)
    change = history.move(lib, entry.id, move)
    word = "undo" if move < 0 else "redo"
    if change is None:
        raise ArgumentError(f"{entry.name}: nothing to {word}")
    emit(args, _change_obj(lib, entry, change),
         f"{entry.name}: {word} ({', '.join(sorted(change.ann_changed)) or 'no annotation'} changed); "
         f"{_changed_text(change, lib, entry)}")
    return 0


def cmd_undo(args) -> int:
    return _move(args, -1)


def cmd_redo(args) -> int:
    return _move(args, +1)


def cmd_status(args) -> int:
    from ..core.steps import STALE, STEP_TITLES, STEPS
    from ..core.workflow import history

    lib, entry = _open(args, readonly=True)  # reading only: works on a read-only disk
    present = [f for f in L.DERIVED if lib.entry_file(entry.id, f.suffix).exists()]
    steps = {s: entry.steps.get(s, "todo") for s in STEPS}
    stale = [s for s, v in steps.items() if v == STALE]
    obj = {"entry": entry.name, "id": entry.id, "title": entry.title, "steps": steps, "stale": stale,
           "files": {lib.entry_file(entry.id, f.suffix).name: f.step for f in present},
           "can_undo": history.can_move(lib, entry.id, -1), "can_redo": history.can_move(lib, entry.id, +1),
           "annotations": lib.get_annotations(entry.id)}
    mark = {"done": "✔", "stale": "↻", "todo": "·"}  # as the step list of the window
    lines = [entry.title, "  " + "  ".join(f"{mark.get(v, '?')} {STEP_TITLES.get(s, s)}" for s, v in steps.items()),
             "  stale: " + (", ".join(stale) if stale else "none"),
             "  files: " + (", ".join(lib.entry_file(entry.id, f.suffix).name for f in present) or "none")]
    emit(args, obj, "\n".join(lines))
    return 0

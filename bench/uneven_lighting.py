"""Uneven lighting: segmentation accuracy with the background correction (the default) and without.

    python bench/uneven_lighting.py [--sets rawlike-uneven,rawlike] [--variations] [--json OUT]

Per image of ``../shared/data/<set>`` with a ``seg*.png``: ``microlib segment IMAGE --phases
auto:2`` with its defaults (``--background auto``: corrected when uneven lighting is detected)
and with ``--background off`` (plain Otsu, as before: deblur + multi-Otsu), run through the
command itself; pixel accuracy outside ``bar*.png`` with the best label order (the measure of
``bench_preprocess.py``), the unevenness measured, whether it corrected, and the wall time.

``--variations``: the same on synthetic micrographs made from MicroLib training images that
neither set uses (other light fields: ramps, vignettes, hot spots, waves, at several strengths),
each beside its evenly lit twin (same phases, levels, blur and noise), and on evenly lit images
built to fool a background estimate (one half rich in one phase, huge blobs, a gradient of the
phase fraction). The tests (``tests/test_uneven_lighting.py``) use the same generator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_preprocess import best_order_accuracy  # noqa: E402

#: MicroLib training images (two-phase) that rawlike/ and rawlike-uneven/ are not made from.
SOURCES = ("276", "329", "365", "370", "376", "393", "406", "442", "477", "631", "725", "737", "760")
FIELDS = ("ramp", "vignette", "spot", "ramp+vignette", "waves")


def shared_data() -> Path:
    env = os.environ.get("MICROLIB_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def accuracy(labels: np.ndarray, truth: np.ndarray, bar: np.ndarray | None = None) -> float:
    """Pixel accuracy outside the bar mask, with the label order that fits best."""
    keep = np.ones(truth.shape, bool) if bar is None else ~bar
    return best_order_accuracy(np.asarray(labels)[keep], np.asarray(truth)[keep])[0]


def labelled(folder: Path):
    """(id, raw image path, true labels, bar mask) of every image of ``folder`` with a ``seg*.png``."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in manifest:
        if (folder / f"seg{key}.png").exists():
            yield (key, folder / f"raw{key}.png", np.asarray(Image.open(folder / f"seg{key}.png")),
                   np.asarray(Image.open(folder / f"bar{key}.png")) > 0)


def run_cli(image, *options: str) -> tuple[np.ndarray, dict, float]:
    """``microlib segment IMAGE --phases auto:2 OPTIONS --json``: (labels read back, its JSON, seconds)."""
    from microlib_gui.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seg.png"
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = main(["segment", str(image), "--phases", "auto:2", *options, "--out", str(out), "--json"])
        dt = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"microlib segment {image} exited {rc}")
        labels = (np.asarray(Image.open(out)) > 127).astype(np.uint8)
    return labels, json.loads(buf.getvalue()), dt


# -- synthetic micrographs ------------------------------------------------------------------------
def source_labels(key: str, folder: Path | None = None) -> np.ndarray:
    """Labels 0/1 of MicroLib training image ``micro<key>.png``."""
    a = np.asarray(Image.open((folder or shared_data() / "microlib") / f"micro{key}.png"))
    return ((a[..., 0] if a.ndim == 3 else a) > 127).astype(np.uint8)


def light_field(shape, kind: str, strength: float, rng) -> np.ndarray:
    """A smooth light field of mean about 1 spanning ``1 - strength .. 1 + strength``."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    s = max(h, w)
    x, y = (x - w / 2) / s, (y - h / 2) / s
    a = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(-0.3, 0.3, 2)
    if kind == "ramp":
        f = x * np.cos(a) + y * np.sin(a)
    elif kind == "vignette":
        f = -(x ** 2 + y ** 2)
    elif kind == "spot":  # a lamp's hot spot
        r = rng.uniform(0.25, 0.5)
        f = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    elif kind == "ramp+vignette":
        f = x * np.cos(a) + y * np.sin(a) - rng.uniform(0.5, 1.5) * ((x - cx) ** 2 + (y - cy) ** 2)
    elif kind == "waves":  # about one period across the image
        f = np.sin(2 * np.pi * rng.uniform(0.8, 1.3) * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown light field {kind!r}")
    f = (f - f.min()) / max(float(np.ptp(f)), 1e-9) * 2 - 1
    return 1 + strength * f


def paint(labels: np.ndarray, seed: int, field: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A raw-like micrograph of ``labels`` (uint8 gray) and its bar mask, as rawlike/ is made.

    Each phase a grey level (the brighter 130-230, 1.6-6 times the darker), times
    ``field``, blurred (σ 0.8-1.2 px), with noise (σ 4-11 grey levels) and a flat
    bar in a corner. The same ``seed`` gives the same levels, blur and noise, so
    ``field=None`` is the evenly lit twin.
    """
    rng = np.random.default_rng(seed)
    bright = rng.uniform(130, 230)
    dark = bright / rng.uniform(1.6, 6.0)
    levels = np.array([dark, bright]) if rng.random() < 0.5 else np.array([bright, dark])
    img = levels[labels].astype(float)
    if field is not None:
        img = img * field
    img = ndi.gaussian_filter(img, rng.uniform(0.8, 1.2)) + rng.normal(0, rng.uniform(4, 11), img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    h, w = img.shape
    bar = np.zeros(img.shape, bool)
    bar[h - 20:h - 12, w - w // 5 - 10:w - 10] = True
    img[bar] = 255 if rng.random() < 0.5 else 0
    return img, bar


def variations(seed: int = 0, keys=SOURCES, strengths=(0.2, 0.45)) -> list[dict]:
    """Unevenly lit micrographs, each with its evenly lit twin: light fields and strengths in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for i, key in enumerate(keys):
        lab = source_labels(key)
        kind = FIELDS[i % len(FIELDS)]
        strength = strengths[(i // len(FIELDS)) % len(strengths)]
        field = light_field(lab.shape, kind, strength, rng)
        s = int(rng.integers(1 << 30))
        img, bar = paint(lab, s, field)
        twin, _ = paint(lab, s)
        out.append({"id": f"{key}-{kind}-{strength}", "image": img, "twin": twin, "truth": lab, "bar": bar})
    return out


def even_adversaries(seed: int = 2, n: int = 2) -> list[dict]:
    """Evenly lit micrographs whose phase fractions vary over the image (a blur of them looks uneven)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        for name in ("half", "halfsoft", "blob", "gradient"):
            shape = (int(rng.integers(300, 700)), int(rng.integers(300, 900)))
            h, w = shape
            y, x = np.mgrid[0:h, 0:w] / max(h, w)
            a = rng.uniform(0, 2 * np.pi)
            d = (x - 0.5) * np.cos(a) + (y - 0.5) * np.sin(a)
            if name == "blob":  # a few regions a third of the image across
                noise = ndi.gaussian_filter(rng.standard_normal(shape), max(shape) / 8)
                lab = noise > np.percentile(noise, rng.uniform(30, 70))
            else:
                noise = ndi.gaussian_filter(rng.standard_normal(shape), rng.uniform(2, 8))
                noise /= noise.std()
                trend = {"half": 1.2 * np.sign(d), "halfsoft": 1.2 * np.tanh(8 * d), "gradient": 3 * d}[name]
                lab = noise + trend > 0
            lab = lab.astype(np.uint8)
            img, bar = paint(lab, int(rng.integers(1 << 30)))
            out.append({"id": f"{name}{i}-even", "image": img, "twin": img, "truth": lab, "bar": bar})
    return out


# -- the tables --------------------------------------------------------------------------------------
def real_rows(folder: Path) -> list[dict]:
    rows = []
    for key, path, truth, bar in labelled(folder):
        lab, doc, dt = run_cli(path)
        lab0, _, dt0 = run_cli(path, "--background", "off")
        rows.append({"id": key, "plain": accuracy(lab0, truth, bar), "default": accuracy(lab, truth, bar),
                     "unevenness": doc["unevenness"], "background": doc["background"],
                     "seconds_plain": dt0, "seconds_default": dt})
    return rows


def synthetic_rows(cases: list[dict]) -> list[dict]:
    from microlib_gui.core.segment import segment

    rows = []
    for c in cases:
        t0 = time.perf_counter()
        seg = segment(c["image"], n_phases=2)
        dt = time.perf_counter() - t0
        rows.append({"id": c["id"], "plain": accuracy(segment(c["image"], n_phases=2, background="off").labels,
                                                      c["truth"], c["bar"]),
                     "default": accuracy(seg.labels, c["truth"], c["bar"]),
                     "even_twin": accuracy(segment(c["twin"], n_phases=2, background="off").labels,
                                           c["truth"], c["bar"]),
                     "unevenness": seg.unevenness, "background": seg.background, "seconds_default": dt})
    return rows


def summary(rows: list[dict]) -> dict:
    out = {"images": len(rows)}
    for k in ("plain", "default", "even_twin"):
        if rows and k in rows[0]:
            v = [r[k] for r in rows]
            out[k] = {"mean": float(np.mean(v)), "worst": float(np.min(v))}
    out["corrected"] = sum(r["background"] != "off" for r in rows)
    return out


def markdown(rows: list[dict]) -> str:
    twin = rows and "even_twin" in rows[0]
    head = "| image | plain Otsu | default | " + ("even twin | " if twin else "") + "unevenness | corrected | s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        u = "—" if r["unevenness"] is None else f"{r['unevenness']:.0%}"
        lines.append(f"| {r['id']} | {r['plain']:.4f} | {r['default']:.4f} | "
                     + (f"{r['even_twin']:.4f} | " if twin else "")
                     + f"{u} | {'yes' if r['background'] != 'off' else 'no'} | {r['seconds_default']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="rawlike-uneven,rawlike")
    ap.add_argument("--variations", action="store_true", help="also the synthetic variations and even adversaries")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    base = shared_data()
    if not (base / "README.md").exists():
        print(f"shared data not found at {base}", file=sys.stderr)
        return 2
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
           "date": time.strftime("%Y-%m-%d %H:%M")}
    groups = {name: real_rows(base / name) for name in args.sets.split(",") if name}
    if args.variations:
        groups["variations"] = synthetic_rows(variations(0) + variations(5, strengths=(0.3, 0.15)))
        groups["even adversaries"] = synthetic_rows(even_adversaries(2, 3))
    for name, rows in groups.items():
        out[name] = {"summary": summary(rows), "rows": rows}
        print(f"\n### {name}\n\n{markdown(rows)}\n\n{json.dumps(summary(rows))}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

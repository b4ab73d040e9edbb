"""The embedded demo catalog: procedurally generated micrographs, made on first start.

No DoITPoMS image ships with the app. Each demo micrograph is a seeded random
microstructure (scikit-image / scipy filters on noise) rendered the way a raw
micrograph looks: a grey level per phase, blur, noise and a scale bar with a
µm label burnt into a corner. Every wizard step can be tried on them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

DEMO_MARK = "DEMO (procedurally generated, not a real micrograph)"


@dataclass(frozen=True)
class DemoSpec:
    key: str
    brief_descr: str
    kind: str  # twophase | nphase | grayscale
    grey_levels: tuple[int, ...]
    size: int
    seed: int
    feature_px: float
    vox_size: float  # µm per pixel
    bar_corner: str  # "br" | "bl" | "tr"
    bar_colour: int


CATALOG: tuple[DemoSpec, ...] = (
    DemoSpec("demo-two-phase", "Two-phase particulate composite (demo)", "twophase", (70, 200), 384, 1, 7.0, 0.25, "br", 255),
    DemoSpec("demo-three-phase", "Three-phase anode-like structure (demo)", "nphase", (40, 125, 215), 384, 2, 5.0, 0.1, "bl", 255),
    DemoSpec("demo-grayscale", "Grayscale textured steel (demo)", "grayscale", (), 384, 3, 4.0, 0.5, "br", 0),
    DemoSpec("demo-fine-pores", "Porous ceramic with fine pores (demo)", "twophase", (210, 35), 320, 4, 3.0, 0.05, "tr", 255),
)


def phase_field(size: int, n_phases: int, feature_px: float, seed: int) -> np.ndarray:
    """Random labels 0..n-1 with blobs about ``feature_px`` wide (thresholded smoothed noise)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal((size, size)), feature_px, mode="wrap")
    qs = np.quantile(field, np.linspace(0, 1, n_phases + 1)[1:-1])
    # Unequal fractions look more like real materials: shift the cut points.
    qs = qs + 0.15 * field.std() * np.arange(len(qs))
    return np.digitize(field, qs).astype(np.uint8)


def render_micrograph(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (raw uint8 image, true labels, info dict with the bar geometry)."""
    rng = np.random.default_rng(1000 + spec.seed)
    size = spec.size
    if spec.kind == "grayscale":
        base = ndi.gaussian_filter(rng.standard_normal((size, size)), spec.feature_px, mode="wrap")
        grains = ndi.gaussian_filter(rng.standard_normal((size, size)), spec.feature_px * 4, mode="wrap")
        img = 128 + 40 * base / base.std() + 25 * grains / grains.std()
        labels = np.zeros((size, size), np.uint8)
    else:
        labels = phase_field(size, len(spec.grey_levels), spec.feature_px, spec.seed)
        img = np.asarray(spec.grey_levels, dtype=np.float64)[labels]
        img = ndi.gaussian_filter(img, 1.0)
        img = img + rng.normal(0, 6.0, img.shape)
    img = np.clip(img, 0, 255)
    bar = _scale_bar(size, spec)
    out = img.astype(np.uint8)
    out[bar["mask"]] = spec.bar_colour
    info = {k: v for k, v in bar.items() if k != "mask"}
    return out, labels, info


def _scale_bar(size: int, spec: DemoSpec) -> dict:
    from PIL import Image, ImageDraw

    um = _nice_length(size * 0.25 * spec.vox_size)
    length_px = int(round(um / spec.vox_size))
    thick = max(4, size // 80)
    margin = size // 24
    label = f"{um:g} µm"
    font = _label_font(max(12, size // 22))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    tb = draw.textbbox((0, 0), label, font=font)
    tw, th = tb[2] - tb[0], tb[3] - tb[1]
    block_h = thick + 4 + th
    x0 = size - margin - max(length_px, tw) if spec.bar_corner in ("br", "tr") else margin
    y0 = size - margin - block_h if spec.bar_corner in ("br", "bl") else margin
    draw.rectangle([x0, y0 + th + 4, x0 + length_px - 1, y0 + th + 4 + thick - 1], fill=255)
    draw.text((x0 + (length_px - tw) // 2 - tb[0], y0 - tb[1]), label, fill=255, font=font)
    mask = np.asarray(canvas) > 127
    ys, xs = np.nonzero(mask)
    return {
        "mask": mask,
        "bar_length_px": length_px,
        "bar_value_um": um,
        "box_xyxy": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
        "label": label,
    }


def _label_font(px: int):
    """DejaVu Sans (shipped with matplotlib, so the same everywhere; it has the µ glyph)."""
    from pathlib import Path

    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), px)
    except OSError:
        return ImageFont.load_default()


def _nice_length(um: float) -> float:
    """Round down to 1, 2 or 5 × a power of ten, as scale bars are."""
    exp = np.floor(np.log10(um))
    for m in (5, 2, 1):
        if m * 10**exp <= um:
            return float(m * 10**exp)
    return float(10**exp)


def demo_png(spec: DemoSpec) -> bytes:
    from PIL import Image

    raw, _, _ = render_micrograph(spec)
    buf = io.BytesIO()
    Image.fromarray(raw).save(buf, format="PNG")
    return buf.getvalue()


def demo_metadata(spec: DemoSpec) -> dict:
    _, _, bar = render_micrograph(spec)
    return {
        "demo": True,
        "demo_key": spec.key,
        "brief_descr": spec.brief_descr,
        "long_desc": f"{DEMO_MARK}. Seed {spec.seed}; true µm per pixel {spec.vox_size}; "
                     f"scale bar {bar['label']} ({bar['bar_length_px']} px).",
        "keywords": ["demo", spec.kind],
        "category": ["Demo"],
        "element": [],
        "technique": "procedural (demo)",
        "contributor": "MicroLib Studio",
        "organisation": "MicroLib Studio demo catalog",
        "data_type": spec.kind,
        "demo_truth": {"vox_size": spec.vox_size, "bar": bar, "grey_levels": list(spec.grey_levels)},
    }


def ensure_demo_entries(library) -> list[str]:
    """Add any demo entry the library lacks; returns the names added (idempotent)."""
    have = {e.metadata.get("demo_key") for e in library.list_entries() if e.source == "demo"}
    added = []
    for spec in CATALOG:
        if spec.key in have:
            continue
        entry = library.add_entry(demo_png(spec), source="demo", metadata=demo_metadata(spec))
        added.append(entry.name)
    return added

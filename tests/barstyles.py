"""Scale bars of many styles burnt into clean micrographs, with their truth (tests and benchmarks).

A :class:`BarStyle` says how a bar and its label look (colour, font, size,
label text and placement, corner, an optional backing box); :func:`burn` draws
one onto a clean micrograph (``cleanNNN.png`` of ``../shared/data/rawlike``) and
returns a :class:`Burnt`: the raw image, the true mask (every pixel the drawing
changed), the label's value in µm and the bar's length in px.
:func:`random_style` draws styles from a seeded generator; :func:`style_set`
makes a reproducible set, so a set used to tune the engine (one seed) and a set
to report on (another seed) never share a style.

    from barstyles import HELD_OUT_SEED, load_sources, style_set
    for b in style_set(HELD_OUT_SEED, 40, load_sources(shared / "rawlike")):
        det = detect_scale_bar(b.raw)
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Seeds of the two style sets: tune the engine on TUNE_SEED, report on HELD_OUT_SEED.
TUNE_SEED = 1
HELD_OUT_SEED = 2

#: Font files drawn from (matplotlib ships DejaVu; Liberation is used when the system has it).
FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "LiberationSans-Regular.ttf",
              "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf", "LiberationMono-Regular.ttf")

#: Bar colours (RGB) and the label texts drawn with them: value, unit as printed, value in µm.
COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "yellow": (255, 255, 0), "red": (230, 30, 30),
           "grey": (128, 128, 128), "light grey": (200, 200, 200)}
LABELS = (("200", "µm", 200.0), ("100", "µm", 100.0), ("50", "µm", 50.0), ("20", "µm", 20.0),
          ("10", "µm", 10.0), ("5", "µm", 5.0), ("2", "µm", 2.0), ("500", "μm", 500.0), ("25", "μm", 25.0),
          ("100", "um", 100.0), ("1", "um", 1.0), ("0.5", "mm", 500.0), ("1", "mm", 1000.0),
          ("2", "mm", 2000.0), ("0,5", "mm", 500.0), ("100", "nm", 0.1), ("500", "nm", 0.5),
          ("250", "µm", 250.0), ("0.2", "mm", 200.0), ("1.5", "µm", 1.5))
PLACEMENTS = ("above", "below", "left", "right")
ALIGNS = ("start", "centre", "end")
CORNERS = ("tl", "tr", "bl", "br")


@functools.lru_cache(maxsize=1)
def fonts() -> tuple[str, ...]:
    """Paths of the installed fonts of :data:`FONT_NAMES` (matplotlib's DejaVu first)."""
    import matplotlib

    dirs = [Path(matplotlib.get_data_path()) / "fonts" / "ttf", Path("/usr/share/fonts")]
    found = {}
    for d in dirs:
        for name in FONT_NAMES:
            if name not in found:
                hits = sorted(d.rglob(name)) if d.exists() else []
                if hits:
                    found[name] = str(hits[0])
    return tuple(found[n] for n in FONT_NAMES if n in found)


@dataclass
class BarStyle:
    """How one scale bar and its label are drawn."""

    colour: tuple[int, int, int]
    font: str
    text_size: int  # font size in px
    value: str  # as printed: "0,5"
    unit: str  # as printed: "µm", "μm", "um", "nm", "mm"
    value_um: float
    placement: str  # label above / below / left / right of the bar
    align: str  # start / centre / end (along the bar, for above and below)
    corner: str
    bar_len: int
    bar_thick: int
    gap: int  # px between label and bar
    margin: int  # px from the image edges
    box: tuple[int, int, int] | None = None  # backing box colour, or None
    box_pad: int = 4
    space: str = " "  # between value and unit

    @property
    def text(self) -> str:
        return f"{self.value}{self.space}{self.unit}"


@dataclass
class Burnt:
    """A micrograph with a burnt-in bar, and the truth about it."""

    raw: np.ndarray  # (H, W, 3) uint8
    clean: np.ndarray
    mask: np.ndarray  # bool: every pixel the bar, label or box changed
    value_um: float
    bar_len_px: float
    bar_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    label_box: tuple[int, int, int, int]
    style: BarStyle
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def um_per_px(self) -> float:
        return self.value_um / self.bar_len_px

    def describe(self) -> dict:
        s = asdict(self.style)
        s["font"] = Path(s["font"]).stem
        return {"source": self.source, "text": self.style.text, **s}


def _text_alpha(text: str, font_path: str, size: int) -> np.ndarray:
    """Anti-aliased coverage (0-1) of ``text``, cropped to its ink."""
    font = ImageFont.truetype(font_path, size)
    l, t, r, b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    im = Image.new("L", (r - l + 4, b - t + 4), 0)
    ImageDraw.Draw(im).text((2 - l, 2 - t), text, fill=255, font=font)
    a = np.asarray(im, np.float32) / 255.0
    ys, xs = np.nonzero(a > 0)
    return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def random_style(rng: np.random.Generator, shape: tuple[int, int]) -> BarStyle:
    """A style drawn at random that fits an image of ``shape`` ``(H, W)``."""
    h, w = shape[:2]
    cname = str(rng.choice(list(COLOURS)))
    colour = COLOURS[cname]
    value, unit, um = LABELS[rng.integers(len(LABELS))]
    box = None
    if rng.random() < 0.3:
        box = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    return BarStyle(
        colour=colour, font=str(rng.choice(fonts())), text_size=int(rng.integers(11, 30)),
        value=value, unit=unit, value_um=um, placement=str(rng.choice(PLACEMENTS, p=(0.35, 0.35, 0.15, 0.15))),
        align=str(rng.choice(ALIGNS)), corner=str(rng.choice(CORNERS)),
        bar_len=int(rng.integers(max(30, w // 14), max(31, w // 4))), bar_thick=int(rng.integers(2, 11)),
        gap=int(rng.integers(1, 8)), margin=int(rng.integers(4, 30)), box=box, box_pad=int(rng.integers(2, 8)),
        space=" " if rng.random() < 0.85 else "")


def burn(clean: np.ndarray, style: BarStyle, source: str = "") -> Burnt:
    """Draw ``style``'s bar and label (and box) into a copy of ``clean`` (uint8 RGB or gray)."""
    clean = np.asarray(clean)
    if clean.ndim == 2:
        clean = np.repeat(clean[..., None], 3, -1)
    clean = clean[..., :3].astype(np.uint8)
    h, w = clean.shape[:2]
    text = _text_alpha(style.text, style.font, style.text_size)
    th, tw = text.shape
    L, T, g = style.bar_len, style.bar_thick, style.gap
    # Layout in a local frame: the bar's top-left at (0, 0), then shifted into the corner.
    if style.placement in ("above", "below"):
        span = L - tw
        tx = {"start": 0, "centre": span // 2, "end": span}[style.align]
        ty = -g - th if style.placement == "above" else T + g
    else:
        ty = T // 2 - th // 2
        tx = -g - tw if style.placement == "left" else L + g
    x0, y0 = min(0, tx), min(0, ty)
    x1, y1 = max(L, tx + tw), max(T, ty + th)
    pad = style.box_pad if style.box else 0
    gw, gh = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    if gw + 2 * style.margin > w or gh + 2 * style.margin > h:
        raise ValueError(f"a {gw}x{gh} px bar group does not fit in a {w}x{h} image")
    ox = style.margin if style.corner[1] == "l" else w - style.margin - gw
    oy = style.margin if style.corner[0] == "t" else h - style.margin - gh
    bx, by = ox + pad - x0, oy + pad - y0  # the bar's top-left in the image
    alpha = np.zeros((h, w), np.float32)
    alpha[by: by + T, bx: bx + L] = 1.0
    lx, ly = bx + tx, by + ty
    alpha[ly: ly + th, lx: lx + tw] = np.maximum(alpha[ly: ly + th, lx: lx + tw], text)
    out = clean.astype(np.float32)
    if style.box:
        out[oy: oy + gh, ox: ox + gw] = style.box
    col = np.asarray(style.colour, np.float32)
    out = out * (1 - alpha[..., None]) + col * alpha[..., None]
    raw = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    mask = (raw != clean).any(-1)
    if style.box:
        mask[oy: oy + gh, ox: ox + gw] = True
    # How far the bar colour stands out from what it covers (styles nobody could see are redrawn).
    under = np.median(out[oy: oy + gh, ox: ox + gw].reshape(-1, 3) if style.box else clean[mask], axis=0)
    contrast = float(np.abs(under - col).max())
    return Burnt(raw=raw, clean=clean, mask=mask, value_um=style.value_um, bar_len_px=float(L),
                 bar_box=(bx, by, bx + L, by + T), label_box=(lx, ly, lx + tw, ly + th), style=style,
                 source=source, extra={"contrast": contrast})


def vary_background(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clean micrograph with its levels remapped (brighter, darker, inverted or tinted): other backgrounds."""
    a = clean.astype(np.float32) / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    kind = rng.choice(["as is", "gamma", "invert", "tint"], p=(0.4, 0.25, 0.15, 0.2))
    if kind == "gamma":
        a = a ** float(rng.choice([0.5, 0.7, 1.5, 2.0]))
    elif kind == "invert":
        a = 1.0 - a
    elif kind == "tint":
        a = a * rng.uniform(0.6, 1.0, 3)
    return np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)


def load_sources(folder: Path) -> list[tuple[str, np.ndarray]]:
    """``(name, clean image)`` of every ``clean*.png`` in ``folder``, sorted by name."""
    return [(p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in sorted(Path(folder).glob("clean*.png"))]


#: Least difference (grey levels, any channel) between the bar colour and the median of what it covers.
MIN_CONTRAST = 60


def style_set(seed: int, n: int, sources: list[tuple[str, np.ndarray]]) -> list[Burnt]:
    """``n`` burnt micrographs of random styles (reproducible from ``seed``), cycling over ``sources``.

    Styles that do not fit the image, or whose colour hardly differs from the
    micrograph under it (:data:`MIN_CONTRAST`), are drawn again.
    """
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        name, clean = sources[len(out) % len(sources)]
        bg = vary_background(clean, rng)
        for _ in range(20):  # redraw a style too big for this image
            try:
                b = burn(bg, random_style(rng, bg.shape), source=name)
            except ValueError:
                continue
            if b.extra["contrast"] >= MIN_CONTRAST:
                out.append(b)
                break
        else:
            raise ValueError(f"no style fits {name}")
    return out

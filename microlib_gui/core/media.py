"""Pictures and movies of a 3D microstructure, made headless (no Qt, no OpenGL).

A small numpy renderer draws a volume as a solid cube seen from a direction
(orthographic projection, phase colours, one shade per face direction):

* :func:`render_view` — one view (azimuth/elevation), optionally with phases made
  transparent or a corner octant cut away ("erosion");
* :func:`rotation_frames` / :func:`write_rotation_movie` — the 360° rotation movie
  (``microstructureNNN.mp4``);
* :func:`long_strip` / :func:`write_long_png` — MicroLib's "extended rotation and
  erosion" strip (``microstructureNNN_long.png``): views around the cube, then the
  cube with a growing corner cut away, then each phase on its own;
* :func:`gif_to_mp4` — the inpainting animation as ``_inpaint.mp4``.

Volumes are numpy arrays indexed ``(z, y, x)`` with ``z`` drawn upwards: uint8
labels (phase k = value k) or grayscale (any dtype, shown scaled to its range).
Movies are written with the ffmpeg binary shipped by ``imageio-ffmpeg``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import MicrolibError

#: RGB colours of phases 0, 1, 2, ... (phase 0 is usually pore/matrix: dark).
PHASE_COLOURS = np.array(
    [
        [40, 44, 52], [235, 200, 80], [70, 150, 220], [220, 90, 80], [120, 200, 120],
        [190, 120, 210], [240, 150, 60], [90, 200, 200], [200, 200, 200], [150, 110, 80],
        [250, 120, 170], [110, 110, 230], [180, 230, 90], [60, 100, 60], [230, 230, 140], [130, 60, 90],
    ],
    dtype=np.uint8,
)
MAX_LABEL_PHASES = 16
_BACKGROUND = (255, 255, 255)


class MediaError(MicrolibError):
    """A volume or animation could not be rendered or written."""


# -- volumes ------------------------------------------------------------------
def volume_kind(volume: np.ndarray) -> str:
    """``"labels"`` for integer volumes with a few values (0..15), else ``"grayscale"``."""
    vol = np.asarray(volume)
    if np.issubdtype(vol.dtype, np.integer) or vol.dtype == np.bool_:
        if vol.size and int(vol.min()) >= 0 and int(vol.max()) < MAX_LABEL_PHASES:
            return "labels"
    return "grayscale"


def check_volume(volume: np.ndarray, name: str = "volume") -> np.ndarray:
    """Return ``volume`` as a 3D array or raise :class:`MediaError` with the reason."""
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise MediaError(f"{name}: expected a 3D volume, got an array of shape {tuple(vol.shape)}")
    if min(vol.shape) < 2:
        raise MediaError(f"{name}: volume of shape {tuple(vol.shape)} is too thin to render")
    if np.issubdtype(vol.dtype, np.floating) and not np.all(np.isfinite(vol)):
        raise MediaError(f"{name}: contains NaN or infinite values")
    return vol


def load_volume(path: str | os.PathLike) -> np.ndarray:
    """Read a 3D TIFF volume (``(z, y, x)``; a colour volume is refused).

    Only a regular file is read, and only once its page count and declared size
    are within :data:`~.images.MAX_VOLUME_PAGES` and :data:`~.images.MAX_VOLUME_BYTES`.
    """
    from .images import MAX_VOLUME_FILE_BYTES, read_tiff_array
    from .safefile import open_regular_file

    path = Path(path)
    with open_regular_file(path, MAX_VOLUME_FILE_BYTES, "a volume", MediaError) as fh:
        if fh.read(4) not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            raise MediaError(f"{path.name}: not a TIFF volume")
        vol = read_tiff_array(fh, path.name, MediaError)
    vol = np.squeeze(vol)
    if vol.ndim == 4 and vol.shape[-1] in (3, 4):
        raise MediaError(f"{path.name}: colour volumes are not supported")
    return check_volume(vol, path.name)


def colourise(volume: np.ndarray, kind: str | None = None, colours: np.ndarray | None = None) -> np.ndarray:
    """Per-voxel RGB float32 in [0, 1] — phase colours for labels, grey for grayscale."""
    kind = kind or volume_kind(volume)
    if kind == "labels":
        pal = (np.asarray(colours if colours is not None else PHASE_COLOURS, dtype=np.float32) / 255.0)
        idx = np.clip(volume.astype(np.int64), 0, len(pal) - 1)
        return pal[idx]
    v = volume.astype(np.float32)
    lo, hi = float(v.min()), float(v.max())
    g = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    return np.repeat(g[..., None], 3, axis=-1)


class _VoxelColours:
    """Colours of chosen voxels only (colouring a whole 256³ volume would cost 200 MB per view)."""

    def __init__(self, volume: np.ndarray, kind: str, colours: np.ndarray | None):
        self.vol, self.kind = volume, kind
        if kind == "labels":
            self.pal = np.asarray(colours if colours is not None else PHASE_COLOURS, dtype=np.float32) / 255.0
        else:
            self.lo, self.hi = float(volume.min()), float(volume.max())

    def __call__(self, vi: np.ndarray) -> np.ndarray:
        v = self.vol[vi[:, 0], vi[:, 1], vi[:, 2]]
        if self.kind == "labels":
            return self.pal[np.clip(v.astype(np.int64), 0, len(self.pal) - 1)]
        g = (v.astype(np.float32) - self.lo) / (self.hi - self.lo) if self.hi > self.lo \
            else np.full(v.shape, 0.5, np.float32)
        return np.repeat(g[:, None], 3, axis=1)


# -- camera ---------------------------------------------------------------------
def _camera(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, right and up unit vectors in array-axis order (z, y, x)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    eye_xyz = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    fwd = -eye_xyz
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    to_zyx = [2, 1, 0]
    return fwd[to_zyx], right[to_zyx], up[to_zyx]


def _rays(shape: tuple[int, int, int], size: int, azimuth: float, elevation: float, margin: float):
    """Ray origins and the shared direction for a ``size``x``size`` orthographic image."""
    fwd, right, up = _camera(azimuth, elevation)
    dims = np.asarray(shape, dtype=np.float64)
    centre = dims / 2.0
    diag = float(np.linalg.norm(dims))
    scale = diag * margin / size  # voxels per pixel: the whole cube fits at any angle
    c = (np.arange(size) - size / 2.0 + 0.5) * scale
    jj, ii = np.meshgrid(c, c)  # column (right), row (down)
    origins = centre + jj[..., None] * right - ii[..., None] * up - diag * fwd
    return origins.reshape(-1, 3), fwd, diag


def _slab(origins: np.ndarray, d: np.ndarray, dims: np.ndarray):
    """Entry/exit ray parameters of the box [0, dims] and the entry face axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(np.abs(d) > 1e-12, 1.0 / d, np.inf)
        t0 = (0.0 - origins) * inv
        t1 = (dims - origins) * inv
    near = np.minimum(t0, t1)
    far = np.maximum(t0, t1)
    # Axes the ray runs parallel to: inside the slab → unbounded, outside → miss.
    parallel = np.abs(d) <= 1e-12
    if parallel.any():
        inside = (origins >= 0) & (origins <= dims)
        near[:, parallel] = np.where(inside[:, parallel], -np.inf, np.inf)
        far[:, parallel] = np.where(inside[:, parallel], np.inf, -np.inf)
    t_in = near.max(axis=1)
    t_out = far.min(axis=1)
    axis = near.argmax(axis=1)
    return t_in, t_out, axis


def _shade(normal_axis: np.ndarray, normal_sign: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """Lambert shading with the light over the viewer's right shoulder (one shade per face)."""
    # Light from the viewer, raised towards +z, so the three visible faces differ.
    light = -fwd + np.array([0.8, 0.25, -0.15])
    light /= np.linalg.norm(light)
    lam = np.abs(light[normal_axis]) * (normal_sign * np.sign(light[normal_axis]) > 0)
    return (0.45 + 0.55 * lam).astype(np.float32)


def render_view(
    volume: np.ndarray,
    azimuth: float = 45.0,
    elevation: float = 30.0,
    size: int = 256,
    kind: str | None = None,
    hidden: tuple[int, ...] = (),
    cut: float = 0.0,
    colours: np.ndarray | None = None,
    margin: float = 1.05,
    background: tuple[int, int, int] = _BACKGROUND,
    max_march_side: int = 128,
) -> np.ndarray:
    """Render ``volume`` as a shaded solid seen from (``azimuth``, ``elevation``) degrees.

    Parameters
    ----------
    volume : ndarray, (z, y, x)
        Labels (uint8, phase k = k) or grayscale.
    azimuth, elevation : float
        Viewing direction in degrees (elevation > 0 looks down on the top face).
    size : int
        Output side in pixels.
    kind : {"labels", "grayscale"}, optional
        How to colour voxels; guessed by :func:`volume_kind` when None.
    hidden : tuple of int
        Label phases drawn transparent (labels only), revealing the rest in 3D.
    cut : float in [0, 1)
        Fraction of each side of the octant nearest the viewer to cut away.
    colours : (n, 3) uint8, optional
        Phase colours (default :data:`PHASE_COLOURS`).
    max_march_side : int
        With ``hidden`` or ``cut``, rays are marched through the volume; larger
        volumes are subsampled to this side first (the view stays the same size).

    Returns
    -------
    ndarray of uint8, (size, size, 3)
    """
    vol = check_volume(volume)
    kind = kind or volume_kind(vol)
    if kind not in ("labels", "grayscale"):
        raise MediaError(f"unknown volume kind {kind!r} (labels or grayscale)")
    if not 16 <= int(size) <= 4096:
        raise MediaError(f"render size {size} is outside 16..4096 pixels")
    if not 0.0 <= cut < 1.0:
        raise MediaError(f"cut {cut} must be in [0, 1)")
    size = int(size)
    marching = bool(cut > 0 or (hidden and kind == "labels"))
    if marching and max(vol.shape) > max_march_side:
        step = int(np.ceil(max(vol.shape) / max_march_side))
        vol = vol[::step, ::step, ::step]
    dims = np.asarray(vol.shape, dtype=np.float64)
    origins, fwd, diag = _rays(vol.shape, size, azimuth, elevation, margin)
    t_in, t_out, axis = _slab(origins, fwd, dims)
    hit = t_in < t_out
    rgb_vox = _VoxelColours(vol, kind, colours)
    out = np.empty((size * size, 3), np.float32)
    out[:] = np.asarray(background, np.float32) / 255.0
    if not marching:
        idx = np.nonzero(hit)[0]
        p = origins[idx] + (t_in[idx, None] + 1e-6) * fwd
        vi = np.clip(np.floor(p).astype(np.int64), 0, np.asarray(vol.shape) - 1)
        ax = axis[idx]
        sign = -np.sign(fwd[ax])
        shade = _shade(ax, sign, fwd)
        out[idx] = rgb_vox(vi) * shade[:, None]
    else:
        solid = np.ones(vol.shape, bool)
        if kind == "labels" and hidden:
            solid &= ~np.isin(vol, np.asarray(hidden, dtype=vol.dtype))
        if cut > 0:
            # The octant nearest the viewer: the high or low end of each axis, facing the eye.
            sl = []
            for a in range(3):
                n = vol.shape[a]
                k = int(round(cut * n))
                sl.append(slice(0, k) if fwd[a] > 0 else slice(n - k, n))
            solid[tuple(sl)] = False
        _march(origins, fwd, t_in, t_out, axis, hit, solid, rgb_vox, out, diag)
    return np.clip(np.rint(out.reshape(size, size, 3) * 255.0), 0, 255).astype(np.uint8)


def _march(origins, fwd, t_in, t_out, axis, hit, solid, rgb_vox, out, diag) -> None:
    """First solid voxel along each ray by exact voxel traversal (Amanatides & Woo's DDA),
    all rays at once; writes shaded colours into ``out``."""
    shape = np.asarray(solid.shape)
    flat_solid = solid.ravel()
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    rays = np.nonzero(hit)[0]
    o = origins[rays]
    t = t_in[rays] + 1e-6
    v = np.clip(np.floor(o + t[:, None] * fwd).astype(np.int64), 0, shape - 1)
    step = np.where(fwd > 0, 1, -1).astype(np.int64)
    with np.errstate(divide="ignore"):
        t_delta = np.where(fwd != 0, np.abs(1.0 / np.where(fwd == 0, 1, fwd)), np.inf)
        t_max = np.where(fwd != 0, ((v + (fwd > 0)) - o) / np.where(fwd == 0, 1, fwd), np.inf)
    normal = axis[rays].copy()
    t0 = t_in[rays]
    for _ in range(int(shape.sum()) + 3):
        if rays.size == 0:
            break
        got = flat_solid[v @ strides]
        if got.any():
            ax = normal[got]
            shade = _shade(ax, -np.sign(fwd[ax]), fwd)
            depth = (t[got] - t0[got]) / diag  # depth cue inside cut-away regions
            shade = shade * (1.0 - 0.35 * np.clip(depth, 0, 1)).astype(np.float32)
            vh = v[got]
            out[rays[got]] = rgb_vox(vh) * shade[:, None]
        a = t_max.argmin(axis=1)
        r = np.arange(len(rays))
        v[r, a] += step[a]
        t = t_max[r, a]
        t_max[r, a] += t_delta[a]
        normal = a
        keep = ~got & np.all((v >= 0) & (v < shape), axis=1)
        rays, o, t, v, t_max, normal, t0 = rays[keep], o[keep], t[keep], v[keep], t_max[keep], normal[keep], t0[keep]


# -- sequences ------------------------------------------------------------------
def rotation_frames(volume: np.ndarray, n_frames: int = 72, size: int = 320, elevation: float = 25.0,
                    kind: str | None = None, progress=None) -> list[np.ndarray]:
    """Views all round the vertical axis (360°), ``n_frames`` of them."""
    if n_frames < 1:
        raise MediaError("a rotation needs at least one frame")
    frames = []
    for i in range(n_frames):
        frames.append(render_view(volume, azimuth=45.0 + 360.0 * i / n_frames, elevation=elevation,
                                  size=size, kind=kind))
        if progress is not None:
            progress(i + 1, n_frames)
    return frames


def long_strip(volume: np.ndarray, size: int = 256, n_rotation: int = 6, n_erosion: int = 3,
               kind: str | None = None, max_phase_views: int = 4) -> np.ndarray:
    """MicroLib-style "extended rotation and erosion" strip, one row of square views.

    Views: ``n_rotation`` angles around the cube; the cube with the corner octant
    cut away at growing depth (``n_erosion`` views); for label volumes with more
    than one phase, each phase on its own (the others transparent).
    """
    vol = check_volume(volume)
    kind = kind or volume_kind(vol)
    tiles = [render_view(vol, azimuth=45.0 + 360.0 * i / n_rotation, size=size, kind=kind)
             for i in range(n_rotation)]
    tiles += [render_view(vol, azimuth=45.0, size=size, kind=kind, cut=0.3 + 0.4 * i / max(1, n_erosion - 1))
              for i in range(n_erosion)]
    if kind == "labels":
        phases = [int(p) for p in np.unique(vol)]
        if len(phases) > 1:
            for p in phases[:max_phase_views]:
                others = tuple(q for q in phases if q != p)
                tiles.append(render_view(vol, azimuth=45.0, size=size, kind=kind, hidden=others))
    return np.concatenate(tiles, axis=1)


# -- files ------------------------------------------------------------------------
def _even_pad(frame: np.ndarray, block: int = 16) -> np.ndarray:
    """Pad an RGB frame with white to a multiple of ``block`` (what H.264 encoders want)."""
    h, w = frame.shape[:2]
    ph, pw = (-h) % block, (-w) % block
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)), constant_values=255)
    return frame


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.dtype != np.uint8:
        raise MediaError(f"movie frames must be uint8, got {f.dtype}")
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=-1)
    elif f.shape[-1] == 4:
        # Composite transparency onto white (GIF frames can carry alpha).
        a = f[..., 3:4].astype(np.float32) / 255.0
        f = np.rint(f[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    elif f.shape[-1] == 1:
        f = np.repeat(f, 3, axis=-1)
    return np.ascontiguousarray(f[..., :3])


def write_mp4(path: str | os.PathLike, frames, fps: float = 24.0, quality: float = 7.0) -> Path:
    """Write RGB/gray uint8 frames as an H.264 ``.mp4`` (atomically)."""
    import imageio_ffmpeg

    frames = [_even_pad(_as_rgb(f)) for f in frames]
    if not frames:
        raise MediaError("no frames to write")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        # Frames of differing sizes (rare, e.g. a resized GIF): pad all to the largest.
        h = max(f.shape[0] for f in frames)
        w = max(f.shape[1] for f in frames)
        frames = [np.pad(f, ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0)), constant_values=255)
                  for f in frames]
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, quality=quality, codec="libx264",
                                             pix_fmt_out="yuv420p", macro_block_size=1,
                                             output_params=["-movflags", "+faststart"])
        writer.send(None)
        try:
            for f in frames:
                writer.send(f.tobytes())
        finally:
            writer.close()
    return Path(path)


def read_mp4(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], dict]:
    """Decode an ``.mp4`` to RGB frames (for checks and previews); returns (frames, meta)."""
    import imageio_ffmpeg

    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = gen.__next__()
        w, h = meta["size"]
        frames = []
        for raw in gen:
            frames.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
            if max_frames is not None and len(frames) >= max_frames:
                gen.close()
                break
    except (OSError, RuntimeError, StopIteration) as exc:
        raise MediaError(f"{Path(path).name}: not a readable movie ({' '.join(str(exc).split())[:120]})") from None
    return frames, meta


def write_rotation_movie(volume: np.ndarray, path: str | os.PathLike, n_frames: int = 72, fps: float = 24.0,
                         size: int = 320, kind: str | None = None, progress=None) -> Path:
    """Render and write the 360° rotation movie (``microstructureNNN.mp4``)."""
    return write_mp4(path, rotation_frames(volume, n_frames, size, kind=kind, progress=progress), fps=fps)


def write_long_png(volume: np.ndarray, path: str | os.PathLike, size: int = 256, kind: str | None = None) -> Path:
    """Render and write the rotation-and-erosion strip (``microstructureNNN_long.png``)."""
    from .images import save_png

    return save_png(path, long_strip(volume, size=size, kind=kind))


def read_gif_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a GIF as RGB uint8 arrays."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as im:
            return [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(im)]
    except FileNotFoundError:
        raise MediaError(f"{Path(path).name}: no such file") from None
    except Exception as exc:  # PIL raises many types for bad files
        raise MediaError(f"{Path(path).name}: not a readable GIF ({' '.join(str(exc).split())[:120]})") from None


def gif_to_mp4(gif_path: str | os.PathLike, mp4_path: str | os.PathLike, fps: float | None = None) -> Path:
    """Convert the inpainting animation (``_inpaint.gif``) to ``_inpaint.mp4``."""
    from PIL import Image

    frames = read_gif_frames(gif_path)
    if fps is None:
        with Image.open(gif_path) as im:
            duration_ms = im.info.get("duration") or 100
        fps = max(1.0, min(60.0, 1000.0 / float(duration_ms)))
    return write_mp4(mp4_path, frames, fps=fps)

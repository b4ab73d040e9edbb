"""napari embedded in the main window: a generated volume in 2D slices or 3D, with controls.

The widget builds its own napari :class:`~napari.components.ViewerModel` and
:class:`~napari._qt.qt_viewer.QtViewer` (the canvas and dims sliders) inside a
plain ``QWidget`` — no separate napari window. Beside the canvas:

* 2D slicing / 3D rendering toggle and the rendering mode;
* one row per phase (label volumes): visible check box and colour button;
* an isosurface of a chosen phase (a napari Surface layer from
  :func:`skimage.measure.marching_cubes`, computed in a worker process through
  the window's job runner: marching cubes holds Python's GIL, so a thread would
  still freeze the window; a newer request supersedes an older one), in the
  phase's colour lightened to stand out on the black canvas, smooth-shaded;
* the 2D training image, for comparison.

The dims are named ``z``, ``y``, ``x`` (the volume's axes; the slider in 2D is
the z slice), with slider labels wide enough for the largest index.

Label volumes are shown as napari labels with label = phase + 1, so phase 0 is
a real, visible phase (napari keeps label 0 as transparent background). Phase
colours default to :data:`microlib_gui.core.media.PHASE_COLOURS`, the colours of
the exported movie and strip. Large volumes are read lazily (memory-mapped
TIFF) and shown subsampled in 3D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ...core.media import PHASE_COLOURS, volume_kind

#: Above this many voxels, the 3D view shows every 2nd (3rd, ...) voxel.
MAX_3D_VOXELS = 256 ** 3
#: The isosurface is computed on at most this many voxels (block means of a larger volume): a finer
#: mesh (128³: 1.5 million faces) takes seconds to shade and draw in the window's own thread.
MAX_ISO_VOXELS = 80 ** 3
#: Surface colours darker than this relative luminance are lightened (the canvas is black).
MIN_SURFACE_LUMINANCE = 0.7
#: The names of the volume's axes, in array order: axis 0 is x everywhere in the app (slices
#: perpendicular to x in training, ``--periodic x``, the statistics' per-axis figures).
AXIS_LABELS = ("x", "y", "z")
LABEL_MODES = ("iso_categorical", "translucent")
IMAGE_MODES = ("mip", "attenuated_mip", "translucent", "iso", "average", "minip")


def open_volume_lazily(path: str | Path) -> np.ndarray:
    """A TIFF volume memory-mapped when its pages are contiguous (nothing read yet), else read."""
    import tifffile

    try:
        arr = tifffile.memmap(str(path), mode="r")
        if arr.ndim == 3:
            return arr
    except (ValueError, OSError, TypeError):
        pass
    from ...core.media import load_volume

    return load_volume(path)


def iso_step(shape) -> int:
    """Block side of the isosurface grid: 1 up to :data:`MAX_ISO_VOXELS`, coarser beyond."""
    return max(1, int(np.ceil((float(np.prod(shape)) / MAX_ISO_VOXELS) ** (1 / 3) - 1e-9)))


def isosurface_job(ctx, phase: int, step: int = 1, volume: np.ndarray | None = None,
                   memmap: dict | None = None, out_dir: str | None = None) -> dict | None:
    """Job function (no Qt): the surface around ``phase`` by marching cubes.

    Parameters
    ----------
    ctx : JobContext
    phase : int
        The phase (label value) to wrap.
    step : int
        Block side: the phase's share of each ``step``³ block is contoured at one half
        (smoother than every ``step``-th voxel, and ``step``³ times fewer faces).
    volume : ndarray, optional
        The labels (z, y, x); or
    memmap : dict, optional
        ``filename``, ``dtype``, ``shape``, ``offset`` of a memory-mapped volume (read here,
        not copied through the job's queue).
    out_dir : str, optional
        Write the mesh into this folder and return its path instead of the arrays: a worker
        process whose megabytes nobody reads (the window closed) could never exit.

    Returns
    -------
    dict or None
        ``{"phase", "vertices" (float32, voxel units of the full volume), "faces" (int32)}``,
        or ``{"phase", "path"}`` (an ``.npz`` of both) with ``out_dir``; None when the phase is
        absent.
    """
    from skimage.measure import block_reduce, marching_cubes

    ctx.report(0, 2, "reading the volume")
    vol = volume if memmap is None else np.memmap(memmap["filename"], dtype=memmap["dtype"], mode="r",
                                                  offset=memmap["offset"], shape=tuple(memmap["shape"]))
    mask = np.asarray(vol) == phase
    if not mask.any():
        return None
    field = block_reduce(mask, (step,) * 3, np.mean).astype(np.float32) if step > 1 else mask.astype(np.float32)
    ctx.check_cancelled()
    ctx.report(1, 2, "marching cubes")
    # Padded with 0: the surface is closed where the phase meets the volume's faces.
    verts, faces, _normals, _values = marching_cubes(np.pad(field, 1), 0.5)
    verts = (verts - 1) * step + (step - 1) / 2  # block centres, in voxels of the full volume
    mesh = {"vertices": verts.astype(np.float32), "faces": faces.astype(np.int32)}
    if out_dir is None:
        return {"phase": int(phase), **mesh}
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".npz", prefix=f"phase{int(phase)}-", dir=out_dir)
    with open(fd, "wb") as fh:
        np.savez(fh, **mesh)
    return {"phase": int(phase), "path": path}


def _load_mesh(surf: dict | None) -> dict | None:
    """The arrays of an :func:`isosurface_job` result (its file read and removed)."""
    if not surf or "path" not in surf:
        return surf
    path = Path(surf["path"])
    try:
        with np.load(path) as z:
            return {"phase": surf["phase"], "vertices": z["vertices"], "faces": z["faces"]}
    finally:
        path.unlink(missing_ok=True)


def surface_colour(rgb) -> tuple[float, float, float]:
    """A phase colour (0-255) as a surface colour (0-1) bright enough on a black canvas.

    Colours darker than :data:`MIN_SURFACE_LUMINANCE` are mixed with white until
    they reach it; lighter ones are kept.
    """
    c = np.asarray(rgb, dtype=np.float64)[:3] / 255.0
    lum = lambda x: float(x @ (0.2126, 0.7152, 0.0722))  # noqa: E731 - relative luminance (sRGB weights)
    if lum(c) < MIN_SURFACE_LUMINANCE:
        t = (MIN_SURFACE_LUMINANCE - lum(c)) / max(1e-9, 1.0 - lum(c))
        c = c + (1.0 - c) * t
    return tuple(float(v) for v in c)


def _memmap_source(vol) -> dict | None:
    """Where a memory-mapped volume lives (a worker maps it again), or None for an array in memory."""
    name = getattr(vol, "filename", None)
    if isinstance(vol, np.memmap) and name and vol.flags["C_CONTIGUOUS"] and isinstance(vol.offset, int):
        return {"filename": str(name), "dtype": vol.dtype.str, "shape": list(vol.shape), "offset": vol.offset}
    return None


def _qimage(arr: np.ndarray) -> QImage:
    a = np.ascontiguousarray(arr)
    if a.ndim == 2:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format.Format_RGB888)
    return img.copy()  # own the pixels: ``a`` may be freed


class NapariView(QWidget):
    """A volume viewer (napari canvas + controls + the training image)."""

    #: The user toggled 2D/3D (2 or 3).
    ndisplay_changed = Signal(int)
    #: An isosurface layer was added (its phase), or removed (-1).
    surface_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, jobs=None):
        super().__init__(parent)
        #: the window's job runner (``start(fn, params, process=True)``); without one the
        #: isosurface is computed here, in the GUI thread
        self.jobs = jobs
        self.iso_job = None  #: the isosurface job (a JobHandle) of the latest request
        self._iso_dir = None  #: a temporary folder the workers write their meshes into
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:  # a worker still computing when the app quits is ended, not waited for
            app.aboutToQuit.connect(self._supersede_iso)
        from napari._qt.qt_viewer import QtViewer
        from napari.components import ViewerModel

        self.viewer = ViewerModel(title="MicroLib Studio")
        self.qt_viewer = QtViewer(self.viewer, show_welcome_screen=False)
        self.qt_viewer.setObjectName("napariCanvas")
        self.qt_viewer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.volume_layer = None
        self.surface_layer = None
        self.kind: str | None = None
        self.phases: list[int] = []
        self.colours: dict[int, tuple[int, int, int]] = {}
        self.visible: dict[int, bool] = {}
        self._volume: np.ndarray | None = None
        self.viewer.dims.axis_labels = AXIS_LABELS
        self.viewer.dims.events.range.connect(lambda _e: self._fit_slice_labels())
        self.viewer.dims.events.ndisplay.connect(lambda _e: self._fit_slice_labels())
        self._build_controls()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.qt_viewer, 1)
        lay.addWidget(self.side)

    # -- UI ---------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.side = QWidget()
        self.side.setMaximumWidth(300)
        v = QVBoxLayout(self.side)
        v.setContentsMargins(4, 0, 0, 0)
        self.info = QLabel("No volume.")
        self.info.setObjectName("volumeInfo")
        self.info.setWordWrap(True)
        v.addWidget(self.info)

        view = QGroupBox("View")
        f = QFormLayout(view)
        self.btn_3d = QPushButton("3D rendering")
        self.btn_3d.setObjectName("toggle3D")
        self.btn_3d.setCheckable(True)
        self.btn_3d.toggled.connect(lambda on: self.set_ndisplay(3 if on else 2))
        f.addRow(self.btn_3d)
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("renderingMode")
        self.mode_combo.currentTextChanged.connect(self.set_rendering)
        f.addRow("Rendering", self.mode_combo)
        reset = QPushButton("Reset view")
        reset.clicked.connect(self.reset_camera)
        f.addRow(reset)
        v.addWidget(view)

        self.phase_box = QGroupBox("Phases")
        self.phase_form = QFormLayout(self.phase_box)
        v.addWidget(self.phase_box)

        iso = QGroupBox("Isosurface")
        fi = QFormLayout(iso)
        self.iso_combo = QComboBox()
        self.iso_combo.setObjectName("isoPhase")
        fi.addRow("Phase", self.iso_combo)
        self.iso_check = QCheckBox("Show isosurface")
        self.iso_check.setObjectName("isoCheck")
        self.iso_check.toggled.connect(lambda on: self.show_isosurface(self.iso_combo.currentData() if on else None))
        self.iso_combo.currentIndexChanged.connect(
            lambda _i: self.iso_check.isChecked() and self.show_isosurface(self.iso_combo.currentData()))
        fi.addRow(self.iso_check)
        self.iso_status = QLabel("")
        self.iso_status.setObjectName("isoStatus")
        self.iso_status.setWordWrap(True)
        fi.addRow(self.iso_status)
        v.addWidget(iso)

        v.addWidget(QLabel("<b>Training image</b>"))
        self.train_label = QLabel("—")
        self.train_label.setObjectName("trainingImage")
        self.train_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.train_label.setMinimumSize(200, 200)
        v.addWidget(self.train_label)
        v.addStretch(1)

    # -- data ---------------------------------------------------------------------
    def clear(self) -> None:
        self._supersede_iso()
        self._untick_iso()
        self.viewer.layers.clear()
        self.volume_layer = self.surface_layer = None
        self._volume = None
        self.phases = []
        self.info.setText("No volume.")
        self._rebuild_phase_rows()

    def set_volume(self, volume: np.ndarray, kind: str | None = None, name: str = "volume",
                   vox_size_um: float | None = None) -> None:
        """Show ``volume`` (z, y, x): labels (phase k = k) or grayscale."""
        vol = volume
        if vol.ndim != 3:
            raise ValueError("expected a 3D volume")
        self._supersede_iso()
        self._untick_iso()
        self.viewer.layers.clear()
        self.surface_layer = None
        self._volume = vol
        sample = np.asarray(vol[:: max(1, vol.shape[0] // 16)])
        self.kind = kind or volume_kind(sample)
        scale = (vox_size_um,) * 3 if vox_size_um else (1.0, 1.0, 1.0)
        self._base_scale = scale
        if self.kind == "labels":
            self.phases = [int(p) for p in np.unique(sample)]
            if len(self.phases) < 2 and vol.size <= MAX_3D_VOXELS:
                self.phases = [int(p) for p in np.unique(np.asarray(vol))]
            self.colours = {p: tuple(int(c) for c in PHASE_COLOURS[p % len(PHASE_COLOURS)]) for p in self.phases}
            self.visible = {p: True for p in self.phases}
            data = _LabelsPlusOne(vol)
            self.volume_layer = self.viewer.add_labels(data.array(), name=name, scale=scale)
            self._apply_colours()
        else:
            self.phases = []
            self.volume_layer = self.viewer.add_image(np.asarray(vol) if vol.size <= MAX_3D_VOXELS else vol,
                                                      name=name, colormap="gray", scale=scale)
        self._fill_modes()
        self._rebuild_phase_rows()
        unit = f", {vox_size_um:g} µm/voxel" if vox_size_um else ""
        self.info.setText(f"{name}: {' × '.join(map(str, vol.shape))} voxels, "
                          f"{'labels (' + str(len(self.phases)) + ' phases)' if self.kind == 'labels' else 'grayscale'}"
                          f"{unit}")
        self.viewer.dims.axis_labels = AXIS_LABELS
        self.viewer.reset_view()
        if self.viewer.dims.ndisplay == 3:
            self.set_ndisplay(3)
        self._fit_slice_labels()

    def _fit_slice_labels(self) -> None:
        """Slice numbers wide enough for the largest index in the labels' own font (napari sizes them
        with the viewer's font, and a styled label came out one digit short: "12" of 127)."""
        dims = getattr(self.qt_viewer, "dims", None)
        if dims is None:
            return
        digits = max([len(str(max(int(n) - 1, 0))) for n in self.viewer.dims.nsteps] + [1])
        for lab in dims.findChildren(QWidget, "slice_label"):
            lab.setFixedWidth(lab.fontMetrics().horizontalAdvance("8" * digits) + 18)
            if isinstance(lab, QLabel):  # napari aligns the total left only, i.e. at the top
                lab.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    def set_training_image(self, image: np.ndarray | None) -> None:
        """Show the 2D training image (uint8 gray or RGB), or nothing."""
        if image is None:
            self.train_label.setPixmap(QPixmap())
            self.train_label.setText("—")
            return
        pix = QPixmap.fromImage(_qimage(image))
        self.train_label.setPixmap(pix.scaled(240, 240, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation))

    # -- view controls ----------------------------------------------------------------
    def set_ndisplay(self, n: int) -> None:
        """2: slices with a slider; 3: volume rendering."""
        n = 3 if n == 3 else 2
        if self.btn_3d.isChecked() != (n == 3):
            self.btn_3d.blockSignals(True)
            self.btn_3d.setChecked(n == 3)
            self.btn_3d.blockSignals(False)
        big = self._volume is not None and self._volume.size > MAX_3D_VOXELS and self.kind == "labels"
        if self.volume_layer is not None and big:
            # GPU textures of huge volumes are slow to upload: 3D shows a subsampled copy.
            step = int(np.ceil((self._volume.size / MAX_3D_VOXELS) ** (1 / 3))) if n == 3 else 1
            self.volume_layer.data = _LabelsPlusOne(self._volume[::step, ::step, ::step]).array()
            self.volume_layer.scale = tuple(s * step for s in self._base_scale)
        self.viewer.dims.ndisplay = n
        self._show_volume_beside_surface()
        if n == 3:
            self._oblique_camera()
        self.ndisplay_changed.emit(n)

    def _oblique_camera(self) -> None:
        self.viewer.reset_view()
        self.viewer.camera.angles = (-25.0, 35.0, 140.0)
        self.viewer.camera.zoom *= 0.6

    def reset_camera(self) -> None:
        if self.viewer.dims.ndisplay == 3:
            self._oblique_camera()
        else:
            self.viewer.reset_view()

    def _fill_modes(self) -> None:
        self.mode_combo.blockSignals(True)
        self.mode_combo.clear()
        modes = LABEL_MODES if self.kind == "labels" else IMAGE_MODES
        self.mode_combo.addItems(modes)
        current = getattr(self.volume_layer, "rendering", modes[0])
        self.mode_combo.setCurrentText(str(current))
        self.mode_combo.blockSignals(False)

    def set_rendering(self, mode: str) -> None:
        if self.volume_layer is not None and mode:
            self.volume_layer.rendering = mode
            if self.mode_combo.currentText() != mode:
                self.mode_combo.setCurrentText(mode)

    # -- phases -------------------------------------------------------------------------
    def _rebuild_phase_rows(self) -> None:
        while self.phase_form.rowCount():
            self.phase_form.removeRow(0)
        self.phase_checks: dict[int, QCheckBox] = {}
        self.phase_buttons: dict[int, QPushButton] = {}
        self.iso_combo.blockSignals(True)
        self.iso_combo.clear()
        for p in self.phases:
            chk = QCheckBox(f"phase {p}")
            chk.setObjectName(f"phaseVisible{p}")
            chk.setChecked(self.visible.get(p, True))
            chk.toggled.connect(lambda on, p=p: self.set_phase_visible(p, on))
            btn = QPushButton()
            btn.setObjectName(f"phaseColour{p}")
            btn.setFixedWidth(48)
            btn.clicked.connect(lambda _c=False, p=p: self._pick_colour(p))
            self.phase_checks[p], self.phase_buttons[p] = chk, btn
            self.phase_form.addRow(chk, btn)
            self.iso_combo.addItem(f"phase {p}", p)
        self.iso_combo.blockSignals(False)
        self.phase_box.setVisible(bool(self.phases))
        self._paint_buttons()

    def _paint_buttons(self) -> None:
        for p, btn in getattr(self, "phase_buttons", {}).items():
            r, g, b = self.colours[p]
            btn.setStyleSheet(f"background-color: rgb({r},{g},{b});")

    def _pick_colour(self, phase: int) -> None:
        c = QColorDialog.getColor(QColor(*self.colours[phase]), self, f"Colour of phase {phase}")
        if c.isValid():
            self.set_phase_colour(phase, (c.red(), c.green(), c.blue()))

    def set_phase_visible(self, phase: int, visible: bool) -> None:
        self.visible[phase] = bool(visible)
        chk = getattr(self, "phase_checks", {}).get(phase)
        if chk is not None and chk.isChecked() != bool(visible):
            chk.blockSignals(True)
            chk.setChecked(bool(visible))
            chk.blockSignals(False)
        self._apply_colours()

    def set_phase_colour(self, phase: int, rgb: tuple[int, int, int]) -> None:
        self.colours[phase] = tuple(int(c) for c in rgb)
        self._apply_colours()
        self._paint_buttons()
        if self.surface_layer is not None and self.surface_layer.metadata.get("phase") == phase:
            from napari.utils.colormaps import Colormap

            r, g, b = surface_colour(self.colours[phase])
            self.surface_layer.colormap = Colormap([[r, g, b, 1.0], [r, g, b, 1.0]], name=f"surface phase {phase}")

    def _apply_colours(self) -> None:
        if self.volume_layer is None or self.kind != "labels":
            return
        from napari.utils.colormaps import DirectLabelColormap

        cd: dict = {None: np.zeros(4, np.float32), 0: np.zeros(4, np.float32)}
        for p in self.phases:
            r, g, b = self.colours[p]
            cd[p + 1] = np.array([r / 255, g / 255, b / 255, 1.0 if self.visible.get(p, True) else 0.0], np.float32)
        self.volume_layer.colormap = DirectLabelColormap(color_dict=cd)

    # -- isosurface ------------------------------------------------------------------------
    @property
    def iso_computing(self) -> bool:
        return self.iso_job is not None and not self.iso_job.done

    def show_isosurface(self, phase: int | None) -> None:
        """Add (or replace) a surface around ``phase``; None removes it.

        With a job runner the surface is computed in a worker process and added when
        it arrives (:attr:`surface_changed`); a request made meanwhile supersedes it.
        """
        self._supersede_iso()
        if self.surface_layer is not None:
            self.viewer.layers.remove(self.surface_layer)
            self.surface_layer = None
            self._show_volume_beside_surface()
            self.surface_changed.emit(-1)
        if phase is None or self._volume is None or self.kind != "labels":
            self.iso_status.setText("")
            return
        self._sync_iso_controls(phase)
        vol = self._volume
        params = {"phase": int(phase), "step": iso_step(vol.shape)}
        source = _memmap_source(vol)
        params.update({"memmap": source} if source else {"volume": np.asarray(vol)})
        if self.jobs is None:
            from ...core.jobs import run_inline

            self._add_surface(run_inline(isosurface_job, params))
            return
        if self._iso_dir is None:
            import tempfile

            self._iso_dir = tempfile.TemporaryDirectory(prefix="microlib-iso-")  # removed at exit
        params["out_dir"] = self._iso_dir.name
        self.iso_status.setText(f"Computing the isosurface of phase {phase}…")
        h = self.iso_job = self.jobs.start(isosurface_job, params, process=True)
        h.finished.connect(lambda ev, h=h: self._iso_done(h, ev))

    def _untick_iso(self) -> None:
        """A new volume (or none) has no surface yet: the check box says so."""
        self.iso_check.blockSignals(True)
        self.iso_check.setChecked(False)
        self.iso_check.blockSignals(False)
        self.iso_status.setText("")

    def _supersede_iso(self) -> None:
        """Drop the running isosurface job: its result would show a phase no longer asked for."""
        h, self.iso_job = self.iso_job, None
        if h is not None and not h.done:
            h.cancel()
            h.kill()  # marching cubes has no place to stop at: end the worker

    def _iso_done(self, handle, ev) -> None:
        from ...core.jobs import DONE

        if handle is not self.iso_job:
            if ev.state == DONE and ev.result and "path" in ev.result:
                Path(ev.result["path"]).unlink(missing_ok=True)  # superseded: nobody wants it
            return
        self.iso_job = None
        if ev.state != DONE:
            self.iso_status.setText("" if ev.state == "cancelled" else f"Isosurface failed: {ev.error}")
            return
        try:
            surf = _load_mesh(ev.result)
        except (OSError, ValueError, KeyError) as exc:
            self.iso_status.setText(f"Isosurface failed: {' '.join(str(exc).split())[:120]}")
            return
        if self.iso_check.isChecked() and self.iso_combo.currentData() == (surf or {}).get("phase"):
            self._add_surface(surf)

    def _add_surface(self, surf: dict | None) -> None:
        """Add the surface of :func:`isosurface_job` as a napari layer in the phase's (lightened) colour."""
        from napari.utils.colormaps import Colormap

        if not surf:
            self.iso_status.setText("That phase is not in the volume: no surface.")
            return
        phase = surf["phase"]
        r, g, b = surface_colour(self.colours.get(phase, (200, 200, 200)))
        cmap = Colormap([[r, g, b, 1.0], [r, g, b, 1.0]], name=f"surface phase {phase}")
        scale = tuple(self.volume_layer.scale) if self.volume_layer is not None else (1, 1, 1)
        verts = surf["vertices"]
        self.surface_layer = self.viewer.add_surface((verts, surf["faces"], np.ones(len(verts), np.float32)),
                                                     name=f"isosurface phase {phase}", colormap=cmap,
                                                     contrast_limits=(0, 1), scale=scale, shading="smooth",
                                                     metadata={"phase": phase})
        self._show_volume_beside_surface()
        self.iso_status.setText(f"Isosurface of phase {phase}: {len(surf['faces']):,} faces"
                                " (in 3D the volume is hidden while it shows).")
        self.surface_changed.emit(phase)

    def _show_volume_beside_surface(self) -> None:
        """In 3D the opaque volume rendering would hide the surface inside it: hide the volume while a
        surface shows (2D slices show both: the surface's outline over the slice)."""
        if self.volume_layer is not None:
            self.volume_layer.visible = self.surface_layer is None or self.viewer.dims.ndisplay == 2

    def _sync_iso_controls(self, phase: int) -> None:
        if self.iso_combo.currentData() != phase:
            self.iso_combo.blockSignals(True)
            self.iso_combo.setCurrentIndex(self.iso_combo.findData(phase))
            self.iso_combo.blockSignals(False)
        if not self.iso_check.isChecked():
            self.iso_check.blockSignals(True)
            self.iso_check.setChecked(True)
            self.iso_check.blockSignals(False)

    # -- pictures ---------------------------------------------------------------------------
    def grab_canvas(self) -> np.ndarray:
        """The canvas as RGBA uint8 (rendered offscreen by vispy)."""
        return np.asarray(self.qt_viewer.canvas._scene_canvas.render())

    def close_viewer(self) -> None:
        self.qt_viewer.close()


class _LabelsPlusOne:
    """Labels with phase k stored as k + 1 (napari draws label 0 as transparent background)."""

    def __init__(self, vol: np.ndarray):
        self.vol = vol

    def array(self):
        if self.vol.size > MAX_3D_VOXELS:
            # Lazy: napari reads only the slices it shows (the file stays memory-mapped).
            import dask.array as da

            d = da.from_array(self.vol, chunks=(8, *self.vol.shape[1:]))
            return d.astype(np.uint16) + 1
        v = np.asarray(self.vol)
        if v.max(initial=0) >= 254:
            return v.astype(np.uint16) + 1
        return v.astype(np.uint8) + 1

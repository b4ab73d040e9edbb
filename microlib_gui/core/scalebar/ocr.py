"""Reading one line of text with the Tesseract OCR engine, when it is installed.

Optional: scale-bar labels are first read by template matching (no engine
needed); Tesseract reads the thin, regular-weight labels that matching misses.
The engine runs as the ``tesseract`` program (Debian: ``tesseract-ocr``), fed a
PNG on stdin, so nothing is written to disk.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess

import numpy as np

#: Seconds one OCR call may take before it is abandoned (a hung engine must not hang detection).
TIMEOUT_S = 10.0

#: Characters a scale-bar label is made of (µ in both of its code points).
LABEL_CHARS = "0123456789.,µμumnp "


@functools.lru_cache(maxsize=1)
def tesseract_path() -> str | None:
    """The ``tesseract`` program, or None (``MICROLIB_OCR=0`` turns OCR off)."""
    if os.environ.get("MICROLIB_OCR", "1") == "0":
        return None
    return shutil.which("tesseract")


def available() -> bool:
    return tesseract_path() is not None


def run_line(dark_on_light: np.ndarray, scale: float = 4, chars: str = LABEL_CHARS,
             timeout: float | None = None, psm: int = 7) -> str | None:
    """Text of a single line in a uint8 grey image (dark text on a light ground); None if the engine failed.

    The image is enlarged ``scale`` times (Tesseract reads glyphs some 20-40 px
    tall best) and read with page segmentation mode ``psm`` (7: one line of
    text). Returns "" when nothing was read, None when the engine is missing,
    fails or runs past ``timeout`` seconds.
    """
    exe = tesseract_path()
    if exe is None:
        return None
    from PIL import Image

    im = Image.fromarray(np.asarray(dark_on_light, np.uint8))
    w, h = max(1, int(round(im.width * scale))), max(1, int(round(im.height * scale)))
    im = im.resize((w, h), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    try:
        r = subprocess.run([exe, "stdin", "stdout", "--psm", str(psm), "-c", f"tessedit_char_whitelist={chars}"],
                           input=buf.getvalue(), capture_output=True, timeout=timeout or TIMEOUT_S,
                           env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", "replace").strip()


def read_line(dark_on_light: np.ndarray, scale: float = 4, chars: str = LABEL_CHARS,
              timeout: float | None = None) -> str:
    """Like :func:`run_line`, but "" for a failed engine too."""
    return run_line(dark_on_light, scale, chars, timeout) or ""

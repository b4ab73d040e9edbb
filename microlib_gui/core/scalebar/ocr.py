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


def read_line(dark_on_light: np.ndarray, scale: int = 4, chars: str = LABEL_CHARS,
              timeout: float | None = None) -> str:
    """Text of a single line in a uint8 grey image (dark text on a light ground).

    The image is enlarged ``scale`` times (Tesseract wants glyphs some 20-30 px
    tall). Returns "" when the engine is missing, fails or reads nothing.
    """
    exe = tesseract_path()
    if exe is None:
        return ""
    from PIL import Image

    im = Image.fromarray(np.asarray(dark_on_light, np.uint8))
    im = im.resize((im.width * scale, im.height * scale), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    try:
        r = subprocess.run([exe, "stdin", "stdout", "--psm", "7", "-c", f"tessedit_char_whitelist={chars}"],
                           input=buf.getvalue(), capture_output=True, timeout=timeout or TIMEOUT_S,
                           env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except (OSError, subprocess.SubprocessError):
        return ""
    if r.returncode != 0:
        return ""
    return r.stdout.decode("utf-8", "replace").strip()

"""What this installation has: versions, compute devices, optional tools, folders.

Shown by ``microlib info`` and Help → About, so users (and whoever helps them)
can see at once why training is slow (no GPU), why labels are not read (no
Tesseract) or where the library lives.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=16)  # About and `info` ask again; the programs do not change meanwhile
def _tool_version(exe: str | None, *args: str) -> str | None:
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0].strip() if out else None


def torch_info() -> dict:
    """PyTorch build and the devices it can use (never raises: a broken install is reported)."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"error": f"PyTorch cannot be imported ({type(exc).__name__})"}
    info = {"version": torch.__version__, "cuda_build": torch.version.cuda, "threads": torch.get_num_threads(),
            "cuda_available": False, "gpus": []}
    try:
        if torch.cuda.is_available():
            info["cuda_available"] = True
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                info["gpus"].append({"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)})
    except Exception as exc:  # noqa: BLE001
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return info


def collect() -> dict:
    """Everything :func:`summary_lines` prints, as a JSON-able dict."""
    from .. import __version__
    from .scalebar import ocr
    from .doitpoms.cache import default_cache_root
    from .paths import default_library_path

    tesseract = ocr.tesseract_path()
    try:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - optional
        ffmpeg = None
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "torch": torch_info(),
        "tools": {
            "tesseract": {"path": tesseract, "version": _tool_version(tesseract, "--version"),
                          "use": "reads thin scale-bar labels (optional)"},
            "ffmpeg": {"path": ffmpeg, "use": "writes the 360° movies"},
            "sbatch": {"path": shutil.which("sbatch"), "use": "`microlib build --executor slurm`"},
            "Xvfb": {"path": shutil.which("Xvfb"), "use": "self-test and GUI tests without a display"},
        },
        "library": str(default_library_path()),
        "doitpoms_cache": str(default_cache_root()),
    }


def summary_lines(info: dict | None = None) -> list[str]:
    """Human-readable lines of :func:`collect`."""
    i = info or collect()
    t = i["torch"]
    if "error" in t:
        compute = t["error"]
    elif t["cuda_available"]:
        compute = "GPU: " + ", ".join(f"{g['name']} ({g['memory_gb']} GB)" for g in t["gpus"])
    else:
        why = "a CPU-only PyTorch build" if not t["cuda_build"] else "no usable CUDA GPU"
        compute = f"CPU only ({i['cpu_cores']} cores; {why}: MicroLib's network trains for days; see the README for GPUs)"
    lines = [f"MicroLib Studio {i['version']}{' (built app)' if i['frozen'] else ''}, Python {i['python']}",
             f"{i['platform']}",
             f"PyTorch {t.get('version', '?')}" + (f" (CUDA {t['cuda_build']})" if t.get("cuda_build") else " (CPU)"),
             f"Compute: {compute}"]
    for name, tool in i["tools"].items():
        state = tool.get("version") or tool["path"] or "not found"
        lines.append(f"{name}: {state} — {tool['use']}")
    lines += [f"Default library: {i['library']}", f"DoITPoMS cache: {i['doitpoms_cache']}"]
    return lines


def detect_devices() -> tuple[bool, str]:
    """(CUDA available, a short description of what was found)."""
    try:
        import torch

        if torch.cuda.is_available():
            return True, f"GPU: {torch.cuda.get_device_name(0)}"
        return False, f"CPU only ({os.cpu_count()} cores; no CUDA GPU found)"
    except Exception:  # noqa: BLE001 - a broken torch install must not stop the panel
        return False, "CPU only"

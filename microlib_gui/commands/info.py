"""``microlib info``: versions, compute devices, optional tools and folders of this installation."""

from __future__ import annotations

from . import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("info", help="what this installation has: versions, GPU or CPU, optional tools, folders")
    add_json_flag(p)
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    from ..core.sysinfo import collect, summary_lines

    info = collect()
    emit(args, info, "\n".join(summary_lines(info)))
    return 0

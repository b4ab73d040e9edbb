"""Entry point of a local build worker: ``python -m microlib_gui.core.build.worker ROOT BUILD ENTRY``.

Exit code 0 when the entry's job ends done or unavailable, 1 when it fails or is
cancelled (the state itself is in the build folder; see :mod:`.state`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .runner import run_entry_job
    from .state import DONE, UNAVAILABLE

    root, build_id, entry_id = (argv if argv is not None else sys.argv[1:])[:3]
    state = run_entry_job(root, build_id, int(entry_id))
    return 0 if state in (DONE, UNAVAILABLE) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Showing a job's :class:`~microlib_gui.core.jobs.Progress` event on a progress bar."""

from __future__ import annotations


def show_progress(bar, ev) -> None:
    """Set ``bar`` (a QProgressBar) to ``ev.step`` of ``ev.total`` (a total of 0 counts as 1)."""
    bar.setRange(0, max(ev.total, 1))
    bar.setValue(ev.step)

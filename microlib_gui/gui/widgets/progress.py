"""Showing a job's :class:`~microlib_gui.core.jobs.Progress` event on a progress bar."""

from __future__ import annotations


def show_progress(bar, ev, text: bool = False) -> None:
    """Set ``bar`` (a QProgressBar) to ``ev.step`` of ``ev.total`` (a total of 0 counts as 1).

    With ``text``, the bar also reads the event's message (the stage), e.g.
    "tortuosity · 4/7".
    """
    bar.setRange(0, max(ev.total, 1))
    bar.setValue(ev.step)
    if text:
        bar.setTextVisible(True)
        # '%' starts Qt's placeholders (%p, %v, %m): a literal one is written '%%'.
        bar.setFormat(f"{ev.message.replace('%', '%%')} · %v/%m" if ev.message else "%v/%m")

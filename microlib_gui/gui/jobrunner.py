"""One Qt adapter over :mod:`microlib_gui.core.jobs`: jobs as objects with progress/finished signals.

Panels start long work with :meth:`JobRunner.start` (a thread, or with
``process=True`` a process of its own: training, GAN inpainting) and connect to
the handle's signals; one timer polls every running job. Jobs given the same
``queue`` name run one after another (the Train step's queue of entries).
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.jobs import CANCELLED, Finished, ProcessJob, ThreadJob

POLL_MS = 100

#: Python's cyclic garbage collector runs only in the GUI thread while jobs run in threads: started
#: anywhere (a worker's allocation), a collection can destroy Qt objects from that thread and crash
#: the app. pyqtgraph's collector disables automatic collection and collects on a timer here.
_collector = None


def _collect_in_gui_thread() -> None:
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=0.5)


class JobHandle(QObject):
    """A job started (or queued) through the runner."""

    #: a :class:`~microlib_gui.core.jobs.Progress` event
    progress = Signal(object)
    #: the :class:`~microlib_gui.core.jobs.Finished` event (done, failed or cancelled)
    finished = Signal(object)
    #: the job left its queue and started
    started = Signal()

    def __init__(self, fn: Callable, params: dict[str, Any], process: bool, prepare: Callable | None,
                 tag: Any = None):
        super().__init__()
        self.fn, self.params, self.process, self.prepare, self.tag = fn, dict(params), process, prepare, tag
        self.job: ThreadJob | ProcessJob | None = None
        self.result: Finished | None = None
        self._cancel_requested = False

    @property
    def running(self) -> bool:
        return self.job is not None and self.result is None

    @property
    def queued(self) -> bool:
        return self.job is None and self.result is None

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def pid(self) -> int | None:
        return self.job.pid if isinstance(self.job, ProcessJob) else None

    def cancel(self) -> None:
        """Ask the job to stop at its next check (a queued job is dropped)."""
        self._cancel_requested = True
        if self.job is not None:
            self.job.cancel()

    def kill(self) -> None:
        if isinstance(self.job, ProcessJob):
            self.job.kill()

    def wait(self, timeout: float | None = None) -> Finished | None:
        """Block until the job ends (closing the window); emits the signals as polling would."""
        if self.job is None:
            return None
        fin = self.job.wait(timeout)
        if fin is not None and self.result is None:
            self.result = fin
            self.finished.emit(fin)
        return fin

    def _launch(self) -> None:
        if self.prepare is not None:
            self.params = self.prepare(self) or self.params
        cls = ProcessJob if self.process else ThreadJob
        self.job = cls(self.fn, self.params).start()
        self.started.emit()

    def _poll(self) -> None:
        for ev in self.job.poll():
            if isinstance(ev, Finished):
                self.result = ev
                self.finished.emit(ev)
            else:
                self.progress.emit(ev)


class JobRunner(QObject):
    """Starts jobs and polls them on one timer."""

    def __init__(self, parent: QObject | None = None, poll_ms: int = POLL_MS):
        super().__init__(parent)
        _collect_in_gui_thread()
        self.handles: list[JobHandle] = []
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self._queues: dict[str, list[JobHandle]] = {}

    def start(self, fn: Callable, params: dict[str, Any] | None = None, *, process: bool = False,
              queue: str | None = None, prepare: Callable[[JobHandle], dict | None] | None = None,
              tag: Any = None) -> JobHandle:
        """Run ``fn(ctx, **params)``; with ``queue``, after the jobs queued before it.

        ``prepare(handle)`` runs just before the job starts (e.g. to make its run
        folder) and may return new params.
        """
        h = JobHandle(fn, params or {}, process, prepare, tag)
        h.setParent(self)
        self.handles.append(h)
        if queue is None:
            h._launch()
        else:
            self._queues.setdefault(queue, []).append(h)
            self._advance(queue)
        self.timer.start()
        return h

    def queued(self, queue: str) -> list[JobHandle]:
        """The jobs of ``queue`` not finished yet, the running one first."""
        return [h for h in self._queues.get(queue, []) if not h.done]

    def _advance(self, queue: str) -> None:
        q = self._queues.get(queue, [])
        q[:] = [h for h in q if not h.done]
        for h in list(q):
            if h.queued and h._cancel_requested:  # dropped before its turn
                h.result = Finished(CANCELLED)
                h.finished.emit(h.result)
                q.remove(h)
        if q and q[0].queued:
            try:
                q[0]._launch()
            except Exception as exc:  # noqa: BLE001 - a job that cannot start fails; the GUI goes on
                from ..core.jobs import FAILED

                head = q.pop(0)
                head.result = Finished(FAILED, error=f"could not start: {' '.join(str(exc).split())[:200]}")
                head.finished.emit(head.result)
                self._advance(queue)

    def poll(self) -> None:
        for h in list(self.handles):
            if h.running:
                h._poll()
        for name in list(self._queues):
            self._advance(name)
        self.handles = [h for h in self.handles if not h.done]
        if not self.handles:
            self.timer.stop()

    @property
    def busy(self) -> bool:
        return any(not h.done for h in self.handles)

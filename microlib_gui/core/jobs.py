"""Long work as jobs: parameters in, progress events out, cancel, errors as one line.

One mechanism for inpainting, training, generation, statistics and builds.
A *job function* is a plain function ``fn(ctx, **params) -> result`` that calls
``ctx.report(...)`` now and then and ``ctx.check_cancelled()`` between units of
work. It can run

* inline (CLI): :func:`run_inline` — progress goes to a callback;
* in a thread (GUI, short work): :class:`ThreadJob`;
* in its own process (GUI, training): :class:`ProcessJob` — a crash or
  out-of-memory there cannot take the GUI down.

The GUI polls ``job.poll()`` from a timer; nothing here imports Qt.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing as mp
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import MicrolibError

if TYPE_CHECKING:  # numpy is imported by the jobs that send arrays, not here
    import numpy as np

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class JobCancelled(Exception):
    """Raised inside a job function by :meth:`JobContext.check_cancelled`."""


@dataclass
class Progress:
    """One progress event."""

    step: int
    total: int
    message: str = ""
    eta_s: float | None = None
    elapsed_s: float = 0.0
    scalars: dict[str, float] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


@dataclass
class Finished:
    """The last event of a job."""

    state: str  # DONE, FAILED or CANCELLED
    result: Any = None
    error: str | None = None  # one line for the user
    details: str | None = None  # traceback, for the log only


class JobContext:
    """Handed to job functions: report progress, check for cancellation."""

    def __init__(self, emit: Callable[[Progress], None], cancel_event, min_interval_s: float = 0.0):
        self._emit = emit
        self._cancel = cancel_event
        self._t0 = time.monotonic()
        self._last = -1e9
        self._min_interval = min_interval_s

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def report(self, step: int, total: int, message: str = "", scalars: dict[str, float] | None = None,
               images: dict[str, np.ndarray] | None = None, force: bool = False) -> None:
        """Emit a progress event (rate-limited unless it carries images, is the last, or ``force``)."""
        now = time.monotonic()
        last = step >= total
        if not (force or images or last) and now - self._last < self._min_interval:
            return
        self._last = now
        elapsed = now - self._t0
        eta = elapsed / step * (total - step) if step > 0 and total else None
        self._emit(Progress(step, total, message, eta, elapsed, dict(scalars or {}), dict(images or {})))


def _describe(exc: BaseException) -> tuple[str, str]:
    """A one-line message for the user and the full traceback for the log."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, MicrolibError):
        return str(exc), details
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "out of memory: try a smaller batch or volume, or run on the CPU", details
    return f"{name}: {text[:200]}" if text else name, details


def resolve(target: str | Callable) -> Callable:
    """``"package.module:function"`` → the function (how process jobs name their work)."""
    if callable(target):
        return target
    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def run_inline(target: str | Callable, params: dict[str, Any] | None = None,
               on_progress: Callable[[Progress], None] | None = None,
               cancel_event: threading.Event | None = None) -> Any:
    """Run a job function in this thread. Exceptions propagate (the CLI formats them)."""
    ctx = JobContext(on_progress or (lambda p: None), cancel_event or threading.Event())
    return resolve(target)(ctx, **(params or {}))


class _JobBase:
    def __init__(self) -> None:
        self.state = QUEUED
        self.last_progress: Progress | None = None
        self.finished: Finished | None = None
        self.started_at: float | None = None

    def _absorb(self, events: list) -> list:
        for ev in events:
            if isinstance(ev, Progress):
                self.last_progress = ev
            elif isinstance(ev, Finished):
                self.finished = ev
                self.state = ev.state
        return events

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    def wait(self, timeout: float | None = None, poll_s: float = 0.05) -> Finished | None:
        """Block until finished (for tests and the CLI); returns the Finished event."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            self.poll()
            if end is not None and time.monotonic() > end:
                return None
            time.sleep(poll_s)
        return self.finished


class ThreadJob(_JobBase):
    """Run a job function in a daemon thread."""

    def __init__(self, target: str | Callable, params: dict[str, Any] | None = None, min_interval_s: float = 0.05):
        super().__init__()
        self._fn = resolve(target)
        self._params = dict(params or {})
        self._events: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._min_interval = min_interval_s

    def start(self) -> "ThreadJob":
        self.state = RUNNING
        self.started_at = time.time()
        self._thread.start()
        return self

    def _run(self) -> None:
        ctx = JobContext(self._events.put, self._cancel, self._min_interval)
        try:
            result = self._fn(ctx, **self._params)
            self._events.put(Finished(DONE, result=result))
        except JobCancelled:
            self._events.put(Finished(CANCELLED))
        except BaseException as exc:  # noqa: BLE001 - everything becomes a one-line failure
            msg, details = _describe(exc)
            self._events.put(Finished(FAILED, error=msg, details=details))

    def cancel(self) -> None:
        self._cancel.set()

    def poll(self) -> list:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        return self._absorb(events)


def _process_main(target: str | Callable, params: dict[str, Any], events, cancel, min_interval_s: float) -> None:
    ctx = JobContext(events.put, cancel, min_interval_s)
    try:
        result = resolve(target)(ctx, **params)
        events.put(Finished(DONE, result=result))
    except JobCancelled:
        events.put(Finished(CANCELLED))
    except BaseException as exc:  # noqa: BLE001
        msg, details = _describe(exc)
        events.put(Finished(FAILED, error=msg, details=details))


#: How long a worker that reported its end may take to exit before it is killed.
REAP_GRACE_S = 30.0


def _join_or_kill(proc, grace_s: float) -> None:
    """Wait for a worker that has reported its end; kill it if it lingers. Either way it is reaped."""
    proc.join(grace_s)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


class ProcessJob(_JobBase):
    """Run a job function (a module-level function, or its ``"module:function"`` name) in its own process.

    If the process dies without reporting (killed, segfault, out-of-memory
    killer), the job fails with its exit code instead of hanging. Once the job
    is finished its process is waited for (in a background thread, so polling
    never blocks): no zombie is left behind, however long the app runs on. A job
    still running when the app leaves with ``os._exit`` (the Train step's "Keep
    running") is not waited for: it goes on on its own.
    """

    def __init__(self, target: str | Callable, params: dict[str, Any] | None = None, min_interval_s: float = 0.1):
        super().__init__()
        if callable(target) and "<" in getattr(target, "__qualname__", "<"):
            raise TypeError("a process job needs a module-level function (lambdas and closures cannot be sent)")
        ctxm = mp.get_context("spawn")  # fork is unsafe with Qt and torch threads
        self._events = ctxm.Queue()
        self._cancel = ctxm.Event()
        self._proc = ctxm.Process(target=_process_main,
                                  args=(target, dict(params or {}), self._events, self._cancel, min_interval_s),
                                  daemon=False)
        self._reaper: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self) -> "ProcessJob":
        self.state = RUNNING
        self.started_at = time.time()
        self._proc.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next check (it keeps its last checkpoint)."""
        self._cancel.set()

    def kill(self) -> None:
        """Stop the process now."""
        if self._proc.is_alive():
            self._proc.kill()

    def poll(self) -> list:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except (queue.Empty, EOFError, OSError):
                break
        self._absorb(events)
        if not self.done and self._proc.exitcode is not None and not self._proc.is_alive():
            # Drain once more: the final event may have arrived just before exit.
            time.sleep(0.05)
            try:
                while True:
                    self._absorb([self._events.get_nowait()])
            except (queue.Empty, EOFError, OSError):
                pass
            if not self.done:
                code = self._proc.exitcode
                why = "killed" if code and code < 0 else f"exit code {code}"
                if code == -9:
                    why = "killed (out of memory or kill -9)"
                fin = Finished(CANCELLED if self._cancel.is_set() else FAILED,
                               error=f"the worker process stopped unexpectedly ({why})")
                events.append(fin)
                self._absorb([fin])
        if self.done:
            self._reap()
        return events

    def _reap(self) -> None:
        # Every event up to Finished has been read, so the worker's queue is empty and
        # it can exit; waiting for it here would block the GUI's poll, hence the thread.
        if self._reaper is None:
            self._reaper = threading.Thread(target=_join_or_kill, args=(self._proc, REAP_GRACE_S), daemon=True,
                                            name=f"reap-worker-{self._proc.pid}")
            self._reaper.start()

    def wait(self, timeout: float | None = None, poll_s: float = 0.05) -> Finished | None:
        """Block until finished and its process has exited; returns the Finished event."""
        t0 = time.monotonic()
        fin = super().wait(timeout, poll_s)
        if fin is not None and self._reaper is not None:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - t0))
            self._reaper.join(REAP_GRACE_S if left is None else min(left, REAP_GRACE_S))
        return fin

    def join(self, timeout: float | None = None) -> None:
        self._proc.join(timeout)


class JobQueue:
    """Run jobs one after another (the Train step queues several entries)."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Callable[[], _JobBase]]] = []
        self.current: tuple[str, _JobBase] | None = None
        self.history: list[tuple[str, _JobBase]] = []

    def add(self, label: str, factory: Callable[[], _JobBase]) -> None:
        self.pending.append((label, factory))

    def poll(self) -> list[tuple[str, list]]:
        """Advance the queue; returns ``[(label, events)]`` seen since the last poll."""
        out = []
        if self.current is not None:
            label, job = self.current
            out.append((label, job.poll()))
            if job.done:
                self.history.append(self.current)
                self.current = None
        if self.current is None and self.pending:
            label, factory = self.pending.pop(0)
            self.current = (label, factory().start())
        return out


# -- diagnostics (used by the reliability tests and `microlib build --steps selftest`-style checks) --
def _selftest_allocate(ctx: JobContext, gigabytes: float = 64.0, headroom_mb: int = 512) -> int:
    """Ask for more memory than this process may have: proves out-of-memory is reported cleanly."""
    import resource

    import numpy as np

    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = usage + headroom_mb * 2**20 + 2**30  # address space is larger than resident memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    block = np.ones(int(gigabytes * 2**30), dtype=np.uint8)
    return int(block[-1])


def _selftest_sleep(ctx: JobContext, seconds: float = 10.0) -> float:
    """Sleep in small steps, reporting progress (a stand-in for long work)."""
    t0 = time.monotonic()
    steps = max(1, int(seconds * 10))
    for i in range(steps):
        ctx.check_cancelled()
        time.sleep(0.1)
        ctx.report(i + 1, steps, "sleeping")
    return time.monotonic() - t0


def fmt_duration(s: float | None) -> str:
    """Seconds for people: ``42 s``, ``9 min 42 s``, ``166 h 40 min`` (``unknown`` for None/inf)."""
    if s is None or not math.isfinite(s):
        return "unknown"
    s = int(round(s))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"

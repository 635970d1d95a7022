"""Optional TensorFlow profiler traces of chosen training steps.

Host code. With ``Config(profile_steps=(first, last))`` and/or
``Config(profile_on_slow_step=True)`` and a `logdir`, `StepProfiler` runs
`tf.profiler.experimental.start(logdir)` / `stop()` around a short window of
steps and wraps each step of the window, data fetch included, in
``tf.profiler.experimental.Trace("train", step_num=step, _r=1)``, so XProf
(the TensorBoard Profile tab, ``pip install tensorboard-plugin-profile``)
sees step markers. Each trace is written to

    LOGDIR/plugins/profile/<YYYY_MM_DD_HH_MM_SS>/<host>.xplane.pb

Windows:

- ``profile_steps=(first, last)``: global steps first..last, inclusive.
- ``profile_on_slow_step``: after a ``slow_step`` finding at step s, the next
  `profile_length` steps; when slow steps recur with a period p (the two last
  ones p steps apart, p > `profile_length`), the window starts at the step
  before the next expected one, s + p - 1, so the trace holds that slow step
  and a normal one. At most `profile_max_traces` such windows per run.

Traps it avoids: the trace folder is named after the second at which a trace
is written, so two traces in the same second overwrite each other; a window
that would start in the second of the previous trace's end starts a step
later instead. A second `start` while a profiler runs raises
`AlreadyExistsError` (e.g. from ``keras.callbacks.TensorBoard(profile_batch=
...)``): gradtrace then warns and traces nothing more. A running trace is
stopped and written when `fit` ends, also on an exception.

The profiler is started before a step's clock starts and stopped after it
ends, so its own start/stop time is in no `StepTime`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
import warnings

__all__ = ["StepProfiler"]

logger = logging.getLogger(__name__)

MAX_STEPS = 10


class StepProfiler:
    """Starts and stops the TensorFlow profiler around windows of steps.

    Args:
        logdir: the run's log directory (traces go to ``logdir/plugins/profile``).
        steps: ``(first, last)`` global steps to trace, inclusive, or None.
        on_slow_step: trace a window after each reported slow step.
        length: steps per slow-step window (1..10).
        max_traces: at most this many slow-step windows.

    The fit loop calls `begin_step(step)` before a step's clock starts,
    `end_step(step)` after it stops, `slow_step(step)` for every
    ``slow_step`` finding, and `close()` at the end (also on errors).

    Example:

    ```python
    prof = StepProfiler("runs/a", steps=(10, 14))
    for step in range(20):
        prof.begin_step(step); train_one_step(); prof.end_step(step)
    prof.close()
    print(prof.traces)  # [(10, 14, 'runs/a/plugins/profile/2026_...')]
    ```
    """

    def __init__(
        self,
        logdir: str,
        *,
        steps: tuple[int, int] | None = None,
        on_slow_step: bool = False,
        length: int = 5,
        max_traces: int = 2,
    ):
        import tensorflow as tf

        self._tf = tf
        self.logdir = os.fspath(logdir)
        self.on_slow_step = bool(on_slow_step)
        self.length = max(1, min(int(length), MAX_STEPS))
        self.max_traces = int(max_traces)
        self.pending: list[tuple[int, int]] = []
        if steps is not None:
            first, last = int(steps[0]), int(steps[1])
            self.pending.append((first, min(last, first + MAX_STEPS - 1)))
        self.traces: list[tuple[int, int, str | None]] = []
        self.slow_steps: collections.deque[int] = collections.deque(maxlen=2)
        self._triggered = 0
        self._running = False
        self._disabled = False
        self._first = self._last = None
        self._stop_at = None
        self._before: set[str] = set()
        self._trace = None
        self._last_stop_second = None

    @classmethod
    def from_config(cls, config, logdir) -> StepProfiler | None:
        """The run's profiler, or None when no profiling is asked for."""
        if config.profile_steps is None and not config.profile_on_slow_step:
            return None
        if logdir is None:
            warnings.warn(
                "gradtrace: Config(profile_steps=..., profile_on_slow_step=...) "
                "needs a logdir to write the profiler trace to; received "
                "logdir=None, so no trace is captured. Pass "
                "gradtrace.fit(..., logdir='runs/a').",
                stacklevel=3,
            )
            return None
        return cls(
            logdir,
            steps=config.profile_steps,
            on_slow_step=config.profile_on_slow_step,
            length=config.profile_length,
            max_traces=config.profile_max_traces,
        )

    @property
    def running(self) -> bool:
        return self._running

    # -- per step -------------------------------------------------------------
    def begin_step(self, step: int) -> None:
        if not self._running and self.pending and not self._disabled:
            self._maybe_start(step)
        if self._running:
            self._last = step
            self._trace = self._tf.profiler.experimental.Trace(
                "train", step_num=step, _r=1
            )
            self._trace.__enter__()

    def end_step(self, step: int) -> None:
        if self._trace is not None:
            trace, self._trace = self._trace, None
            trace.__exit__(None, None, None)
        if self._running and step >= self._stop_at:
            self._stop(step)

    def slow_step(self, step: int) -> None:
        """Schedules a window after a slow step (when `on_slow_step`)."""
        self.slow_steps.append(int(step))
        if not self.on_slow_step or self._triggered >= self.max_traces:
            return
        if self._running and step < self._stop_at:
            return  # the running window already covers what follows
        first = step + 1
        if len(self.slow_steps) >= 2:
            period = self.slow_steps[-1] - self.slow_steps[-2]
            if period > self.length:
                first = step + period - 1
        last = first + self.length - 1
        if any(a <= last and first <= b for a, b in self.pending):
            return  # a waiting window already covers these steps
        self.pending.append((first, last))
        self.pending.sort()
        self._triggered += 1

    def close(self) -> None:
        """Stops and writes a running trace (safe to call more than once)."""
        if self._trace is not None:
            trace, self._trace = self._trace, None
            # Closing must not mask the error that ended the run.
            with contextlib.suppress(Exception):
                trace.__exit__(None, None, None)
        if self._running:
            self._stop(self._last)
        self.pending.clear()

    # -- internals ----------------------------------------------------------------
    def _maybe_start(self, step: int) -> None:
        while self.pending and self.pending[0][1] < step:
            logger.info("gradtrace: profile window %s was missed", self.pending[0])
            self.pending.pop(0)
        if not self.pending or self.pending[0][0] > step:
            return
        first, last = self.pending[0]
        if self._last_stop_second == int(time.time()):
            # Same second as the last trace's folder: move the window one step.
            self.pending[0] = (first + 1, last + 1)
            return
        self.pending.pop(0)
        try:
            self._tf.profiler.experimental.start(self.logdir)
        except self._tf.errors.AlreadyExistsError:
            self._disabled = True
            warnings.warn(
                "gradtrace: another TensorFlow profiler is already running "
                "(e.g. keras.callbacks.TensorBoard(profile_batch=...)), so "
                "gradtrace captures no trace in this run. Use one of the two.",
                stacklevel=2,
            )
            return
        self._running = True
        self._first = self._last = step
        self._stop_at = last
        self._before = self._trace_dirs()

    def _stop(self, last: int) -> None:
        self._running = False
        path = None
        try:
            self._tf.profiler.experimental.stop()
        except self._tf.errors.OpError as e:
            warnings.warn(
                f"gradtrace: the profiler trace could not be written: {e}",
                stacklevel=2,
            )
        else:
            new = sorted(self._trace_dirs() - self._before)
            path = os.path.join(self._profile_root(), new[-1]) if new else None
        self._last_stop_second = int(time.time())
        self.traces.append((self._first, last, path))
        logger.info(
            "gradtrace: profiler trace of steps %d-%d written to %s",
            self._first,
            last,
            path,
        )
        self._first = self._last = self._stop_at = None
        # Windows that the trace just covered are done.
        self.pending = [w for w in self.pending if w[1] > last]

    def _profile_root(self) -> str:
        return os.path.join(self.logdir, "plugins", "profile")

    def _trace_dirs(self) -> set[str]:
        try:
            return set(os.listdir(self._profile_root()))
        except OSError:
            return set()

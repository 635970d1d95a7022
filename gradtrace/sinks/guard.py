"""Logging never stops training: a sink whose writes fail is closed, not fatal.

A full disk, a logdir removed or made read-only mid-run, an event file that
cannot be written: the failing sink gives ONE warning that names the logdir
and the error, is closed, and ignores every later call. Training, the
detectors, `history.findings` and the console warnings go on.
"""

from __future__ import annotations

import contextlib
import warnings


class Guarded:
    """Wraps a sink: its methods, minus the failures listed in `errors`.

    Args:
        sink: the sink (`TensorBoardSink`, `JsonlSink`).
        what: what it writes, for the warning ("TensorBoard event files").
        logdir: the run's logdir, for the warning.
        errors: the exception types that mean "cannot write" (OSError and
            TensorFlow's file errors); anything else is a bug and propagates.
    """

    def __init__(self, sink, what: str, logdir: str, errors: tuple):
        self._sink = sink
        self._what = what
        self._logdir = logdir
        self._errors = errors
        self.failed: BaseException | None = None

    def __getattr__(self, name):
        attr = getattr(self._sink, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.failed is not None:
                return None
            try:
                return attr(*args, **kwargs)
            except self._errors as e:
                self._fail(e)
                return None

        return call

    def _fail(self, error: BaseException) -> None:
        self.failed = error
        warnings.warn(
            f"gradtrace: cannot write {self._what} in logdir {self._logdir!r} "
            f"({type(error).__name__}: {error}). Stopped writing them; training "
            "and diagnosis go on (findings stay on history.findings / "
            "tracer.findings and the console). Free space or fix the folder's "
            "permissions for the next run.",
            RuntimeWarning,
            stacklevel=4,
        )
        # Closing a broken writer may fail again: nothing more to say then.
        with contextlib.suppress(Exception):
            self._sink.close()

"""`gradtrace.TraceHistory`: Keras' `History` plus what gradtrace found."""

from __future__ import annotations

import keras

from .findings import Finding
from .records import StepTime


class TraceHistory(keras.callbacks.History):
    """What `gradtrace.fit` returns: a `keras.callbacks.History` with more.

    `.history`, `.epoch`, `.params` and `.model` work as with `model.fit`.

    Attributes:
        findings: `list[gradtrace.Finding]`, in order of first occurrence.
        logdir: the run's log directory, or None.
        step_times: `list` of per-step timing records with fields `step`,
            `epoch`, `total_ms`, `data_ms`, `compute_ms`, `host_ms`,
            `retraced` (and `retrace_reason`).

    Example:

    ```python
    history = gradtrace.fit(model, x, y, epochs=3, logdir="runs/a")
    print(history.history["loss"], [f.kind for f in history.findings])
    ```
    """

    def __init__(self, logdir: str | None = None):
        super().__init__()
        self.findings: list[Finding] = []
        self.logdir = logdir
        self.step_times: list[StepTime] = []

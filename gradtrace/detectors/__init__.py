"""Detectors: pure-numpy rules over records, one module per finding kind.

Contract: a detector is a small class built with the run's `Config` and the
probed layers (`tuple[LayerInfo, ...]`, forward order). It is fed records in
step order (`observe_stats(StepStats)` and/or `observe_time(StepTime)`), may
have a run-level `finish()`, and returns a list of `Detection`s (possibly
empty) from each call. Detectors never import TensorFlow, so the live fit
loop and `gradtrace report` apply exactly the same rules. `Diagnoser`
(gradtrace/diagnose.py) turns Detections into Findings (one per kind+layer).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Detection:
    kind: str
    step: int
    layer: str | None
    value: float | None
    threshold: float | None
    message: str
    hint: str
    severity: str | None = None  # None: the kind's default (findings.KINDS)

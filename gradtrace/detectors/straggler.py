"""`straggler`: under MultiWorkerMirroredStrategy, one worker holds the others up.

A slow-step cause of its own. Every worker times its steps; after each step
the fit loop all-gathers each worker's *own* part of the step, its data wait
plus its host work (``StepTime.worker_ms``, in task order; at an epoch's
first step its host work only: there every worker waits for the slowest to
start the epoch, iterator start-up and the chief's epoch-end logging
included, which is nobody's own delay): the device part
is not its own, since a fast worker's compute includes waiting for a slow one
in the gradient all-reduce. A step is a straggler step when one worker's own
part exceeds the median of the *other* workers' by more than
``max(slow_step_min_ms, (slow_step_factor - 1) x that median)`` (defaults
40 ms and 2x: the same floor and factor as `slow_step`, so ordinary jitter
never fires). One finding per run with a count; `value` is the straggler's excess.

Numpy only: never imports TensorFlow.
"""

from __future__ import annotations

import numpy as np

from ..records import StepTime
from . import Detection

KIND = "straggler"
HINT = (
    "Look at that worker: a slower input pipeline (shard the data evenly, "
    "prefetch, cache), a busier or slower machine, or a callback/logging that "
    "only it runs; the other workers wait for it at every gradient all-reduce."
)


class StragglerDetector:
    def __init__(self, config):
        self.config = config

    def observe(self, t: StepTime) -> list[Detection]:
        own = t.worker_ms
        if not own or len(own) < 2:
            return []
        own = np.asarray(own, dtype=np.float64)
        k = int(np.argmax(own))
        med = float(np.median(np.delete(own, k)))  # the others' typical part
        excess = float(own[k] - med)
        limit = max(
            self.config.slow_step_min_ms, (self.config.slow_step_factor - 1.0) * med
        )
        if excess <= limit:
            return []
        return [
            Detection(
                kind=KIND,
                step=t.step,
                layer=None,
                value=excess,
                threshold=limit,
                message=(
                    f"Worker {k} held step {t.step} up: its own input wait and host "
                    f"work took {own[k]:.1f} ms against {med:.1f} ms for the other "
                    f"{len(own) - 1} worker(s) (median; excess {excess:.1f} ms, threshold "
                    f"{limit:.1f} ms); the others waited for it in the all-reduce."
                ),
                hint=HINT,
            )
        ]

"""`input_bound`: the run spends a large share of its step time waiting for data.

Rule (thresholds are `gradtrace.Config` fields): over each block of
`input_bound_window` comparable steps (compile steps, each epoch's first
step and steps found slow by the `slow_step` rule left out: an isolated stall
is a slow step, not an input-bound run),

    sum(data_ms) >= input_bound_share * sum(total_ms)
    and mean(data_ms) >= input_bound_min_ms

is one detection at the block's last step; `finish()` judges a trailing
block of at least ``min(20, input_bound_window)`` steps. A run input-bound
throughout is one finding whose count is the number of such blocks.

Numpy only: never imports TensorFlow.
"""

from __future__ import annotations

from ..records import StepTime
from . import Detection

KIND = "input_bound"
MIN_TAIL = 20
HINT = (
    "Overlap input with training: dataset.map(f, "
    "num_parallel_calls=tf.data.AUTOTUNE), .cache() after the expensive "
    "steps when the data fit in memory, and .prefetch(tf.data.AUTOTUNE) "
    "last; move Python generator work into tf.data."
)


class InputBoundDetector:
    """Finds blocks of steps dominated by the wait for the input pipeline.

    Args:
        config: a `gradtrace.Config` (the ``input_bound_*`` fields).
    """

    def __init__(self, config):
        self.share = float(config.input_bound_share)
        self.min_ms = float(config.input_bound_min_ms)
        self.window = int(config.input_bound_window)
        self._reset()

    def _reset(self):
        self.n = 0
        self.data = 0.0
        self.total = 0.0
        self.first = None
        self.last = None

    def observe(
        self,
        t: StepTime,
        *,
        heavy: bool,
        first_of_epoch: bool,
        compile_step: bool,
        slow: bool = False,
    ) -> list[Detection]:
        if compile_step or first_of_epoch or t.retraced or slow:
            return []
        if self.first is None:
            self.first = t.step
        self.last = t.step
        self.n += 1
        self.data += t.data_ms
        self.total += t.total_ms
        if self.n >= self.window:
            return self._judge()
        return []

    def finish(self) -> list[Detection]:
        if self.n >= min(MIN_TAIL, self.window):
            return self._judge()
        return []

    def _judge(self) -> list[Detection]:
        n, data, total, first, last = (
            self.n,
            self.data,
            self.total,
            self.first,
            self.last,
        )
        self._reset()
        if total <= 0:
            return []
        share = data / total
        if share < self.share or data / n < self.min_ms:
            return []
        return [
            Detection(
                kind=KIND,
                step=last,
                layer=None,
                value=share,
                threshold=self.share,
                message=(
                    f"Steps {first}-{last} spent {share:.0%} of their time waiting "
                    f"for the input pipeline ({data / n:.1f} ms of "
                    f"{total / n:.1f} ms per step)."
                ),
                hint=HINT,
            )
        ]

"""`retracing`: the step function was traced again after its first call.

Every retrace re-runs the Python step and recompiles it (hundreds of ms);
one that repeats every few steps can dominate a run. Rule: a retraced step
that is not the first call of its step variant (light or heavy) is one
detection once `Config.retrace_min_count` such retraces happened; the
message names what changed (`StepTime.retrace_reason`) and the hint is
chosen from it.

Numpy only: never imports TensorFlow.
"""

from __future__ import annotations

from ..records import StepTime
from . import Detection

KIND = "retracing"
HINTS = {
    "last batch": (
        "The last batch of an epoch is smaller: batch with "
        "drop_remainder=True, or pass steps_per_epoch so every batch has the "
        "same shape."
    ),
    "Python value": (
        "A Python value reaches the step as an argument and every new value "
        "is a new trace: pass it as a tensor (tf.constant / a tf.data "
        "element) instead."
    ),
    "shape": (
        "Input shapes vary between batches: pad or bucket them to a few "
        "fixed shapes, or give the input a None dimension."
    ),
    "dtype": "Cast the inputs to one dtype in the input pipeline.",
    "structure": "Yield batches with the same structure (same keys / tuple length).",
}
GENERIC_HINT = (
    "Something the step function depends on changed: pass tensors with a "
    "fixed signature and avoid Python objects that change between calls."
)


def hint_for(reason: str | None) -> str:
    """The fix for a retrace, picked from the words of its reason."""
    for key, hint in HINTS.items():
        if reason and key in reason:
            return hint
    return GENERIC_HINT


class RetracingDetector:
    """Reports retraces after the first call of each step variant.

    Args:
        config: a `gradtrace.Config` (``retrace_min_count``).
    """

    def __init__(self, config):
        self.min_count = int(config.retrace_min_count)
        self.count = 0

    def observe(
        self, t: StepTime, *, heavy: bool, first_of_epoch: bool, compile_step: bool
    ) -> list[Detection]:
        if not t.retraced or compile_step:
            return []
        self.count += 1
        if self.count < self.min_count:
            return []
        variant = "heavy (histogram)" if heavy else "training"
        why = t.retrace_reason or "its input signature changed"
        return [
            Detection(
                kind=KIND,
                step=t.step,
                layer=None,
                value=float(self.count),
                threshold=float(self.min_count),
                message=(
                    f"The {variant} step function was traced again at step "
                    f"{t.step}: {why}; that step took {t.total_ms:.0f} ms."
                ),
                hint=hint_for(t.retrace_reason),
            )
        ]

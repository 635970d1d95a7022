"""`non_finite` (mixed precision): the dynamic loss scale collapsed.

Under a `LossScaleOptimizer`, a step whose scaled float16 gradients overflow
is skipped and the scale halves: normal, so gradtrace does not report those
steps as `non_finite` (the step marks their gradient statistics as not
measured). A scale that keeps halving down below `Config.loss_scale_min`
(default 1.0) means the gradients overflow even unscaled: every step is
skipped and training has stopped. That is reported as `non_finite`
(model-wide, severity error).
"""

from __future__ import annotations

import numpy as np

from ..records import LayerInfo, StepStats
from . import Detection

KIND = "non_finite"
HINT = (
    "Keep the layer that overflows in float32 (dtype='float32'; run once "
    "without mixed precision to find it with gradtrace), lower the learning "
    "rate, or check the inputs for very large values."
)


class LossScaleDetector:
    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...] = ()):
        self.config = config

    def observe_block(self, block) -> list[Detection]:
        """`observe_stats` over the rows of `block` below the limit."""
        if block.loss_scale is None:
            return []
        out = []
        for i in np.flatnonzero(block.loss_scale < self.config.loss_scale_min):
            out += self.observe_stats(block.row(i))
        return out

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        scale = stats.loss_scale
        limit = self.config.loss_scale_min
        if scale is None or scale >= limit:
            return []
        return [
            Detection(
                kind=KIND,
                step=stats.step,
                layer=None,
                value=float(scale),
                threshold=float(limit),
                message=(
                    f"the mixed-precision loss scale collapsed to {scale:g} "
                    f"(threshold {limit:g}): float16 gradients overflow even "
                    "unscaled, so the optimizer skips every step."
                ),
                hint=HINT,
            )
        ]

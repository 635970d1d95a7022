"""`loss_divergence`: the training loss grows instead of falling.

Rule: with ``m`` the median of the last `Config.loss_window` finite losses
(default 10 steps), the loss diverges when ``m`` is above
`Config.loss_divergence_factor` (default 10) times the lowest such median
seen so far *and* above the median of the first window (the loss is now
worse than where training started). Model-wide (``layer=None``). The median
ignores single noisy batches; the second condition keeps a loss that went
from 1e-4 to 1e-3 near convergence from counting. A non-finite loss is
`non_finite`'s finding.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from ..records import LayerInfo, StepStats
from . import Detection
from ._common import sci

KIND = "loss_divergence"
HINT = (
    "Lower the learning rate (e.g. 10x) or add a warm-up; clip gradients "
    "(optimizer clipnorm=1.0); check the loss matches the targets' scale."
)


class LossDivergenceDetector:
    """Smoothed training loss against its best value so far."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config
        self.window: collections.deque[float] = collections.deque(
            maxlen=config.loss_window
        )
        self.start: float | None = None
        self.best: float | None = None
        self.best_step: int | None = None

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        cfg = self.config
        loss = float(stats.loss)
        if not math.isfinite(loss):
            return []
        self.window.append(loss)
        if len(self.window) < self.window.maxlen:
            return []
        m = float(np.median(self.window))
        if self.start is None:
            self.start = m
        if self.best is None or m < self.best:
            self.best, self.best_step = m, stats.step
        if not (m > cfg.loss_divergence_factor * self.best and m > self.start):
            return []
        factor = m / self.best if self.best > 0 else float("inf")
        return [
            Detection(
                kind=KIND,
                step=stats.step,
                layer=None,
                value=factor,
                threshold=float(cfg.loss_divergence_factor),
                message=(
                    f"The training loss (median of the last {len(self.window)} "
                    f"steps) rose to {sci(m)}, {sci(factor)}x its best "
                    f"{sci(self.best)} at step {self.best_step} and above its "
                    f"start {sci(self.start)} (threshold "
                    f"{sci(cfg.loss_divergence_factor)}x)."
                ),
                hint=HINT,
            )
        ]

    def finish(self) -> list[Detection]:
        return []

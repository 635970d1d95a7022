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

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..records import LayerInfo, StatsBlock, StepStats
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
        return self.observe_block(StatsBlock.of([stats]))

    def observe_block(self, block: StatsBlock) -> list[Detection]:
        finite = np.isfinite(block.loss)
        losses = block.loss[finite]
        if not losses.size:
            return []
        steps = block.steps[finite].tolist()
        w = self.window.maxlen
        old = len(self.window)
        seq = np.concatenate([np.asarray(self.window, dtype=np.float64), losses])
        self.window.extend(losses.tolist())
        # The median of the last w finite losses, at each new loss that has
        # w of them (one numpy call for the whole block).
        first = max(old, w - 1)
        if first >= len(seq):
            return []
        medians = np.median(sliding_window_view(seq, w)[first - w + 1 :], axis=1)
        out = []
        for m, step in zip(medians.tolist(), steps[first - old :]):
            out += self._check(m, step)
        return out

    def _check(self, m: float, step: int) -> list[Detection]:
        cfg = self.config
        if self.start is None:
            self.start = m
        if self.best is None or m < self.best:
            self.best, self.best_step = m, step
        if not (m > cfg.loss_divergence_factor * self.best and m > self.start):
            return []
        factor = m / self.best if self.best > 0 else float("inf")
        return [
            Detection(
                kind=KIND,
                step=step,
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

"""`loss_divergence`: the training loss grows instead of falling.

Rule: with ``m`` the median of the last `Config.loss_window` finite losses
(default 10 steps), the loss diverges when ``m`` is above
`Config.loss_divergence_factor` (default 10) times the best *level* so far
*and* above the median of the first window (the loss is now worse than where
training started). The level is the median of the last
``LONG_WINDOWS * loss_window`` losses (50 by default; fewer at the start);
the best level is its lowest value so far. Model-wide (``layer=None``).

A short median now against a long median as the reference tells a rising
loss from a noisy one: a loss whose batches swing 20x (class weights, a few
positives per batch) has 10-batch medians that dip far below its level by
luck, and a best taken from those dips made a falling loss look 14x
"diverged"; a 50-batch median does not dip like that. A real divergence
rises by orders of magnitude within a few windows and is seen as soon as the
10-batch median crosses. The second condition keeps a loss that went from
1e-4 to 1e-3 near convergence from counting. A non-finite loss is
`non_finite`'s finding. Last, the short median must be above every loss
before it in the level's window (at least one window of them, up to 40): a
10-batch median inside the batch-to-batch spread of the steps before is noise
(batch size 1, class weights: single batches 20x apart), while a loss that
rises leaves everything before it behind within a window.
"""

from __future__ import annotations

import collections

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..records import LayerInfo, StatsBlock, StepStats
from . import Detection
from ._common import sci

KIND = "loss_divergence"
LONG_WINDOWS = 5  # the reference level: the median of this many windows
HINT = (
    "Lower the learning rate (e.g. 10x) or add a warm-up; clip gradients "
    "(optimizer clipnorm=1.0); check the loss matches the targets' scale."
)


class LossDivergenceDetector:
    """Smoothed training loss against its best value so far."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config
        self.w = int(config.loss_window)
        self.window: collections.deque[float] = collections.deque(
            maxlen=LONG_WINDOWS * self.w
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
        w, long = self.w, self.window.maxlen
        old = len(self.window)
        seq = np.concatenate([np.asarray(self.window, dtype=np.float64), losses])
        self.window.extend(losses.tolist())
        # At each new loss i with at least w before it (inclusive): the
        # median of the last w, and of the last min(i + 1, long) losses.
        first = max(old, w - 1)
        if first >= len(seq):
            return []
        short = np.median(sliding_window_view(seq, w)[first - w + 1 :], axis=1)
        levels = []
        for i in range(first, len(seq)):
            levels.append(float(np.median(seq[max(0, i + 1 - long) : i + 1])))
        out = []
        for i, m, level, step in zip(
            range(first, len(seq)), short.tolist(), levels, steps[first - old :]
        ):
            # the losses of the long window before this short window
            before = seq[max(0, i + 1 - long) : i + 1 - w]
            out += self._check(m, level, step, before)
        return out

    def _check(self, m: float, level: float, step: int, before) -> list[Detection]:
        cfg = self.config
        if self.start is None:
            self.start = m
        if self.best is None or level < self.best:
            self.best, self.best_step = level, step
        if not (m > cfg.loss_divergence_factor * self.best and m > self.start):
            return []
        if len(before) < self.w or m <= float(np.max(before)):
            return []  # within the batch-to-batch spread of the steps before
        factor = m / self.best if self.best > 0 else float("inf")
        return [
            Detection(
                kind=KIND,
                step=step,
                layer=None,
                value=factor,
                threshold=float(cfg.loss_divergence_factor),
                message=(
                    f"The training loss (median of the last {self.w} "
                    f"steps) rose to {sci(m)}, {sci(factor)}x its best level "
                    f"{sci(self.best)} (a median of up to {self.window.maxlen} "
                    f"steps, at step {self.best_step}) and above its "
                    f"start {sci(self.start)} (threshold "
                    f"{sci(cfg.loss_divergence_factor)}x)."
                ),
                hint=HINT,
            )
        ]

    def finish(self) -> list[Detection]:
        return []

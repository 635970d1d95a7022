"""`exploding_gradient`: gradient norms too large, or growing without bound.

Rule (every step, no warm-up: an explosion is over in a few steps): the
global gradient norm ``sqrt(sum over layers of grad_norm^2)`` is above
`Config.exploding_factor` (default 100) times the 90th percentile of the
global norm over the previous `Config.exploding_window` steps (default 50; at
least 2 earlier steps are needed), or it overflowed to Inf while every
gradient entry is finite. The 90th percentile, not the median: with small
batches single-batch gradient norms are heavy-tailed (a batch of easy
examples has almost none), and one hard batch is not an explosion. Model-wide (``layer=None``); the message names the layer with the
largest gradient growth. Every finite step joins the baseline, so a single
hard batch raises it for the steps that follow.

AUTOTRAINER flags a first/last-layer norm ratio > 70 or a loss >= 1e3, once
per epoch; both depend on the model's scale (input size, loss reduction).
A 100x jump against the run's own recent median does not, and is seen on
the step it happens. NaN/Inf entries are `non_finite`'s finding.
"""

from __future__ import annotations

import collections
import warnings

import numpy as np

from ..records import LayerInfo, StatsBlock, StepStats
from . import Detection
from ._common import sci

KIND = "exploding_gradient"
BASELINE_PERCENTILE = 90
HINT = (
    "Lower the learning rate (e.g. 10x), clip gradients (optimizer "
    "clipnorm=1.0), and check that inputs and targets are normalised."
)


class ExplodingGradientDetector:
    """Global gradient norm against its own recent 90th percentile."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config
        self.history: collections.deque[float] = collections.deque(
            maxlen=config.exploding_window
        )
        self.layer_history: collections.deque[np.ndarray] = collections.deque(
            maxlen=config.exploding_window
        )

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        return self.observe_block(StatsBlock.of([stats]))

    def observe_block(self, block: StatsBlock) -> list[Detection]:
        if not block.layers or not len(block):
            return []
        g = block.column("grad_norm")
        # Judged rows: some gradient measured, no NaN/Inf anywhere (that is
        # non_finite's finding).
        judged = ~(
            np.isnan(g).all(axis=1)
            | (block.column("grad_nonfinite") > 0).any(axis=1)
            | np.isnan(block.loss)
        )
        rows = np.flatnonzero(judged)
        if not rows.size:
            return []
        with np.errstate(over="ignore"):
            totals = np.sqrt(np.nansum(np.square(g[rows]), axis=1))
        factor = self.config.exploding_factor
        # p90 >= min(window) >= the smallest value any window of this block
        # can hold: below factor x that, no row can fire (the usual case; the
        # percentile, the costly part, is skipped).
        if np.isfinite(totals).all():
            lowest = min(min(self.history, default=np.inf), float(totals.min()))
            if totals.max() <= factor * lowest:
                self.history.extend(totals.tolist())
                self.layer_history.extend(g[rows])
                return []
        out = []
        for i, total in zip(rows.tolist(), totals.tolist()):
            out += self._observe(block, i, total)
        return out

    def _observe(self, block, i: int, total: float) -> list[Detection]:
        cfg = self.config
        out = []
        g = block.column("grad_norm")[i]
        if len(self.history) >= 2 and (
            not np.isfinite(total) or total > cfg.exploding_factor * min(self.history)
        ):
            base = float(np.percentile(self.history, BASELINE_PERCENTILE))
            if np.isinf(total) or (base > 0 and total > cfg.exploding_factor * base):
                out = [self._detection(block.row(i), g, total, base)]
        if np.isfinite(total):
            self.history.append(total)
            self.layer_history.append(g)
        return out

    def _detection(self, stats, g, total, base) -> Detection:
        cfg = self.config
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            layer_base = np.nanmedian(np.stack(self.layer_history), axis=0)
            growth = np.where(layer_base > 0, g / layer_base, np.nan)
        where = ""
        if np.isfinite(growth).any() or np.isinf(growth).any():
            j = int(np.nanargmax(np.where(np.isnan(growth), -np.inf, growth)))
            where = f"; it grew most in layer '{stats.layers[j]}' ({sci(growth[j])}x)"
        if np.isinf(total):
            factor = float("inf")
            what = (
                "overflowed to Inf although every gradient entry is finite (90th "
                f"percentile of the last {len(self.history)} steps: {sci(base)})"
            )
        else:
            factor = total / base
            what = (
                f"jumped to {sci(total)}, {sci(factor)}x its recent typical maximum "
                f"{sci(base)} (90th percentile of the last {len(self.history)} "
                "steps; threshold "
                f"{sci(cfg.exploding_factor)}x)"
            )
        return Detection(
            kind=KIND,
            step=stats.step,
            layer=None,
            value=factor,
            threshold=float(cfg.exploding_factor),
            message=f"The global gradient norm {what}{where}.",
            hint=HINT,
        )

    def finish(self) -> list[Detection]:
        return []

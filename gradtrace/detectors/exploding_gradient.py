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
hard batch raises it for the steps that follow. A jump must also reach the
run's largest norm so far: with a batch of one example, a late hard example
is 1000x the easy ones before it but no larger than the gradients of the
first steps; a real explosion exceeds everything before it. With batches of
fewer than 8 examples, single-example gradients are so heavy-tailed that a
jump must hold at the next step too (it is reported at the first).

Two more rules catch explosions that do not jump:

- sustained growth: the median global norm of the last ``GROWTH_WINDOW``
  (10) steps is above `exploding_factor` x the median of the run's first 10
  judged steps, and it rose over each of the two windows before (m0 > m1 > m2,
  m0 >= 2 m2). A gradient growing ~1.2x per step (20 -> 3e6 in 64 steps,
  still finite) passes each jump test, since its recent window grows along
  with it. Large early gradients (the first steps of Adam, unnormalised
  regression targets) set a high early level and fall: never a finding.
- absurd size: for `diagnosis_patience` consecutive steps the global norm is
  above `exploding_abs` (1e6) x max(|loss|, 1). Gradients of a loss scale with
  the loss (an MSE on targets ~1e4 gives gradients ~1e4 and a loss ~1e8); a
  norm a million times the loss, from step 0 on (an RNN through time at
  1e11 while Adam normalises the update), is no gradient to learn from.

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
GROWTH_WINDOW = 10  # steps per window of the sustained-growth rule
SMALL_BATCH = 8  # below this many examples a jump must hold for two steps
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
        self.run_max = 0.0  # the largest finite global norm so far
        self.pending = None  # (Detection, base): a tiny batch's jump to confirm
        self.early: list[float] = []  # the first GROWTH_WINDOW judged norms
        self.trail: collections.deque[float] = collections.deque(
            maxlen=3 * GROWTH_WINDOW
        )
        self.abs_factor = float(getattr(config, "exploding_abs", 1e6))
        self.patience = int(getattr(config, "diagnosis_patience", 5))
        self.abs_streak = 0
        self.slow_found = False  # one growth/absurd detection per run

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
        totals = block.global_grad_norm[rows]
        slow = self._slow_rules(block, rows, totals)
        factor = self.config.exploding_factor
        # p90 >= min(window) >= the smallest value any window of this block
        # can hold: below factor x that, no row can fire (the usual case; the
        # percentile, the costly part, is skipped).
        if np.isfinite(totals).all():
            lowest = min(min(self.history, default=np.inf), float(totals.min()))
            if totals.max() <= factor * lowest:
                self.pending = None  # no row is high: a pending jump was one step
                self.history.extend(totals.tolist())
                self.layer_history.extend(g[rows])
                self.run_max = max(self.run_max, float(totals.max()))
                return slow
        out = []
        for i, total in zip(rows.tolist(), totals.tolist()):
            out += self._observe(block, i, total)
        return sorted(out + slow, key=lambda d: d.step)

    def _slow_rules(self, block, rows, totals) -> list[Detection]:
        """Sustained growth and absurd size, over the block's judged rows."""
        if self.slow_found:
            return []
        cfg = self.config
        w = GROWTH_WINDOW
        if len(self.early) >= w and np.isfinite(totals).all():
            # The usual block: no norm is absurd or high: only the trail moves.
            scale = np.maximum(np.abs(block.loss[rows]), 1.0)
            base = float(np.median(self.early))
            if (totals <= self.abs_factor * scale).all() and (
                totals <= cfg.exploding_factor * base
            ).all():
                self.abs_streak = 0
                self.trail.extend(totals.tolist())
                return []
        for i, total in zip(rows.tolist(), totals.tolist()):
            if not np.isfinite(total):
                continue
            if total > self.abs_factor * max(float(np.abs(block.loss[i])), 1.0):
                self.abs_streak += 1
            else:
                self.abs_streak = 0
            if len(self.early) < w:
                self.early.append(total)
            self.trail.append(total)
            if self.abs_streak >= self.patience:
                self.slow_found = True
                return [self._slow(block, i, total, "absurd")]
            if len(self.early) < w or len(self.trail) < 3 * w:
                continue
            base = float(np.median(self.early))
            if not total > cfg.exploding_factor * base:
                continue  # cheap pre-check: the newest norm must be high too
            t = np.asarray(self.trail)
            m2, m1, m0 = (float(np.median(t[k * w : (k + 1) * w])) for k in range(3))
            if m0 > cfg.exploding_factor * base and m0 > m1 > m2 and m0 >= 2 * m2:
                self.slow_found = True
                return [self._slow(block, i, total, "growth", base=base, m=(m2, m0))]
        return []

    def _slow(self, block, i, total, rule, base=None, m=None) -> Detection:
        cfg = self.config
        stats = block.row(i)
        if rule == "absurd":
            loss = float(np.abs(block.loss[i]))
            value = total / max(loss, 1.0)
            threshold = self.abs_factor
            what = (
                f"has been {sci(total)} for {self.abs_streak} consecutive steps, "
                f"{sci(value)}x the loss ({sci(loss)}; threshold "
                f"{sci(self.abs_factor)}x max(|loss|, 1)): far too large to learn from"
            )
        else:
            value = m[1] / base
            threshold = float(cfg.exploding_factor)
            what = (
                f"grew steadily to a median of {sci(m[1])} over the last "
                f"{GROWTH_WINDOW} steps (from {sci(m[0])} {2 * GROWTH_WINDOW} steps "
                f"earlier), {sci(value)}x its early level {sci(base)} (threshold "
                f"{sci(cfg.exploding_factor)}x)"
            )
        g = block.column("grad_norm")[i]
        j = int(np.nanargmax(np.where(np.isnan(g), -np.inf, g))) if len(g) else -1
        where = f"; the largest is in layer '{stats.layers[j]}'" if j >= 0 else ""
        return Detection(
            kind=KIND,
            step=stats.step,
            layer=None,
            value=float(value),
            threshold=threshold,
            message=f"The global gradient norm {what}{where}.",
            hint=HINT,
        )

    def _observe(self, block, i: int, total: float) -> list[Detection]:
        cfg = self.config
        out = []
        g = block.column("grad_norm")[i]
        pending, self.pending = self.pending, None
        if pending is not None and total > cfg.exploding_factor * pending[1]:
            out = [pending[0]]  # a tiny batch's jump, confirmed by the next step
        if len(self.history) >= 2 and (
            not np.isfinite(total) or total > cfg.exploding_factor * min(self.history)
        ):
            base = float(np.percentile(self.history, BASELINE_PERCENTILE))
            if np.isinf(total) or (
                base > 0
                and total > cfg.exploding_factor * base
                and total >= self.run_max
            ):
                d = self._detection(block.row(i), g, total, base)
                examples = block.examples[i] if block.examples is not None else np.nan
                if np.isfinite(total) and examples < SMALL_BATCH and not out:
                    self.pending = (d, base)  # judged with the next step
                else:
                    out.append(d)
        if np.isfinite(total):
            self.history.append(total)
            self.layer_history.append(g)
            self.run_max = max(self.run_max, total)
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

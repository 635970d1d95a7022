"""The log budget: how often per-layer scalars and histograms go to disk.

A big model has thousands of per-layer tags (ResNet-50: 1,725 scalars per
step, 67 kB), so writing all of them at every step fills gigabytes per 100k
steps and makes TensorBoard slow to open. `Config.log_budget_kb` bounds the
average size of the event files per step:

- the model-wide series (`batch_loss`, the scalars a custom step returns,
  `gradients/global_norm`, `gradients/clipped`, `loss_scale`, `timing/*`)
  are written every `write_every` steps whatever they weigh;
- a heavy step's histograms and heatmap images get half of the rest: the
  heavy step runs every `histogram_every` steps, or every power-of-two
  multiple of it that keeps them within that half (planned from the bytes the largest heavy
  step wrote);
- per-layer scalars get the other half (all of it without histograms):
  every `write_every` steps, or every multiple of it that fits.

Only what is written is thinned: the detectors see every layer at every
step. `log_budget_kb=None` writes everything.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["LogPlan", "plan"]

# The plan aims this share below the budget: room for what is written once
# (each tag's metadata at first sight, file headers), epoch scalars, findings.
MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class LogPlan:
    layer_every: int  # per-layer scalars every this many steps
    hist_every: int  # the heavy step (histograms) every this many steps


def plan(
    budget_bytes: float | None,
    *,
    wide_bytes: float,
    layer_bytes: float,
    heavy_bytes: float | None,
    write_every: int,
    histogram_every: int,
) -> LogPlan:
    """How often to write per-layer scalars and histograms.

    Args:
        budget_bytes: average bytes per step; None: everything.
        wide_bytes: one event of model-wide scalars (written every
            `write_every` steps).
        layer_bytes: one step's per-layer scalars.
        heavy_bytes: what one heavy step writes (histograms and images);
            None: not measured yet; 0: no heavy step.
        write_every: `Config.write_every`.
        histogram_every: `Config.histogram_every`.
    """
    if budget_bytes is None:
        return LogPlan(write_every, histogram_every)
    target = budget_bytes * (1.0 - MARGIN)
    room = max(target - wide_bytes / write_every, target / 4)
    hist_every = histogram_every
    if heavy_bytes == 0:  # no heavy step: the scalars get it all
        layer_room = room
    else:
        # Fixed halves: the per-layer cadence is known before the first
        # write and does not change when the heavy step is measured.
        layer_room = room / 2
        if heavy_bytes:
            # A power-of-two multiple: when a larger heavy step (a wider
            # heatmap) thins the histograms further, every later heavy step
            # is still one of the earlier cadence, none comes sooner.
            need = heavy_bytes / (histogram_every * room / 2)
            hist_every *= 2 ** max(0, math.ceil(math.log2(need)))
    per_write = layer_bytes / (write_every * layer_room)
    return LogPlan(write_every * max(1, math.ceil(per_write)), hist_every)

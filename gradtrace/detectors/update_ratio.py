"""`update_ratio`: a layer's weights change too much, or too little, per step.

Rule: per layer with trainable weights, the update/weight norm ratio
``||w_after - w_before|| / ||w_before||`` of the optimizer step is above
`Config.update_ratio_max` (default 0.1: a tenth of the weights rewritten per
step) or below `Config.update_ratio_min` (default 1e-7) for
`Config.diagnosis_patience` consecutive checks, from step
`Config.diagnosis_warmup` on. CS231n: about 1e-3 is healthy.
A step that did not measure the update norm (a big model's light step
between measurements, see `gradtrace.session`) is not a check.

"Too small" is reported only where the layer's gradient RMS is at least
`Config.vanishing_rms`: a tiny update from a tiny gradient is
`vanishing_gradient`/`dead_relu`'s finding; from a normal gradient it is the
step size (learning rate). Layers whose weights are (almost) all zero are
skipped (the ratio is meaningless). One finding per direction names the
first such layer in forward order; the message counts the others.
"""

from __future__ import annotations

import numpy as np

from ..records import StepStats
from . import Detection
from ._common import LayerDetector, column, grad_rms, more_layers, sci

KIND = "update_ratio"
HINT_HIGH = (
    "Lower the learning rate (or add warm-up / a decay schedule); check that "
    "the layer's weights are not initialised near zero."
)
HINT_LOW = (
    "Raise the learning rate (or check that the schedule did not decay it to "
    "~0); check the optimizer's weight decay and gradient scaling."
)
# Weight RMS below this: the layer's weights are ~0 and the ratio is noise.
MIN_WEIGHT_RMS = 1e-6


def _judged(u, w, n):
    """u / w where it is judged, else NaN (not measured, not finite, w ~ 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = u / w
        w_rms = np.where(n > 0, w / np.sqrt(n), np.nan)
    return ratio, np.where(
        np.isfinite(ratio) & (w_rms >= MIN_WEIGHT_RMS), ratio, np.nan
    )


class UpdateRatioDetector(LayerDetector):
    """Per layer: ||dw|| / ||w|| of each optimizer step."""

    kind = KIND

    def _quiet(self, block) -> bool:
        cfg = self.config
        n = block.values.get("n_params")
        if n is None:
            n = np.full(len(block.layers), np.nan)
        _, judged = _judged(block.column("update_norm"), block.column("weight_norm"), n)
        measured = ~np.isnan(judged)
        high = judged > cfg.update_ratio_max
        low = (judged < cfg.update_ratio_min) & (block.grad_rms >= cfg.vanishing_rms)
        names = block.layers
        return self.settle(
            names,
            ([(n_, "high") for n_ in names], measured, high),
            ([(n_, "low") for n_ in names], measured, low),
        )

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        cfg = self.config
        u = column(stats, "update_norm")
        w = column(stats, "weight_norm")
        n = column(stats, "n_params")
        rms = grad_rms(stats)
        # Not judged (NaN): not measured, not finite, or weights ~0.
        ratio, judged = _judged(u, w, n)
        hits = {"high": [], "low": []}
        for j, name in enumerate(stats.layers):
            r = judged[j]
            high = r > cfg.update_ratio_max
            low = r < cfg.update_ratio_min and rms[j] >= cfg.vanishing_rms
            for side, hit in (("high", high), ("low", low)):
                if self.persistent(stats, (name, side), r, hit):
                    hits[side].append(j)
        out = []
        for side, idx in hits.items():
            if not idx:
                continue
            j = idx[0]
            thr = cfg.update_ratio_max if side == "high" else cfg.update_ratio_min
            message = (
                f"Each step changes its weights by {sci(ratio[j])} of their norm, "
                f"{'above' if side == 'high' else 'below'} the threshold {sci(thr)} "
                f"(healthy: about 1e-3){more_layers([stats.layers[k] for k in idx])}."
            )
            hint = HINT_HIGH if side == "high" else HINT_LOW
            out.append(
                self.detection(stats, stats.layers[j], ratio[j], thr, message, hint)
            )
        return out

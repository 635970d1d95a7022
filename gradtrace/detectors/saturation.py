"""`saturation`: a hidden sigmoid/tanh layer stuck at its bounds.

Rule: for a layer whose output passes through sigmoid or tanh and that is
not a model output, the share of outputs within 1% of the activation's
bounds (``act_saturated_frac``: sigmoid < 0.01 or > 0.99, i.e. |input| >
~4.6; tanh |y| > 0.99, i.e. |input| > ~2.6) is > `Config.saturation_frac`
(default 0.5) for `Config.diagnosis_patience` consecutive checks, from step
`Config.diagnosis_warmup` on. There the local derivative is below 1% of its
maximum, so little gradient passes.

An output layer is skipped: a confident sigmoid/softmax-like output is the
goal of training, not a fault. DeepDiagnosis: > 50% of inputs beyond +-5.
"""

from __future__ import annotations

import numpy as np

from ..records import StepStats
from . import Detection
from ._common import LayerDetector, column, pct

KIND = "saturation"
HINT = (
    "Normalise the inputs (or add BatchNormalization before the activation), "
    "use Glorot initialisation and a lower learning rate, or use ReLU in "
    "hidden layers."
)


def _hidden_saturating(info) -> bool:
    return info.saturating and not info.is_output


class SaturationDetector(LayerDetector):
    """Per hidden sigmoid/tanh layer: share of outputs at the bounds."""

    kind = KIND

    def _quiet(self, block) -> bool:
        sat = block.column("act_saturated_frac")
        judged = self.layer_mask(block.layers, _hidden_saturating) & ~np.isnan(sat)
        return self.settle(
            block.layers, (block.layers, judged, sat > self.config.saturation_frac)
        )

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        thr = self.config.saturation_frac
        sat = column(stats, "act_saturated_frac")
        out = []
        for j, name in enumerate(stats.layers):
            info = self.info(name)
            if not info.saturating or info.is_output:
                continue
            if not self.persistent(stats, name, sat[j], sat[j] > thr):
                continue
            message = (
                f"{pct(sat[j])} of its outputs are within 1% of the "
                f"{info.activation} bounds (threshold {pct(thr)}), where almost "
                "no gradient passes."
            )
            out.append(self.detection(stats, name, sat[j], thr, message, HINT))
        return out

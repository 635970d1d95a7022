"""`dead_relu`: a ReLU-family layer whose units output 0 for every example.

Rule: for a layer whose output passes through ReLU (``LayerInfo.activation ==
"relu"``; LeakyReLU/ELU/GELU never output a constant 0 and are skipped), the
share of units (last axis) whose output is 0 for *every* example and position
of the batch (``act_dead_frac``) is >= `Config.dead_relu_frac` (default 0.7)
for `Config.diagnosis_patience` consecutive checks (default 5), reported from
step `Config.diagnosis_warmup` on (default 10).

Why this and not "zeros per example": about half of a healthy ReLU layer's
outputs are 0 for any one example; a unit is dead only when no example of the
batch switches it on, and it stays dead over consecutive batches.

The streak must also cover at least `MIN_EXAMPLES` (64) examples: with a
batch of 1 or 2 examples, 70% of a small layer's units are silent for the
batch by chance (a healthy layer is off for about half of any one example),
so the patience grows to ``ceil(64 / batch size)`` steps.

Never at a step where every gradient of the model is exactly 0: then the loss
does not reach the weights at all (softmax over one unit, a constant output:
`zero_gradient`), and with a batch of one example a ReLU layer's silent units
say nothing (AUTOTRAINER's published misdiagnosis of SO 31880720).
DeepDiagnosis flags a node when >= 70% of its outputs are <= 0; AUTOTRAINER
when >= 70% of gradient entries are exactly zero, both once per epoch.
"""

from __future__ import annotations

import numpy as np

from ..records import StepStats
from . import Detection
from ._common import LayerDetector, column, pct, zero_gradient_rows

KIND = "dead_relu"
MIN_EXAMPLES = 64  # examples a dead verdict must rest on
HINT = (
    "Lower the learning rate, use He initialisation (kernel_initializer="
    "'he_normal') with zero biases, or switch to LeakyReLU/ELU."
)


def _relu(info) -> bool:
    return info.relu_family


class DeadReluDetector(LayerDetector):
    """Per ReLU layer: share of units that are 0 for the whole batch."""

    kind = KIND

    def _quiet(self, block) -> bool:
        dead = block.column("act_dead_frac")
        judged = self.layer_mask(block.layers, _relu) & ~np.isnan(dead)
        blind = zero_gradient_rows(block.column("grad_norm"))[:, None]
        hit = (dead >= self.config.dead_relu_frac) & ~blind
        return self.settle(block.layers, (block.layers, judged, hit))

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        thr = self.config.dead_relu_frac
        dead = column(stats, "act_dead_frac")
        blind = bool(zero_gradient_rows(column(stats, "grad_norm"))[0])
        out = []
        for j, name in enumerate(stats.layers):
            info = self.info(name)
            if not info.relu_family:
                continue
            n = self.persistent(stats, name, dead[j], dead[j] >= thr and not blind)
            if not n or (stats.examples and n * stats.examples < MIN_EXAMPLES):
                continue
            units = f"its {info.n_units} units" if info.n_units else "its units"
            message = (
                f"{pct(dead[j])} of {units} output 0 for every example in the "
                f"batch (threshold {pct(thr)}), for {n} consecutive steps."
            )
            out.append(self.detection(stats, name, dead[j], thr, message, HINT))
        return out

"""`zero_gradient`: the loss does not reach the weights at all.

Rule: at `Config.zero_gradient_steps` consecutive steps (default 3), every
gradient the step measured is exactly 0 (``grad_norm == 0`` for every layer
with a gradient; each model apart when a custom step trains several). No
warm-up: the run is wasted from its first step. Model-wide (``layer=None``).

Exactly zero, not small: a float gradient is 0.0 only when the loss does not
depend on the weights, e.g. a softmax over a single unit (its output is the
constant 1.0), `categorical_crossentropy` over one unit (always 0), a
constant or `stop_gradient`-ed output, an integer cast in the forward pass.
A dead ReLU layer zeroes the gradients of the layers before it, never the
output layer's bias: that is `dead_relu`, which stays quiet at such steps.
"""

from __future__ import annotations

import numpy as np

from ..records import LayerInfo, StatsBlock, StepStats
from . import Detection
from ._common import zero_gradient_rows

KIND = "zero_gradient"
HINT = (
    "Check the output layer and the loss: a softmax over a single unit always "
    "outputs 1.0 (for two classes use Dense(1, activation='sigmoid') with "
    "binary_crossentropy), categorical_crossentropy over one unit is always 0, "
    "and a constant output, a cast to int or a stop_gradient cuts the loss "
    "from the weights."
)


class ZeroGradientDetector:
    """Consecutive steps at which every gradient is exactly zero."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.need = int(getattr(config, "zero_gradient_steps", 3))
        self.layers = tuple(layers or ())
        self.models: dict[str | None, list[int]] = {}
        for j, info in enumerate(layers or ()):
            self.models.setdefault(info.model, []).append(j)
        self.streak: dict[str | None, tuple[int, int]] = {}  # model -> (n, first)
        self.found: set = set()

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        return self.observe_block(StatsBlock.of([stats]))

    def observe_block(self, block: StatsBlock) -> list[Detection]:
        if not block.layers or not len(block):
            return []
        g = block.column("grad_norm")
        bad = (block.column("grad_nonfinite") > 0).any(axis=1) | np.isinf(g).any(axis=1)
        several = len(self.models) > 1 and g.shape[1] == len(self.layers)
        groups = self.models if several else {None: range(g.shape[1])}
        out = []
        for model, cols in groups.items():
            if model in self.found:
                continue
            sub = g[:, list(cols)]
            zero = zero_gradient_rows(sub)
            # judged: some gradient measured (NaN = a layer without weights,
            # or not measured), none NaN/Inf for real (non_finite's finding)
            measured = ~np.isnan(sub).all(axis=1) & ~bad
            n, first = self.streak.get(model, (0, -1))
            if not zero.any():  # the usual block: gradients flow
                if (measured & ~zero).any():
                    self.streak[model] = (0, -1)
                continue
            for i in range(len(block)):
                if not measured[i]:
                    continue  # not measured, or NaN/Inf (non_finite's): keep
                if zero[i]:
                    n, first = n + 1, (first if n else int(block.steps[i]))
                    if n >= self.need:
                        out.append(self._detection(block, i, n, first, model))
                        self.found.add(model)
                        break
                else:
                    n, first = 0, -1
            self.streak[model] = (n, first)
        return out

    def _detection(self, block, i, n, first, model) -> Detection:
        whose = f"of model '{model}' " if model is not None else ""
        return Detection(
            kind=KIND,
            step=int(block.steps[i]),
            layer=None,
            value=0.0,
            threshold=float(self.need),
            message=(
                f"Every gradient {whose}was exactly 0 at {n} consecutive steps "
                f"(from step {first}): the loss does not depend on the weights, "
                "so training changes nothing."
            ),
            hint=HINT,
        )

    def finish(self) -> list[Detection]:
        return []

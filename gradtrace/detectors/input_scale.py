"""`input_scale`: the inputs reach the first layer far off the scale it expects.

Judged once, at the run's first step, from `SetupFacts`: the first layer that
sees the inputs (after layers that only reshape, pool or drop values) and the
first batch. Initialisers (Glorot, He, LeCun) choose a kernel for inputs of
RMS ~1, so that pre-activations start at RMS ~1. The rule takes

    scale = max(rms(x), rms(x) * sqrt(fan_in) * rms(initial kernel))

(the inputs' own scale, or where the pre-activations start when that is
larger) and fires when it is above `Config.input_scale_max` (default 10:
sigmoid(10) = 0.99995, tanh is flat, ReLU outputs are 10x their intended
size, and a small initialisation does not help: features 65-70 with a
spread of 1 are all offset, and the optimizer must first undo it).
Raw pixels 0-255 give ~100, raw integers ~1e9 give ~1e9; inputs already
scaled to [0, 1] or standardised give ~0.3-1.5. The inputs' own RMS must
also be above `UNIT_SCALE` (2): unit-scale inputs into a kernel initialised
too large (N(0, 3)) are the initialisation's problem, which `saturation` or
`exploding_gradient` report, not the inputs'.

Not judged: a first layer that normalises or looks up (Normalization,
BatchNormalization, LayerNormalization, Rescaling, Embedding, the
preprocessing lookups), a layer without a kernel, models with several
inputs, and custom steps (the meaning of a batch is the step's own).
"""

from __future__ import annotations

import math

from ..records import LayerInfo, SetupFacts
from . import Detection
from ._common import sci

KIND = "input_scale"
UNIT_SCALE = 2.0  # inputs with an RMS up to this are not off scale themselves
HINT = (
    "Normalise the inputs: scale pixels by 1/255, standardise features "
    "((x - mean) / std over the training set, e.g. a keras.layers.Normalization "
    "layer adapted on the training data, or sklearn's StandardScaler)."
)
# First layers that bring the inputs to their own scale, or look them up.
SCALE_AWARE = frozenset(
    {
        "Normalization",
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "Rescaling",
        "Embedding",
        "TextVectorization",
        "StringLookup",
        "IntegerLookup",
        "Discretization",
        "CategoryEncoding",
        "Hashing",
    }
)


def scale(f: SetupFacts) -> float | None:
    """The estimated RMS of the first layer's pre-activations, or None."""
    if f.input_rms is None or f.input_class in SCALE_AWARE or f.input_fan_in is None:
        return None
    if f.input_rms <= UNIT_SCALE:
        return None
    w = f.input_weight_rms
    if w is None:
        return None
    return f.input_rms * max(1.0, math.sqrt(f.input_fan_in) * w)


class InputScaleDetector:
    """The first batch's scale against the first layer's fan-in and init."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.threshold = float(getattr(config, "input_scale_max", 10.0))

    def observe_setup(self, facts: SetupFacts, step: int) -> list[Detection]:
        s = scale(facts)
        if s is None or not s > self.threshold:
            return []
        return [
            Detection(
                kind=KIND,
                step=int(step),
                layer=facts.input_layer,
                value=float(s),
                threshold=self.threshold,
                message=(
                    f"The inputs reach layer '{facts.input_layer}' at RMS "
                    f"{sci(facts.input_rms)} (max |x| {sci(facts.input_max_abs)}): "
                    f"its initialisation expects ~1 (with its fan-in "
                    f"{facts.input_fan_in} and initial kernel RMS "
                    f"{sci(facts.input_weight_rms)}: scale ~{sci(s)}, threshold "
                    f"{sci(self.threshold)}), so units saturate or die and the "
                    "first steps overshoot."
                ),
                hint=HINT,
            )
        ]

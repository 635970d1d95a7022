"""`loss_mismatch`: the output layer, the loss and the targets do not fit.

Judged once, at the run's first step, from `SetupFacts` (the output layer's
activation and units, the compiled loss and its ``from_logits``, the range of
the first batch's targets). The first rule that holds is the finding, on the
output layer:

1. a softmax over a single unit (its output is the constant 1.0);
2. `categorical_crossentropy` over a single unit (always 0);
3. ``from_logits=True`` on a softmax or sigmoid output (applied twice);
   `categorical_crossentropy` on a sigmoid output of several units (the
   units do not share 1.0; the loss rescales them);
4. a probability loss (categorical / sparse categorical / binary
   crossentropy, their focal variants, KL divergence) with
   ``from_logits=False`` on an output that is not a probability (linear,
   ReLU, tanh: a row of zeros is log(0), a negative value is NaN);
5. a softmax output with targets that mark several classes in one row
   (multi-label: a softmax can only share 1.0 between the classes);
6. `sparse_categorical_crossentropy` with class ids that are not whole
   numbers in ``[0, units)``;
7. a binary crossentropy with targets outside ``[0, 1]`` (its loss falls
   without bound);
8. targets outside the output activation's range (sigmoid/softmax [0, 1],
   tanh [-1, 1], ReLU >= 0: e.g. regression targets 3..103 through a
   sigmoid), so the loss can never reach its minimum.

No threshold: each rule is a fact about the setup (targets compare with a
relative tolerance of 1e-6). Only `gradtrace.fit`'s stock step is judged
(a custom `train_step` or a Tracer step computes its own loss).
"""

from __future__ import annotations

from ..records import LayerInfo, SetupFacts
from . import Detection

KIND = "loss_mismatch"
PROBABILITY_LOSSES = frozenset(
    {
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_focal_crossentropy",
        "kl_divergence",
    }
)
_RANGE = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}
_TOL = 1e-6


def _outside(lo, hi, a, b) -> bool:
    tol = _TOL * max([1.0] + [abs(v) for v in (a, b) if v != float("inf")])
    return lo < a - tol or hi > b + tol


def rule(f: SetupFacts) -> tuple[str, str] | None:
    """(message, hint) of the first rule that holds, or None."""
    act, units, loss = f.output_activation, f.output_units, f.loss
    lo, hi = f.target_min, f.target_max
    has_targets = lo is not None and hi is not None
    if act == "softmax" and units == 1:
        return (
            "The output layer is a softmax over a single unit: its output is "
            "always 1.0, whatever the input, so predictions and accuracy never "
            "change (and with most losses no gradient reaches the weights).",
            "For two classes use Dense(1, activation='sigmoid') with "
            "binary_crossentropy, or Dense(2, activation='softmax') with "
            "sparse_categorical_crossentropy; for regression use a linear output.",
        )
    if loss in ("categorical_crossentropy", "categorical_focal_crossentropy") and (
        units == 1
    ):
        return (
            f"{loss} over a single output unit is always 0 (the one 'class' "
            "always has probability 1): the model learns nothing.",
            "For a yes/no target use binary_crossentropy with a sigmoid output.",
        )
    if f.from_logits and act in ("softmax", "sigmoid"):
        return (
            f"The loss {loss} has from_logits=True but the output layer already "
            f"applies a {act}: the {act} is applied twice and the gradients shrink.",
            f"Either drop the {act} from the output layer (logits) or use the loss "
            "with from_logits=False.",
        )
    if (
        loss in ("categorical_crossentropy", "categorical_focal_crossentropy")
        and f.from_logits is False
        and act == "sigmoid"
        and units
        and units > 1
    ):
        return (
            f"{loss} expects the output units to share a probability of 1 "
            f"(softmax), but the output layer applies a sigmoid to each of its "
            f"{units} units: the loss rescales them and learns slowly or not at "
            "all.",
            "For one class per example use activation='softmax'; for several "
            "labels per example keep the sigmoid and use binary_crossentropy.",
        )
    if (
        loss in PROBABILITY_LOSSES
        and f.from_logits is False
        and (act in ("linear", "relu", "tanh"))
    ):
        return (
            f"The loss {loss} expects probabilities but the output layer's "
            f"activation is {act}: its outputs are not probabilities (log of 0 or "
            "of a negative number gives Inf/NaN, or the loss is meaningless).",
            "Use activation='softmax' (several classes) or 'sigmoid' (binary / "
            "multi-label) on the output layer, or pass from_logits=True to the loss "
            "and keep a linear output.",
        )
    rows = f.target_row_sum_max
    if (
        act == "softmax"
        and units
        and units > 1
        and rows is not None
        and rows > 1 + _TOL
    ):
        return (
            f"The output layer is a softmax over {units} units, whose outputs sum "
            f"to 1, but rows of the targets mark several classes (a row sums to "
            f"{rows:g}): multi-label targets cannot be fitted by a softmax.",
            "For multi-label targets use activation='sigmoid' on the output layer "
            "with binary_crossentropy; for one class per row, check the labels.",
        )
    if (
        loss == "sparse_categorical_crossentropy"
        and has_targets
        and units
        and (not f.target_integer or lo < 0 or hi >= units)
    ):
        return (
            f"sparse_categorical_crossentropy needs class ids 0..{units - 1} "
            f"(the output has {units} units) but the targets range over "
            f"{lo:g}..{hi:g}"
            + ("" if f.target_integer else " and are not whole numbers")
            + ".",
            "Map the labels to 0..n_classes-1 and give the output layer one "
            "unit per class; for one-hot targets use categorical_crossentropy.",
        )
    if (
        loss in ("binary_crossentropy", "binary_focal_crossentropy")
        and has_targets
        and _outside(lo, hi, 0.0, 1.0)
    ):
        return (
            f"{loss} needs targets in [0, 1] but the first batch's targets range "
            f"over {lo:g}..{hi:g}: the loss can fall without bound.",
            "Map the labels to 0/1 (e.g. y = (y == positive_label)), or use a loss "
            "that fits the targets.",
        )
    if has_targets and loss != "sparse_categorical_crossentropy":
        bounds = _RANGE.get(act)
        if act == "relu":
            bounds = (0.0, float("inf"))
        if bounds is not None and _outside(lo, hi, *bounds):
            a, b = bounds
            return (
                f"The output layer's {act} can only produce values in "
                f"[{a:g}, {b:g}] but the targets range over {lo:g}..{hi:g}: the "
                "loss can never reach its minimum and training stalls.",
                "Use a linear output for regression (or scale the targets into the "
                f"{act}'s range, e.g. min-max scaling), and a {act} output only for "
                "targets in its range.",
            )
    return None


class LossMismatchDetector:
    """The output layer, the loss and the targets, judged at the first step."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config

    def observe_setup(self, facts: SetupFacts, step: int) -> list[Detection]:
        found = rule(facts)
        if found is None:
            return []
        message, hint = found
        return [
            Detection(
                kind=KIND,
                step=int(step),
                layer=facts.output_layer,
                value=None,
                threshold=None,
                message=message,
                hint=hint,
            )
        ]

"""`non_finite`: NaN/Inf in the loss, gradients, weights or activations.

Rule (every step, no warm-up): find where the NaN/Inf *appeared first*.

1. Activations, in forward order: the first layer whose output has non-finite
   entries (``act_nonfinite > 0``). Its inputs were finite (or it is the layer
   that reads the data), so this is where the forward pass broke.
2. Otherwise the loss: a non-finite loss with finite activations is
   model-wide (``layer=None``): the targets or the loss function.
3. Otherwise gradients: the backward pass runs in reverse, so the origin is
   the layer *last* in forward order whose gradients are non-finite
   (``grad_nonfinite > 0``); every layer before it is only contaminated.
4. Otherwise weights: the first layer whose weights became non-finite in the
   update (``weight_norm`` NaN/Inf while its gradients were finite).

A gradient norm that overflowed to Inf while every entry is finite is an
exploding gradient, not a NaN (see `exploding_gradient`).
"""

from __future__ import annotations

import math

import numpy as np

from ..records import LayerInfo, StepStats
from . import Detection
from ._common import LayerLookup, column

KIND = "non_finite"


class NonFiniteDetector:
    """Reports where NaN/Inf first appeared, once per step it is seen."""

    kind = KIND

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config
        self.info = LayerLookup(layers)

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        names = stats.layers
        act_bad = column(stats, "act_nonfinite")
        for j, name in enumerate(names):
            if act_bad[j] > 0:
                return [self._activation(stats, j, name, act_bad[j])]
        loss = float(stats.loss)
        if not math.isfinite(loss):
            return [
                self._detection(
                    stats,
                    None,
                    value=loss,
                    message=(
                        f"the loss is {loss} while every probed layer's output is "
                        "finite, so the NaN/Inf comes from the targets or the loss "
                        "computation."
                    ),
                    hint=(
                        "Check the targets for NaN/Inf (np.isfinite(y).all()) and "
                        "that they fit the loss (e.g. labels in [0, 1] for "
                        "binary_crossentropy, class ids < num_classes); in a custom "
                        "loss guard log/division with an epsilon."
                    ),
                )
            ]
        grad_bad = column(stats, "grad_nonfinite")
        bad = [j for j in range(len(names)) if grad_bad[j] > 0]
        if bad:
            return [self._gradient(stats, bad, grad_bad)]
        w = column(stats, "weight_norm")
        # A NaN weight norm is "not recorded" unless weights are recorded and
        # the layer has a gradient (so it owns trainable weights); Inf is always
        # a real overflow.
        recorded = bool(getattr(self.config, "weights", True)) or bool(
            getattr(self.config, "updates", True)
        )
        bad_w = np.isinf(w) | (
            recorded & np.isnan(w) & ~np.isnan(column(stats, "grad_norm"))
        )
        for j, name in enumerate(names):
            if bad_w[j]:
                return [
                    self._detection(
                        stats,
                        name,
                        value=float(w[j]),
                        message=(
                            f"its weights became {w[j]} in this step's update while "
                            "its gradients and the loss were finite."
                        ),
                        hint=(
                            "Lower the learning rate and clip gradients (e.g. "
                            "optimizer clipnorm=1.0); check custom optimizers, "
                            "constraints and loss scaling."
                        ),
                    )
                ]
        return []

    def observe_block(self, block) -> list[Detection]:
        """`observe_stats` over the rows of `block` that hold a NaN/Inf (the
        others cannot hit: the same conditions, for every row at once)."""
        w = block.column("weight_norm")
        recorded = bool(getattr(self.config, "weights", True)) or bool(
            getattr(self.config, "updates", True)
        )
        bad = (
            (block.column("act_nonfinite") > 0).any(axis=1)
            | ~np.isfinite(block.loss)
            | (block.column("grad_nonfinite") > 0).any(axis=1)
            | (
                np.isinf(w)
                | (recorded & np.isnan(w) & ~np.isnan(block.column("grad_norm")))
            ).any(axis=1)
        )
        out = []
        for i in np.flatnonzero(bad):
            out += self.observe_stats(block.row(i))
        return out

    def finish(self) -> list[Detection]:
        return []

    def _gradient(self, stats, bad, grad_bad) -> Detection:
        # Backward order: the origin is the bad layer last in forward order.
        j = bad[-1]
        name = stats.layers[j]
        count = grad_bad[j]
        with_grad = [k for k in range(len(grad_bad)) if not np.isnan(grad_bad[k])]
        if j == with_grad[0]:
            # Only the first layer: its kernel gradient is input^T x delta, so
            # a NaN/Inf in the input batch lands there even when the
            # activation maps it to a finite value (relu(NaN) gives 0 on CPU).
            message = (
                f"{count:.0f} of its gradient entries are NaN/Inf while the loss "
                "and every activation are finite and no later layer's gradient "
                "is: the NaN/Inf most likely came with the input batch (the "
                "first layer's activation hid it)."
            )
            hint = (
                "Check the training data for NaN/Inf (np.isfinite(x).all()) and "
                "clean or impute it before fit (e.g. np.nan_to_num or dropping "
                "rows)."
            )
        else:
            message = (
                f"{count:.0f} of its gradient entries are NaN/Inf while the loss "
                "and every activation are finite; the backward pass reaches this "
                "layer first with NaN/Inf."
            )
            hint = (
                "Look for a non-differentiable point in this layer or the loss "
                "(sqrt, log or division at 0: add an epsilon); clip gradients "
                "(e.g. optimizer clipnorm=1.0) and lower the learning rate."
            )
        return self._detection(
            stats, name, value=float(count), message=message, hint=hint
        )

    def _activation(self, stats, j, name, count) -> Detection:
        first = j == 0
        info = self.info(name)
        where = (
            "it is the first layer, so the NaN/Inf most likely came with the input batch"
            if first
            else "every layer before it is finite"
        )
        if first:
            hint = (
                "Check the training data for NaN/Inf (np.isfinite(x).all()) and "
                "clean or impute it before fit (e.g. np.nan_to_num or dropping rows)."
            )
        else:
            hint = (
                "An operation in this layer overflowed or got an invalid value "
                "(log/sqrt/division of 0 or a negative, exp of a large number): "
                "normalise its inputs, add an epsilon, or lower the learning rate; "
                "if it also reads model inputs, check the data for NaN/Inf."
            )
        kind = f" {info.class_name}" if info.class_name else ""
        return self._detection(
            stats,
            name,
            value=float(count),
            message=(
                f"the output of this{kind} layer has {count:.0f} NaN/Inf values "
                f"and {where}."
            ),
            hint=hint,
        )

    def _detection(self, stats, layer, *, value, message, hint) -> Detection:
        return Detection(
            kind=KIND,
            step=stats.step,
            layer=layer,
            value=value,
            threshold=0.0,
            message=message[0].upper() + message[1:],
            hint=hint,
        )

"""Typed, frozen records of what one training step produced (numpy only).

Data contract: tensors become Python/numpy values exactly once, when the fit
loop turns a step's packed statistics into a `StepStats`. Detectors and sinks
consume these records; `gradtrace report` rebuilds the same records from
event files. This module never imports TensorFlow.

Per-layer arrays are float64 numpy arrays of length ``len(layers)`` in
forward order; NaN marks "not measured for this layer" (e.g. activations of a
layer filtered out, or the gradient of a layer without trainable weights).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

__all__ = [
    "LayerInfo",
    "StepStats",
    "StatsBlock",
    "StepTime",
    "SetupFacts",
    "LAYER_FIELDS",
]

# The per-layer statistics, in the column order of the packed step output.
GRAD_FIELDS = ("grad_norm", "grad_max_abs", "grad_zero_frac", "grad_nonfinite")
WEIGHT_FIELDS = ("weight_norm",)
UPDATE_FIELDS = ("update_norm",)
ACT_FIELDS = (
    "act_mean",
    "act_std",
    "act_zero_frac",
    "act_dead_frac",
    "act_saturated_frac",
    "act_nonfinite",
)
LAYER_FIELDS = GRAD_FIELDS + WEIGHT_FIELDS + UPDATE_FIELDS + ACT_FIELDS


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """Static facts about one probed layer, fixed when the step is built.

    Attributes:
        name: ``layer.name``.
        class_name: e.g. ``"Dense"``.
        activation: ``"relu"``-family, ``"sigmoid"``, ``"tanh"``, ``"linear"``,
            ``"other"``: what the layer's output passes through last.
        n_params: number of trainable scalars owned by this layer.
        n_units: size of the last output axis (units/channels), 0 if unknown.
        is_output: the layer produces a model output.
        model: name of the outermost model it was called in (several models
            train in one custom step, e.g. a GAN's generator and
            discriminator: rules that compare layers compare within one
            model); None when unknown.
    """

    name: str
    class_name: str
    activation: str
    n_params: int
    n_units: int
    is_output: bool = False
    model: str | None = None

    @property
    def relu_family(self) -> bool:
        return self.activation == "relu"

    @property
    def saturating(self) -> bool:
        return self.activation in ("sigmoid", "tanh")


@dataclasses.dataclass(frozen=True)
class SetupFacts:
    """What the first step shows about how the model, loss and data fit.

    Gathered once on the host from the model, its compiled loss and the first
    batch (`gradtrace.probes.setup`); judged by `loss_mismatch` and
    `input_scale`. Every field may be None (unknown: that rule stays quiet).

    Attributes:
        output_layer: name of the layer that makes the (single) output.
        output_activation: ``"softmax"``, ``"sigmoid"``, ``"tanh"``,
            ``"relu"`` (ReLU family, softplus: >= 0), ``"linear"``,
            ``"other"``.
        output_units: size of the output's last axis.
        loss: canonical loss name, e.g. ``"categorical_crossentropy"``.
        from_logits: the loss's ``from_logits`` (None if it has none).
        target_min, target_max: range of the first batch's targets.
        target_integer: every target of the first batch is a whole number.
        target_row_sum_max: targets with a last axis > 1: the largest sum
            over that axis (> 1: several classes per row, multi-label).
        input_layer: the first layer that sees the inputs (after layers that
            only reshape or drop values).
        input_class: its class name.
        input_fan_in: inputs per unit of its kernel (Dense: input size;
            Conv: kernel size x input channels).
        input_weight_rms: RMS of its initial kernel.
        input_rms, input_max_abs: RMS and max |x| of the first batch.
    """

    output_layer: str | None = None
    output_activation: str | None = None
    output_units: int | None = None
    loss: str | None = None
    from_logits: bool | None = None
    target_min: float | None = None
    target_max: float | None = None
    target_integer: bool | None = None
    target_row_sum_max: float | None = None
    input_layer: str | None = None
    input_class: str | None = None
    input_fan_in: int | None = None
    input_weight_rms: float | None = None
    input_rms: float | None = None
    input_max_abs: float | None = None


@dataclasses.dataclass(frozen=True)
class StepStats:
    """Statistics of one optimizer step, per layer, from the training pass.

    Attributes:
        step: 0-based optimizer step.
        epoch: 0-based epoch.
        loss: the step's total loss (incl. regularization), unscaled.
        layers: names, in forward order (same order as every array).
        values: per-layer arrays, keyed by the names in `LAYER_FIELDS`, plus
            ``n_params`` (trainable scalars per layer).
        loss_scale: the dynamic loss scale of a `LossScaleOptimizer` (mixed
            precision), else None.
        examples: examples in the step's batch (global batch), None if
            unknown.
    """

    step: int
    epoch: int
    loss: float
    layers: tuple[str, ...]
    values: dict[str, np.ndarray]
    loss_scale: float | None = None
    examples: int | None = None

    def __getattr__(self, name):
        # Per-layer arrays read as attributes: stats.grad_norm, stats.act_dead_frac
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    @functools.cached_property
    def grad_rms(self) -> np.ndarray:
        return _per_param(self.grad_norm, self.values["n_params"])

    @functools.cached_property
    def weight_rms(self) -> np.ndarray:
        return _per_param(self.weight_norm, self.values["n_params"])

    @functools.cached_property
    def update_ratio(self) -> np.ndarray:
        return _update_ratio(self.update_norm, self.weight_norm)


class StatsBlock:
    """`StepStats` of consecutive steps, stacked: the unit detectors judge.

    The fit loop hands the detectors a block of up to `training.BLOCK_STEPS`
    steps at a time (and at once when a step is non-finite), so that rules
    run as a few numpy operations over ``[steps, layers]`` arrays instead of
    Python work every step. `row(i)` is step i as a `StepStats` (views, no
    copy); `StatsBlock.of(records)` stacks records (tests, `observe_stats`).

    Attributes:
        steps, epochs: int arrays ``[K]``.
        loss: float64 ``[K]``.
        layers: names, forward order.
        values: field -> float64 ``[K, L]`` (NaN = not measured), and
            ``n_params`` -> ``[L]``.
        loss_scale: float64 ``[K]`` (NaN where unknown), or None when no step
            of the block has one.
        examples: float64 ``[K]`` examples per step (NaN unknown), or None.
        clipped: float64 ``[K]``, 1.0 where an optimizer's gradient clipping
            (clipnorm / global_clipnorm / clipvalue) engaged; None when no
            optimizer clips.
    """

    def __init__(self, steps, epochs, loss, layers, values, loss_scale=None):
        self.steps = np.asarray(steps, dtype=np.int64)
        self.epochs = np.asarray(epochs, dtype=np.int64)
        self.loss = np.asarray(loss, dtype=np.float64)
        self.layers = tuple(layers)
        self.values = values
        self.loss_scale = loss_scale
        self.clipped = None
        self.examples = None

    @classmethod
    def of(cls, records) -> StatsBlock:
        """Stacks `StepStats` with the same layers (missing columns: NaN)."""
        records = list(records)
        layers = records[0].layers if records else ()
        n = len(layers)
        fields = {k for r in records for k in r.values if k != "n_params"}
        values = {}
        for f in fields:
            rows = []
            for r in records:
                v = r.values.get(f)
                v = (
                    np.full(n, np.nan)
                    if v is None
                    else np.asarray(v, dtype=np.float64).reshape(-1)
                )
                if v.shape[0] != n:
                    raise ValueError(
                        f"StepStats.values[{f!r}] of step {r.step} has "
                        f"{v.shape[0]} entries but the step has {n} layers "
                        f"({layers!r}). Build every column with one entry per "
                        "layer, in the order of `layers` (NaN = not measured)."
                    )
                rows.append(v)
            values[f] = np.stack(rows) if rows else np.zeros((0, n))
        n_params = next(
            (r.values["n_params"] for r in records if "n_params" in r.values), None
        )
        if n_params is not None:
            values["n_params"] = np.asarray(n_params, dtype=np.float64).reshape(-1)
        counts = [r.examples for r in records]
        scales = [r.loss_scale for r in records]
        loss_scale = (
            None
            if all(s is None for s in scales)
            else np.array(
                [np.nan if s is None else s for s in scales], dtype=np.float64
            )
        )
        block = cls(
            [r.step for r in records],
            [r.epoch for r in records],
            [r.loss for r in records],
            layers,
            values,
            loss_scale,
        )
        if any(c is not None for c in counts):
            block.examples = np.array(
                [np.nan if c is None else c for c in counts], dtype=np.float64
            )
        return block

    def __len__(self) -> int:
        return len(self.steps)

    def column(self, name: str) -> np.ndarray:
        """``[K, L]`` float64; all-NaN when the field was not recorded."""
        v = self.values.get(name)
        if v is None:
            return np.full((len(self), len(self.layers)), np.nan)
        return v

    def field(self, name: str) -> np.ndarray:
        """A recorded column or a derived one (grad_rms, weight_rms,
        update_ratio), ``[K, L]``."""
        if name in ("grad_rms", "weight_rms", "update_ratio"):
            return getattr(self, name)
        return self.column(name)

    def row(self, i: int) -> StepStats:
        values = {k: (v if k == "n_params" else v[i]) for k, v in self.values.items()}
        scale = None
        if self.loss_scale is not None and self.loss_scale[i] == self.loss_scale[i]:
            scale = float(self.loss_scale[i])
        examples = None
        if self.examples is not None and self.examples[i] == self.examples[i]:
            examples = int(self.examples[i])
        return StepStats(
            step=int(self.steps[i]),
            epoch=int(self.epochs[i]),
            loss=float(self.loss[i]),
            layers=self.layers,
            values=values,
            loss_scale=scale,
            examples=examples,
        )

    @functools.cached_property
    def grad_rms(self) -> np.ndarray:
        return _per_param(self.column("grad_norm"), self.values.get("n_params"))

    @functools.cached_property
    def global_grad_norm(self) -> np.ndarray:
        """``[K]`` sqrt of the sum over layers of grad_norm^2 (the global
        norm clipping is set from); NaN where no gradient was measured."""
        g = self.column("grad_norm")
        with np.errstate(over="ignore"):
            total = np.sqrt(np.nansum(np.square(g), axis=1))
        total[np.isnan(g).all(axis=1)] = np.nan
        return total

    @functools.cached_property
    def weight_rms(self) -> np.ndarray:
        return _per_param(self.column("weight_norm"), self.values.get("n_params"))

    @functools.cached_property
    def update_ratio(self) -> np.ndarray:
        return _update_ratio(self.column("update_norm"), self.column("weight_norm"))


def _per_param(col: np.ndarray, n_params) -> np.ndarray:
    """``col / sqrt(n_params)`` per layer; NaN where the count is unknown or 0."""
    if n_params is None:
        return np.full(col.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_params > 0, col / np.sqrt(n_params), np.nan)


def _update_ratio(update_norm, weight_norm) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return update_norm / (weight_norm + 1e-12)


@dataclasses.dataclass(frozen=True)
class StepTime:
    """Wall-clock split of one training step (milliseconds).

    Attributes:
        step: 0-based optimizer step.
        epoch: 0-based epoch.
        total_ms: from the start of this step's data fetch to the start of
            the next step's.
        data_ms: blocked in the input pipeline (the iterator's ``next``).
        compute_ms: the compiled step, until the device finished it.
        host_ms: the rest: callbacks, progress bar, gradtrace's per-step
            bookkeeping (its block-wise judging and writing runs between steps).
        retraced: this step traced (or compiled) the step function again.
        retrace_reason: what changed, when `retraced`.
        peak_memory_mb: peak device memory during the step (GPU only, where
            TensorFlow reports it), else None.
        worker_ms: under MultiWorkerMirroredStrategy, every worker's own part
            of this step (data_ms + host_ms; host_ms only at an epoch's first
            step, whose data wait is shared), in task order; else None.
    """

    step: int
    epoch: int
    total_ms: float
    data_ms: float
    compute_ms: float
    host_ms: float
    retraced: bool
    retrace_reason: str | None = None
    peak_memory_mb: float | None = None
    worker_ms: tuple[float, ...] | None = None

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

__all__ = ["LayerInfo", "StepStats", "StepTime", "LAYER_FIELDS"]

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
    """

    name: str
    class_name: str
    activation: str
    n_params: int
    n_units: int
    is_output: bool = False

    @property
    def relu_family(self) -> bool:
        return self.activation == "relu"

    @property
    def saturating(self) -> bool:
        return self.activation in ("sigmoid", "tanh")


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
    """

    step: int
    epoch: int
    loss: float
    layers: tuple[str, ...]
    values: dict[str, np.ndarray]
    loss_scale: float | None = None

    def __getattr__(self, name):
        # Per-layer arrays read as attributes: stats.grad_norm, stats.act_dead_frac
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def _per_param(self, col: np.ndarray) -> np.ndarray:
        n = self.values["n_params"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, col / np.sqrt(n), np.nan)

    @functools.cached_property
    def grad_rms(self) -> np.ndarray:
        return self._per_param(self.grad_norm)

    @functools.cached_property
    def weight_rms(self) -> np.ndarray:
        return self._per_param(self.weight_norm)

    @functools.cached_property
    def update_ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.update_norm / (self.weight_norm + 1e-12)


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
        host_ms: the rest: callbacks, progress bar, logging, gradtrace.
        retraced: this step traced (or compiled) the step function again.
        retrace_reason: what changed, when `retraced`.
        peak_memory_mb: peak device memory during the step (GPU only, where
            TensorFlow reports it), else None.
        worker_ms: under MultiWorkerMirroredStrategy, every worker's own part
            of this step (data_ms + host_ms), in task order; else None.
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

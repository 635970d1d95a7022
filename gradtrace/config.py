"""`gradtrace.Config`: what is recorded, how often, and every detector threshold.

A flat, frozen dataclass of plain values, validated when it is made, so a
mistake surfaces before any weight changes. Every threshold a detector uses is
a field here; the README's findings table lists them with their defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

__all__ = ["Config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """What gradtrace records, how often, and when it raises a finding.

    Example:

    ```python
    cfg = gradtrace.Config(histogram_every=50, layers=("dense*",))
    gradtrace.fit(model, x, y, logdir="runs/a", config=cfg)
    ```

    Recording (families of statistics, each can be switched off; a family that
    is off is not traced into the step at all):

    Attributes:
        gradients: per-layer gradient norm, RMS, max-abs, zero share, non-finite.
        weights: per-layer weight norm and RMS.
        updates: per-layer update norm ``||dw||`` and ratio ``||dw||/||w||``.
        activations: per-layer activation mean, std, zero share, dead-unit
            share (ReLU family), saturated share (sigmoid/tanh), non-finite.
        histograms: gradient/weight/activation histograms and the heatmap
            images, computed only in the "heavy" step.
        histogram_every: run the heavy step every this many steps (>= 1).
        write_every: write per-step scalars to TensorBoard every this many
            steps (>= 1). Detectors still see every step.
        layers: ``fnmatch`` patterns on ``layer.name``; only matching layers
            are probed. ``None`` probes every layer.
        timing: time every step (data / compute / host split).
        console: print one warning line per new finding.
        stop_on_non_finite: stop training cleanly after a ``non_finite``
            finding (every later step would be meaningless).
    """

    gradients: bool = True
    weights: bool = True
    updates: bool = True
    activations: bool = True
    histograms: bool = True
    histogram_every: int = 100
    write_every: int = 1
    layers: tuple[str, ...] | None = None
    timing: bool = True
    console: bool = True
    stop_on_non_finite: bool = True

    # --- diagnosis thresholds (gradtrace/detectors/, owned by the diagnosis work) ---
    # --- end diagnosis thresholds ---

    # --- timing thresholds (slow_step / input_bound / retracing, profiler) ---
    # --- end timing thresholds ---

    def __post_init__(self):
        for name in (
            "gradients",
            "weights",
            "updates",
            "activations",
            "histograms",
            "timing",
            "console",
            "stop_on_non_finite",
        ):
            _check_bool(name, getattr(self, name))
        for name in ("histogram_every", "write_every"):
            _check_int(name, getattr(self, name), minimum=1)
        if self.layers is not None:
            if isinstance(self.layers, str) or not isinstance(self.layers, Sequence):
                raise TypeError(
                    "`layers` must be None or a sequence of layer-name "
                    f"patterns, e.g. ('dense*',). Received: layers={self.layers!r}"
                    f" of type {type(self.layers).__name__}."
                )
            if not all(isinstance(p, str) for p in self.layers):
                raise TypeError(
                    "`layers` must contain only strings (fnmatch patterns on "
                    f"layer.name). Received: layers={self.layers!r}."
                )
            object.__setattr__(self, "layers", tuple(self.layers))
        # --- diagnosis validation ---
        # --- end diagnosis validation ---
        # --- timing validation ---
        # --- end timing validation ---

    @property
    def probes_on(self) -> bool:
        """Whether any in-graph statistic is recorded at all."""
        return self.gradients or self.weights or self.updates or self.activations


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be True or False. Received: {name}={value!r} "
            f"of type {type(value).__name__}."
        )


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be an int. Received: {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value}.")


def _check_float(name, value, minimum=0.0, maximum=math.inf):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"`{name}` must be a number. Received: {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    if not (minimum <= value <= maximum) or math.isnan(value):
        raise ValueError(
            f"`{name}` must be in [{minimum}, {maximum}]. Received: {name}={value}."
        )

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
        histogram_every: run the heavy step every this many steps (>= 1);
            a multiple of it when `log_budget_kb` needs (see there).
        write_every: write per-step scalars to TensorBoard every this many
            steps (>= 1). Detectors still see every step.
        log_budget_kb: average TensorBoard kB per step (> 0), or ``None``
            for everything. Model-wide series (loss, global gradient norm,
            timing...) are always written every `write_every` steps;
            histograms and then per-layer scalars are written at a lower
            rate when they would exceed the budget (``gradtrace.budget``).
            Detectors still see every layer at every step.
        layers: ``fnmatch`` patterns on ``layer.name``; only matching layers
            are probed. ``None`` probes every layer.
        timing: time every step (data / compute / host split).
        console: print one warning line per new finding.
        stop_on_non_finite: stop training cleanly after a ``non_finite``
            finding (every later step would be meaningless).
        loss_scale_min: mixed precision: a dynamic loss scale below this is
            a ``non_finite`` finding.

    Detector thresholds (``diagnosis_*``, ``vanishing_*``, ``exploding_*``,
    ``dead_relu_frac``, ``saturation_frac``, ``update_ratio_*``,
    ``loss_*``, ``slow_step_*``, ``input_bound_*``, ``retrace_min_count``)
    and the profiler window (``profile_*``) are documented next to each
    field below and in the README's "Finding kinds" table.
    """

    gradients: bool = True
    weights: bool = True
    updates: bool = True
    activations: bool = True
    histograms: bool = True
    histogram_every: int = 100
    write_every: int = 1
    log_budget_kb: float | None = 5.0
    layers: tuple[str, ...] | None = None
    timing: bool = True
    console: bool = True
    stop_on_non_finite: bool = True
    # mixed precision: a dynamic loss scale below this is a non_finite finding
    loss_scale_min: float = 1.0

    # --- diagnosis thresholds (gradtrace/detectors/, owned by the diagnosis work) ---
    # Steps at the start where per-layer rules (vanishing, dead, ...) stay quiet.
    diagnosis_warmup: int = 10
    # Consecutive checks a per-layer condition must hold before it is a finding.
    diagnosis_patience: int = 5
    # vanishing_gradient: layer gradient RMS below this fraction of the output layer's...
    vanishing_ratio: float = 1e-3
    # ...and below this absolute RMS (mean |dL/dw| scale).
    vanishing_rms: float = 1e-4
    # exploding_gradient: global gradient norm above this multiple of its recent p90.
    exploding_factor: float = 100.0
    # exploding_gradient: steps in the p90 baseline (needs at least 2 earlier steps).
    exploding_window: int = 50
    # exploding_gradient, absurd size: global norm > this x max(|loss|, 1)
    # for diagnosis_patience consecutive steps
    exploding_abs: float = 1e6
    # dead_relu: share of a ReLU layer's units that output 0 for the whole batch.
    dead_relu_frac: float = 0.7
    # saturation: share of a hidden sigmoid/tanh layer's outputs within 1% of a bound.
    saturation_frac: float = 0.5
    # update_ratio: ||dw||/||w|| per step above this is too large (healthy ~1e-3).
    update_ratio_max: float = 0.1
    # update_ratio: ||dw||/||w|| per step below this is too small.
    update_ratio_min: float = 1e-7
    # loss_divergence: smoothed loss above this multiple of its best value so far.
    loss_divergence_factor: float = 10.0
    # loss_divergence: steps in the loss median (smoothing).
    loss_window: int = 10
    # zero_gradient: every gradient exactly 0 at this many consecutive steps
    zero_gradient_steps: int = 3
    # input_scale: estimated RMS of the first layer's pre-activations at the
    # first batch, rms(x) * sqrt(fan_in) * rms(kernel), above this
    input_scale_max: float = 10.0
    # --- end diagnosis thresholds ---

    # --- timing thresholds (slow_step / input_bound / retracing, profiler) ---
    # slow_step: total_ms > max(factor x median, median + mads x 1.4826 MAD,
    # median + min_ms), median/MAD over the last `slow_step_window` comparable
    # steps (light and heavy steps apart; compile steps and the data wait of
    # each epoch's first step left out), judged once `slow_step_warmup` seen.
    slow_step_factor: float = 3.0
    slow_step_mads: float = 10.0
    # The absolute floor: a young-generation GC pause or OS jitter (< ~30 ms)
    # on a few-ms step is not a finding; a full GC (0.1-1 s) is.
    slow_step_min_ms: float = 40.0
    slow_step_window: int = 200
    slow_step_warmup: int = 10
    # What a slow step must cost to be a finding: alone, an excess over the
    # median of at least `slow_step_stall_ms` (a stall a person notices);
    # else at least `slow_step_recur` slow steps within the last
    # `slow_step_window` steps whose excess adds up to `slow_step_share` of
    # that window's time. One jittery step of tens of ms is neither.
    slow_step_stall_ms: float = 200.0
    slow_step_recur: int = 3
    slow_step_share: float = 0.05
    # input_bound: over each `input_bound_window` comparable steps, data_ms is
    # at least this share of total_ms and at least `input_bound_min_ms` a step.
    input_bound_share: float = 0.5
    input_bound_min_ms: float = 1.0
    input_bound_window: int = 100
    # retracing: a retrace after the first call of each step variant is a
    # finding once this many have happened.
    retrace_min_count: int = 1
    # Profiler (needs a logdir): trace global steps (first, last) inclusive,
    # and/or `profile_length` steps after a slow step (aimed at the next one
    # when slow steps recur with a fixed period), at most `profile_max_traces`
    # slow-step traces per run. At most 10 steps per trace.
    profile_steps: tuple[int, int] | None = None
    profile_on_slow_step: bool = False
    profile_length: int = 5
    profile_max_traces: int = 2
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
        _check_float("loss_scale_min", self.loss_scale_min)
        for name in ("histogram_every", "write_every"):
            _check_int(name, getattr(self, name), minimum=1)
        budget = self.log_budget_kb
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float)):
                raise TypeError(
                    "`log_budget_kb` must be a number or None. Received: "
                    f"log_budget_kb={budget!r} of type {type(budget).__name__}."
                )
            if not 0 < budget < math.inf:
                raise ValueError(
                    "`log_budget_kb` must be a finite number > 0 (average kB of event files per "
                    "step), or None to write every statistic at every step. "
                    f"Received: log_budget_kb={self.log_budget_kb}."
                )
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
        for name in ("diagnosis_warmup",):
            _check_int(name, getattr(self, name), minimum=0)
        for name in (
            "diagnosis_patience",
            "exploding_window",
            "loss_window",
            "zero_gradient_steps",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        _check_float("input_scale_max", self.input_scale_max)
        _check_float("exploding_abs", self.exploding_abs, minimum=1.0)
        for name in ("dead_relu_frac", "saturation_frac"):
            _check_float(name, getattr(self, name), minimum=0.0, maximum=1.0)
        for name in ("vanishing_ratio", "vanishing_rms", "update_ratio_min"):
            _check_float(name, getattr(self, name), minimum=0.0)
        for name in ("exploding_factor", "loss_divergence_factor"):
            _check_float(name, getattr(self, name), minimum=1.0)
        _check_float("update_ratio_max", self.update_ratio_max, minimum=0.0)
        if self.update_ratio_min >= self.update_ratio_max:
            raise ValueError(
                "`update_ratio_min` must be below `update_ratio_max`. Received: "
                f"update_ratio_min={self.update_ratio_min}, "
                f"update_ratio_max={self.update_ratio_max}."
            )
        # --- end diagnosis validation ---
        # --- timing validation ---
        _check_float("slow_step_factor", self.slow_step_factor, minimum=1.0)
        _check_float("slow_step_mads", self.slow_step_mads)
        _check_float("slow_step_min_ms", self.slow_step_min_ms)
        _check_int("slow_step_window", self.slow_step_window, minimum=3)
        _check_int("slow_step_warmup", self.slow_step_warmup, minimum=3)
        _check_float("slow_step_stall_ms", self.slow_step_stall_ms)
        _check_int("slow_step_recur", self.slow_step_recur, minimum=1)
        _check_float("slow_step_share", self.slow_step_share, maximum=1.0)
        if self.slow_step_warmup > self.slow_step_window:
            raise ValueError(
                "`slow_step_warmup` must be <= `slow_step_window` (the baseline "
                f"never fills otherwise). Received: slow_step_warmup="
                f"{self.slow_step_warmup}, slow_step_window={self.slow_step_window}."
            )
        _check_float("input_bound_share", self.input_bound_share, maximum=1.0)
        _check_float("input_bound_min_ms", self.input_bound_min_ms)
        _check_int("input_bound_window", self.input_bound_window, minimum=1)
        _check_int("retrace_min_count", self.retrace_min_count, minimum=1)
        _check_bool("profile_on_slow_step", self.profile_on_slow_step)
        _check_int("profile_length", self.profile_length, minimum=1)
        _check_int("profile_max_traces", self.profile_max_traces, minimum=0)
        if self.profile_length > 10:
            raise ValueError(
                "`profile_length` must be <= 10: a longer trace is slow to write "
                "and to open in TensorBoard. Received: "
                f"profile_length={self.profile_length}."
            )
        if self.profile_steps is not None:
            ps = self.profile_steps
            if (
                isinstance(ps, str)
                or not isinstance(ps, Sequence)
                or len(ps) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in ps)
            ):
                raise TypeError(
                    "`profile_steps` must be None or a pair of ints (first, last): "
                    "the global steps to trace, inclusive, e.g. (10, 14). "
                    f"Received: profile_steps={ps!r} of type {type(ps).__name__}."
                )
            first, last = ps
            if first < 0 or last < first or last - first + 1 > 10:
                raise ValueError(
                    "`profile_steps` must be (first, last) with 0 <= first <= last "
                    "and at most 10 steps (last - first + 1 <= 10), e.g. (10, 14). "
                    f"Received: profile_steps={ps!r}."
                )
            object.__setattr__(self, "profile_steps", (int(first), int(last)))
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

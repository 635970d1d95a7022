"""`vanishing_gradient`: gradients reaching a layer are too small to train it.

Rule: per hidden layer with trainable weights, its gradient RMS per parameter
(``grad_norm / sqrt(n_params)``) is below `Config.vanishing_ratio` (default
1e-3) times the RMS of the output layer's gradient *and* below
`Config.vanishing_rms` (default 1e-4), for `Config.diagnosis_patience`
consecutive checks, from step `Config.diagnosis_warmup` on. One finding names
the first such layer in forward order; the message counts the others.

The two conditions are AUTOTRAINER's (first/last gradient-norm ratio < 1e-3
and first-layer norm < 1e-4), applied per layer at every step, on per-
parameter RMS so layers of different sizes compare. Relative *and* absolute:
a converged model has tiny gradients everywhere (not vanishing), and a layer
may legitimately get 1000x less gradient than the output when all gradients
are large. Skipped: output layers (the reference), layers without gradient
(NaN), and layers whose zero gradient is explained by a dead ReLU layer at or
after them (that is `dead_relu`'s finding), and Embedding layers (their
gradient touches only the rows looked up in the batch). DeepDiagnosis' mean |dW| < 1e-7
alone would flag every well-converged model.
"""

from __future__ import annotations

import numpy as np

from ..records import StepStats
from . import Detection
from ._common import LayerDetector, column, grad_rms, more_layers, sci

KIND = "vanishing_gradient"
# Layers whose gradient touches only the rows looked up in the batch: their
# RMS over every parameter is small by design, not vanishing.
SPARSE_GRADIENT = frozenset({"Embedding"})
HINT = (
    "Use ReLU-family activations in hidden layers with He initialisation, add "
    "BatchNormalization or residual connections, or make the network shallower; "
    "for the first layer, also check that the inputs are not tiny (normalise them)."
)


def reference_rms(stats: StepStats, rms: np.ndarray, info) -> tuple[int, float]:
    """(index, RMS) of the output-side reference layer; (-1, nan) if none."""
    idx = [
        j
        for j, n in enumerate(stats.layers)
        if info(n).is_output and np.isfinite(rms[j])
    ]
    if not idx:
        idx = [j for j in range(len(stats.layers)) if np.isfinite(rms[j])][-1:]
    if not idx:
        return -1, float("nan")
    best = max(idx, key=lambda j: rms[j])
    return best, float(rms[best])


def dead_from(stats: StepStats, info, dead_frac: float) -> np.ndarray:
    """Per layer: a ReLU layer at or after it is dead (>= dead_frac)."""
    dead = column(stats, "act_dead_frac")
    is_dead = np.array(
        [
            info(n).relu_family and dead[j] >= dead_frac
            for j, n in enumerate(stats.layers)
        ],
        dtype=bool,
    )
    # Reverse cumulative "any": layer j is covered if any k >= j is dead.
    return np.logical_or.accumulate(is_dead[::-1])[::-1] if len(is_dead) else is_dead


def _output(info) -> bool:
    return info.is_output


def _not_judged(info) -> bool:
    return info.is_output or info.class_name in SPARSE_GRADIENT


def _relu(info) -> bool:
    return info.relu_family


class VanishingGradientDetector(LayerDetector):
    """Per hidden layer: gradient RMS relative to the output layer's."""

    kind = KIND

    def _quiet(self, block) -> bool:
        # `reference_rms`, `dead_from` and the rule of `observe_stats`, for
        # every row of the block at once.
        cfg = self.config
        names = block.layers
        k, n = len(block), len(names)
        if not n:
            return True
        rms = block.grad_rms
        finite = np.isfinite(rms)
        outs = self.layer_mask(names, _output) & finite
        has_out = outs.any(axis=1)
        masked = np.where(outs, rms, -np.inf)
        last = n - 1 - np.argmax(finite[:, ::-1], axis=1)
        ref_j = np.where(has_out, np.argmax(masked, axis=1), last)
        ref = rms[np.arange(k), ref_j]
        valid = (has_out | finite.any(axis=1)) & (ref > 0)
        dead = self.layer_mask(names, _relu) & (
            block.column("act_dead_frac") >= cfg.dead_relu_frac
        )
        covered = np.logical_or.accumulate(dead[:, ::-1], axis=1)[:, ::-1]
        with np.errstate(all="ignore"):
            ratio = rms / ref[:, None]
        hit = (ratio < cfg.vanishing_ratio) & (rms < cfg.vanishing_rms) & ~covered
        judged = (
            valid[:, None]
            & ~self.layer_mask(names, _not_judged)
            & (np.arange(n)[None, :] != ref_j[:, None])
            & ~np.isnan(rms)
        )
        return self.settle(names, (names, judged, hit))

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        cfg = self.config
        if not stats.layers:
            return []
        rms = grad_rms(stats)
        ref_j, ref = reference_rms(stats, rms, self.info)
        if ref_j < 0 or not ref > 0:
            return []
        covered = dead_from(stats, self.info, cfg.dead_relu_frac)
        ratio = rms / ref
        hits = []
        for j, name in enumerate(stats.layers):
            info = self.info(name)
            if j == ref_j or info.is_output or info.class_name in SPARSE_GRADIENT:
                continue
            hit = (
                ratio[j] < cfg.vanishing_ratio
                and rms[j] < cfg.vanishing_rms
                and not covered[j]
            )
            if self.persistent(stats, name, rms[j], hit):
                hits.append(j)
        if not hits:
            return []
        j = hits[0]
        message = (
            f"Its gradient RMS per weight is {sci(rms[j])}, {sci(ratio[j])}x "
            f"that of the output layer '{stats.layers[ref_j]}' ({sci(ref)}); "
            f"thresholds {cfg.vanishing_ratio:.0e}x and {cfg.vanishing_rms:.0e}"
            f"{more_layers([stats.layers[k] for k in hits])}."
        )
        return [
            self.detection(
                stats, stats.layers[j], ratio[j], cfg.vanishing_ratio, message, HINT
            )
        ]

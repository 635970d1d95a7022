"""`vanishing_gradient`: gradients reaching a layer are too small to train it.

Rule: per hidden layer with trainable weights, its gradient RMS per parameter
(``grad_norm / sqrt(n_params)``) is below `Config.vanishing_ratio` (default
1e-3) times the RMS of the output layer's gradient (of its own model, when a
custom step trains several) *and* below
`Config.vanishing_rms` (default 1e-4), for `Config.diagnosis_patience`
consecutive checks, from step `Config.diagnosis_warmup` on. One finding names
the first such layer in forward order; the message counts the others.

The two conditions are AUTOTRAINER's (first/last gradient-norm ratio < 1e-3
and first-layer norm < 1e-4), applied per layer at every step, on per-
parameter RMS so layers of different sizes compare. Relative *and* absolute:
a converged model has tiny gradients everywhere (not vanishing), and a layer
may legitimately get 1000x less gradient than the output when all gradients
are large. Skipped: output layers (the reference), layers without gradient
(NaN), and layers whose zero gradient is explained by an entirely dead ReLU
layer at or after them (every unit dead: nothing can pass; that is
`dead_relu`'s finding). A ReLU layer that is only mostly dead still passes
gradient through its live units, so a tiny gradient behind it is judged (a
tiny initialisation kills most units *and* vanishes the gradient), and Embedding layers (their
gradient touches only the rows looked up in the batch). DeepDiagnosis' mean |dW| < 1e-7
alone would flag every well-converged model.
"""

from __future__ import annotations

import numpy as np

from ..records import StepStats
from . import Detection
from ._common import LayerDetector, column, grad_rms, more_layers, sci

KIND = "vanishing_gradient"
# A ReLU layer blocks the gradient only when every unit is dead.
BLOCKED = 1.0

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
    """Per hidden layer: gradient RMS relative to its model's output layer.

    When several models train in one step (a GAN's generator and
    discriminator, `LayerInfo.model`), each model's layers are compared with
    that model's own output layer, and only its own dead ReLUs explain a
    zero gradient.
    """

    kind = KIND

    def _groups(self, names) -> list[np.ndarray]:
        """Column indexes of each model's layers (one group when unknown)."""
        key = ("groups", names)
        cache = self.__dict__.setdefault("_group_cache", {})
        groups = cache.get(key)
        if groups is None:
            models = [self.info(n).model for n in names]
            order = list(dict.fromkeys(models))
            groups = [
                np.array([j for j, m in enumerate(models) if m == g], dtype=np.int64)
                for g in order
            ]
            cache[key] = groups
        return groups

    def _quiet(self, block) -> bool:
        # `reference_rms`, `dead_from` and the rule of `observe_stats`, for
        # every row of the block at once, model by model.
        cfg = self.config
        names = block.layers
        k, n = len(block), len(names)
        if not n:
            return True
        all_rms = block.grad_rms
        all_dead = self.layer_mask(names, _relu) & (
            block.column("act_dead_frac") >= BLOCKED
        )
        outs_all = self.layer_mask(names, _output)
        skip_all = self.layer_mask(names, _not_judged)
        judged = np.zeros((k, n), dtype=bool)
        hit = np.zeros((k, n), dtype=bool)
        for cols in self._groups(names):
            rms = all_rms[:, cols]
            m = len(cols)
            finite = np.isfinite(rms)
            outs = outs_all[cols] & finite
            has_out = outs.any(axis=1)
            masked = np.where(outs, rms, -np.inf)
            last = m - 1 - np.argmax(finite[:, ::-1], axis=1)
            ref_j = np.where(has_out, np.argmax(masked, axis=1), last)
            ref = rms[np.arange(k), ref_j]
            valid = (has_out | finite.any(axis=1)) & (ref > 0)
            dead = all_dead[:, cols]
            covered = np.logical_or.accumulate(dead[:, ::-1], axis=1)[:, ::-1]
            with np.errstate(all="ignore"):
                ratio = rms / ref[:, None]
            hit[:, cols] = (
                (ratio < cfg.vanishing_ratio) & (rms < cfg.vanishing_rms) & ~covered
            )
            judged[:, cols] = (
                valid[:, None]
                & ~skip_all[cols]
                & (np.arange(m)[None, :] != ref_j[:, None])
                & ~np.isnan(rms)
            )
        return self.settle(names, (names, judged, hit))

    def observe_stats(self, stats: StepStats) -> list[Detection]:
        cfg = self.config
        if not stats.layers:
            return []
        all_rms = grad_rms(stats)
        all_covered = dead_from(stats, self.info, BLOCKED)
        hits = []  # (j, ratio, reference layer, reference RMS)
        for cols in self._groups(stats.layers):
            sub = _Subset(stats, cols)
            rms = all_rms[cols]
            ref_j, ref = reference_rms(sub, rms, self.info)
            if ref_j < 0 or not ref > 0:
                continue
            covered = (
                dead_from(sub, self.info, BLOCKED)
                if len(cols) < len(stats.layers)
                else all_covered
            )
            ratio = rms / ref
            for i, j in enumerate(cols):
                name = stats.layers[j]
                info = self.info(name)
                if i == ref_j or info.is_output or info.class_name in SPARSE_GRADIENT:
                    continue
                hit = (
                    ratio[i] < cfg.vanishing_ratio
                    and rms[i] < cfg.vanishing_rms
                    and not covered[i]
                )
                if self.persistent(stats, name, rms[i], hit):
                    hits.append((j, ratio[i], sub.layers[ref_j], ref))
        if not hits:
            return []
        hits.sort()
        j, ratio_j, ref_name, ref = hits[0]
        message = (
            f"Its gradient RMS per weight is {sci(all_rms[j])}, {sci(ratio_j)}x "
            f"that of the output layer '{ref_name}' ({sci(ref)}); "
            f"thresholds {cfg.vanishing_ratio:.0e}x and {cfg.vanishing_rms:.0e}"
            f"{more_layers([stats.layers[h[0]] for h in hits])}."
        )
        return [
            self.detection(
                stats, stats.layers[j], ratio_j, cfg.vanishing_ratio, message, HINT
            )
        ]


class _Subset:
    """The columns `cols` of a `StepStats`, as `reference_rms`/`dead_from` read it."""

    def __init__(self, stats: StepStats, cols):
        self.layers = tuple(stats.layers[j] for j in cols)
        self.values = {k: np.asarray(v)[cols] for k, v in stats.values.items()}

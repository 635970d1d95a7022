"""Helpers shared by the detectors: columns, streaks, formatting (numpy only)."""

from __future__ import annotations

import math

import numpy as np

from ..records import LayerInfo, StatsBlock, StepStats
from . import Detection


def column(stats: StepStats, name: str) -> np.ndarray:
    """A per-layer column as float64; all-NaN when it was not recorded."""
    n = len(stats.layers)
    values = stats.values.get(name)
    if values is None:
        return np.full(n, np.nan)
    if (
        type(values) is np.ndarray
        and values.dtype == np.float64
        and values.shape == (n,)
    ):
        return values  # the fit loop's records: already the right form (hot path)
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(
            f"StepStats.values[{name!r}] has {out.shape[0]} entries but the step "
            f"has {n} layers ({stats.layers!r}). Build every column with one "
            "entry per layer, in the order of `layers` (NaN = not measured)."
        )
    return out


def grad_rms(stats: StepStats) -> np.ndarray:
    """Gradient RMS per parameter, ``||g|| / sqrt(n_params)``; NaN if unknown."""
    if "grad_norm" in stats.values and "n_params" in stats.values:
        return column_like(stats, stats.grad_rms)  # computed once per record
    g = column(stats, "grad_norm")
    n = column(stats, "n_params")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, g / np.sqrt(n), np.nan)


def column_like(stats: StepStats, values) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.shape[0] != len(stats.layers):
        raise ValueError(
            f"A per-layer column has {out.shape[0]} entries but the step has "
            f"{len(stats.layers)} layers ({stats.layers!r})."
        )
    return out


class LayerLookup:
    """`LayerInfo` by layer name; unknown names get a neutral default."""

    def __init__(self, layers: tuple[LayerInfo, ...]):
        self._by_name = {info.name: info for info in layers or ()}

    def __call__(self, name: str) -> LayerInfo:
        info = self._by_name.get(name)
        if info is None:
            info = LayerInfo(
                name=name, class_name="", activation="other", n_params=0, n_units=0
            )
        return info


class Streaks:
    """Consecutive-check counters, one per key.

    `update(key, hit)` with `hit=None` (not measured at this step) leaves the
    counter as it is: a light step that does not measure a column neither
    confirms nor breaks a streak.
    """

    def __init__(self):
        self._n: dict = {}

    def reset(self, key) -> None:
        self._n[key] = 0

    def update(self, key, hit: bool | None) -> int:
        if hit is None:
            return self._n.get(key, 0)
        self._n[key] = self._n.get(key, 0) + 1 if hit else 0
        return self._n[key]

    def get(self, key) -> int:
        return self._n.get(key, 0)


def finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def pct(x: float) -> str:
    """0.973 -> '97%' (never rounds a real share up to 100% or down to 0%)."""
    p = 100.0 * x
    if 99.0 < p < 100.0:
        return f"{p:.1f}%"
    if 0.0 < p < 1.0:
        return f"{p:.2g}%"
    return f"{p:.0f}%"


def sci(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else str(x)


def more_layers(names: list[str]) -> str:
    """' (also 3 more layers: 'a', 'b', 'c')' for the layers after the first."""
    rest = names[1:]
    if not rest:
        return ""
    shown = ", ".join(f"'{n}'" for n in rest[:3])
    if len(rest) > 3:
        shown += ", ..."
    word = "layer" if len(rest) == 1 else "layers"
    return f"; {len(rest)} more {word} too ({shown})"


class LayerDetector:
    """Base of the per-layer rules: config, layer lookup, persistence, output.

    A subclass sets `kind` and implements `observe_stats`; `persistent`
    applies the shared warm-up and patience (`Config.diagnosis_warmup`,
    `Config.diagnosis_patience`).
    """

    kind = ""

    def __init__(self, config, layers: tuple[LayerInfo, ...]):
        self.config = config
        self.info = LayerLookup(layers)
        self.streaks = Streaks()

    def observe_stats(self, stats: StepStats) -> list:
        raise NotImplementedError

    def observe_block(self, block: StatsBlock) -> list:
        """The detections of `observe_stats` over every row of `block`, in order.

        The fit loop's path: `_quiet(block)` checks the whole block with a
        few array operations and, when no row can hit the rule, settles the
        streaks at once; otherwise each row goes through `observe_stats`.
        """
        if len(block) and self._quiet(block):
            return []
        out = []
        for i in range(len(block)):
            out += self.observe_stats(block.row(i))
        return out

    def _quiet(self, block: StatsBlock) -> bool:
        return False

    def settle(self, layers, *checks) -> bool:
        """Bulk streak update for a block in which nothing hits.

        Each check is ``(keys, judged, hit)``: ``keys[j]`` the streak key of
        layer j, ``judged`` a ``[K, L]`` mask of the (row, layer) pairs the
        rule measures (what `persistent` sees as measured), ``hit`` the
        rule's condition. If no judged pair hits, every judged key's streak
        is reset (exactly what `observe_stats` would leave) and True is
        returned; otherwise nothing changes and the caller goes row by row.
        """
        if any((judged & hit).any() for _, judged, hit in checks):
            return False
        for keys, judged, _ in checks:
            for j in np.flatnonzero(judged.any(axis=0)):
                self.streaks.reset(keys[j])
        return True

    def layer_mask(self, layers, predicate) -> np.ndarray:
        """``[L]`` bool: `predicate(LayerInfo)` per layer (cached per layers)."""
        key = (layers, predicate)
        cache = self.__dict__.setdefault("_masks", {})
        mask = cache.get(key)
        if mask is None:
            mask = np.array([bool(predicate(self.info(n))) for n in layers], dtype=bool)
            cache[key] = mask
        return mask

    def finish(self) -> list:
        return []

    def persistent(self, stats: StepStats, key, value: float, hit: bool) -> int:
        """Records one check; the streak length if it is a finding now, else 0.

        `value` NaN means "not measured at this step" (the streak is kept).
        """
        measured = value == value
        n = self.streaks.update(key, bool(hit) if measured else None)
        cfg = self.config
        if (
            measured
            and hit
            and n >= cfg.diagnosis_patience
            and stats.step >= cfg.diagnosis_warmup
        ):
            return n
        return 0

    def detection(self, stats, layer, value, threshold, message, hint) -> Detection:
        return Detection(
            kind=self.kind,
            step=stats.step,
            layer=layer,
            value=float(value),
            threshold=float(threshold),
            message=message,
            hint=hint,
        )


def zero_gradient_rows(g: np.ndarray) -> np.ndarray:
    """``[K, L]`` gradient norms -> ``[K]``: some gradient was measured and
    every measured one is exactly 0 (the loss does not reach the weights)."""
    g = np.atleast_2d(g)
    measured = ~np.isnan(g)
    return measured.any(axis=1) & ~(measured & (g != 0)).any(axis=1)

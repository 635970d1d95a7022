"""Small numpy fixtures for the detector tests: LayerInfo and StepStats."""

from __future__ import annotations

import copy

import numpy as np

from gradtrace.records import LAYER_FIELDS, LayerInfo, StatsBlock, StepStats


def info(
    name: str,
    activation: str = "relu",
    *,
    n_params: int = 100,
    n_units: int = 10,
    is_output: bool = False,
    class_name: str = "Dense",
) -> LayerInfo:
    return LayerInfo(
        name=name,
        class_name=class_name,
        activation=activation,
        n_params=n_params,
        n_units=n_units,
        is_output=is_output,
    )


def stats(step: int, layers, loss: float = 1.0, epoch: int = 0, **cols) -> StepStats:
    """A StepStats whose unspecified columns are NaN (not measured).

    `layers` is a sequence of `LayerInfo` (n_params taken from it) or names
    (100 params each); `cols` maps a field name to one value per layer (or
    one scalar for every layer).
    """
    names = tuple(getattr(x, "name", x) for x in layers)
    n = len(names)
    values = {f: np.full(n, np.nan) for f in LAYER_FIELDS}
    values["n_params"] = np.array(
        [float(getattr(x, "n_params", 100)) for x in layers], dtype=np.float64
    )
    for k, v in cols.items():
        if k not in values:
            raise KeyError(k)
        values[k] = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
    return StepStats(step=step, epoch=epoch, loss=loss, layers=names, values=values)


def feed(detector, records) -> list:
    """Every Detection a detector returns over `records`, then `finish()`.

    Also proves the fit loop's path gives exactly the same: fresh copies of
    the detector are fed the same records as `StatsBlock`s (all at once, and
    in blocks of 3 and 32 steps) and must return the same detections.
    """
    records = list(records)
    copies = [copy.deepcopy(detector) for _ in BLOCK_SIZES]
    out = []
    for r in records:
        out += detector.observe_stats(r)
    out += detector.finish()
    for size, twin in zip(BLOCK_SIZES, copies):
        size = size or max(1, len(records))
        blocked = []
        for i in range(0, len(records), size):
            blocked += twin.observe_block(StatsBlock.of(records[i : i + size]))
        blocked += twin.finish()
        # repr: a NaN value compares unequal to itself
        assert repr(blocked) == repr(out), f"blocks of {size} differ from step by step"
    return out


BLOCK_SIZES = (None, 3, 32)  # None: every record in one block

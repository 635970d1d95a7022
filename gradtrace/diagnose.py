"""Runs the detectors over the stream of records (numpy only, no TensorFlow).

The live fit loop and `gradtrace report` both feed a `Diagnoser` the same
records, so both apply exactly the same rules.
"""

from __future__ import annotations

import collections

import numpy as np

from .findings import FindingBook
from .records import LayerInfo, StepStats, StepTime

HEATMAP_STEPS = 256


class Diagnoser:
    def __init__(self, config, layers: tuple[LayerInfo, ...], book: FindingBook):
        self.config = config
        self.layers = layers
        self.book = book
        self.stop_requested = False
        self.recent: collections.deque[StepStats] = collections.deque(
            maxlen=HEATMAP_STEPS
        )

    def observe_stats(self, stats: StepStats) -> None:
        self.recent.append(stats)

    def observe_time(self, t: StepTime) -> None:
        pass

    def finish(self) -> None:
        pass

    def heatmaps(self, sink, step: int) -> None:
        if not self.recent or not self.config.histograms or not self.layers:
            return
        if self.config.gradients:
            m = np.stack([s.grad_rms for s in self.recent], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                sink.heatmap("gradients/heatmap", step, np.log10(m))
        if self.config.updates:
            m = np.stack([s.update_ratio for s in self.recent], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                sink.heatmap("updates/heatmap", step, np.log10(m))

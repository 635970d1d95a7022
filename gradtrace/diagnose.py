"""Runs the detectors over the stream of records (numpy only, no TensorFlow).

The live fit loop and `gradtrace report` both feed a `Diagnoser` the same
records, so both apply exactly the same rules:

- `observe_setup(SetupFacts, step)` once, at the first step: the rules over
  how the output layer, the loss and the data fit (`SETUP_DETECTORS`);
- `observe_stats(StepStats)` once per step, in step order: every per-step
  detector (`STATS_DETECTORS`) judges it;
- `observe_time(StepTime)` once per step: the timing detectors
  (`gradtrace.detectors.timing.TimingDetector`);
- or, as the fit loop does, `judge_time(StepTime)` every step and
  `observe(StatsBlock, timed)` for up to `training.BLOCK_STEPS` consecutive
  steps at once, which files the same detections in the same order as the
  two calls above, step by step;
- `finish()` once at the end, for run-level rules.

Each `Detection` goes to the `FindingBook`, which keeps one finding per
(kind, layer). The first `non_finite` detection sets `stop_requested`.
"""

from __future__ import annotations

from .detectors import Detection
from .detectors.dead_relu import DeadReluDetector
from .detectors.exploding_gradient import ExplodingGradientDetector
from .detectors.input_scale import InputScaleDetector
from .detectors.loss_divergence import LossDivergenceDetector
from .detectors.loss_mismatch import LossMismatchDetector
from .detectors.loss_scale import LossScaleDetector
from .detectors.non_finite import NonFiniteDetector
from .detectors.saturation import SaturationDetector
from .detectors.timing import TimingDetector
from .detectors.update_ratio import UpdateRatioDetector
from .detectors.vanishing_gradient import VanishingGradientDetector
from .detectors.zero_gradient import ZeroGradientDetector
from .findings import FindingBook
from .records import LayerInfo, SetupFacts, StatsBlock, StepStats, StepTime

# Per-step detectors, in the order their findings are made within one step:
# the NaN origin first (it stops the run), then model-wide, then per layer.
STATS_DETECTORS = (
    NonFiniteDetector,
    LossScaleDetector,
    ZeroGradientDetector,
    ExplodingGradientDetector,
    LossDivergenceDetector,
    VanishingGradientDetector,
    DeadReluDetector,
    SaturationDetector,
    UpdateRatioDetector,
)

# Rules over the run's setup (`SetupFacts`), judged once at its first step.
SETUP_DETECTORS = (LossMismatchDetector, InputScaleDetector)


class Diagnoser:
    """Feeds records to every detector and files their detections.

    Args:
        config: the run's `gradtrace.Config` (thresholds).
        layers: the probed layers, forward order (`LayerInfo`).
        book: where findings go (one per kind and layer).

    Example:

    ```python
    book = FindingBook()
    diag = Diagnoser(gradtrace.Config(), layers, book)
    for stats in records:
        diag.observe_stats(stats)
    diag.finish()
    print(book.findings)
    ```
    """

    def __init__(self, config, layers: tuple[LayerInfo, ...], book: FindingBook):
        self.config = config
        self.layers = tuple(layers or ())
        self.book = book
        self.stop_requested = False
        self.detectors = [cls(config, self.layers) for cls in STATS_DETECTORS]
        self.setup_detectors = [cls(config, self.layers) for cls in SETUP_DETECTORS]
        self.timing = TimingDetector(config)
        self._finished = False

    def observe_setup(self, facts: SetupFacts, step: int) -> None:
        """The setup rules, once, at the run's first step `step`."""
        for detector in self.setup_detectors:
            self._file(detector.observe_setup(facts, step))

    def observe_stats(self, stats: StepStats) -> None:
        for detector in self.detectors:
            self._file(detector.observe_stats(stats))

    def observe_time(self, t: StepTime) -> None:
        self._file(self.timing.observe(t))

    def judge_time(self, t: StepTime) -> list[Detection]:
        """The timing rules on one step, without filing: the fit loop runs
        them every step (the profiler reacts to a slow step at once) and
        files their detections with the step's block (`observe`)."""
        return self.timing.observe(t)

    def observe(self, block: StatsBlock | None, timed=()) -> None:
        """Consecutive steps at once: what the fit loop calls.

        Files exactly the detections that `observe_stats` on every row of
        `block` and `observe_time` on each of its steps would, in step order
        (a step's statistics before its timing, detectors in
        `STATS_DETECTORS` order within a step). `timed`: the detections
        `judge_time` made for these steps.
        """
        found = []  # (step, group, seq, detection)
        if block is not None and len(block):
            for rank, detector in enumerate(self.detectors):
                for d in detector.observe_block(block):
                    found.append((d.step, rank, len(found), d))
        group = len(self.detectors)
        for d in timed:
            found.append((d.step, group, len(found), d))
        found.sort(key=lambda e: e[:3])
        self._file([e[3] for e in found])

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        for detector in self.detectors:
            finish = getattr(detector, "finish", None)  # optional in the contract
            if finish is not None:
                self._file(finish())
        self._file(self.timing.finish())

    def _file(self, detections: list[Detection] | None) -> None:
        for d in detections or ():
            self.book.add(
                d.kind,
                d.step,
                layer=d.layer,
                value=d.value,
                threshold=d.threshold,
                message=d.message,
                hint=d.hint,
                severity=d.severity,
            )
            if d.kind == "non_finite":
                self.stop_requested = True

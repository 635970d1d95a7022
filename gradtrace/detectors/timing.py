"""Timing detectors over `StepTime` records: slow_step, input_bound, retracing,
straggler.

`TimingDetector` classifies each step once and feeds the three rules
(`slow_step.py`, `input_bound.py`, `retracing.py`):

- heavy: the step ran the heavy (histogram) variant, i.e. histograms and
  some probe family are on and ``step % heavy_every == 0`` (the rule of
  the fit loop: `heavy_every` is `histogram_every`, or the multiple of it
  that the log budget chose; None when the run writes no histograms);
- compile step: the first call of a step variant (trace and compile): a
  retrace whose reason starts with ``"first call"``; when the reason is
  unknown (records rebuilt from event files), the first retraced step of
  each variant. Later retraces are real retraces;
- first of epoch: the first step seen of each epoch (its data wait includes
  the pipeline's start-up).

The classification uses only `StepTime` fields and the `Config`, so
`gradtrace report` can rebuild the same findings from event files.

Numpy only: never imports TensorFlow.

Example:

```python
det = TimingDetector(gradtrace.Config())
for t in history.step_times:
    detections = det.observe(t)
detections += det.finish()
```
"""

from __future__ import annotations

from ..records import StepTime
from . import Detection
from .input_bound import InputBoundDetector
from .retracing import RetracingDetector
from .slow_step import SlowStepDetector
from .straggler import StragglerDetector

__all__ = ["TimingDetector"]

FIRST_CALL = "first call"  # gradtrace.timing.FIRST_CALL (no TF import here)


class TimingDetector:
    """The timing findings of one run, fed `StepTime`s in step order.

    Args:
        config: a `gradtrace.Config`.
    """

    def __init__(self, config):
        self.config = config
        heavy_on = bool(config.histograms) and bool(
            config.gradients or config.weights or config.updates or config.activations
        )
        # Steps that run the heavy variant: every `heavy_every`-th (None: none).
        self.heavy_every = int(config.histogram_every) if heavy_on else None
        self._compiled = {False: False, True: False}
        self._epoch = None
        self.slow_step = SlowStepDetector(config)
        self.input_bound = InputBoundDetector(config)
        self.retracing = RetracingDetector(config)
        self.straggler = StragglerDetector(config)

    def is_heavy(self, step: int) -> bool:
        return self.heavy_every is not None and step % self.heavy_every == 0

    def observe(self, t: StepTime) -> list[Detection]:
        """Detections triggered by this step (usually none)."""
        heavy = self.is_heavy(t.step)
        compile_step = False
        if t.retraced:
            if t.retrace_reason is not None:
                compile_step = t.retrace_reason.startswith(FIRST_CALL)
            else:
                compile_step = not self._compiled[heavy]
            self._compiled[heavy] = True
        first_of_epoch = t.epoch != self._epoch
        self._epoch = t.epoch
        out = self.slow_step.observe(
            t, heavy=heavy, first_of_epoch=first_of_epoch, compile_step=compile_step
        )
        found_slow = bool(out)
        if t.retraced:
            out = (
                self.retracing.observe(
                    t,
                    heavy=heavy,
                    first_of_epoch=first_of_epoch,
                    compile_step=compile_step,
                )
                + out
            )
        out += self.input_bound.observe(
            t,
            heavy=heavy,
            first_of_epoch=first_of_epoch,
            compile_step=compile_step,
            slow=found_slow,
        )
        out += self.straggler.observe(t)
        return out

    def finish(self) -> list[Detection]:
        """Run-level detections: the trailing input_bound block."""
        return self.input_bound.finish()

"""`slow_step`: a training step far slower than the run's typical step.

Rule (every threshold is a `gradtrace.Config` field):

    slow  <=>  total_ms > max(slow_step_factor * median,
                              median + slow_step_mads * 1.4826 * MAD,
                              median + slow_step_min_ms)

and such a step is a finding only if it costs something a person would act
on (jitter of tens of ms on a few-ms step is not):

    finding  <=>  excess >= slow_step_stall_ms                       (a stall)
              or  at least slow_step_recur slow steps within the last
                  slow_step_window steps whose excesses add up to at
                  least slow_step_share of that window's time        (recurring)

with ``excess = total_ms - median``. Defaults: 200 ms; 3 steps and 5%.
Where median and MAD (median absolute deviation; 1.4826 * MAD estimates one
standard deviation of normal jitter) are taken over the last
`slow_step_window` comparable steps. Light and heavy (histogram) steps keep
separate baselines, since a heavy step is legitimately slower; a baseline
judges nothing until it holds `slow_step_warmup` steps. Compile steps (the
first call of each step variant) are neither judged nor part of a baseline.
The first step of each epoch is judged without the part of its data wait
above the typical one: it includes the pipeline's start-up (shuffle-buffer
fill, prefetch warm-up), which `model.fit` pays too; it is not in a baseline.

The cause named in the message is a retrace/compile when the step was traced
again, otherwise the component (data / compute / host) with the largest
excess over its own baseline median.

Numpy only: never imports TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from ..records import StepTime
from . import Detection

KIND = "slow_step"
MAD_TO_SIGMA = 1.4826
_REFRESH = 16  # recompute a baseline's medians every this many new steps

CAUSES = ("input", "retrace", "compute", "host")
_CAUSE_TEXT = {
    "input": "waiting for the input pipeline",
    "retrace": "tracing and compiling the step function again",
    "compute": "the compiled step itself (device compute)",
    "host": "host work outside the step (callbacks, logging, garbage collection)",
}
HINTS = {
    "input": (
        "Look at the input pipeline around this step (a slow map or "
        "py_function, file reads, a shuffle-buffer refill): use "
        ".map(..., num_parallel_calls=tf.data.AUTOTUNE), .cache() and "
        ".prefetch(tf.data.AUTOTUNE)."
    ),
    "retrace": (
        "Keep the step's input signature fixed: batch with "
        "drop_remainder=True (or pass steps_per_epoch) so the last batch has "
        "the same shape, and pass tensors, not Python values."
    ),
    "compute": (
        "The compiled step did more work on this step (a larger or "
        "data-dependent input, a py_function, device contention); capture "
        "a profile with Config(profile_on_slow_step=True) or "
        "profile_steps=(first, last) to see the kernels."
    ),
    "host": (
        "Check callbacks that act on some batches only (checkpoints, "
        "logging) and Python garbage collection (gc.freeze() after model "
        "building reduces full collections); other processes on the host "
        "also steal time."
    ),
}


class _Baseline:
    """Ring buffer of recent comparable steps, with cached medians."""

    def __init__(self, size: int):
        self.buf = np.zeros((size, 4))  # total, data, compute, host
        self.n = 0
        self.pos = 0
        self.since = 0
        self.stats = None  # (median[4], sigma of total)

    def add(self, t: StepTime) -> None:
        row = self.buf[self.pos]
        row[0] = t.total_ms
        row[1] = t.data_ms
        row[2] = t.compute_ms
        row[3] = t.host_ms
        self.pos = (self.pos + 1) % len(self.buf)
        if self.n < len(self.buf):
            self.n += 1
        self.since += 1

    @property
    def stale(self) -> bool:
        return self.stats is None or self.since >= _REFRESH

    def current(self):
        if self.stale:
            b = self.buf[: self.n]
            med = np.median(b, axis=0)
            mad = float(np.median(np.abs(b[:, 0] - med[0])))
            self.stats = (med.tolist(), MAD_TO_SIGMA * mad)
            self.since = 0
        return self.stats


class SlowStepDetector:
    """Finds steps far slower than the run's typical step; names the cause.

    Args:
        config: a `gradtrace.Config` (the ``slow_step_*`` fields).

    Example:

    ```python
    det = SlowStepDetector(gradtrace.Config())
    for t in history.step_times:
        for d in det.observe(t, heavy=False, first_of_epoch=False,
                             compile_step=False):
            print(d.step, d.message)
    ```
    """

    def __init__(self, config):
        self.factor = float(config.slow_step_factor)
        self.mads = float(config.slow_step_mads)
        self.min_ms = float(config.slow_step_min_ms)
        self.warmup = int(config.slow_step_warmup)
        self.window = int(config.slow_step_window)
        self.stall_ms = float(getattr(config, "slow_step_stall_ms", 0.0))
        self.recur = int(getattr(config, "slow_step_recur", 1))
        self.share = float(getattr(config, "slow_step_share", 0.0))
        # Slow steps of the window below the stall: [step, excess ms,
        # Detection or None once reported]
        self._recent: collections.deque[list] = collections.deque()
        self._step_ms = collections.deque(maxlen=self.window)  # (step, total)
        self._base = {False: _Baseline(self.window), True: _Baseline(self.window)}
        self._thr: dict[bool, float | None] = {False: None, True: None}
        self.causes: collections.Counter[str] = collections.Counter()  # slow steps

    def threshold(self, heavy: bool = False) -> float | None:
        """The current threshold (ms) of a baseline, None while warming up."""
        base = self._base[heavy]
        if base.n < self.warmup:
            return None
        if base.stale or self._thr[heavy] is None:
            med, sigma = base.current()
            m = med[0]
            self._thr[heavy] = max(
                self.factor * m, m + self.mads * sigma, m + self.min_ms
            )
        return self._thr[heavy]

    def observe(
        self, t: StepTime, *, heavy: bool, first_of_epoch: bool, compile_step: bool
    ) -> list[Detection]:
        if compile_step:
            return []
        base = self._base[heavy]
        out = []
        if base.n >= self.warmup:
            thr = self.threshold(heavy)
            total = t.total_ms
            if first_of_epoch:
                total -= max(t.data_ms - base.stats[0][1], 0.0)
            if total > thr:
                med = base.stats[0]
                d = self._detection(t, total, thr, med, first_of_epoch)
                out += self._costly(t.step, total - med[0], d)
        self._step_ms.append((t.step, t.total_ms))
        if not first_of_epoch and not t.retraced:
            base.add(t)
        return out

    def _costly(self, step: int, excess: float, d: Detection) -> list[Detection]:
        """The slow steps that are findings now: a stall at once; recurring
        slow steps (each of them, the earlier ones of the window included)
        once they add up."""
        recent = self._recent
        while recent and recent[0][0] <= step - self.window:
            recent.popleft()
        if excess >= self.stall_ms:
            recent.append([step, excess, None])  # reported now; still recurs
            return [d]
        recent.append([step, excess, d])
        if len(recent) < self.recur:
            return []
        span = sum(ms for s, ms in self._step_ms if s > step - self.window)
        added = sum(e[1] for e in recent)
        if added < self.share * max(span + excess, 1e-9):
            return []
        out = [e[2] for e in recent if e[2] is not None]
        for e in recent:
            e[2] = None  # reported
        last = out[-1]
        note = (
            f" Slow steps recur: {len(recent)} within the last {self.window} steps "
            f"added {added:.0f} ms ({100 * added / max(span + excess, 1e-9):.0f}% "
            "of that time)."
        )
        out[-1] = dataclasses.replace(last, message=last.message + note)
        return out

    def _detection(self, t: StepTime, total, thr, med, first_of_epoch) -> Detection:
        excess = {
            # An epoch's first data wait (pipeline start-up) was discounted.
            "input": 0.0 if first_of_epoch else t.data_ms - med[1],
            "compute": t.compute_ms - med[2],
            "host": t.host_ms - med[3],
        }
        cause = "retrace" if t.retraced else max(excess, key=excess.get)
        self.causes[cause] += 1
        typical = float(med[0])
        ratio = t.total_ms / typical if typical > 0 else float("inf")
        if cause == "retrace":
            why = t.retrace_reason or "an input signature change"
            detail = f"{_CAUSE_TEXT[cause]} ({why}; compute {t.compute_ms:.1f} ms)"
        else:
            field, med_i = {
                "input": ("data", med[1]),
                "compute": ("compute", med[2]),
                "host": ("host", med[3]),
            }[cause]
            value = getattr(t, f"{field}_ms")
            detail = (
                f"{_CAUSE_TEXT[cause]} ({field} {value:.1f} ms vs typical "
                f"{med_i:.1f} ms)"
            )
        msg = (
            f"Step {t.step} took {t.total_ms:.1f} ms, {ratio:.0f}x the typical "
            f"{typical:.1f} ms; most of the excess was {detail}."
        )
        return Detection(
            kind=KIND,
            step=t.step,
            layer=None,
            value=float(total),
            threshold=float(thr),
            message=msg,
            hint=HINTS[cause],
        )

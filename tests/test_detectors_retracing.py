"""retracing on synthetic StepTime streams."""

from __future__ import annotations

import pytest

from gradtrace.config import Config
from gradtrace.detectors.retracing import hint_for
from gradtrace.detectors.timing import TimingDetector

from .timing_helpers import compile_steps, jittery, run, st

LAST = "input 0 changed shape [32, 20] -> [24, 20] (a smaller last batch)"


def retr(detections):
    return [d for d in detections if d.kind == "retracing"]


def test_first_calls_are_not_retracing():
    assert (
        retr(run(TimingDetector(Config()), compile_steps() + jittery(100, start=2)))
        == []
    )


def test_retrace_after_first_calls_names_reason_and_hint():
    times = compile_steps() + jittery(100, start=2)
    times[93] = st(93, total=300.0, retraced=True, reason=LAST)
    [d] = retr(run(TimingDetector(Config()), times))
    assert d.step == 93 and d.layer is None and d.value == 1.0
    assert LAST in d.message and "step 93" in d.message
    assert "drop_remainder=True" in d.hint and "steps_per_epoch" in d.hint


def test_retrace_min_count():
    times = compile_steps() + jittery(100, start=2)
    for i in (10, 20, 30):
        times[i] = st(
            i,
            total=300.0,
            retraced=True,
            reason="input 1 is a Python value that changed: 1 -> 2",
        )
    assert [d.step for d in retr(run(TimingDetector(Config()), times))] == [10, 20, 30]
    got = retr(run(TimingDetector(Config(retrace_min_count=3)), times))
    assert [(d.step, d.value) for d in got] == [(30, 3.0)]


def test_heavy_variant_retrace_is_named():
    times = compile_steps() + jittery(300, start=2)
    times[200] = st(
        200,
        total=300.0,
        retraced=True,
        reason="input 0 changed dtype float32 -> float64",
    )
    [d] = retr(run(TimingDetector(Config(histogram_every=100)), times))
    assert "heavy" in d.message and "dtype" in d.hint


@pytest.mark.parametrize(
    "reason, words",
    [
        (LAST, "drop_remainder"),
        ("input 2 is a Python value that changed: 0.1 -> 0.2", "as a tensor"),
        ("input 0 changed shape [8, 10, 4] -> [8, 20, 4]", "pad or bucket"),
        ("input 0 changed dtype float32 -> float64", "Cast"),
        ("the input structure changed (2 -> 3 leaves)", "same structure"),
        (
            "the step function was traced again (same input signature)",
            "fixed signature",
        ),
        (None, "fixed signature"),
    ],
)
def test_hint_follows_reason(reason, words):
    assert words in hint_for(reason)

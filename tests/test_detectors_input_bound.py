"""input_bound on synthetic StepTime streams."""

from __future__ import annotations

from gradtrace.config import Config
from gradtrace.detectors.timing import TimingDetector

from .timing_helpers import compile_steps, jittery, run, st


def bound(detections):
    return [d for d in detections if d.kind == "input_bound"]


def test_input_bound_run_is_one_detection_per_window():
    times = compile_steps() + [
        st(i, total=10.0, data=7.0, host=0.5) for i in range(2, 302)
    ]
    got = bound(run(TimingDetector(Config()), times))
    # 300 comparable steps: three full windows of 100.
    assert [d.step for d in got] == [101, 201, 301]
    d = got[0]
    assert abs(d.value - 0.7) < 1e-9 and d.threshold == 0.5
    assert "70%" in d.message and "Steps 2-101" in d.message
    assert "prefetch" in d.hint and "num_parallel_calls" in d.hint and "cache" in d.hint


def test_healthy_run_is_not_input_bound():
    assert (
        bound(run(TimingDetector(Config()), compile_steps() + jittery(500, start=2)))
        == []
    )


def test_tiny_steps_with_a_large_data_share_are_not_a_finding():
    # 0.4 ms of data on a 0.6 ms step: a large share but nothing to win.
    times = [st(i, total=0.6, data=0.4, host=0.05) for i in range(300)]
    assert bound(run(TimingDetector(Config()), times)) == []


def test_short_run_is_judged_at_finish():
    det = TimingDetector(Config())
    times = [st(i, total=20.0, data=15.0, host=0.5) for i in range(30)]
    assert bound([d for t in times for d in det.observe(t)]) == []
    [d] = bound(det.finish())
    assert d.step == 29


def test_too_short_tail_is_not_judged():
    times = [st(i, total=20.0, data=15.0, host=0.5) for i in range(10)]
    assert bound(run(TimingDetector(Config()), times)) == []


def test_epoch_start_and_retrace_steps_are_left_out():
    # Only the first step of each epoch waits for data (pipeline start-up).
    times = []
    for i in range(300):
        first = i % 30 == 0
        times.append(
            st(
                i,
                total=50.0 if first else 5.0,
                data=46.0 if first else 0.5,
                host=0.5,
                epoch=i // 30,
            )
        )
    assert bound(run(TimingDetector(Config()), times)) == []


def test_threshold_is_configurable():
    times = [st(i, total=10.0, data=3.0, host=0.5) for i in range(200)]
    assert bound(run(TimingDetector(Config()), times)) == []
    got = bound(run(TimingDetector(Config(input_bound_share=0.25)), times))
    assert len(got) == 2

import gradtrace
from gradtrace.detectors.straggler import StragglerDetector
from gradtrace.records import StepTime


def _t(step, worker_ms):
    return StepTime(step, 0, 10.0, 1.0, 8.0, 1.0, False, None, None, worker_ms)


def test_single_process_and_jitter_never_fire():
    d = StragglerDetector(gradtrace.Config())
    assert d.observe(_t(0, None)) == []
    assert d.observe(_t(1, (5.0,))) == []
    assert d.observe(_t(2, (5.0, 9.0, 30.0))) == []  # < 40 ms floor


def test_one_slow_worker_is_named():
    d = StragglerDetector(gradtrace.Config())
    (det,) = d.observe(_t(7, (10.0, 500.0, 11.0)))
    assert det.kind == "straggler" and det.step == 7 and det.layer is None
    assert "Worker 1" in det.message and det.value == 500.0 - 10.5
    assert det.threshold == 40.0


def test_relative_floor_scales_with_a_slow_run():
    d = StragglerDetector(
        gradtrace.Config()
    )  # factor 3: excess must exceed 2x the others
    assert d.observe(_t(0, (100.0, 290.0))) == []
    assert len(d.observe(_t(1, (100.0, 310.0)))) == 1

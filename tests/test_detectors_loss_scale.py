import numpy as np

import gradtrace
from gradtrace.detectors.loss_scale import LossScaleDetector
from gradtrace.records import StepStats


def _stats(step, scale):
    return StepStats(
        step=step,
        epoch=0,
        loss=1.0,
        layers=("a",),
        values={"n_params": np.array([4.0])},
        loss_scale=scale,
    )


def test_collapsed_scale_is_non_finite():
    d = LossScaleDetector(gradtrace.Config())
    assert d.observe_stats(_stats(0, 32768.0)) == []
    assert d.observe_stats(_stats(1, None)) == []  # not mixed precision
    (det,) = d.observe_stats(_stats(2, 0.5))
    assert (
        det.kind == "non_finite"
        and det.layer is None
        and det.value == 0.5
        and det.threshold == 1.0
    )
    assert "collapsed to 0.5" in det.message


def test_threshold_is_a_config_field():
    d = LossScaleDetector(gradtrace.Config(loss_scale_min=8.0))
    assert len(d.observe_stats(_stats(0, 4.0))) == 1
    assert d.observe_stats(_stats(0, 8.0)) == []

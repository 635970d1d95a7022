from gradtrace import Config
from gradtrace.detectors.saturation import SaturationDetector

from .detector_helpers import feed, info, stats


def run(layers, sat, n=15, config=None):
    recs = [stats(i, layers, act_saturated_frac=sat) for i in range(n)]
    return feed(SaturationDetector(config or Config(), layers), recs)


def test_saturated_hidden_tanh_layer():
    layers = (info("t", "tanh"), info("out", "sigmoid", is_output=True))
    ds = run(layers, [0.8, 0.99])
    assert {d.layer for d in ds} == {"t"} and ds[0].step == 10
    assert ds[0].message.startswith(
        "80% of its outputs are within 1% of the tanh bounds"
    )
    assert "BatchNormalization" in ds[0].hint


def test_sigmoid_output_layer_alone_is_not_a_fault():
    layers = (info("h", "relu"), info("out", "sigmoid", is_output=True))
    assert run(layers, [float("nan"), 1.0]) == []


def test_below_threshold_and_non_saturating_layers():
    layers = (info("s", "sigmoid"), info("r", "relu"))
    assert run(layers, [0.4, 0.9]) == []
    assert run(layers, [0.4, 0.9], config=Config(saturation_frac=0.3))[0].layer == "s"


def test_empty():
    assert run((), []) == []

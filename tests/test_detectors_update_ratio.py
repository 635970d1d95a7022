import numpy as np

from gradtrace import Config
from gradtrace.detectors.update_ratio import UpdateRatioDetector

from .detector_helpers import feed, info, stats

LAYERS = (info("a", n_params=100), info("b", n_params=100), info("out", is_output=True))


def run(ratio, grad_rms=1e-2, weight_norm=1.0, n=15, config=None):
    ratio = np.asarray(ratio, dtype=float)
    recs = [
        stats(
            i,
            LAYERS,
            update_norm=ratio * weight_norm,
            weight_norm=weight_norm,
            grad_norm=np.asarray(grad_rms) * 10.0,  # sqrt(100 params)
        )
        for i in range(n)
    ]
    return feed(UpdateRatioDetector(config or Config(), LAYERS), recs)


def test_healthy_ratio_is_quiet():
    assert run([1e-3, 3e-3, 1e-2]) == []


def test_too_large_names_the_first_layer_and_counts_the_rest():
    ds = run([0.5, 0.3, 1e-3])
    assert ds[0].step == 10 and {d.layer for d in ds} == {"a"}
    d = ds[0]
    assert (d.kind, d.value, d.threshold) == ("update_ratio", 0.5, 0.1)
    assert (
        "above the threshold 0.1" in d.message and "1 more layer too ('b')" in d.message
    )
    assert "Lower the learning rate" in d.hint


def test_too_small_with_a_normal_gradient():
    ds = run([1e-9, 1e-3, 1e-3])
    assert ds[0].layer == "a" and "below" in ds[0].message
    assert "Raise the learning rate" in ds[0].hint


def test_too_small_from_a_tiny_gradient_is_left_to_vanishing():
    assert run([1e-9, 1e-3, 1e-3], grad_rms=[1e-9, 1e-2, 1e-2]) == []
    assert run([0.0, 1e-3, 1e-3], grad_rms=[0.0, 1e-2, 1e-2]) == []


def test_zero_weights_nan_and_empty_are_skipped():
    assert run([0.5, 0.5, 0.5], weight_norm=0.0) == []
    assert run([np.nan] * 3) == []
    assert feed(UpdateRatioDetector(Config(), ()), [stats(0, ())]) == []


def test_thresholds_are_configurable():
    assert run([0.05, 1e-3, 1e-3]) == []
    assert run([0.05, 1e-3, 1e-3], config=Config(update_ratio_max=0.01))[0].layer == "a"

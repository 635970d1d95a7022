import numpy as np

from gradtrace import Config
from gradtrace.detectors.non_finite import NonFiniteDetector

from .detector_helpers import feed, info, stats

LAYERS = (info("a"), info("b"), info("c", "sigmoid", is_output=True))
OK = dict(grad_norm=1.0, weight_norm=1.0, grad_nonfinite=0, act_nonfinite=0)


def detect(*records, config=None, layers=LAYERS):
    return feed(NonFiniteDetector(config or Config(), layers), records)


def test_finite_step_is_quiet():
    assert detect(stats(0, LAYERS, **OK)) == []


def test_first_layer_with_nonfinite_activation_in_forward_order():
    cols = dict(OK, act_nonfinite=[0, 7, 3])
    (d,) = detect(stats(4, LAYERS, loss=float("nan"), **cols))
    assert (d.kind, d.layer, d.step, d.value, d.threshold) == (
        "non_finite",
        "b",
        4,
        7,
        0,
    )
    assert "every layer before it is finite" in d.message
    assert "normalise" in d.hint


def test_nonfinite_first_layer_points_at_the_data():
    cols = dict(OK, act_nonfinite=[2, 5, 5])
    (d,) = detect(stats(0, LAYERS, **cols))
    assert d.layer == "a"
    assert "input batch" in d.message and "np.isfinite(x)" in d.hint


def test_nonfinite_loss_with_finite_activations_is_model_wide():
    (d,) = detect(stats(2, LAYERS, loss=float("inf"), **OK))
    assert d.layer is None and "targets" in d.message and "np.isfinite(y)" in d.hint


def test_gradients_report_the_first_layer_the_backward_pass_reaches():
    cols = dict(OK, grad_nonfinite=[10, 4, 0])
    (d,) = detect(stats(1, LAYERS, **cols))
    assert d.layer == "b"
    assert "backward pass reaches this layer first" in d.message


def test_nonfinite_gradient_only_in_first_weighted_layer_points_at_the_data():
    # relu(NaN) == 0 on CPU: a NaN input shows only in the first kernel's gradient.
    layers = (info("dropout", "linear", n_params=0), info("dense"), info("out"))
    cols = dict(
        grad_norm=[np.nan, np.nan, 1.0],
        grad_nonfinite=[np.nan, 3, 0],
        act_nonfinite=0,
        weight_norm=[np.nan, 1.0, 1.0],
    )
    (d,) = detect(stats(0, layers, **cols), layers=layers)
    assert d.layer == "dense" and "input batch" in d.message


def test_weights_that_overflow_in_the_update():
    cols = dict(OK, weight_norm=[1.0, np.inf, np.nan])
    (d,) = detect(stats(3, LAYERS, **cols))
    assert d.layer == "b" and "weights became inf" in d.message


def test_nan_weight_norm_is_not_measured_when_weights_are_off():
    cols = dict(OK, weight_norm=np.nan)
    cfg = Config(weights=False, updates=False)
    assert detect(stats(0, LAYERS, **cols), config=cfg) == []
    # ... but with weights recorded, a NaN norm of a layer with a gradient is real.
    assert detect(stats(0, LAYERS, **cols))[0].layer == "a"


def test_overflowed_gradient_norm_with_finite_entries_is_not_nan():
    cols = dict(OK, grad_norm=[np.inf, 1.0, 1.0])
    assert detect(stats(0, LAYERS, **cols)) == []


def test_not_measured_columns_and_empty_layers():
    assert detect(stats(0, LAYERS)) == []  # every column NaN: nothing measured
    assert detect(stats(0, ())) == []
    (d,) = detect(stats(0, (), loss=float("nan")), layers=())
    assert d.layer is None


def test_probes_off_records_only_the_loss():
    from gradtrace.records import StepStats

    s = StepStats(0, 0, float("nan"), (), {"n_params": np.zeros(0)})
    (d,) = detect(s, layers=())
    assert d.layer is None


def test_reports_every_step_it_sees():
    cols = dict(OK, act_nonfinite=[0, 1, 1])
    ds = detect(stats(0, LAYERS, **cols), stats(1, LAYERS, **cols))
    assert [d.step for d in ds] == [0, 1]

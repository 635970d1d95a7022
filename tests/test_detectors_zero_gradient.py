"""zero_gradient: every gradient exactly 0, step after step; and dead_relu
never at such a step."""

from __future__ import annotations

import numpy as np

from gradtrace import Config
from gradtrace.detectors.dead_relu import DeadReluDetector
from gradtrace.detectors.zero_gradient import ZeroGradientDetector
from gradtrace.records import LayerInfo

from .detector_helpers import feed, info, stats

LAYERS = (info("hidden"), info("out", "other", is_output=True, n_units=1))


def recs(grads, **cols):
    return [stats(i, LAYERS, grad_norm=g, **cols) for i, g in enumerate(grads)]


def test_all_zero_gradients_are_found_at_the_third_step():
    (d,) = feed(ZeroGradientDetector(Config(), LAYERS), recs([[0.0, 0.0]] * 40))
    assert (d.kind, d.step, d.layer) == ("zero_gradient", 2, None)
    assert "from step 0" in d.message and "softmax over a single unit" in d.hint


def test_config_sets_the_number_of_steps():
    cfg = Config(zero_gradient_steps=10)
    (d,) = feed(ZeroGradientDetector(cfg, LAYERS), recs([[0.0, 0.0]] * 40))
    assert d.step == 9


def test_one_layer_with_a_gradient_is_not_zero_gradient():
    # a dead ReLU zeroes the layers before it, never the output layer's bias
    assert feed(ZeroGradientDetector(Config(), LAYERS), recs([[0.0, 1e-9]] * 40)) == []


def test_isolated_zero_steps_are_quiet():
    grads = [[0.0, 0.0] if i % 3 == 0 else [0.1, 0.2] for i in range(60)]
    assert feed(ZeroGradientDetector(Config(), LAYERS), recs(grads)) == []


def test_tiny_but_nonzero_gradients_are_not_zero():
    # a converged model: small everywhere, but a float gradient of 0.0 only
    # comes from a loss that does not depend on the weights
    assert (
        feed(ZeroGradientDetector(Config(), LAYERS), recs([[1e-30, 1e-30]] * 40)) == []
    )


def test_unmeasured_and_non_finite_steps_keep_the_streak():
    grads = [[0.0, 0.0], [np.nan, np.nan], [0.0, 0.0], [np.inf, 0.0], [0.0, 0.0]]
    (d,) = feed(ZeroGradientDetector(Config(), LAYERS), recs(grads))
    assert d.step == 4 and "from step 0" in d.message


def test_each_model_of_a_custom_step_is_judged_apart():
    layers = (
        LayerInfo("g1", "Dense", "relu", 10, 4, model="generator"),
        LayerInfo("g2", "Dense", "tanh", 10, 4, is_output=True, model="generator"),
        LayerInfo("d1", "Dense", "relu", 10, 4, model="critic"),
        LayerInfo("d2", "Dense", "linear", 10, 1, is_output=True, model="critic"),
    )
    records = [stats(i, layers, grad_norm=[0.0, 0.0, 0.5, 0.5]) for i in range(10)]
    (d,) = feed(ZeroGradientDetector(Config(), layers), records)
    assert "model 'generator'" in d.message


def test_dead_relu_is_never_the_diagnosis_of_an_all_zero_gradient_model():
    # softmax over one unit with batch_size=1: the one example switches most
    # ReLU units off (AUTOTRAINER's SO 31880720 mistake)
    grads = [[0.0, 0.0]] * 60
    dead = feed(
        DeadReluDetector(Config(), LAYERS), recs(grads, act_dead_frac=[0.9, np.nan])
    )
    assert dead == []
    # the same dead share with a live gradient is dead_relu
    live = feed(
        DeadReluDetector(Config(), LAYERS),
        recs([[0.0, 0.3]] * 60, act_dead_frac=[0.9, np.nan]),
    )
    assert {d.kind for d in live} == {"dead_relu"}


def test_layers_without_weights_do_not_hide_an_all_zero_model():
    # Activation / Dropout / pooling rows have no gradient (NaN): a model of
    # Dense + Activation layers with every gradient 0 is still zero_gradient
    layers = (
        info("dense"),
        info("act", "relu", n_params=0),
        info("out", "other", is_output=True, n_units=1),
    )
    records = [
        stats(i, layers, grad_norm=[0.0, np.nan, 0.0], grad_nonfinite=[0, np.nan, 0])
        for i in range(10)
    ]
    (d,) = feed(ZeroGradientDetector(Config(), layers), records)
    assert d.step == 2


def test_a_non_finite_gradient_is_not_zero_gradient():
    recs_ = [
        stats(i, LAYERS, grad_norm=[0.0, np.nan], grad_nonfinite=[0, 4])
        for i in range(10)
    ]
    assert feed(ZeroGradientDetector(Config(), LAYERS), recs_) == []

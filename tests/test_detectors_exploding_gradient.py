import numpy as np

from gradtrace import Config
from gradtrace.detectors.exploding_gradient import ExplodingGradientDetector

from .detector_helpers import feed, info, stats

LAYERS = (info("a"), info("b"), info("out", is_output=True))


def run(norms, layers=LAYERS, config=None, **cols):
    recs = [
        stats(i, layers, grad_norm=g, grad_nonfinite=0, **cols)
        for i, g in enumerate(norms)
    ]
    return feed(ExplodingGradientDetector(config or Config(), layers), recs)


def test_jump_is_found_on_the_step_it_happens():
    norms = [[1.0, 1.0, 1.0]] * 5 + [[1000.0, 10.0, 1.0]] + [[1.0, 1.0, 1.0]]
    (d,) = run(norms)
    assert (d.kind, d.layer, d.step, d.threshold) == (
        "exploding_gradient",
        None,
        5,
        100,
    )
    assert 500 < d.value < 600  # sqrt(1000^2 + 100 + 1) / sqrt(3)
    assert "layer 'a'" in d.message and "clipnorm" in d.hint


def test_explosion_is_reported_until_it_becomes_the_baseline():
    norms = [[1.0] * 3] * 20 + [[1e4] * 3] * 10
    assert [d.step for d in run(norms)] == [20, 21, 22]


def test_overflow_to_inf_with_finite_entries():
    (d,) = run([[1.0] * 3] * 3 + [[np.inf, 1.0, 1.0]])
    assert d.step == 3 and d.value == float("inf") and "overflowed" in d.message


def test_nan_entries_are_non_finites_finding():
    recs = [stats(i, LAYERS, grad_norm=1.0, grad_nonfinite=0) for i in range(3)]
    recs.append(
        stats(3, LAYERS, grad_norm=[np.nan, 1e9, 1e9], grad_nonfinite=[5, 0, 0])
    )
    assert feed(ExplodingGradientDetector(Config(), LAYERS), recs) == []


def test_heavy_tailed_small_batch_noise_is_not_an_explosion():
    rng = np.random.default_rng(0)
    # Batches of one example: most have little gradient, a few hard ones more.
    g = np.where(rng.random(2000) < 0.1, 10.0, 1.0) * rng.lognormal(0, 1.0, 2000)
    assert run(g[:, None] * np.ones(3)) == []


def test_needs_two_earlier_steps_and_handles_edges():
    assert run([[1.0] * 3, [1e6] * 3]) == []
    assert run([[1.0]] * 3 + [[1e6]], layers=(info("only"),))[0].step == 3
    assert run([[]] * 3, layers=()) == []
    assert run([[np.nan] * 3] * 5) == []  # gradients not recorded


def test_factor_is_configurable():
    norms = [[1.0] * 3] * 5 + [[50.0] * 3]
    assert run(norms) == []
    assert run(norms, config=Config(exploding_factor=10.0))[0].step == 5

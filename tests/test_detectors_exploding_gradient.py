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


# -- the blind spots: growth that never jumps, a gradient absurd from the start --


def _loss_of(norms, loss):
    return [
        stats(i, LAYERS, loss=loss, grad_norm=g, grad_nonfinite=0)
        for i, g in enumerate(norms)
    ]


def test_sustained_geometric_growth_is_found():
    # ~1.2x per step: 20 -> 3e6 over 64 steps, finite, never a 100x jump
    norms = [[20.0 * 1.2**i / np.sqrt(3)] * 3 for i in range(70)]
    found = feed(ExplodingGradientDetector(Config(), LAYERS), _loss_of(norms, 2.0))
    (d,) = found
    assert d.kind == "exploding_gradient" and d.layer is None
    assert "grew steadily" in d.message and d.value > 100
    # the first step where the last 10 are 100x the first 10 and rising
    assert 25 <= d.step <= 40, d.step


def test_growth_that_levels_off_below_the_factor_is_quiet():
    # a healthy take-off: gradients rise 30x over 100 steps, then plateau
    norms = [[min(30.0, 1.04**i)] * 3 for i in range(300)]
    assert feed(ExplodingGradientDetector(Config(), LAYERS), _loss_of(norms, 1.0)) == []


def test_large_early_gradients_that_fall_are_quiet():
    # Adam's first steps / unnormalised regression targets: huge, then falling
    norms = [[1e4 * 0.9**i + 1.0] * 3 for i in range(200)]
    losses = [1e8 * 0.8**i + 1.0 for i in range(200)]
    recs = [
        stats(i, LAYERS, loss=losses[i], grad_norm=g, grad_nonfinite=0)
        for i, g in enumerate(norms)
    ]
    assert feed(ExplodingGradientDetector(Config(), LAYERS), recs) == []


def test_absurdly_large_gradient_from_the_start_is_found():
    # an RNN through time: ~1e11 from step 0, steady, with a loss of ~1
    norms = [[1e11, 1e3, 1.0]] * 30
    (d,) = feed(ExplodingGradientDetector(Config(), LAYERS), _loss_of(norms, 1.2))
    assert d.step == Config().diagnosis_patience - 1  # from step 0, 5 in a row
    assert "far too large" in d.message and "layer 'a'" in d.message
    assert d.threshold == Config().exploding_abs


def test_large_gradient_of_a_large_loss_is_not_absurd():
    # regression on targets ~1e4 with a linear output: gradients ~1e5,
    # MSE ~1e8, for many steps
    norms = [[1e5, 1e5, 1e5]] * 50
    assert feed(ExplodingGradientDetector(Config(), LAYERS), _loss_of(norms, 1e8)) == []


def test_absurd_size_needs_patience():
    norms = [[1e11, 1.0, 1.0]] * 3 + [[1.0] * 3] * 20
    assert feed(ExplodingGradientDetector(Config(), LAYERS), _loss_of(norms, 1.0)) == []


def test_hard_example_late_in_a_batch_of_one_run_is_not_an_explosion():
    # batch_size=1: once most examples are learnt their gradients are ~1e-5,
    # a misclassified one is ~1 -- but no larger than the first steps' norms
    rng = np.random.default_rng(6)
    early = [[1.0 + rng.uniform()] * 3 for _ in range(30)]
    late = [[1e-5] * 3 if rng.uniform() > 0.01 else [0.8] * 3 for _ in range(2000)]
    assert run(early + late) == []


def test_tiny_batch_jump_must_hold_for_a_second_step():
    import dataclasses

    def recs(norms, examples):
        return [
            dataclasses.replace(
                stats(i, LAYERS, grad_norm=g, grad_nonfinite=0), examples=examples
            )
            for i, g in enumerate(norms)
        ]

    spike = [[1.0] * 3] * 20 + [[1e3] * 3] + [[1.0] * 3] * 20
    held = [[1.0] * 3] * 20 + [[1e3] * 3, [2e3] * 3] + [[1.0] * 3] * 20
    det = lambda: ExplodingGradientDetector(Config(), LAYERS)  # noqa: E731
    assert feed(det(), recs(spike, 1)) == []  # one hard example
    assert [d.step for d in feed(det(), recs(held, 1))][:1] == [20]
    assert [d.step for d in feed(det(), recs(spike, 32))] == [20]  # usual batch

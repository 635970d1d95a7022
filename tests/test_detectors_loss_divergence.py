import numpy as np

from gradtrace import Config
from gradtrace.detectors.loss_divergence import LossDivergenceDetector

from .detector_helpers import feed, stats


def run(losses, config=None):
    recs = [stats(i, (), loss=float(v)) for i, v in enumerate(losses)]
    return feed(LossDivergenceDetector(config or Config(), ()), recs)


def test_falling_and_noisy_loss_is_healthy():
    rng = np.random.default_rng(0)
    falling = np.exp(-np.arange(300) / 50.0) * (1 + 0.5 * rng.random(300))
    assert run(falling) == []


def test_growing_loss_diverges():
    ds = run(1.0 * 1.5 ** np.arange(40))
    d = ds[0]
    assert (d.kind, d.layer, d.threshold) == ("loss_divergence", None, 10.0)
    assert d.value > 10 and 9 < d.step < 30
    assert "rose to" in d.message and "learning rate" in d.hint


def test_rise_near_convergence_below_the_start_is_not_divergence():
    losses = [1.0] * 10 + [1e-4] * 30 + [1e-2] * 30
    assert run(losses) == []


def test_nan_losses_are_skipped_and_window_is_configurable():
    losses = [1.0] * 5 + [float("nan")] * 3 + [100.0] * 5
    assert run(losses, config=Config(loss_window=3))[0].step == 9
    assert run([float("nan")] * 20) == []


def test_class_weighted_loss_that_swings_20x_per_batch_is_noise():
    # An imbalanced classifier with class weights: a few positives per batch
    # carry half the weight, so batch losses swing ~20x while the trend falls
    # (keras-io's imbalanced-classification example had such a false alarm).
    rng = np.random.default_rng(3)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        trend = 1.5 * np.exp(-np.arange(2000) / 800.0)
        positives = rng.poisson(0.6, size=2000)  # 0, 1 or 2 positives a batch
        losses = trend * (0.08 + 1.6 * positives * rng.uniform(0.2, 1.0, 2000))
        assert run(losses) == [], seed


def test_batch_of_one_loss_is_noise_while_it_falls():
    # batch_size=1: most examples are confidently right (loss ~1e-4), a few
    # wrong (loss ~2); the share of wrong ones falls.
    rng = np.random.default_rng(4)
    wrong = rng.uniform(size=3000) < np.linspace(0.5, 0.02, 3000)
    losses = np.where(wrong, rng.uniform(0.7, 3.0, 3000), rng.uniform(1e-5, 1e-3, 3000))
    assert run(losses) == []


def test_divergence_after_a_noisy_start_is_still_found_at_once():
    rng = np.random.default_rng(5)
    noisy = 1.0 * (0.1 + 2.0 * (rng.uniform(size=200) < 0.3))
    rising = 2.0 * 1.5 ** np.arange(30)
    (d, *_) = run(np.concatenate([noisy, rising]))
    assert 200 < d.step < 220, d.step

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

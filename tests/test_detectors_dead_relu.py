import numpy as np

from gradtrace import Config
from gradtrace.detectors.dead_relu import DeadReluDetector

from .detector_helpers import feed, info, stats

LAYERS = (info("h", n_units=256), info("out", "sigmoid", is_output=True))


def run(dead, config=None, layers=LAYERS):
    recs = [stats(i, layers, act_dead_frac=[d, np.nan]) for i, d in enumerate(dead)]
    return feed(DeadReluDetector(config or Config(), layers), recs)


def test_dead_layer_found_after_warmup_and_patience():
    ds = run([0.97] * 15)
    assert [d.step for d in ds] == list(range(10, 15))
    d = ds[0]
    assert (d.kind, d.layer, d.value, d.threshold) == ("dead_relu", "h", 0.97, 0.7)
    assert d.message.startswith(
        "97% of its 256 units output 0 for every example in the batch (threshold 70%)"
    )
    assert "LeakyReLU" in d.hint and "he_normal" in d.hint


def test_half_zero_outputs_are_healthy():
    assert run([0.0, 0.1, 0.5, 0.3] * 10) == []


def test_needs_consecutive_checks():
    assert run([0.9, 0.9, 0.9, 0.9, 0.1] * 6) == []
    assert run([0.9] * 12, config=Config(diagnosis_patience=20)) == []


def test_late_death_found_after_patience():
    ds = run([0.0] * 30 + [1.0] * 10)
    assert ds[0].step == 34


def test_unmeasured_steps_neither_confirm_nor_break_a_streak():
    ds = run([1.0, np.nan] * 12)
    assert ds and ds[0].step == 10 and all(d.value == 1.0 for d in ds)


def test_leaky_relu_and_sigmoid_are_never_dead():
    layers = (info("leaky", "other"), info("sig", "sigmoid"))
    recs = [stats(i, layers, act_dead_frac=1.0) for i in range(20)]
    assert feed(DeadReluDetector(Config(), layers), recs) == []


def test_threshold_is_configurable_and_unknown_units_are_worded():
    layers = (info("h", n_units=0),)
    recs = [stats(i, layers, act_dead_frac=0.5) for i in range(12)]
    ds = feed(DeadReluDetector(Config(dead_relu_frac=0.4), layers), recs)
    assert ds[0].message.startswith("50% of its units output 0")


def test_empty_and_unknown_layers():
    assert feed(DeadReluDetector(Config(), ()), [stats(0, ())]) == []
    # A layer missing from LayerInfo is not assumed to be ReLU.
    recs = [stats(i, ("mystery",), act_dead_frac=1.0) for i in range(20)]
    assert feed(DeadReluDetector(Config(), ()), recs) == []


def _with_examples(dead, examples):
    import dataclasses

    return [
        dataclasses.replace(
            stats(i, LAYERS, act_dead_frac=[d, np.nan]), examples=examples
        )
        for i, d in enumerate(dead)
    ]


def test_tiny_batches_need_64_examples_behind_a_dead_verdict():
    # batch_size=2: a small layer is silent for both examples by chance at
    # times; a verdict needs 32 consecutive steps (64 examples)
    rng = np.random.default_rng(0)
    chance = np.where(rng.uniform(size=200) < 0.5, 0.75, 0.4)
    assert feed(DeadReluDetector(Config(), LAYERS), _with_examples(chance, 2)) == []
    ds = feed(DeadReluDetector(Config(), LAYERS), _with_examples([0.97] * 40, 2))
    assert ds[0].step == 31
    # a batch of 64 or more: the usual patience
    ds = feed(DeadReluDetector(Config(), LAYERS), _with_examples([0.97] * 15, 64))
    assert ds[0].step == 10

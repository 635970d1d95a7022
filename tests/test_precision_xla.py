"""Mixed precision (loss scaling) and XLA (jit_compile=True)."""

import keras
import numpy as np
import pytest

import gradtrace
from tests.conftest import quiet
from tests.helpers import read_scalars, read_tags, weights_close


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _model(optimizer, **compile_kw):
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="h"),
            keras.layers.Dense(2, name="logits"),
            keras.layers.Activation("softmax", dtype="float32", name="out"),
        ]
    )
    m.compile(optimizer, "sparse_categorical_crossentropy", **compile_kw)
    return m


def test_mixed_precision_skipped_steps_are_not_non_finite(mixed_policy, tmp_path, xy):
    x, y = xy
    # A huge initial scale overflows float16 gradients: the optimizer skips
    # those steps and halves the scale. Normal, so no non_finite finding.
    opt = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(), initial_scale=2.0**22
    )
    m = _model(opt)
    h = gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        logdir=str(tmp_path),
        config=quiet(),
    )
    assert not [f for f in h.findings if f.kind == "non_finite"]
    s = read_scalars(str(tmp_path / "train"))
    scale = [v for _, v in s["gradients/loss_scale"]]
    assert scale[0] == 2.0**22 and scale[-1] < 2.0**22  # it came down
    grad_steps = [st for st, _ in s["gradients/h/norm"]]
    assert 0 not in grad_steps  # skipped step: not measured
    assert all(np.isfinite(v) for _, v in s["gradients/h/norm"])
    # statistics are of the unscaled gradient: of the order of a float32 run's
    assert max(v for _, v in s["gradients/h/norm"]) < 100.0
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_xla_step_compiles_with_every_probe(tmp_path, xy):
    x, y = xy
    ref = _model("adam", jit_compile=True)
    ref.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    m = _model("adam", jit_compile=True)
    h = gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        shuffle=False,
        logdir=str(tmp_path),
        config=quiet(histogram_every=2),
    )
    assert weights_close(ref, m, atol=1e-5)
    tags = read_tags(str(tmp_path / "train"))
    assert (
        tags["gradients/h/kernel"] == "histograms"
        and tags["activations/h/dead_frac"] == "scalars"
    )
    assert not h.findings

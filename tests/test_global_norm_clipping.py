"""gradients/global_norm every step, and gradients/clipped where the
optimizer clips: checked against a plain tf.GradientTape on the same batches."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradtrace
from gradtrace import report

from .helpers import read_scalars

CLIP = {"global_clipnorm": 22.0, "clipnorm": 16.0, "clipvalue": 8.0}


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) * rng.uniform(0.5, 6.0, (256, 1))).astype(
        "float32"
    )
    return x, y


def _model(**clip):
    keras.utils.set_random_seed(3)
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    m.compile(keras.optimizers.SGD(0.01, **clip), "mse")
    return m


def _manual(clip_name, value):
    """Per step: (global norm, whether clipping engaged), replaying SGD with
    the same clipping on the same batches (no shuffle)."""
    x, y = _data()
    m = _model(**{clip_name: value})
    out = []
    for i in range(0, 256, 32):
        with tf.GradientTape() as tape:
            loss = m.compute_loss(x[i : i + 32], y[i : i + 32], m(x[i : i + 32]))
        grads = tape.gradient(loss, m.trainable_variables)
        flat = np.concatenate([g.numpy().ravel() for g in grads])
        norm = float(np.linalg.norm(flat))
        if clip_name == "global_clipnorm":
            engaged = norm > value
        elif clip_name == "clipnorm":
            engaged = max(float(np.linalg.norm(g.numpy())) for g in grads) > value
        else:
            engaged = float(np.abs(flat).max()) > value
        out.append((norm, engaged))
        m.optimizer.apply(grads, m.trainable_variables)
    return out


@pytest.mark.parametrize("clip_name", list(CLIP))
def test_global_norm_and_clipped_match_a_plain_tape(tmp_path, clip_name):
    x, y = _data()
    value = CLIP[clip_name]
    m = _model(**{clip_name: value})
    gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=1,
        shuffle=False,
        verbose=0,
        logdir=str(tmp_path),
        config=gradtrace.Config(console=False),
    )
    s = read_scalars(os.path.join(tmp_path, "train"))
    want = _manual(clip_name, value)
    got_norm = [v for _, v in s["gradients/global_norm"]]
    got_clip = [v for _, v in s["gradients/clipped"]]
    np.testing.assert_allclose(got_norm, [n for n, _ in want], rtol=1e-4)
    assert got_clip == [float(e) for _, e in want]
    assert 0 < sum(got_clip) < len(got_clip)  # the data makes it engage sometimes
    text = report.load(str(tmp_path)).format_text()
    share = 100 * sum(got_clip) / len(got_clip)
    assert f"gradient clipping engaged at {share:.0f}% of 8 steps" in text


def test_no_clipping_no_clipped_tag(tmp_path):
    x, y = _data()
    gradtrace.fit(
        _model(),
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        logdir=str(tmp_path),
        config=gradtrace.Config(console=False),
    )
    s = read_scalars(os.path.join(tmp_path, "train"))
    assert "gradients/clipped" not in s and len(s["gradients/global_norm"]) == 8
    assert "clipping engaged" not in report.load(str(tmp_path)).format_text()

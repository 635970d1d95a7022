"""Planted slow steps in real `gradtrace.fit` runs: the finding points at the
step and names the cause (input, host, compute, retrace); a healthy run has
no timing finding."""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import quiet
from .helpers import mlp

SLOW_AT = 40
SLEEP = 0.3
TIMING_KINDS = ("slow_step", "input_bound", "retracing")


def timing_findings(h):
    return [f for f in h.findings if f.kind in TIMING_KINDS]


def only_slow(h):
    found = timing_findings(h)
    assert [f.kind for f in found] == ["slow_step"], found
    return found[0]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64 * 16, 8)).astype("float32")  # 64 full batches of 16
    y = (x[:, 0] > 0).astype("int64")
    return x, y


def test_input_pipeline_stall(data):
    import tensorflow as tf

    import gradtrace

    def sleep_at(i):
        if int(i) == SLOW_AT:
            time.sleep(SLEEP)
        return i

    def stall(i, batch):
        i = tf.py_function(sleep_at, [i], tf.int64)
        with tf.control_dependencies([i]):
            return tuple(tf.identity(b) for b in batch)

    ds = tf.data.Dataset.from_tensor_slices(data).batch(16).enumerate().map(stall)
    h = gradtrace.fit(mlp(), ds, verbose=0, shuffle=False, config=quiet())
    f = only_slow(h)
    assert f.step == SLOW_AT and f.count == 1
    assert "input pipeline" in f.message
    assert "prefetch" in f.hint
    # The pipeline may start the sleeping element a moment before it is asked for.
    assert h.step_times[SLOW_AT].data_ms >= 0.8 * SLEEP * 1e3


def test_callback_stall_is_host(data):
    import keras

    import gradtrace

    class SlowCallback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == SLOW_AT:
                time.sleep(SLEEP)

    x, y = data
    h = gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=16,
        verbose=0,
        callbacks=[SlowCallback()],
        config=quiet(),
    )
    f = only_slow(h)
    assert f.step == SLOW_AT
    assert "host work" in f.message and "callbacks" in f.message
    assert h.step_times[SLOW_AT].host_ms >= SLEEP * 1e3


def test_heavier_compiled_step_is_compute(data):
    import keras
    import tensorflow as tf

    import gradtrace

    class SlowOnce(keras.layers.Layer):
        """Identity whose compiled call sleeps once, on its SLOW_AT-th execution."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.calls = 0

        def _tick(self):
            if self.calls == SLOW_AT:
                time.sleep(SLEEP)
            self.calls += 1
            return np.float32(0.0)

        def call(self, x):
            s = tf.py_function(self._tick, [], tf.float32)
            s.set_shape(())
            return x + s

        def compute_output_shape(self, shape):
            return shape

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            SlowOnce(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = data
    h = gradtrace.fit(model, x, y, batch_size=16, verbose=0, config=quiet())
    f = only_slow(h)
    assert f.step == SLOW_AT
    assert "device compute" in f.message
    assert h.step_times[SLOW_AT].compute_ms >= SLEEP * 1e3


def test_smaller_last_batch_does_not_retrace(data, tmp_path):
    # The step is traced for the dataset's element spec (batch dimension
    # None), as model.fit's function is: the last, smaller batch reuses it.
    import gradtrace

    x, y = data
    x, y = x[:1000], y[:1000]  # 31 batches of 32 and a last one of 8
    h = gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        config=quiet(),
        logdir=str(tmp_path),  # histograms: a heavy variant too
    )
    retraced = [t.step for t in h.step_times if t.retraced]
    assert retraced == [0, 1]  # first call of the heavy, then of the light step
    assert timing_findings(h) == []


def test_healthy_300_step_run_has_no_timing_finding(tmp_path):
    import gradtrace

    rng = np.random.default_rng(1)
    x = rng.normal(size=(150 * 32, 8)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int64")
    xv = rng.normal(size=(256, 8)).astype("float32")
    yv = (xv[:, 0] - xv[:, 1] > 0).astype("int64")
    h = gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        validation_data=(xv, yv),
        logdir=str(tmp_path),  # heavy steps write histograms and heatmaps
        config=quiet(),
    )
    assert len(h.step_times) == 300
    assert timing_findings(h) == []


def test_slow_pipeline_throughout_is_input_bound(data):
    import tensorflow as tf

    import gradtrace

    def slow_read(x, y):
        def wait(x):
            time.sleep(0.008)
            return x

        x = tf.py_function(wait, [x], tf.float32)
        x.set_shape((None, 8))
        return x, y

    x, y = data
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(slow_read)  # 128 steps
    h = gradtrace.fit(mlp(), ds, verbose=0, shuffle=False, config=quiet())
    found = timing_findings(h)
    assert [f.kind for f in found] == ["input_bound"], found
    f = found[0]
    assert f.value >= 0.5 and f.threshold == 0.5
    assert "waiting for the input pipeline" in f.message
    assert "prefetch" in f.hint and "num_parallel_calls" in f.hint


def test_sequence_length_change_retrace():
    # A second fit of the same model on data of another sequence length
    # retraces the cached step; the finding names the input that changed.
    import keras
    import tensorflow as tf

    import gradtrace

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)

    def part(n, length):
        x = rng.normal(size=(n * 8, length, 4)).astype("float32")
        y = (x[:, 0, 0] > 0).astype("int64")
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    gradtrace.fit(model, part(5, 10), verbose=0, config=quiet(histogram_every=1000))
    h = gradtrace.fit(model, part(5, 20), verbose=0, config=quiet(histogram_every=1000))
    first = h.step_times[0]
    assert (
        first.retraced
        and "changed shape [8, 10, 4] -> [8, 20, 4]" in first.retrace_reason
    )
    (retr,) = [f for f in timing_findings(h) if f.kind == "retracing"]
    assert retr.step == 5 and "changed shape" in retr.message
    assert "pad" in retr.hint

"""gradtrace.fit trains exactly like model.fit (API.md §1)."""

import keras
import numpy as np
import pytest

import gradtrace
from tests.conftest import quiet
from tests.helpers import weights_close


def _mlp():
    keras.utils.set_random_seed(1)
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-2)
            ),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    m.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return m


def _cnn():
    keras.utils.set_random_seed(2)
    m = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    m.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return m


def _two_input():
    keras.utils.set_random_seed(3)
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(6, activation="tanh")(a), b])
    out = keras.layers.Dense(1)(h)
    m = keras.Model({"a": a, "b": b}, out)
    m.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    return m


def _data(kind):
    rng = np.random.default_rng(0)
    if kind == "mlp":
        x = rng.normal(size=(200, 8)).astype("float32")
        return x, rng.integers(0, 3, 200)
    if kind == "cnn":
        x = rng.normal(size=(96, 8, 8, 2)).astype("float32")
        return x, rng.integers(0, 3, 96)
    x = {
        "a": rng.normal(size=(120, 5)).astype("float32"),
        "b": rng.normal(size=(120, 3)).astype("float32"),
    }
    return x, rng.normal(size=(120, 1)).astype("float32")


@pytest.mark.parametrize(
    "kind,build", [("mlp", _mlp), ("cnn", _cnn), ("two_input", _two_input)]
)
def test_same_weights_and_history_as_model_fit(kind, build):
    x, y = _data(kind)
    kw = dict(batch_size=32, epochs=2, shuffle=False, validation_split=0.25, verbose=0)
    ref = build()
    h_ref = ref.fit(x, y, **kw)
    got = build()
    h_got = gradtrace.fit(got, x, y, **kw, config=quiet())
    assert isinstance(h_got, gradtrace.TraceHistory)
    assert isinstance(h_got, keras.callbacks.History)
    assert weights_close(ref, got), "final weights differ from model.fit's"
    assert sorted(h_got.history) == sorted(h_ref.history)
    for k in h_ref.history:
        np.testing.assert_allclose(
            h_got.history[k], h_ref.history[k], rtol=1e-5, atol=1e-6
        )
    assert h_got.epoch == h_ref.epoch
    assert h_got.params == h_ref.params
    assert h_got.model is got and got.history is h_got


def test_probes_do_not_change_training():
    # Everything recorded every step, histograms included: still model.fit's result.
    x, y = _data("mlp")
    ref = _mlp()
    ref.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    got = _mlp()
    gradtrace.fit(
        got,
        x,
        y,
        batch_size=32,
        epochs=1,
        shuffle=False,
        verbose=0,
        config=quiet(histogram_every=1),
    )
    assert weights_close(ref, got)


def test_regularization_loss_counts():
    x, y = _data("mlp")
    got = _mlp()
    h = gradtrace.fit(
        got, x, y, batch_size=200, epochs=1, shuffle=False, verbose=0, config=quiet()
    )
    ref = _mlp()
    h_ref = ref.fit(x, y, batch_size=200, epochs=1, shuffle=False, verbose=0)
    # one step on the full batch: the logged loss includes the L2 term
    assert h.history["loss"][0] == pytest.approx(h_ref.history["loss"][0], rel=1e-6)
    assert weights_close(ref, got)


class _Sub(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.a = keras.layers.Dense(8, activation="relu")
        self.b = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.b(self.a(x))


def _unbuilt_subclassed():
    keras.utils.set_random_seed(4)
    m = _Sub()  # no variables until the first (traced) call
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_unbuilt_subclassed_model_matches_model_fit():
    x, y = _data("mlp")
    ref = _unbuilt_subclassed()
    h_ref = ref.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    got = _unbuilt_subclassed()
    h = gradtrace.fit(
        got, x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, config=quiet()
    )
    assert weights_close(ref, got)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-5)

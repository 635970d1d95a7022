"""Bad input gets a clear error before any weight changes (issue: fit foundation)."""

import os
import stat

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradtrace
from tests.conftest import quiet
from tests.helpers import mlp


def _fit(model, *a, **kw):
    kw.setdefault("verbose", 0)
    kw.setdefault("config", quiet())
    return gradtrace.fit(model, *a, **kw)


def _unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_uncompiled_model(xy):
    x, y = xy
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"must be compiled.*model\.compile\(optimizer=\.\.\., loss=\.\.\.\)",
    ):
        _fit(m, x, y)


def test_not_a_model(xy):
    x, y = xy
    with pytest.raises(
        TypeError, match=r"expects a `keras.Model`.*Received: model='oops' of type str"
    ):
        _fit("oops", x, y)


def test_train_step_override_is_trained_not_refused(xy):
    # API.md §1: a model whose class overrides train_step runs its own step.
    x, y = xy
    calls = []

    class Custom(keras.Sequential):
        def train_step(self, data):
            calls.append(1)  # traced: once per variant
            return super().train_step(data)

    m = Custom([keras.Input((8,)), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    h = _fit(m, x, y.astype("float32")[:, None])
    assert calls and "loss" in h.history and np.isfinite(h.history["loss"]).all()


def test_x_y_length_mismatch(xy):
    x, y = xy
    m = mlp()
    before = m.get_weights()
    with pytest.raises(
        ValueError, match=r"same number of samples.*x with \[256\].*y with \[100\]"
    ):
        _fit(m, x, y[:100])
    assert _unchanged(m, before)


def test_batch_size_with_dataset(xy):
    x, y = xy
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(
        ValueError,
        match=r"`batch_size` must be None when `x` is a .*Dataset.*batch_size=16",
    ):
        _fit(mlp(), ds, batch_size=16)


def test_validation_split_with_dataset(xy):
    x, y = xy
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(
        ValueError,
        match=r"`validation_split` is only supported for arrays.*validation_data=",
    ):
        _fit(mlp(), ds, validation_split=0.2)


def test_empty_dataset(xy):
    x, y = xy
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).take(0)
    with pytest.raises(ValueError, match=r"empty tf.data.Dataset"):
        _fit(mlp(), ds)


def test_empty_filtered_dataset_of_unknown_size(xy):
    x, y = xy
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: b > 5).batch(8)
    m = mlp()
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"received no training data"):
        _fit(m, ds)
    assert _unchanged(m, before)


def test_empty_arrays():
    with pytest.raises(ValueError, match=r"empty training arrays"):
        _fit(mlp(), np.zeros((0, 8), "float32"), np.zeros((0,), "int64"))


def test_logdir_inside_a_file(tmp_path, xy):
    x, y = xy
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(
        ValueError, match=r"`logdir` cannot be written.*Received: logdir=.*file/run"
    ):
        _fit(mlp(), x, y, logdir=str(f / "run"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_logdir_read_only(tmp_path, xy):
    x, y = xy
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(ValueError, match=r"`logdir` cannot be written"):
        _fit(mlp(), x, y, logdir=str(d))


def test_logdir_read_only_as_root(tmp_path, xy, monkeypatch):
    # root can write anywhere: simulate the read-only folder at the OS boundary.
    x, y = xy
    import tempfile

    def deny(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", deny)
    with pytest.raises(
        ValueError, match=r"`logdir` cannot be written: Permission denied"
    ):
        _fit(mlp(), x, y, logdir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (
            dict(epochs="3"),
            TypeError,
            r"`epochs` must be an int or None. Received: epochs='3' of type str",
        ),
        (dict(epochs=-1), ValueError, r"`epochs` must be >= 0"),
        (dict(batch_size=0), ValueError, r"`batch_size` must be >= 1"),
        (dict(batch_size=2.5), TypeError, r"`batch_size` must be an int"),
        (dict(verbose=3), ValueError, r"`verbose` must be 'auto', 0, 1 or 2"),
        (
            dict(callbacks=keras.callbacks.History()),
            TypeError,
            r"`callbacks` must be a list",
        ),
        (dict(callbacks=["nope"]), TypeError, r"must be a keras.callbacks.Callback"),
        (
            dict(validation_split=1.5),
            ValueError,
            r"`validation_split` must be a float in \[0, 1\)",
        ),
        (
            dict(validation_freq=0),
            ValueError,
            r"`validation_freq` to be a list or int >= 1",
        ),
        (dict(shuffle="yes"), ValueError, r"`shuffle` must be True, False or 'batch'"),
        (dict(class_weight=[1, 2]), TypeError, r"`class_weight` must be a dict"),
        (dict(steps_per_epoch=0), ValueError, r"`steps_per_epoch` must be >= 1"),
        (dict(logdir=3), TypeError, r"`logdir` must be a path"),
        (
            dict(config={"histogram_every": 5}),
            TypeError,
            r"`config` must be a gradtrace.Config",
        ),
    ],
)
def test_wrong_argument_types(kwargs, exc, pattern, xy):
    x, y = xy
    m = mlp()
    before = m.get_weights()
    with pytest.raises(exc, match=pattern):
        _fit(m, x, y, **kwargs)
    assert _unchanged(m, before)


def test_no_data():
    with pytest.raises(ValueError, match=r"needs training data. Received: x=None"):
        _fit(mlp(), None)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        (
            dict(histogram_every=0),
            ValueError,
            r"`histogram_every` must be >= 1. Received: histogram_every=0",
        ),
        (dict(write_every="2"), TypeError, r"`write_every` must be an int"),
        (dict(gradients="yes"), TypeError, r"`gradients` must be True or False"),
        (dict(layers="dense*"), TypeError, r"`layers` must be None or a sequence"),
        (dict(layers=[1]), TypeError, r"`layers` must contain only strings"),
    ],
)
def test_config_validation(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        gradtrace.Config(**kwargs)


def test_config_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        gradtrace.Config().histogram_every = 3

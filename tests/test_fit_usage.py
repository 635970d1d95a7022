"""Every data form and standard callback runs and gives model.fit's history keys."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradtrace
from tests.conftest import quiet
from tests.helpers import mlp, read_scalars


class _Seq(keras.utils.PyDataset):
    def __init__(self, x, y, bs=32):
        super().__init__()
        self.x, self.y, self.bs = x, y, bs

    def __len__(self):
        return int(np.ceil(len(self.x) / self.bs))

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        return self.x[s], self.y[s]


def _gen(x, y, bs=32):
    while True:
        for i in range(0, len(x), bs):
            yield x[i : i + bs], y[i : i + bs]


def _forms(x, y):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    return {
        "numpy": (dict(x=x, y=y, batch_size=32), {}),
        "tensors": (dict(x=tf.constant(x), y=tf.constant(y), batch_size=32), {}),
        "dataset": (dict(x=ds), {}),
        "dataset_val": (dict(x=ds, validation_data=ds.take(2)), {}),
        "repeated_dataset_steps": (dict(x=ds.repeat(), steps_per_epoch=5), {}),
        "pydataset": (dict(x=_Seq(x, y)), {}),
        "generator": (dict(x=_gen(x, y), steps_per_epoch=4), {}),
        "validation_split": (dict(x=x, y=y, batch_size=32, validation_split=0.2), {}),
        "validation_data_tuple": (
            dict(
                x=x,
                y=y,
                batch_size=32,
                validation_data=(x[:64], y[:64]),
                validation_steps=1,
            ),
            {},
        ),
        "validation_freq": (
            dict(
                x=x,
                y=y,
                batch_size=32,
                validation_data=(x[:64], y[:64]),
                validation_freq=2,
            ),
            {},
        ),
        "class_weight": (
            dict(x=x, y=y, batch_size=32, class_weight={0: 1.0, 1: 3.0}),
            {},
        ),
        "sample_weight": (
            dict(x=x, y=y, batch_size=32, sample_weight=np.linspace(0.5, 1.5, len(x))),
            {},
        ),
        "initial_epoch": (dict(x=x, y=y, batch_size=32, initial_epoch=1), {}),
        "shuffle_batch": (dict(x=x, y=y, batch_size=32, shuffle="batch"), {}),
    }


FORMS = list(_forms(np.zeros((4, 8), "float32"), np.zeros(4, "int64")))


@pytest.mark.parametrize("form", FORMS)
def test_data_forms_match_model_fit_keys(form, xy):
    x, y = xy
    kwargs, _ = _forms(x, y)[form]
    ref = mlp()
    h_ref = ref.fit(**kwargs, epochs=2, verbose=0)
    kwargs, _ = _forms(x, y)[form]  # fresh generators/iterators
    got = mlp()
    h = gradtrace.fit(got, **kwargs, epochs=2, verbose=0, config=quiet())
    assert sorted(h.history) == sorted(h_ref.history)
    assert h.epoch == h_ref.epoch
    assert len(h.step_times) == int(got.optimizer.iterations.numpy())


def test_multi_input_multi_output_dicts():
    keras.utils.set_random_seed(0)
    a = keras.Input((4,), name="a")
    b = keras.Input((2,), name="b")
    h = keras.layers.Dense(8, activation="relu", name="trunk")(
        keras.layers.Concatenate()([a, b])
    )
    out1 = keras.layers.Dense(1, name="reg")(h)
    out2 = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    m = keras.Model({"a": a, "b": b}, {"reg": out1, "cls": out2})
    m.compile(
        "adam",
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        metrics={"cls": ["accuracy"]},
    )
    rng = np.random.default_rng(0)
    x = {
        "a": rng.normal(size=(64, 4)).astype("float32"),
        "b": rng.normal(size=(64, 2)).astype("float32"),
    }
    y = {
        "reg": rng.normal(size=(64, 1)).astype("float32"),
        "cls": rng.integers(0, 3, 64),
    }
    ref = keras.models.clone_model(m)
    ref.compile(
        "adam",
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        metrics={"cls": ["accuracy"]},
    )
    h_ref = ref.fit(x, y, batch_size=16, epochs=1, verbose=0)
    hist = gradtrace.fit(m, x, y, batch_size=16, epochs=1, verbose=0, config=quiet())
    assert sorted(hist.history) == sorted(h_ref.history)


def test_standard_callbacks(tmp_path, xy):
    x, y = xy
    seen = []
    cbs = [
        keras.callbacks.EarlyStopping(
            monitor="loss", patience=0, min_delta=10.0
        ),  # stops after 2 epochs
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras")),
        keras.callbacks.ReduceLROnPlateau(
            monitor="loss", patience=0, min_delta=10.0, factor=0.5
        ),
        keras.callbacks.LearningRateScheduler(lambda e, lr: lr),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(str(tmp_path / "ktb")),
        keras.callbacks.LambdaCallback(on_train_end=lambda logs: seen.append("end")),
    ]
    m = mlp()
    h = gradtrace.fit(
        m, x, y, batch_size=32, epochs=5, verbose=0, callbacks=cbs, config=quiet()
    )
    assert h.epoch == [0, 1], "EarlyStopping should stop after two epochs"
    assert "learning_rate" in h.history  # ReduceLROnPlateau adds it, as with model.fit
    assert (tmp_path / "ckpt.keras").exists()
    assert (tmp_path / "log.csv").read_text().count("\n") == 3
    assert os.listdir(tmp_path / "ktb" / "train")
    assert seen == ["end"]


def test_stop_training_from_callback(xy):
    x, y = xy

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    m = mlp()
    h = gradtrace.fit(
        m, x, y, batch_size=32, epochs=3, verbose=0, callbacks=[Stop()], config=quiet()
    )
    assert int(m.optimizer.iterations.numpy()) == 3
    assert h.epoch == [0]


@pytest.mark.parametrize("verbose", [0, 1, 2, "auto"])
def test_progress_bar_like_model_fit(verbose, xy, capsys):
    x, y = xy
    mlp().fit(x, y, batch_size=64, epochs=1, verbose=verbose)
    ref = capsys.readouterr().out
    gradtrace.fit(mlp(), x, y, batch_size=64, epochs=1, verbose=verbose, config=quiet())
    got = capsys.readouterr().out
    if verbose == 0:
        assert ref == got == ""
    else:
        assert "4/4" in got and "loss:" in got and "accuracy:" in got
        assert ("4/4" in ref) and (got.count("\n") == ref.count("\n"))


def test_epoch_tags_like_keras_tensorboard(tmp_path, xy):
    x, y = xy
    m = mlp()
    gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        validation_split=0.25,
        logdir=str(tmp_path),
        config=quiet(),
    )
    train = read_scalars(str(tmp_path / "train"))
    val = read_scalars(str(tmp_path / "validation"))
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert [s for s, _ in train[tag]] == [0, 1], tag
    assert [s for s, _ in val["epoch_loss"]] == [0, 1]
    assert "epoch_accuracy" in val


def test_logdir_none_writes_nothing(tmp_path, xy, monkeypatch):
    x, y = xy
    monkeypatch.chdir(tmp_path)
    h = gradtrace.fit(mlp(), x, y, batch_size=32, epochs=1, verbose=0, config=quiet())
    assert h.logdir is None
    assert os.listdir(tmp_path) == []


def test_second_fit_reuses_the_compiled_step(xy):
    x, y = xy
    m = mlp()
    gradtrace.fit(m, x, y, batch_size=32, epochs=1, verbose=0, config=quiet())
    h = gradtrace.fit(m, x, y, batch_size=32, epochs=1, verbose=0, config=quiet())
    assert not any(t.retraced for t in h.step_times)
    assert h.step_times[0].step == 8  # global optimizer step goes on


def test_fits_that_alternate_configs_reuse_their_steps_and_compile_resets(xy):
    x, y = xy
    m = mlp()
    a, b = quiet(), quiet(histograms=False)
    for cfg in (a, b):
        gradtrace.fit(m, x, y, batch_size=32, epochs=1, verbose=0, config=cfg)
    for cfg in (a, b):
        h = gradtrace.fit(m, x, y, batch_size=32, epochs=1, verbose=0, config=cfg)
        assert not any(t.retraced for t in h.step_times), cfg
    m.compile("sgd", "sparse_categorical_crossentropy")  # new optimizer and loss
    h = gradtrace.fit(m, x, y, batch_size=32, epochs=1, verbose=0, config=a)
    assert h.step_times[0].retraced  # a new step for the new compile
    assert len(m._gradtrace_steps) == 1  # the old compile's steps are gone


def test_run_eagerly_model(tmp_path, xy):
    x, y = xy
    ref = mlp()
    ref.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=True,
    )
    ref.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    m = mlp()
    m.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=True,
    )
    h = gradtrace.fit(
        m,
        x,
        y,
        batch_size=64,
        epochs=1,
        verbose=0,
        shuffle=False,
        logdir=str(tmp_path),
        config=quiet(),
    )
    from tests.helpers import weights_close

    assert weights_close(ref, m)
    assert "gradients/hidden/norm" in read_scalars(str(tmp_path / "train"))
    assert len(h.step_times) == 4
    assert not any(t.retraced for t in h.step_times)  # nothing is traced
    assert not [f for f in h.findings if f.kind in ("retracing", "slow_step")]

"""Logging never stops training, and logs are never silently lost (issue: big
models): a failing logdir, quick fits into one logdir, a resumed run."""

from __future__ import annotations

import shutil
import warnings

import keras
import numpy as np
import tensorflow as tf

import gradtrace
from tests.conftest import quiet
from tests.helpers import dead_mlp, mlp, read_scalars, weights_close


def _fit(model, x, y, logdir, **kw):
    kw.setdefault("config", quiet())
    return gradtrace.fit(
        model, x, y, batch_size=32, verbose=0, shuffle=False, logdir=str(logdir), **kw
    )


def test_full_disk_mid_run_warns_once_and_training_goes_on(tmp_path, xy, monkeypatch):
    x, y = xy
    calls = {"n": 0}
    real_write = tf.io.TFRecordWriter.write

    def write(self, record):
        calls["n"] += 1
        if calls["n"] > 5:  # the disk fills up after a few events
            raise tf.errors.ResourceExhaustedError(
                None, None, "No space left on device"
            )
        return real_write(self, record)

    monkeypatch.setattr(tf.io.TFRecordWriter, "write", write)
    m, ref = mlp(), mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = _fit(m, x, y, tmp_path, epochs=3, config=quiet(histogram_every=2))
    monkeypatch.undo()
    ref.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False)
    assert weights_close(m, ref)  # trained to the end, exactly
    assert len(h.history["loss"]) == 3 and len(h.step_times) == 24
    mine = [
        w for w in caught if "cannot write TensorBoard event files" in str(w.message)
    ]
    assert len(mine) == 1, [str(w.message) for w in caught]
    assert str(tmp_path) in str(mine[0].message)
    assert "No space left on device" in str(mine[0].message)


def test_logdir_removed_mid_run_keeps_training_and_findings(tmp_path, xy):
    x, y = xy
    logdir = tmp_path / "run"

    class Remove(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3 and logdir.exists():
                shutil.rmtree(logdir)

    m = dead_mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = _fit(m, x, y, logdir, epochs=3, callbacks=[Remove()])
    assert len(h.history["loss"]) == 3 and len(h.step_times) == 24
    assert [f.kind for f in h.findings] == ["dead_relu"]  # diagnosis went on
    messages = [
        str(w.message) for w in caught if "gradtrace: cannot write" in str(w.message)
    ]
    assert messages and all(str(logdir) in msg for msg in messages), messages


def test_quick_fits_into_one_logdir_keep_every_step(tmp_path, xy):
    # the resume pattern: one short fit per epoch, all within a second or two
    x, y = xy
    m = mlp()
    for e in range(3):
        _fit(m, x[:64], y[:64], tmp_path, initial_epoch=e, epochs=e + 1)
    s = read_scalars(str(tmp_path / "train"))
    assert [st for st, _ in s["batch_loss"]] == [0, 1, 2, 3, 4, 5]
    assert [st for st, _ in s["epoch_loss"]] == [0, 1, 2]
    files = list((tmp_path / "train").glob("events.out.tfevents.*"))
    assert len(files) == 3 and len({f.name for f in files}) == 3


def test_a_resumed_run_compiles_everything_at_its_first_steps(xy, tmp_path):
    x, y = xy
    m = mlp()
    m.optimizer.build(m.trainable_variables)
    m.optimizer.iterations.assign(250)
    counts = {}

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(m.optimizer.iterations.numpy()) - 1
            counts[step] = dict(
                m._gradtrace_steps[next(iter(m._gradtrace_steps))].trace_counts
            )

    # steps 250..313: the heavy step at 300 must not compile anything new
    h = gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=8,
        verbose=0,
        callbacks=[Count()],
        config=quiet(),
        logdir=str(tmp_path),
    )
    assert counts[251]["light"] >= 1 and counts[251]["heavy"] >= 1  # both by 251
    assert counts[313] == counts[251]
    assert not h.step_times[50].retraced  # step 300
    assert h.step_times[0].retraced and h.step_times[1].retraced


def test_tracer_logging_failure_is_not_fatal(tmp_path, monkeypatch):
    def write(self, record):
        raise tf.errors.PermissionDeniedError(None, None, "read-only file system")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="lin")])
    opt = keras.optimizers.SGD(0.1)
    xs = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    monkeypatch.setattr(tf.io.TFRecordWriter, "write", write)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gradtrace.Tracer(logdir=str(tmp_path), config=quiet()) as tracer:

            @tracer.step
            def step(xb):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(model(xb)))
                opt.apply_gradients(
                    zip(
                        tape.gradient(loss, model.trainable_variables),
                        model.trainable_variables,
                    )
                )
                return loss

            for i in range(5):
                step(xs[i * 8 : (i + 1) * 8])
            tracer.end_epoch(0, {"loss": 1.0})
    assert len(tracer.step_times) == 5
    assert any("read-only file system" in str(w.message) for w in caught)

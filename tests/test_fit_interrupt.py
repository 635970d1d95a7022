"""Nothing is lost when training stops early."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import pytest
import tensorflow as tf

import gradtrace
from tests.conftest import quiet
from tests.helpers import mlp, read_scalars


class Boom(Exception):
    pass


class _RaiseAt(keras.callbacks.Callback):
    def __init__(self, step, exc):
        super().__init__()
        self.step, self.exc, self.ended = step, exc, False

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.step:
            raise self.exc

    def on_train_end(self, logs=None):
        self.ended = True


@pytest.mark.parametrize("exc", [Boom("from a callback"), KeyboardInterrupt()])
def test_exception_propagates_and_logs_are_flushed(exc, tmp_path, xy):
    x, y = xy
    cb = _RaiseAt(3, exc)
    with pytest.raises(type(exc)) as info:
        gradtrace.fit(
            mlp(),
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            callbacks=[cb],
            logdir=str(tmp_path),
            config=quiet(),
        )
    assert info.value is exc  # unchanged
    assert not cb.ended  # model.fit does not run on_train_end on an exception either
    scalars = read_scalars(str(tmp_path / "train"))
    assert [s for s, _ in scalars["batch_loss"]] == [0, 1, 2, 3]
    assert len(scalars["gradients/hidden/norm"]) == 4


def test_data_pipeline_error_propagates(tmp_path, xy):
    x, y = xy

    def gen():
        for i in range(100):
            if i == 5:
                raise Boom("bad record")
            yield x[:16], y[:16]

    # Keras runs generators through tf.data, which re-raises as its own error
    # type: gradtrace raises exactly what model.fit raises.
    with pytest.raises(Exception, match="bad record") as ref:
        mlp().fit(gen(), epochs=1, steps_per_epoch=50, verbose=0)
    with pytest.raises(type(ref.value), match="bad record"):
        gradtrace.fit(
            mlp(),
            gen(),
            epochs=1,
            steps_per_epoch=50,
            verbose=0,
            logdir=str(tmp_path),
            config=quiet(),
        )
    assert [s for s, _ in read_scalars(str(tmp_path / "train"))["batch_loss"]] == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_tf_data_error_propagates(tmp_path, xy):
    x, y = xy

    def check(a, b):
        tf.debugging.assert_less(tf.reduce_max(a), 100.0, message="bad batch")
        return a, b

    xx = x.copy()
    xx[100] = 1e6  # batch 3 with batch size 32
    ds = tf.data.Dataset.from_tensor_slices((xx, y)).batch(32).map(check)
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad batch"):
        gradtrace.fit(
            mlp(), ds, epochs=1, verbose=0, logdir=str(tmp_path), config=quiet()
        )
    assert [s for s, _ in read_scalars(str(tmp_path / "train"))["batch_loss"]] == [
        0,
        1,
        2,
    ]


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, numpy as np, gradtrace
    logdir, marker = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    x = np.random.rand(64, 4).astype("float32"); y = np.random.rand(64, 1).astype("float32")

    class Hang(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and logs is not None and batch == 1 and getattr(self, "_epoch", 0) == 1:
                open(marker, "w").close()
                time.sleep(600)
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    gradtrace.fit(m, x, y, batch_size=16, epochs=3, verbose=0, callbacks=[Hang()], logdir=logdir,
                  config=gradtrace.Config(console=False))
    """
)


def test_sigkill_leaves_readable_event_files(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    logdir, marker = tmp_path / "run", tmp_path / "marker"
    p = subprocess.Popen(
        [sys.executable, str(script), str(logdir), str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert p.poll() is None, "child died before the marker"
            assert time.time() < deadline, "child never reached the marker"
            time.sleep(0.2)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    scalars = read_scalars(str(logdir / "train"))
    # The whole first epoch (4 steps) was flushed at its end; the epoch tag too.
    steps = [s for s, _ in scalars["batch_loss"]]
    assert steps[:4] == [0, 1, 2, 3]
    assert [s for s, _ in scalars["epoch_loss"]] == [0]

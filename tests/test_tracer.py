"""`gradtrace.Tracer` on hand-written GradientTape loops (API.md §7)."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradtrace
from gradtrace import cli
from tests.conftest import quiet
from tests.helpers import assert_same_series, read_scalars, read_tags

N, B = 64, 8  # 8 batches an epoch


def _states(seed=0):
    return np.random.default_rng(seed).normal(size=(N, 4)).astype("float32")


def _actor_critic(seed=0):
    """Two models with the same layer names, two optimizers."""
    keras.utils.set_random_seed(seed)
    actor = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="dense"),
            keras.layers.Dense(2, name="out"),
        ],
        name="actor",
    )
    critic = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="dense"),
            keras.layers.Dense(1, name="out"),
        ],
        name="critic",
    )
    return actor, critic, keras.optimizers.Adam(1e-2), keras.optimizers.SGD(1e-2)


def _step_fn(actor, critic, opt_a, opt_c):
    def train_step(s):
        with tf.GradientTape(persistent=True) as tape:
            c_loss = tf.reduce_mean(tf.square(critic(s) - 1.0))
            a_loss = tf.reduce_mean(tf.square(actor(s) - s[:, :2]))
        opt_c.apply_gradients(
            zip(
                tape.gradient(c_loss, critic.trainable_variables),
                critic.trainable_variables,
            )
        )
        opt_a.apply(
            tape.gradient(a_loss, actor.trainable_variables), actor.trainable_variables
        )
        return {"critic_loss": c_loss, "actor_loss": a_loss}

    return train_step


def _run(tracer_kw=None, step_kw=None, epochs=2, logdir=None):
    """(models, tracer) after training the actor-critic with a Tracer."""
    actor, critic, oa, oc = _actor_critic()
    ds = tf.data.Dataset.from_tensor_slices(_states()).batch(B)
    with gradtrace.Tracer(
        logdir=logdir,
        # every step written: the series are compared step by step
        **(tracer_kw or {"config": quiet(log_budget_kb=None)}),
    ) as tracer:
        step = tracer.step(_step_fn(actor, critic, oa, oc), **(step_kw or {}))
        for epoch in range(epochs):
            for batch in tracer.iterate(ds):
                logs = step(batch)
            tracer.end_epoch(epoch, logs)
    return (actor, critic), tracer, logs


def _bare(epochs=2):
    actor, critic, oa, oc = _actor_critic()
    step = tf.function(_step_fn(actor, critic, oa, oc))
    ds = tf.data.Dataset.from_tensor_slices(_states()).batch(B)
    for _ in range(epochs):
        for batch in ds:
            step(batch)
    return actor, critic


def _same_weights(ms1, ms2):
    for m1, m2 in zip(ms1, ms2):
        for p, q in zip(m1.get_weights(), m2.get_weights()):
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_compiled_two_optimizers_trains_like_the_bare_loop_and_logs_everything(
    tmp_path,
):
    models, tracer, logs = _run(logdir=str(tmp_path))
    _same_weights(models, _bare())
    assert set(logs) == {"critic_loss", "actor_loss"}  # fn's return, unchanged
    assert tracer.logdir == str(tmp_path)
    assert len(tracer.step_times) == 16
    assert [t.step for t in tracer.step_times] == list(range(16))
    assert [t.epoch for t in tracer.step_times] == [0] * 8 + [1] * 8
    s = read_scalars(str(tmp_path / "train"))
    for model in ("actor", "critic"):
        for layer in ("dense", "out"):
            name = f"{model}/{layer}"
            assert len(s[f"gradients/{name}/norm"]) == 16, name
            assert f"updates/{name}/ratio" in s and f"weights/{name}/norm" in s
            assert f"activations/{name}/mean" in s
    assert len(s["batch_critic_loss"]) == 16 and len(s["batch_actor_loss"]) == 16
    assert s["batch_loss"] == s["batch_critic_loss"]  # the first *loss* key
    assert [st for st, _ in s["epoch_actor_loss"]] == [0, 1]
    assert "gradients/actor/dense/kernel" in read_tags(str(tmp_path / "train"))
    assert not tracer.findings
    # the same rules and files as fit: gradtrace report reads the run
    code = cli.main(["report", str(tmp_path), "--json"])
    assert code == 0


def test_report_reads_a_tracer_run(tmp_path, capsys):
    _run(logdir=str(tmp_path), epochs=1)
    code = cli.main(["report", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["name"] for r in doc["layers"]] == [
        "critic/dense",
        "critic/out",
        "actor/dense",
        "actor/out",
    ]
    assert doc["timing"]["steps"] == 8


def test_eager_gives_the_same_weights_and_statistics_as_compiled(tmp_path):
    models_c, _, _ = _run(logdir=str(tmp_path / "c"), epochs=1)
    models_e, _, _ = _run(logdir=str(tmp_path / "e"), step_kw={"eager": True}, epochs=1)
    _same_weights(models_c, models_e)
    assert_same_series(
        str(tmp_path / "c" / "train"),
        str(tmp_path / "e" / "train"),
        (
            "gradients/actor/dense/norm",
            "updates/critic/out/ratio",
            "activations/critic/dense/std",
            "batch_loss",
        ),
    )


def test_jit_compile(tmp_path):
    models, tracer, _ = _run(
        tracer_kw={"config": quiet(histogram_every=2)},
        step_kw={"jit_compile": True},
        logdir=str(tmp_path),
        epochs=1,
    )
    _same_weights(models, _bare(epochs=1))
    assert "gradients/critic/out/kernel" in read_tags(str(tmp_path / "train"))
    assert not tracer.findings


def test_scalar_return_and_decorator_forms_and_tf_function(tmp_path):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="lin")])
    opt = keras.optimizers.SGD(0.1)
    x = _states()
    tracer = gradtrace.Tracer(logdir=str(tmp_path), config=quiet())

    @tracer.step(eager=False)
    @tf.function  # gradtrace compiles the Python function itself
    def train_step(xb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(m(xb) - 1.0))
        opt.apply_gradients(
            zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables)
        )
        return loss

    out = train_step(x[:8])
    assert isinstance(out, tf.Tensor) and out.shape == ()  # exactly what fn returns
    train_step(x[8:16])
    tracer.close()
    s = read_scalars(str(tmp_path / "train"))
    assert [st for st, _ in s["batch_loss"]] == [0, 1]
    assert s["batch_loss"][0][1] == pytest.approx(float(out.numpy()))
    assert "gradients/lin/norm" in s
    with pytest.raises(RuntimeError, match=r"closed.*after `close\(\)`"):
        train_step(x[:8])


def test_second_step_function_and_bad_arguments_are_clear_errors():
    tracer = gradtrace.Tracer(config=quiet())
    tracer.step(lambda: None)
    with pytest.raises(ValueError, match="traces one step function"):
        tracer.step(lambda: None)
    with pytest.raises(TypeError, match=r"`config` must be a gradtrace.Config.*dict"):
        gradtrace.Tracer(config={})
    with pytest.raises(TypeError, match=r"`eager` must be True or False.*'yes'"):
        gradtrace.Tracer(config=quiet()).step(lambda: None, eager="yes")
    with pytest.raises(TypeError, match="expects the training step function"):
        gradtrace.Tracer(config=quiet()).step(42)


def test_iterate_times_a_slow_batch_as_an_input_pipeline_slow_step():
    actor, critic, oa, oc = _actor_critic()
    xs = np.random.default_rng(0).normal(size=(64 * 8, 4)).astype("float32")

    def batches():
        for i in range(64):
            if i == 40:
                time.sleep(0.3)
            yield xs[i * 8 : (i + 1) * 8]

    with gradtrace.Tracer(config=quiet()) as tracer:
        step = tracer.step(_step_fn(actor, critic, oa, oc))
        for b in tracer.iterate(batches()):
            step(b)
    slow = [f for f in tracer.findings if f.kind == "slow_step"]
    assert [f.step for f in slow] == [40], tracer.findings
    assert "input pipeline" in slow[0].message
    assert tracer.step_times[40].data_ms >= 250


def test_with_block_flushes_on_an_exception_which_propagates(tmp_path):
    actor, critic, oa, oc = _actor_critic()
    x = _states()

    class Boom(Exception):
        pass

    with (
        pytest.raises(Boom, match="user error"),
        gradtrace.Tracer(logdir=str(tmp_path), config=quiet()) as tracer,
    ):
        step = tracer.step(_step_fn(actor, critic, oa, oc))
        for i in range(5):
            step(x[i * 8 : (i + 1) * 8])
        raise Boom("user error")
    s = read_scalars(str(tmp_path / "train"))
    assert [st for st, _ in s["batch_loss"]] == [0, 1, 2, 3, 4]
    assert len(tracer.step_times) == 5
    with pytest.raises(RuntimeError, match="closed"):
        step(x[:8])


def test_nan_in_a_hand_written_loop_is_found_at_its_layer():
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="h"),
            keras.layers.Lambda(lambda t: tf.math.log(t - 1.0), name="bad_log"),
            keras.layers.Dense(1, name="o"),
        ]
    )
    opt = keras.optimizers.Adam()
    with gradtrace.Tracer(config=quiet()) as tracer:

        @tracer.step
        def train_step(xb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(m(xb))
            opt.apply_gradients(
                zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables)
            )
            return loss

        train_step(_states()[:8])
    (nf,) = [f for f in tracer.findings if f.kind == "non_finite"]
    assert nf.layer == "bad_log" and nf.step == 0


def test_a_trained_variable_no_layer_owns_is_reported_by_its_path(tmp_path):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="frozen")])
    m.trainable = False
    token = keras.Variable(np.ones((1, 4), "float32"), name="token")
    opt = keras.optimizers.SGD(0.1)
    with gradtrace.Tracer(logdir=str(tmp_path), config=quiet()) as tracer:

        @tracer.step
        def train_step(xb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(m(xb + token)))
            opt.apply_gradients([(tape.gradient(loss, token), token)])
            return loss

        train_step(_states()[:8])
        train_step(_states()[8:16])
    s = read_scalars(str(tmp_path / "train"))
    assert f"gradients/{token.path}/norm" in s
    assert f"updates/{token.path}/ratio" in s
    assert "activations/frozen/mean" in s and "gradients/frozen/norm" not in s
    assert not tracer.findings


def test_an_apply_inside_tf_cond_is_not_recorded_and_says_so():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="lin")])
    opt = keras.optimizers.SGD(0.1)
    x = _states()[:8]
    with (
        pytest.warns(RuntimeWarning, match=r"1 optimizer.apply call.*tf.cond"),
        gradtrace.Tracer(config=quiet()) as tracer,
    ):

        @tracer.step
        def train_step(xb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(m(xb) - 1.0))
            grads = tape.gradient(loss, m.trainable_variables)

            def apply():
                opt.apply_gradients(zip(grads, m.trainable_variables))
                return tf.constant(True)

            tf.cond(loss > 0, apply, lambda: tf.constant(False))
            return loss

        w0 = m.get_weights()[0].copy()
        train_step(x)
    assert not np.allclose(m.get_weights()[0], w0)  # it trained
    assert len(tracer.step_times) == 1 and not tracer.findings

"""Child process for the tf.distribute tests (device setup must not leak).

    python tests/dist_child.py mirrored OUT_DIR
    python tests/dist_child.py worker OUT_DIR   # with TF_CONFIG set

Writes OUT_DIR/<name>.npz (final weights, first-step statistics) and
OUT_DIR/<name>.json (history, findings).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build(dead_bias=False, custom=False):
    import keras

    class Custom(keras.Sequential):
        # A model whose class overrides train_step (Keras' own, through super)
        def train_step(self, data):
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    bias = keras.initializers.Constant(-10.0) if dead_bias else "zeros"
    m = (Custom if custom else keras.Sequential)(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="h1"),
            keras.layers.Dense(16, activation="relu", bias_initializer=bias, name="h2"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    m.compile(
        keras.optimizers.SGD(0.05),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return m


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    return x, y


def dataset(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


class _SlowOnce:
    """Makes this worker a straggler at one batch (a callback that sleeps)."""

    def __new__(cls, batch):
        import time

        import keras

        class Slow(keras.callbacks.Callback):
            def on_train_batch_end(self, b, logs=None):
                if (
                    b == batch
                    and self.params.get("epochs")
                    and not getattr(self, "_done", False)
                ):
                    self._done = True
                    time.sleep(0.4)

        return Slow()


def run(
    name, strategy, out_dir, dead_bias=False, logdir=None, callbacks=None, custom=False
):
    import gradtrace

    x, y = data()
    if strategy is None:
        m = build(dead_bias, custom)
    else:
        with strategy.scope():
            m = build(dead_bias, custom)
    ds = dataset(x, y)
    if strategy is not None and isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        ds = ds.with_options(opts)
    h = gradtrace.fit(
        m,
        ds,
        epochs=2,
        verbose=0,
        callbacks=callbacks,
        validation_data=dataset(x[:64], y[:64]),
        logdir=logdir,
        config=gradtrace.Config(console=False, stop_on_non_finite=False),
    )
    np.savez(os.path.join(out_dir, f"{name}.npz"), *m.get_weights())
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(
            {
                "history": {k: [float(v) for v in vs] for k, vs in h.history.items()},
                "findings": [fd.to_dict() for fd in h.findings],
                "logdir": h.logdir,
                "steps": len(h.step_times),
                "worker_ms": [t.worker_ms for t in h.step_times],
            },
            f,
        )


def tracer_under_strategy(strategy, out_dir):
    """A Tracer step that calls strategy.run itself: the error it gives."""
    import keras

    import gradtrace

    x, y = data()
    with strategy.scope():
        m = build()
        opt = keras.optimizers.SGD(0.1)
        opt.build(m.trainable_variables)
    tracer = gradtrace.Tracer(config=gradtrace.Config(console=False))

    @tracer.step
    def step(xb, yb):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(yb, m(xb))
                )
            opt.apply_gradients(
                zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables)
            )

        strategy.run(replica, args=(xb, yb))

    try:
        step(x[:32], y[:32])
        error = None
    except ValueError as e:
        error = str(e)
    with open(os.path.join(out_dir, "tracer_strategy.json"), "w") as f:
        json.dump({"error": error}, f)


def main():
    mode, out_dir = sys.argv[1], sys.argv[2]
    if mode == "mirrored":
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        run("single", None, out_dir, logdir=os.path.join(out_dir, "single_log"))
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        run("mirrored", strategy, out_dir, logdir=os.path.join(out_dir, "mirrored_log"))
        run("mirrored_dead", strategy, out_dir, dead_bias=True)
        for name, st in (("single_custom", None), ("mirrored_custom", strategy)):
            run(name, st, out_dir, logdir=os.path.join(out_dir, name), custom=True)
        tracer_under_strategy(strategy, out_dir)
    elif mode == "worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        slow = [_SlowOnce(5)] if task["index"] == 1 else None  # worker 1 straggles once
        run(
            f"worker{task['index']}",
            strategy,
            out_dir,
            logdir=os.path.join(out_dir, "mw_log"),
            callbacks=slow,
        )
    elif mode == "single":
        run("single", None, out_dir, logdir=os.path.join(out_dir, "single_log"))


if __name__ == "__main__":
    main()

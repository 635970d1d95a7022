"""Step-time overhead of gradtrace.fit against model.fit, alternated in one process.

    python benchmarks/overhead.py [--rounds 5] [--models mlp,cnn] [--variants ...]

Every variant trains the same model (one per architecture) on the same
synthetic data. A round runs one epoch of every variant in turn (A B C ... A B C ...; the
order reverses every other round), so machine noise hits all variants alike.
A variant's step time in a round is the mean step time from its SKIP-th
`on_train_batch_begin` to `on_train_end` (the first steps, where the
iterator starts, are dropped; everything after them counts, including work
gradtrace does once per block of steps and at the epoch's end); the table
gives the median over rounds and the median of the per-round ratios to
model.fit (paired, so slow drifts of the machine cancel).

Variants:
  keras          model.fit
  keras_tb       model.fit + keras.callbacks.TensorBoard(histogram_freq=1, update_freq="batch")
  gt_off         gradtrace.fit, every probe and the timing off, logdir=None
  gt_timing      gradtrace.fit, probes off, per-step timing on, logdir=None
  gt_default     gradtrace.fit, default Config, logdir set
  gt_all         gradtrace.fit, histograms every step (histogram_every=1), logdir set

--mirrored trains every variant under MirroredStrategy over 2 logical CPU
devices (which share this machine's 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradtrace  # noqa: E402

SKIP = 3  # first intervals of an epoch: iterator start-up


class _Clock(keras.callbacks.Callback):
    # No batch-end hook: keeps Keras' async batch-end dispatch on.
    def __init__(self):
        super().__init__()
        self.t = []
        self.end = None

    def on_train_batch_begin(self, batch, logs=None):
        self.t.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()

    def mean_ms(self):
        """Mean step time from step SKIP to the end of training: every
        cost is in it, also work done once every few steps (gradtrace
        judges and writes its records in blocks) and at the epoch's end."""
        return (self.end - self.t[SKIP]) * 1e3 / (len(self.t) - SKIP)


def mlp():
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def cnn():
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


MODELS = {
    "mlp": (mlp, (784,), 128, 300),
    "cnn": (cnn, (32, 32, 3), 64, 150),
}

OFF = dict(
    gradients=False, weights=False, updates=False, activations=False, histograms=False
)


def gt_run(config, logdir):
    """`run(model, x, y, bs, cb)`: one epoch of gradtrace.fit."""

    def run(model, x, y, bs, cb):
        gradtrace.fit(
            model,
            x,
            y,
            batch_size=bs,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[cb],
            config=config,
            logdir=logdir,
        )

    return run


def make_variants(tmp):
    def run_keras(model, x, y, bs, cb):
        model.fit(
            x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False, callbacks=[cb]
        )

    def run_keras_tb(model, x, y, bs, cb):
        tb = keras.callbacks.TensorBoard(
            os.path.join(tmp, "ktb"), histogram_freq=1, update_freq="batch"
        )
        model.fit(
            x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False, callbacks=[cb, tb]
        )

    return {
        "keras": run_keras,
        "keras_tb": run_keras_tb,
        "gt_off": gt_run(gradtrace.Config(**OFF, timing=False, console=False), None),
        "gt_timing": gt_run(gradtrace.Config(**OFF, timing=True, console=False), None),
        "gt_default": gt_run(
            gradtrace.Config(console=False), os.path.join(tmp, "gt_default")
        ),
        "gt_all": gt_run(
            gradtrace.Config(histogram_every=1, console=False),
            os.path.join(tmp, "gt_all"),
        ),
    }


def first_call_seconds(build, shape, bs):
    """Seconds of the first epoch of one step: model.fit vs gradtrace (trace +
    compile), gradtrace with a logdir (as a user runs it: with histograms,
    so its first step compiles the heavy variant)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(bs, *shape)).astype("float32")
    y = rng.integers(0, 10, bs)
    out = {}
    for name, kw in (
        ("keras", None),
        ("gt_off", dict(**OFF, timing=False, console=False)),
        ("gt_default", dict(console=False)),
    ):
        m = build()
        t = time.perf_counter()
        if kw is None:
            m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
        else:
            gradtrace.fit(
                m,
                x,
                y,
                batch_size=bs,
                epochs=1,
                verbose=0,
                config=gradtrace.Config(**kw),
                logdir=tempfile.mkdtemp(prefix="gradtrace-first-call-"),
            )
        out[name] = time.perf_counter() - t
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument(
        "--variants", default="keras,keras_tb,gt_off,gt_timing,gt_default,gt_all"
    )
    p.add_argument("--no-first-call", action="store_true")
    p.add_argument(
        "--mirrored",
        action="store_true",
        help="train every variant under MirroredStrategy over 2 logical CPU devices",
    )
    a = p.parse_args(argv)
    strategy = None
    if a.mirrored:
        import tensorflow as tf

        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    names = a.variants.split(",")
    tmp = tempfile.mkdtemp(prefix="gradtrace-bench-")
    variants = make_variants(tmp)
    print(
        f"# python benchmarks/overhead.py --rounds {a.rounds} --models {a.models} --variants {a.variants}"
        + (" --mirrored" if a.mirrored else "")
    )
    print(
        f"# {os.cpu_count()} CPUs, keras {keras.__version__}, tensorflow {__import__('tensorflow').__version__}"
    )
    for model_name in a.models.split(","):
        build, shape, bs, steps = MODELS[model_name]
        rng = np.random.default_rng(0)
        x = rng.normal(size=(bs * steps, *shape)).astype("float32")
        y = rng.integers(0, 10, bs * steps)
        # One model for every variant: where a model's variables happen to
        # sit in memory changes its step time by up to ~10% here (measured:
        # two identically built MLPs), which would show as an overhead.
        # model.fit keeps its train_function and gradtrace one compiled step
        # per config on the model, so alternating variants retraces nothing.
        if strategy is not None:
            with strategy.scope():
                model = build()
        else:
            model = build()
        models = {v: model for v in names}
        for v in names:  # warm-up: trace and compile every variant once
            n = 4
            if v in ("gt_default", "gt_all"):
                # through a heavy step (every 100th optimizer step; the model's
                # step count goes on across variants), compiled here too
                n = max(n, -int(np.asarray(model.optimizer.iterations)) % 100 + 1)
            variants[v](models[v], x[: bs * n], y[: bs * n], bs, _Clock())
        per = {v: [] for v in names}
        for r in range(a.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for v in order:
                cb = _Clock()
                variants[v](models[v], x, y, bs, cb)
                per[v].append(cb.mean_ms())
        print(f"\n## {model_name} (batch {bs}, {steps} steps/round, {a.rounds} rounds)")
        print(
            "| variant | step ms (median of rounds) | ratio to model.fit "
            "(median of per-round ratios) | per-round mean step ms |"
        )
        print("|---|---|---|---|")
        for v in names:
            med = statistics.median(per[v])
            ratio = "-"
            if "keras" in per:
                # Paired: each round's ratio to model.fit's epoch run next to
                # it, so slow drifts of the machine cancel.
                ratios = [t / k for t, k in zip(per[v], per["keras"])]
                ratio = f"{statistics.median(ratios):.3f}x"
            rounds = " ".join(f"{t:.2f}" for t in per[v])
            print(f"| {v} | {med:.3f} | {ratio} | {rounds} |")
        if "gt_timing" in per and "gt_off" in per:
            print(
                f"\ntiming on / off: {statistics.median(per['gt_timing']) / statistics.median(per['gt_off']):.3f}x"
            )
        if not a.no_first_call and strategy is None:
            fc = first_call_seconds(build, shape, bs)
            print(
                "first call (trace + compile + 1 step), s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in fc.items())
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

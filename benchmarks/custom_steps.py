"""Overhead on custom steps: a DCGAN-style model (two conv nets, two optimizers).

    python benchmarks/custom_steps.py [--rounds 7] [--steps 60] [--batch 64]

Two pairs, alternated in one process (A B C D, reversed every other round),
one model trained by every variant (no retrace between variants):

  keras        model.fit on the GAN (its own train_step)
  gt_fit       gradtrace.fit on the same GAN, default Config, logdir set
  bare         the same train_step as a bare `tf.function` loop
  tracer       the same train_step under `gradtrace.Tracer.step`, default
               Config, logdir set, batches through `tracer.iterate`

A round's figure for a variant is its mean step time from step 3 to the end
of the epoch (block judging, writing and the epoch end included); the table
gives the median over rounds and the median of per-round paired ratios
(gt_fit / keras, tracer / bare).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import gradtrace  # noqa: E402
from tests.custom_models import GAN  # noqa: E402

SKIP = 3
LATENT = 32


def dcgan():
    keras.utils.set_random_seed(0)
    disc = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 4, strides=2, padding="same", name="d_conv1"),
            layers.LeakyReLU(0.2),
            layers.Conv2D(64, 4, strides=2, padding="same", name="d_conv2"),
            layers.LeakyReLU(0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1, name="d_out"),
        ],
        name="discriminator",
    )
    gen = keras.Sequential(
        [
            keras.Input((LATENT,)),
            layers.Dense(7 * 7 * 64, name="g_project"),
            layers.LeakyReLU(0.2),
            layers.Reshape((7, 7, 64)),
            layers.Conv2DTranspose(64, 4, strides=2, padding="same", name="g_up1"),
            layers.LeakyReLU(0.2),
            layers.Conv2DTranspose(32, 4, strides=2, padding="same", name="g_up2"),
            layers.LeakyReLU(0.2),
            layers.Conv2D(1, 5, padding="same", activation="sigmoid", name="g_out"),
        ],
        name="generator",
    )
    m = GAN(disc, gen, latent_dim=LATENT)
    m.compile(
        d_optimizer=keras.optimizers.Adam(2e-4),
        g_optimizer=keras.optimizers.Adam(2e-4),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return m


class _Clock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.t, self.end = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self.t.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()

    def mean_ms(self):
        return (self.end - self.t[SKIP]) * 1e3 / (len(self.t) - SKIP)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args(argv)
    bs = a.batch
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(bs * a.steps, 28, 28, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(bs).prefetch(2)
    tmp = tempfile.mkdtemp(prefix="gradtrace-bench-gan-")
    model = dcgan()

    def run_keras(n=None):
        cb = _Clock()
        model.fit(
            x[: bs * n] if n else x,
            batch_size=bs,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[cb],
        )
        return cb

    def run_gt_fit(n=None):
        cb = _Clock()
        gradtrace.fit(
            model,
            x[: bs * n] if n else x,
            batch_size=bs,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[cb],
            logdir=os.path.join(tmp, "fit"),
            config=gradtrace.Config(console=False),
        )
        return cb

    bare_step = tf.function(model.train_step, reduce_retracing=True)
    tracer = gradtrace.Tracer(
        logdir=os.path.join(tmp, "tracer"), config=gradtrace.Config(console=False)
    )
    traced_step = tracer.step(model.train_step)
    epoch = [0]

    def run_bare(n=None):
        cb = _Clock()
        for b in ds.take(n) if n else ds:
            cb.on_train_batch_begin(0)
            bare_step(b)
        cb.on_train_end()
        return cb

    def run_tracer(n=None):
        cb = _Clock()
        for b in tracer.iterate(ds.take(n) if n else ds):
            cb.on_train_batch_begin(0)
            logs = traced_step(b)
        tracer.end_epoch(epoch[0], logs)
        epoch[0] += 1
        cb.on_train_end()
        return cb

    variants = {
        "keras": run_keras,
        "gt_fit": run_gt_fit,
        "bare": run_bare,
        "tracer": run_tracer,
    }
    for run in variants.values():  # warm-up: trace every variant (heavy step too)
        run(4)
    names = list(variants)
    per = {v: [] for v in names}
    for r in range(a.rounds):
        for v in names if r % 2 == 0 else names[::-1]:
            per[v].append(variants[v]().mean_ms())
    tracer.close()
    print(
        f"# python benchmarks/custom_steps.py --rounds {a.rounds} --steps {a.steps} --batch {bs}"
    )
    print(
        f"# {os.cpu_count()} CPUs, keras {keras.__version__}, tensorflow {tf.__version__}"
    )
    print(
        "| variant | step ms (median of rounds) | ratio (median of paired per-round ratios) | per-round ms |"
    )
    print("|---|---|---|---|")
    base = {"keras": "keras", "gt_fit": "keras", "bare": "bare", "tracer": "bare"}
    for v in names:
        ratios = [t / b for t, b in zip(per[v], per[base[v]])]
        print(
            f"| {v} | {statistics.median(per[v]):.2f} | "
            f"{statistics.median(ratios):.3f}x vs {base[v]} | "
            + " ".join(f"{t:.1f}" for t in per[v])
            + " |"
        )


if __name__ == "__main__":
    main()

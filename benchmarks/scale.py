"""Big models: first call, steady overhead, tags, log volume and memory.

    python benchmarks/scale.py                          # both models (~20 min, 2 CPUs)
    python benchmarks/scale.py --models resnet50 --rounds 3 --steps 100

Models (synthetic data, nothing downloaded):
  resnet50     keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3),
               classes=10), batch 16
  transformer  an encoder of 6 blocks (MultiHeadAttention 4 heads + FFN 512 +
               LayerNormalization), d_model 128, sequence 64, batch 32

Per model:
  first call   seconds of a fresh model's first one-step epoch (trace, compile,
               one step): model.fit, gradtrace.fit (default Config, logdir set)
               and gradtrace.fit with Config(histograms=False)
  steady       one model trains with model.fit and with gradtrace.fit (default
               Config, logdir set) in turn (A B, B A, ...), `--steps` steps per
               epoch; a variant's figure is its mean step time from the 4th
               step to the end (heavy histogram steps included); the ratio is
               the median of the per-round ratios
  log          tags in LOGDIR/train, and bytes the logdir grew per step over
               the steady rounds
  memory       the process's resident memory before and after the steady rounds
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradtrace  # noqa: E402
from benchmarks.overhead import _Clock  # noqa: E402


def resnet50():
    keras.utils.set_random_seed(0)
    m = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def transformer(blocks=6, d=128, heads=4, ff=512, seq=64, vocab=8000):
    keras.utils.set_random_seed(0)
    inp = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(vocab, d)(inp)
    for _ in range(blocks):
        a = keras.layers.MultiHeadAttention(heads, d // heads)(x, x)
        x = keras.layers.LayerNormalization()(x + a)
        f = keras.layers.Dense(ff, activation="relu")(x)
        f = keras.layers.Dense(d)(f)
        x = keras.layers.LayerNormalization()(x + f)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(2, activation="softmax")(x)
    m = keras.Model(inp, out)
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _data(name, n):
    rng = np.random.default_rng(0)
    if name == "resnet50":
        return rng.normal(size=(n, 64, 64, 3)).astype("float32"), rng.integers(0, 10, n)
    return rng.integers(0, 8000, size=(n, 64)), rng.integers(0, 2, n)


MODELS = {"resnet50": (resnet50, 16), "transformer": (transformer, 32)}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _dir_bytes(path) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
    )


def first_calls(name, tmp) -> dict:
    build, bs = MODELS[name]
    x, y = _data(name, bs)
    out = {}
    for variant, cfg in (
        ("model.fit", None),
        ("gradtrace.fit", gradtrace.Config(console=False)),
        (
            "gradtrace.fit histograms=False",
            gradtrace.Config(console=False, histograms=False),
        ),
    ):
        keras.backend.clear_session()
        m = build()
        t = time.perf_counter()
        if cfg is None:
            m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
        else:
            gradtrace.fit(
                m,
                x,
                y,
                batch_size=bs,
                epochs=1,
                verbose=0,
                config=cfg,
                logdir=tempfile.mkdtemp(dir=tmp),
            )
        out[variant] = time.perf_counter() - t
    return out


def steady(name, rounds, steps, tmp) -> dict:
    build, bs = MODELS[name]
    x, y = _data(name, bs * steps)
    keras.backend.clear_session()
    model = build()
    logdir = os.path.join(tmp, f"{name}-steady")
    cfg = gradtrace.Config(console=False)

    def keras_fit(xs, ys, cb):
        model.fit(
            xs, ys, batch_size=bs, epochs=1, verbose=0, shuffle=False, callbacks=[cb]
        )

    def gt_fit(xs, ys, cb):
        gradtrace.fit(
            model,
            xs,
            ys,
            batch_size=bs,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[cb],
            config=cfg,
            logdir=logdir,
        )

    variants = {"model.fit": keras_fit, "gradtrace.fit": gt_fit}
    for run in variants.values():  # warm-up: compile (both gradtrace variants)
        run(x[: bs * 4], y[: bs * 4], _Clock())
    rss0, bytes0 = _rss_mb(), _dir_bytes(logdir)
    per = {v: [] for v in variants}
    gt_steps = 0
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for v in order:
            cb = _Clock()
            variants[v](x, y, cb)
            per[v].append(cb.mean_ms())
            if v == "gradtrace.fit":
                gt_steps += steps
    grew = _dir_bytes(logdir) - bytes0
    from gradtrace import report

    scalars, _ = report._read_scalars(os.path.join(logdir, "train"), [])
    ratios = [g / k for g, k in zip(per["gradtrace.fit"], per["model.fit"])]
    return {
        "ms": {v: statistics.median(t) for v, t in per.items()},
        "rounds": per,
        "ratio": statistics.median(ratios),
        "tags": len(scalars),
        "bytes_per_step": grew / max(gt_steps, 1),
        "rss_mb": (rss0, _rss_mb()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,transformer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--no-first-call", action="store_true")
    a = ap.parse_args(argv)
    print("$ " + shlex.join(["python", "benchmarks/scale.py", *(argv or [])]))
    import tensorflow as tf

    print(
        f"# {os.cpu_count()} CPUs, keras {keras.__version__}, tensorflow {tf.__version__}"
    )
    tmp = tempfile.mkdtemp(prefix="gradtrace-scale-")
    for name in a.models.split(","):
        print(f"\n## {name} (batch {MODELS[name][1]})", flush=True)
        if not a.no_first_call:
            fc = first_calls(name, tmp)
            base = fc["model.fit"]
            for v, s in fc.items():
                print(f"first call  {v:<32} {s:7.1f} s  {s / base:5.2f}x", flush=True)
        st = steady(name, a.rounds, a.steps, tmp)
        rounds = "; ".join(
            f"{v}: " + " ".join(f"{t:.0f}" for t in ts)
            for v, ts in st["rounds"].items()
        )
        print(
            f"steady      model.fit {st['ms']['model.fit']:.1f} ms/step, gradtrace.fit "
            f"{st['ms']['gradtrace.fit']:.1f} ms/step: {st['ratio']:.3f}x "
            f"(median of {a.rounds} paired rounds of {a.steps} steps; rounds ms {rounds})"
        )
        print(
            f"log         {st['tags']} scalar tags; {st['bytes_per_step'] / 1024:.1f} kB per step"
        )
        r0, r1 = st["rss_mb"]
        print(
            f"memory      RSS {r0:.0f} MB -> {r1:.0f} MB over the steady rounds",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

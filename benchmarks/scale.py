"""Big models: first call, steady overhead, tags, log volume and memory.

    python benchmarks/scale.py                          # both models (~20 min, 2 CPUs)
    python benchmarks/scale.py --models resnet50 --rounds 3 --steps 100

Models (synthetic data, nothing downloaded):
  resnet50     keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3),
               classes=10), batch 16
  transformer  an encoder of 6 blocks (MultiHeadAttention 4 heads + FFN 512 +
               LayerNormalization), d_model 128, sequence 64, batch 32

Per model:
  first call   seconds from a fresh model's fit() call to the end of step 1 and
               of step 2 (gradtrace compiles its heavy variant for step 1, its
               light one for step 2): model.fit, gradtrace.fit (default Config,
               logdir set) and gradtrace.fit with Config(histograms=False)
  steady       one model trains with model.fit, gradtrace.fit (default Config,
               logdir set) and the control in turn (the order rotates each
               round), `--steps` steps per epoch; a variant's figure is its
               mean step time from the 4th step to the end (heavy histogram
               steps included); the ratio is the median (and quartiles) of
               the per-round ratios to model.fit. The control is
               gradtrace.fit with every probe off: the same graph as
               model.fit, so its ratio shows what noise alone reads as
               overhead on this machine, and gradtrace.fit / control is
               the probes' own cost
  log          tags in LOGDIR/train, and bytes the logdir grew per step over
               the steady rounds
  memory       the process's resident memory before and after the steady rounds
  tensorboard  a `--tb-steps`-step run as gradtrace writes it for this model
               (its real tags, gradtrace's sink and log plan, synthetic values):
               bytes per step, and the seconds until a real `tensorboard`
               serves its last step
Then: resident memory of a `--memory-steps`-step MLP run, every 1,000 steps.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
import urllib.parse

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradtrace  # noqa: E402
from benchmarks.overhead import _Clock, gt_run  # noqa: E402


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


class _BatchEnds(keras.callbacks.Callback):
    def __init__(self, t0):
        super().__init__()
        self.t0, self.ends = t0, []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter() - self.t0)


def first_calls(name, tmp) -> dict:
    """{variant: (s to the end of step 1, s to the end of step 2)} of a
    fresh model's first two-step epoch: gradtrace compiles its heavy variant
    for step 1 (histograms at the first step) and its light one for step 2."""
    build, bs = MODELS[name]
    x, y = _data(name, 2 * bs)
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
        cb = _BatchEnds(time.perf_counter())
        if cfg is None:
            m.fit(x, y, batch_size=bs, epochs=1, verbose=0, callbacks=[cb])
        else:
            gradtrace.fit(
                m,
                x,
                y,
                batch_size=bs,
                epochs=1,
                verbose=0,
                callbacks=[cb],
                config=cfg,
                logdir=tempfile.mkdtemp(dir=tmp),
            )
        out[variant] = tuple(cb.ends[:2])
    return out


# The control: gradtrace.fit with every probe off compiles the very graph
# model.fit runs (checked: same ops), so its ratio to model.fit is what this
# machine's noise alone makes of "overhead".
CONTROL = gradtrace.Config(
    console=False,
    gradients=False,
    weights=False,
    updates=False,
    activations=False,
    histograms=False,
)


def _quartiles(v):
    q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
    return q[0], statistics.median(v), q[2]


def steady(name, rounds, steps, tmp) -> dict:
    build, bs = MODELS[name]
    x, y = _data(name, bs * steps)
    keras.backend.clear_session()
    model = build()
    logdir = os.path.join(tmp, f"{name}-steady")

    def keras_fit(xs, ys, cb):
        model.fit(
            xs, ys, batch_size=bs, epochs=1, verbose=0, shuffle=False, callbacks=[cb]
        )

    def gt(cfg, where):
        run = gt_run(cfg, where)
        return lambda xs, ys, cb: run(model, xs, ys, bs, cb)

    variants = {
        "model.fit": keras_fit,
        "gradtrace.fit": gt(gradtrace.Config(console=False), logdir),
        "control": gt(CONTROL, os.path.join(tmp, f"{name}-control")),
    }
    for run in variants.values():  # warm-up: compile (both gradtrace variants)
        run(x[: bs * 4], y[: bs * 4], _Clock())
    rss0, bytes0 = _rss_mb(), _dir_bytes(logdir)
    names = list(variants)
    per = {v: [] for v in variants}
    gt_steps = 0
    for r in range(rounds):
        k = r % len(names)  # each variant first, middle and last in turn
        order = names[k:] + names[:k]
        if r // len(names) % 2:
            order.reverse()
        for v in order:
            cb = _Clock()
            variants[v](x, y, cb)
            per[v].append(cb.mean_ms())
            if v == "gradtrace.fit":
                gt_steps += steps
    grew = _dir_bytes(logdir) - bytes0
    from gradtrace import report

    scalars, _ = report._read_scalars(os.path.join(logdir, "train"), [])

    def ratios(v, base="model.fit"):
        return [a / b for a, b in zip(per[v], per[base])]

    return {
        "ms": {v: statistics.median(t) for v, t in per.items()},
        "rounds": per,
        "ratio": _quartiles(ratios("gradtrace.fit")),
        "control": _quartiles(ratios("control")),
        "probes": _quartiles(ratios("gradtrace.fit", "control")),
        "tags": len(scalars),
        "bytes_per_step": grew / max(gt_steps, 1),
        "rss_mb": (rss0, _rss_mb()),
        "model": model,
    }


def tensorboard_load(model, tmp, steps) -> dict:
    """Writes what gradtrace writes for `model` over `steps` steps under the
    default Config — its real layer and histogram tags, gradtrace's own sink
    and log plan, values synthetic — and times a real `tensorboard` (free
    127.0.0.1 port) until it serves the last step of `batch_loss` and of a
    per-layer tag."""
    from pathlib import Path

    from gradtrace import budget, runinfo, tags
    from gradtrace.probes.recorder import HIST_BINS
    from gradtrace.records import LAYER_FIELDS, StatsBlock, StepTime
    from gradtrace.sinks.tensorboard import TensorBoardSink
    from tests.helpers import get_json, tensorboard_server

    step_fn = next(iter(model.__dict__["_gradtrace_steps"].values()))
    layers, hist_tags = step_fn.layer_names, step_fn.hist_tags
    root = tempfile.mkdtemp(prefix="tensorboard-load-", dir=tmp)
    folder = os.path.join(root, "run")
    os.makedirs(folder)
    cfg = gradtrace.Config()
    runinfo.write(folder, cfg, step_fn.layer_infos)
    sink = TensorBoardSink(folder)
    rng = np.random.default_rng(0)
    hists = np.concatenate(
        [
            np.tile([[-1.0, 1.0]], (len(hist_tags), 1)),
            rng.integers(0, 100, (len(hist_tags), HIST_BINS)),
        ],
        axis=1,
    )
    heat = rng.uniform(-6, 0, (len(layers), 256))

    def heavy(step):
        before = sink.bytes_written
        sink.histograms(step, hist_tags, hists)
        sink.heatmap(tags.GRADIENT_HEATMAP, step, heat)
        sink.heatmap(tags.UPDATE_HEATMAP, step, heat)
        return sink.bytes_written - before

    def block(k):
        values = {
            f: rng.uniform(0.01, 1.0, size=(len(k), len(layers))) for f in LAYER_FIELDS
        }
        values["n_params"] = np.full(len(layers), 1000.0)
        return StatsBlock(k, 0 * k, rng.uniform(size=len(k)), layers, values)

    t = time.perf_counter()
    wide, per_layer = sink.block_bytes(block(np.arange(1)))
    log_plan = budget.plan(
        cfg.log_budget_kb * 1000,
        wide_bytes=wide,
        layer_bytes=per_layer,
        heavy_bytes=heavy(0),
        write_every=cfg.write_every,
        histogram_every=cfg.histogram_every,
    )
    for start in range(0, steps, 500):
        k = np.arange(start, min(steps, start + 500))
        times = [StepTime(int(s), 0, 30.0, 1.0, 28.0, 1.0, False) for s in k]
        sink.stats_block(
            block(k),
            1e9 + k,
            np.arange(len(k)),
            times,
            1e9 + k,
            layer_every=log_plan.layer_every,
        )
        for s in k[(k % log_plan.hist_every == 0) & (k > 0)]:
            heavy(int(s))
    sink.close()
    written = time.perf_counter() - t
    size = _dir_bytes(folder)
    last = steps - 1
    layer_tag = tags.layer_tag("gradients", layers[0], "norm")
    layer_last = last - last % log_plan.layer_every
    t0 = time.perf_counter()
    with tensorboard_server(Path(root), wait_for_runs=False) as port:
        answers = time.perf_counter() - t0

        def last_step(tag):
            q = urllib.parse.urlencode({"run": "run/train", "tag": tag})
            try:
                points = get_json(port, f"/data/plugin/scalars/scalars?{q}")
            except OSError:  # not loaded yet (400/404)
                return -1
            return points[-1][1] if points else -1

        while last_step(tags.BATCH_LOSS) < last or last_step(layer_tag) < layer_last:
            time.sleep(0.5)
        served = time.perf_counter() - t0
    return {
        "plan": log_plan,
        "bytes_per_step": size / steps,
        "written_s": written,
        "answers_s": answers,
        "served_s": served,
    }


def long_run_memory(steps, tmp) -> dict:
    """RSS of a `steps`-step gradtrace.fit (MLP 784-256-256-10, batch 32,
    logdir set, default Config) at every 1,000-step epoch's end."""
    import tensorflow as tf

    from benchmarks.overhead import mlp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3200, 784)).astype("float32")
    y = rng.integers(0, 10, 3200)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    rss = []

    class Sample(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rss.append(_rss_mb())

    h = gradtrace.fit(
        mlp(),
        data,
        steps_per_epoch=1000,
        epochs=steps // 1000,
        verbose=0,
        callbacks=[Sample()],
        config=gradtrace.Config(console=False),
        logdir=os.path.join(tmp, "long-run"),
    )
    import pickle

    record = len(pickle.dumps(h.step_times)) / len(h.step_times)
    return {"rss": rss, "record_bytes": record, "steps": len(h.step_times)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,transformer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--no-first-call", action="store_true")
    ap.add_argument(
        "--tb-steps",
        type=int,
        default=10_000,
        help="steps of the run a real tensorboard loads (0: skip)",
    )
    ap.add_argument(
        "--memory-steps",
        type=int,
        default=20_000,
        help="steps of the long MLP run whose memory is sampled (0: skip)",
    )
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
            b1, b2 = fc["model.fit"]
            for v, (s1, s2) in fc.items():
                print(
                    f"first call  {v:<32} step 1 at {s1:6.1f} s ({s1 / b1:4.2f}x), "
                    f"step 2 at {s2:6.1f} s ({s2 / b2:4.2f}x)",
                    flush=True,
                )
        st = steady(name, a.rounds, a.steps, tmp)
        rounds = "; ".join(
            f"{v}: " + " ".join(f"{t:.0f}" for t in ts)
            for v, ts in st["rounds"].items()
        )
        lo, mid, hi = st["ratio"]
        clo, cmid, chi = st["control"]
        plo, pmid, phi = st["probes"]
        print(
            f"steady      model.fit {st['ms']['model.fit']:.1f} ms/step, gradtrace.fit "
            f"{st['ms']['gradtrace.fit']:.1f} ms/step: {mid:.3f}x (quartiles "
            f"{lo:.3f}-{hi:.3f}); control (probes off, model.fit's graph) "
            f"{cmid:.3f}x ({clo:.3f}-{chi:.3f}); gradtrace.fit / control "
            f"{pmid:.3f}x ({plo:.3f}-{phi:.3f}); {a.rounds} rounds of {a.steps} "
            f"steps; rounds ms {rounds}"
        )
        print(
            f"log         {st['tags']} scalar tags; {st['bytes_per_step'] / 1024:.1f} kB per step"
        )
        r0, r1 = st["rss_mb"]
        print(
            f"memory      RSS {r0:.0f} MB -> {r1:.0f} MB over the steady rounds",
            flush=True,
        )
        if a.tb_steps:
            tb = tensorboard_load(st["model"], tmp, a.tb_steps)
            p = tb["plan"]
            print(
                f"tensorboard {a.tb_steps:,}-step run as gradtrace writes it (per-layer "
                f"scalars every {p.layer_every} steps, histograms every "
                f"{p.hist_every}): {tb['bytes_per_step'] / 1000:.2f} kB per step; "
                f"server answers after {tb['answers_s']:.1f} s, serves the last step "
                f"of batch_loss and of a per-layer tag after {tb['served_s']:.1f} s",
                flush=True,
            )
        del st
    if a.memory_steps:
        m = long_run_memory(a.memory_steps, tmp)
        rss = m["rss"]
        print(
            f"\n## memory over a {m['steps']:,}-step run (MLP 784-256-256-10, logdir)\n"
            f"RSS after each 1,000 steps (MB): {' '.join(f'{r:.0f}' for r in rss)}\n"
            f"from 1,000 to {m['steps']:,} steps: {rss[-1] - rss[0]:+.1f} MB; "
            f"history.step_times keeps {m['record_bytes']:.0f} bytes per step (pickled)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""`gradtrace demo`: healthy and broken trainings, each problem caught live.

Every scenario trains a small Keras model on data generated here (nothing is
downloaded) with `gradtrace.fit`, and prints what gradtrace found. The whole
demo takes well under a minute on two CPU cores.

```
gradtrace demo                         # every scenario, logs in a temp folder
gradtrace demo --scenario dead_relu --logdir runs/demo
tensorboard --logdir runs/demo
```

`SCENARIOS` maps each name to a `Scenario`; `build()` returns a compiled
model and the keyword arguments of its `gradtrace.fit` call, so the test
suite (tests/scenarios/) and benchmarks/detection.py run the very same
programs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

__all__ = ["SCENARIOS", "Scenario", "main", "run_scenario"]

N_FEATURES = 20


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One demo training program.

    Attributes:
        name: the `--scenario` name.
        description: one line: the model and what is wrong with it.
        expected: finding kinds this scenario must produce (empty: healthy).
        build: `() -> (model, fit_kwargs)`: a compiled model and the keyword
            arguments of its `gradtrace.fit` call (x, y, batch_size, epochs).
    """

    name: str
    description: str
    expected: tuple[str, ...]
    build: Callable[[], tuple[object, dict]]


def make_data(n: int = 2048, seed: int = 0):
    """A learnable binary task: (x float32 [n, 20], y float32 [n, 1])."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    w = rng.normal(size=(N_FEATURES,))
    logits = x @ w + 0.5 * np.sin(3.0 * x[:, 0])
    y = (logits > 0).astype("float32")[:, None]
    return x, y


def mlp(
    depth: int = 3,
    width: int = 64,
    activation: str = "relu",
    bias_initializer="zeros",
    name: str = "mlp",
):
    """A Sequential MLP with `depth` hidden layers and a sigmoid output."""
    import keras

    if isinstance(bias_initializer, (int, float)):
        bias_initializer = keras.initializers.Constant(float(bias_initializer))
    layers = [keras.Input((N_FEATURES,))]
    layers += [
        keras.layers.Dense(
            width,
            activation=activation,
            bias_initializer=bias_initializer,
            name=f"hidden_{i}",
        )
        for i in range(depth)
    ]
    layers.append(keras.layers.Dense(1, activation="sigmoid", name="output"))
    return keras.Sequential(layers, name=name)


def _mlp_program(
    seed: int,
    optimizer: tuple[str, float],
    *,
    data: Callable = make_data,
    fit: dict | None = None,
    **mlp_kwargs,
):
    """A seeded `mlp(**mlp_kwargs)` compiled with `optimizer` = (class, lr)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, y = data()
    model = mlp(**mlp_kwargs)
    name, lr = optimizer
    model.compile(
        getattr(keras.optimizers, name)(lr), "binary_crossentropy", metrics=["accuracy"]
    )
    return model, {"x": x, "y": y, "batch_size": 64, "epochs": 1, **(fit or {})}


NAN_ROW = 1000  # in batch 15 (batch_size 64, no shuffling)


def nan_data():
    """`make_data()` with one NaN feature in row `NAN_ROW`."""
    x, y = make_data()
    x = x.copy()
    x[NAN_ROW, 3] = np.nan
    return x, y


SLOW_EVERY = 10  # every 10th batch waits SLOW_MS in the input pipeline
SLOW_MS = 150.0


def slow_dataset(x, y, batch_size: int = 64):
    """A tf.data pipeline whose `map` sleeps on every `SLOW_EVERY`-th batch."""
    import tensorflow as tf

    def wait(i):
        if int(i) % SLOW_EVERY == SLOW_EVERY - 1:
            time.sleep(SLOW_MS / 1000.0)
        return i

    def slow_map(i, batch):
        i = tf.py_function(wait, [i], tf.int64)
        with tf.control_dependencies([i]):
            return tf.nest.map_structure(tf.identity, batch)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.enumerate().map(slow_map)


def _slow_input():
    model, kw = _mlp_program(6, ("Adam", 1e-3))
    return model, dict(x=slow_dataset(kw["x"], kw["y"]), epochs=2, shuffle=False)


_healthy = functools.partial(_mlp_program, 1, ("Adam", 1e-3), fit=dict(epochs=2))
_vanishing = functools.partial(
    _mlp_program,
    2,
    ("SGD", 0.01),
    depth=8,
    width=32,
    activation="sigmoid",
    name="deep_sigmoid",
)
# A learning rate ~1000x too high for plain SGD on this model.
_exploding = functools.partial(_mlp_program, 3, ("SGD", 20.0))
# A large negative bias puts every pre-activation below 0 from the start.
_dead_relu = functools.partial(_mlp_program, 4, ("Adam", 1e-3), bias_initializer=-10.0)
_nan = functools.partial(
    _mlp_program, 5, ("Adam", 1e-3), data=nan_data, fit=dict(shuffle=False)
)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "healthy",
            "3x64 ReLU MLP, Adam 1e-3: nothing to find",
            (),
            _healthy,
        ),
        Scenario(
            "vanishing",
            "8-layer sigmoid MLP, SGD 0.01: gradients vanish before the first layers",
            ("vanishing_gradient",),
            _vanishing,
        ),
        Scenario(
            "exploding",
            "3x64 ReLU MLP, SGD with learning rate 20: gradients explode, then NaN",
            ("exploding_gradient",),
            _exploding,
        ),
        Scenario(
            "dead_relu",
            "3x64 ReLU MLP with bias initialised to -10: every unit outputs 0",
            ("dead_relu",),
            _dead_relu,
        ),
        Scenario(
            "nan",
            f"3x64 ReLU MLP, one NaN in the training data (row {NAN_ROW})",
            ("non_finite",),
            _nan,
        ),
        Scenario(
            "slow_input",
            f"3x64 ReLU MLP fed by tf.data whose map sleeps {SLOW_MS:.0f} ms "
            f"every {SLOW_EVERY} batches",
            ("slow_step",),
            _slow_input,
        ),
    )
}


def run_scenario(
    name: str, logdir: str | None = None, verbose="auto", config=None
) -> tuple[object, float]:
    """Builds and trains one scenario; returns (TraceHistory, seconds)."""
    import gradtrace

    if name not in SCENARIOS:
        raise ValueError(
            f"Unknown demo scenario {name!r}. Expected one of {sorted(SCENARIOS)}."
        )
    model, kwargs = SCENARIOS[name].build()
    t0 = time.perf_counter()
    history = gradtrace.fit(
        model, **kwargs, verbose=verbose, logdir=logdir, config=config
    )
    return history, time.perf_counter() - t0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gradtrace demo",
        description=(
            "Train small healthy and broken Keras models on generated data and "
            "show what gradtrace finds."
        ),
    )
    p.add_argument(
        "--logdir",
        help="folder for the TensorBoard logs, one subfolder per scenario "
        "(default: a new temporary folder)",
    )
    p.add_argument(
        "--scenario",
        choices=[*SCENARIOS, "all"],
        default="all",
        help="which scenario to run (default: all)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs `gradtrace demo [--logdir DIR] [--scenario NAME]`.

    Returns:
        0 when every scenario ran (whatever it found); 2 on bad usage.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage error
        return int(e.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Each scenario builds its own compiled step; TensorFlow's "N out of the
    # last M calls triggered retracing" notice about that is noise here.
    tf.get_logger().setLevel("ERROR")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    logdir = args.logdir or tempfile.mkdtemp(prefix="gradtrace-demo-")
    verbose = 1 if sys.stdout.isatty() else 2
    print(f"gradtrace demo: {len(names)} scenario(s), logs in {logdir}", flush=True)
    summary = []
    t_all = time.perf_counter()
    for k, name in enumerate(names, 1):
        sc = SCENARIOS[name]
        print(f"\n[{k}/{len(names)}] {name}: {sc.description}", flush=True)
        history, secs = run_scenario(
            name, logdir=os.path.join(logdir, name), verbose=verbose
        )
        kinds = [f.kind for f in history.findings]
        caught = [e for e in sc.expected if e in kinds]
        if not history.findings:
            print(f"  found nothing ({secs:.1f} s)", flush=True)
        else:
            print(f"  found {len(history.findings)} ({secs:.1f} s):", flush=True)
        for f in history.findings:
            where = f" in '{f.layer}'" if f.layer else ""
            print(
                f"  - {f.severity} {f.kind} at step {f.step}{where} "
                f"(seen {f.count}x): {f.message}",
                flush=True,
            )
        if sc.expected:
            verdict = "caught" if len(caught) == len(sc.expected) else "MISSED"
            expected = ", ".join(sc.expected)
        else:
            verdict = "clean" if not kinds else "false alarm"
            expected = "nothing"
        summary.append(
            (name, expected, ", ".join(dict.fromkeys(kinds)) or "-", verdict)
        )
    print(f"\nSummary ({time.perf_counter() - t_all:.0f} s):")
    w = max(len(s[0]) for s in summary)
    for name, expected, found, verdict in summary:
        print(f"  {name:<{w}}  expected: {expected:<20} found: {found}  [{verdict}]")
    print(
        f"\nSee it all in TensorBoard:\n  tensorboard --logdir {logdir}\n"
        "  (the gradtrace tab shows each run's findings, its layer x step health "
        "map and its step timing)"
    )
    worst = next((n for n, _, found, _ in summary if found != "-"), names[0])
    print(f"or in the terminal:\n  gradtrace report {os.path.join(logdir, worst)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

"""The scenario suite: small healthy and faulty Keras training programs.

Each `Case` builds a compiled model and the keyword arguments of its
`gradtrace.fit` call, on generated data (seeded, nothing downloaded), and
states what gradtrace must find:

- `expected`: kinds that must be found (empty: a healthy model, where no
  diagnosis kind may be found);
- `allowed`: consequences that may also show (an explosion ends in NaN);
- `layer` / `step`: where the first expected kind must point, when sensible;
- `stops`: the run must stop at the first `non_finite` step;
- `oracle`: an independent check, with plain Keras/TensorFlow and numpy and
  without gradtrace, that the fault is really there (raises AssertionError
  otherwise; returns a short description of what it measured).

Timing kinds (slow_step, input_bound, retracing) depend on the machine's
load; they count only where a case expects one. The demo's scenarios
(`gradtrace.demo.SCENARIOS`) are part of the suite. benchmarks/detection.py
runs every case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from gradtrace import demo

TIMING_KINDS = frozenset({"slow_step", "input_bound", "retracing"})
ANY = "<any>"  # `layer` sentinel: do not check the layer


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], tuple[object, dict]]
    expected: frozenset = frozenset()
    allowed: frozenset = frozenset()
    layer: str | None = ANY
    step: int | None = None
    max_step: int | None = None
    oracle: Callable[[], str] | None = None
    stops: bool = False  # the run must end at the first non_finite step
    config: dict = dataclasses.field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.expected


def fast(**kw) -> dict:
    """Config for the extra cases: no heavy (histogram) step, one compile."""
    return {"histograms": False, **kw}


# -- shared pieces --------------------------------------------------------------


def _keras():
    import keras

    return keras


def _batch(x, y, n=64):
    return x[:n], y[:n]


def _grads(model, x, y):
    """Per-layer kernel gradients of one batch, plain tf.GradientTape."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        pred = model(x, training=True)
        loss = tf.reduce_mean(_loss_fn(model)(y, pred))
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    return [g.numpy() for g in tape.gradient(loss, kernels)]


def _loss_fn(model):
    loss = model.loss
    return _keras().losses.get(loss) if isinstance(loss, str) else loss


def _rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def _outputs(model, x, names):
    """Outputs of the named layers for input x (a plain Keras sub-model)."""
    keras = _keras()
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    sub = keras.Model(inputs, [model.get_layer(n).output for n in names])
    out = sub(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _loss_curve(model, kw, steps):
    """Per-batch training losses of plain `model.fit` for `steps` batches."""
    keras = _keras()
    losses = []

    class Rec(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))
            if len(losses) >= steps:
                self.model.stop_training = True

    fit_kw = {k: v for k, v in kw.items() if k in ("x", "y", "batch_size", "shuffle")}
    model.fit(**fit_kw, epochs=kw.get("epochs", 1), verbose=0, callbacks=[Rec()])
    return np.array(losses)


# -- healthy --------------------------------------------------------------------


def _images(n=512, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(scale=0.3, size=(n, 12, 12, 1)).astype("float32")
    for i, c in enumerate(y):  # class = where a bright bar is
        x[i, 2 + 3 * c : 4 + 3 * c, 2:10, 0] += 1.0
    return x, y


def healthy_cnn():
    keras = _keras()
    keras.utils.set_random_seed(10)
    x, y = _images()
    m = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(3, activation="softmax", name="output"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def _sequences(n=512, t=10, f=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, f)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")[:, None]
    return x, y


def healthy_rnn():
    keras = _keras()
    keras.utils.set_random_seed(11)
    x, y = _sequences()
    m = keras.Sequential(
        [
            keras.Input((10, 4)),
            keras.layers.LSTM(16, return_sequences=True, name="lstm"),
            keras.layers.GRU(8, name="gru"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def healthy_functional():
    """Two branches (tanh and ReLU), Adam 1e-2: a fast but healthy lr."""
    keras = _keras()
    keras.utils.set_random_seed(12)
    x, y = demo.make_data(1024)
    inp = keras.Input((demo.N_FEATURES,))
    a = keras.layers.Dense(32, activation="tanh", name="branch_tanh")(inp)
    b = keras.layers.Dense(32, activation="relu", name="branch_relu")(inp)
    h = keras.layers.Concatenate(name="concat")([a, b])
    h = keras.layers.Dense(16, activation="relu", name="joint")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="output")(h)
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def healthy_subclassed():
    keras = _keras()
    keras.utils.set_random_seed(13)
    x, y = demo.make_data(1024)

    class Residual(keras.Model):
        def __init__(self):
            super().__init__()
            self.inp = keras.layers.Dense(32, activation="relu", name="proj")
            self.block = keras.layers.Dense(32, activation="relu", name="block")
            self.out = keras.layers.Dense(1, activation="sigmoid", name="output")

        def call(self, x, training=False):
            h = self.inp(x)
            return self.out(h + self.block(h))

    m = Residual()  # left unbuilt: the first traced step builds it, as in model.fit
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def healthy_bn_dropout():
    keras = _keras()
    keras.utils.set_random_seed(14)
    x, y = demo.make_data(1024)
    m = keras.Sequential(
        [
            keras.Input((demo.N_FEATURES,)),
            keras.layers.Dense(64, name="dense_a"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Dense(32, activation="relu", name="dense_b"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def healthy_leaky_negative_bias():
    """LeakyReLU behind a -10 bias: every output negative, none dead."""
    keras = _keras()
    keras.utils.set_random_seed(15)
    x, y = demo.make_data(1024)
    m = demo.mlp(
        activation="leaky_relu",
        bias_initializer=keras.initializers.Constant(-10.0),
        name="leaky",
    )
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


def healthy_sigmoid_output():
    """Easy multi-label task: the sigmoid outputs become confident (saturated)."""
    keras = _keras()
    keras.utils.set_random_seed(16)
    rng = np.random.default_rng(16)
    x = rng.normal(size=(1024, 8)).astype("float32")
    y = (x[:, :4] > 0).astype("float32")
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(4, activation="sigmoid", name="output"),
        ]
    )
    m.compile(keras.optimizers.Adam(3e-2), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=3)


def healthy_small_batch():
    """batch_size=2: ~half of a ReLU layer's outputs are 0 per example."""
    keras = _keras()
    keras.utils.set_random_seed(17)
    x, y = demo.make_data(256)
    m = demo.mlp(width=16, name="small_batch")
    m.compile(keras.optimizers.SGD(0.01), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=2, epochs=1)


def healthy_regression():
    """Noise-free linear target: the loss falls towards 0 (converges)."""
    keras = _keras()
    keras.utils.set_random_seed(18)
    rng = np.random.default_rng(18)
    x = rng.normal(size=(1024, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="output"),
        ]
    )
    m.compile(keras.optimizers.Adam(1e-2), "mse")
    return m, dict(x=x, y=y, batch_size=32, epochs=3)


def healthy_embedding():
    """A 20k-token Embedding: its sparse gradient has a tiny RMS per parameter."""
    keras = _keras()
    keras.utils.set_random_seed(19)
    rng = np.random.default_rng(19)
    tokens = rng.integers(0, 20000, size=(1024, 12))
    y = (tokens[:, 0] % 2).astype("float32")[:, None]
    m = keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(20000, 16, name="embedding"),
            keras.layers.GlobalAveragePooling1D(name="pool"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy")
    return m, dict(x=tokens, y=y, batch_size=16, epochs=1)


def healthy_zero_init():
    """Logistic regression from all-zero weights: large relative first updates."""
    keras = _keras()
    keras.utils.set_random_seed(25)
    x, y = demo.make_data(1024)
    m = keras.Sequential(
        [
            keras.Input((demo.N_FEATURES,)),
            keras.layers.Dense(
                1, activation="sigmoid", kernel_initializer="zeros", name="logistic"
            ),
        ]
    )
    m.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


# -- faulty (beyond the demo's) ---------------------------------------------------


def diverging_regression():
    """Linear regression, SGD lr 1.2 > 2/lambda_max = 1: error grows ~1.4x a step."""
    keras = _keras()
    keras.utils.set_random_seed(20)
    rng = np.random.default_rng(20)
    x = rng.normal(size=(1024, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, name="linear")])
    m.compile(keras.optimizers.SGD(1.2), "mse")
    return m, dict(x=x, y=y, batch_size=32, epochs=1, shuffle=False)


def saturated_tanh():
    """Hidden tanh layers with weights ~N(0, 3): almost every unit at +-1."""
    keras = _keras()
    keras.utils.set_random_seed(21)
    x, y = demo.make_data(1024)
    init = keras.initializers.RandomNormal(stddev=3.0)
    m = keras.Sequential(
        [
            keras.Input((demo.N_FEATURES,)),
            keras.layers.Dense(
                32, activation="tanh", kernel_initializer=init, name="tanh_1"
            ),
            keras.layers.Dense(
                32, activation="tanh", kernel_initializer=init, name="tanh_2"
            ),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile(keras.optimizers.SGD(0.01), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


def frozen_lr():
    """SGD with learning rate 1e-9: the weights practically never change."""
    keras = _keras()
    keras.utils.set_random_seed(22)
    x, y = demo.make_data(1024)
    m = demo.mlp(name="frozen")
    m.compile(keras.optimizers.SGD(1e-9), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


def log_of_zero():
    """A Lambda layer takes log of a ReLU output: log(0) = -inf mid-network."""
    keras = _keras()
    keras.utils.set_random_seed(23)
    x, y = demo.make_data(512)
    m = keras.Sequential(
        [
            keras.Input((demo.N_FEATURES,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Lambda(lambda t: keras.ops.log(t), name="log"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


NAN_LABEL_ROW = 100  # batch 3 at batch_size 32


def nan_labels():
    """A NaN target: the forward pass is finite, the loss is not."""
    keras = _keras()
    keras.utils.set_random_seed(24)
    x, y = demo.make_data(512)
    y = y.copy()
    y[NAN_LABEL_ROW, 0] = np.nan
    m = demo.mlp(name="nan_labels")
    m.compile("adam", "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1, shuffle=False)


def softmax_single_unit():
    """A binary classifier whose output is a softmax over one unit, trained
    with MSE (DeepLocalize SO 34311586, 31880720): the output is always 1.0."""
    keras = _keras()
    keras.utils.set_random_seed(26)
    x, y = demo.make_data(512)
    m = keras.Sequential(
        [
            keras.Input((demo.N_FEATURES,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="softmax", name="output"),
        ]
    )
    m.compile(keras.optimizers.SGD(0.1), "mse")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


def sigmoid_regression():
    """Regression targets 3..103 through a sigmoid output (held-out SO
    program: MSE stuck near 1788 in 20/20 reproductions)."""
    keras = _keras()
    keras.utils.set_random_seed(27)
    rng = np.random.default_rng(27)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (53.0 + 50.0 * np.tanh(x[:, :1])).astype("float32")
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "mse")
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def _pixels(n=512, seed=28):
    """uint8-range 'images' (0..255, flattened 16x16) with a learnable label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.uniform(0, 128, size=(n, 256)) + 127.0 * y[:, None] * (
        rng.uniform(size=(n, 256)) < 0.5
    )
    return np.round(x).astype("float32"), y.astype("float32")[:, None]


def raw_pixels():
    """Pixels fed as 0..255 into Dense layers (SO 55328966: no /255)."""
    keras = _keras()
    keras.utils.set_random_seed(28)
    x, y = _pixels()
    m = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


def healthy_scaled_pixels():
    """The same pixels scaled by 1/255: nothing to find."""
    keras = _keras()
    keras.utils.set_random_seed(28)
    x, y = _pixels()
    m = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Rescaling(1 / 255.0, name="scale"),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )
    m.compile("adam", "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=2)


def tiny_init_deep_relu():
    """Eight ReLU layers initialised with stddev 0.01: the gradient reaching
    the first layer is ~1e-10 of the output layer's while most (not all)
    units of the layers after it are silent."""
    keras = _keras()
    keras.utils.set_random_seed(29)
    x, y = demo.make_data(512)
    init = keras.initializers.RandomNormal(stddev=0.01)
    layers = [keras.Input((demo.N_FEATURES,))]
    for i in range(8):
        layers.append(
            keras.layers.Dense(
                32, activation="relu", kernel_initializer=init, name=f"relu_{i}"
            )
        )
    layers.append(keras.layers.Dense(1, activation="sigmoid", name="output"))
    m = keras.Sequential(layers)
    m.compile(keras.optimizers.SGD(0.01), "binary_crossentropy")
    return m, dict(x=x, y=y, batch_size=32, epochs=1)


# -- oracles (plain Keras / TensorFlow / numpy, no gradtrace) ----------------------


def oracle_softmax_single_unit() -> str:
    model, kw = softmax_single_unit()
    x, y = _batch(kw["x"], kw["y"])
    assert np.all(model.predict(x, verbose=0) == 1.0)
    g = _grads(model, x, y)
    assert all(np.all(k == 0.0) for k in g), [float(np.abs(k).max()) for k in g]
    return "output == 1.0 for every example; every kernel gradient exactly 0"


def oracle_sigmoid_regression() -> str:
    model, kw = sigmoid_regression()
    losses = _loss_curve(model, dict(kw, shuffle=False), steps=30)
    assert np.min(losses) > 1000, losses
    return f"plain model.fit MSE stays >= {np.min(losses):.0f} over 30 steps"


def oracle_raw_pixels() -> str:
    model, kw = raw_pixels()
    x = kw["x"][:64]
    k = model.get_layer("hidden").kernel.numpy()
    pre = x @ k
    assert _rms(pre) > 10, _rms(pre)
    return f"first layer pre-activation RMS at init {_rms(pre):.0f} (~1 intended)"


def oracle_tiny_init() -> str:
    import tensorflow as tf

    model, kw = tiny_init_deep_relu()
    x, y = _batch(kw["x"], kw["y"])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(_loss_fn(model)(y, model(x, training=True)))
    layers = [la for la in model.layers if la.trainable_weights]
    grads = tape.gradient(loss, [la.trainable_weights for la in layers])
    rms = [_rms(np.concatenate([g.numpy().ravel() for g in gs])) for gs in grads]
    ratio = rms[0] / rms[-1]
    alive = [
        float(np.mean(np.any(o > 0, axis=0)))
        for o in _outputs(model, x, [la.name for la in layers[:-1]])
    ]
    assert ratio < 1e-3 and rms[0] < 1e-4, (ratio, rms)
    assert min(alive) > 0, alive  # every layer still has live units
    return (
        f"first/output layer gradient RMS {ratio:.1e} (weights and biases); "
        f"live units per layer {min(alive):.0%}-{max(alive):.0%}"
    )


def oracle_vanishing() -> str:
    model, kw = demo.SCENARIOS["vanishing"].build()
    g = _grads(model, *_batch(kw["x"], kw["y"]))
    ratio = _rms(g[0]) / _rms(g[-1])
    assert ratio < 1e-3 and _rms(g[0]) < 1e-4, (ratio, _rms(g[0]))
    return f"first/last kernel gradient RMS {ratio:.1e}"


def oracle_exploding() -> str:
    model, kw = demo.SCENARIOS["exploding"].build()
    losses = _loss_curve(model, dict(kw, shuffle=False), steps=8)
    worst = np.nanmax(np.where(np.isfinite(losses), losses, np.inf))
    assert worst > 1e3 * losses[0], losses
    return f"plain model.fit loss {losses[0]:.2g} -> {worst:.2g} in {len(losses)} steps"


def oracle_dead_relu() -> str:
    model, kw = demo.SCENARIOS["dead_relu"].build()
    names = [f"hidden_{i}" for i in range(3)]
    outs = _outputs(model, kw["x"][:512], names)
    dead = [float(np.mean(o.max(axis=0) <= 0)) for o in outs]
    assert min(dead) == 1.0, dead
    return f"share of units 0 on 512 examples: {dead}"


def oracle_nan() -> str:
    model, kw = demo.SCENARIOS["nan"].build()
    x, y = kw["x"], kw["y"]
    bad_batch = demo.NAN_ROW // 64
    assert np.isnan(x).sum() == 1 and np.isnan(x[bad_batch * 64 :][:64]).any()
    kernel = model.get_layer("hidden_0").kernel
    fit = dict(batch_size=64, epochs=1, shuffle=False, verbose=0)
    model.fit(x[: bad_batch * 64], y[: bad_batch * 64], **fit)
    assert np.isfinite(np.asarray(kernel)).all()
    h = model.fit(x[bad_batch * 64 :][:64], y[bad_batch * 64 :][:64], **fit)
    assert np.isnan(np.asarray(kernel)).any()
    # relu(NaN) is 0 on CPU: plain Keras shows a finite loss while the first
    # layer's weights are already NaN.
    return (
        f"plain model.fit: 'hidden_0' kernel NaN after batch {bad_batch}, "
        f"loss still {h.history['loss'][-1]:.2f}"
    )


def oracle_slow_input() -> str:
    import time

    x, y = demo.make_data(64 * demo.SLOW_EVERY)
    it = iter(demo.slow_dataset(x, y))
    waits = []
    for _ in range(demo.SLOW_EVERY):
        t0 = time.perf_counter()
        next(it)
        waits.append(1e3 * (time.perf_counter() - t0))
    assert waits[-1] > 0.8 * demo.SLOW_MS > 5 * np.median(waits[:-1]), waits
    return f"batch wait {np.median(waits[:-1]):.1f} ms typical, {waits[-1]:.0f} ms slow"


def oracle_diverging() -> str:
    model, kw = diverging_regression()
    losses = _loss_curve(model, kw, steps=16)
    assert losses[-1] > 100 * losses[:4].min(), losses
    return f"plain model.fit loss {losses[0]:.2g} -> {losses[-1]:.2g} in 16 steps"


def oracle_saturated() -> str:
    model, kw = saturated_tanh()
    outs = _outputs(model, kw["x"][:256], ["tanh_1", "tanh_2"])
    sat = [float(np.mean(np.abs(o) > 0.99)) for o in outs]
    assert min(sat) > 0.5, sat
    return f"share of |tanh| > 0.99: {[round(s, 2) for s in sat]}"


def oracle_frozen() -> str:
    model, kw = frozen_lr()
    before = [w.numpy().copy() for w in model.trainable_weights]
    _loss_curve(model, kw, steps=5)
    after = [w.numpy() for w in model.trainable_weights]
    ratio = max(
        np.linalg.norm(a - b) / np.linalg.norm(b)
        for a, b in zip(after, before)
        if np.linalg.norm(b) > 0
    )
    assert ratio < 1e-6, ratio
    return f"largest relative weight change after 5 steps: {ratio:.1e}"


def oracle_log_of_zero() -> str:
    model, kw = log_of_zero()
    hidden, logged = _outputs(model, kw["x"][:32], ["hidden", "log"])
    assert np.isfinite(hidden).all() and np.isinf(logged).any()
    return f"'hidden' finite, 'log' has {int(np.isinf(logged).sum())} -inf of {logged.size}"


def oracle_nan_labels() -> str:
    model, kw = nan_labels()
    x, y = kw["x"][96:128], kw["y"][96:128]
    pred = np.asarray(model(x))
    assert np.isfinite(pred).all() and np.isnan(y).any()
    loss = float(np.mean(np.asarray(_loss_fn(model)(y, pred))))
    assert np.isnan(loss), loss
    return "forward pass finite, batch 3's loss NaN (one NaN target)"


# -- the suite --------------------------------------------------------------------


def _demo(name):
    return demo.SCENARIOS[name].build


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        # healthy: no diagnosis finding at all
        Case("healthy_mlp", _demo("healthy")),
        Case("healthy_cnn", healthy_cnn, config=fast()),
        Case("healthy_rnn", healthy_rnn, config=fast()),
        Case("healthy_functional", healthy_functional, config=fast()),
        Case("healthy_subclassed", healthy_subclassed, config=fast()),
        Case("healthy_bn_dropout", healthy_bn_dropout, config=fast()),
        Case("healthy_leaky_relu", healthy_leaky_negative_bias, config=fast()),
        Case("healthy_sigmoid_output", healthy_sigmoid_output, config=fast()),
        Case("healthy_batch_of_2", healthy_small_batch, config=fast()),
        Case("healthy_regression", healthy_regression, config=fast()),
        Case("healthy_embedding", healthy_embedding, config=fast()),
        Case("healthy_zero_init", healthy_zero_init, config=fast()),
        Case("healthy_scaled_pixels", healthy_scaled_pixels, config=fast()),
        # faulty
        Case(
            "vanishing",
            _demo("vanishing"),
            expected=frozenset({"vanishing_gradient"}),
            allowed=frozenset({"update_ratio"}),
            layer="hidden_0",
            max_step=20,
            oracle=oracle_vanishing,
        ),
        Case(
            "exploding",
            _demo("exploding"),
            expected=frozenset({"exploding_gradient"}),
            allowed=frozenset(
                {"non_finite", "loss_divergence", "dead_relu", "update_ratio"}
            ),
            layer=None,
            max_step=8,
            oracle=oracle_exploding,
        ),
        Case(
            "dead_relu",
            _demo("dead_relu"),
            expected=frozenset({"dead_relu"}),
            layer="hidden_0",
            max_step=20,
            oracle=oracle_dead_relu,
        ),
        Case(
            "nan_in_data",
            _demo("nan"),
            expected=frozenset({"non_finite"}),
            layer="hidden_0",
            step=demo.NAN_ROW // 64,
            stops=True,
            oracle=oracle_nan,
        ),
        Case(
            "slow_input",
            _demo("slow_input"),
            expected=frozenset({"slow_step"}),
            oracle=oracle_slow_input,
        ),
        Case(
            "loss_divergence",
            diverging_regression,
            expected=frozenset({"loss_divergence"}),
            allowed=frozenset({"exploding_gradient", "update_ratio"}),
            layer=None,
            max_step=31,
            oracle=oracle_diverging,
            config=fast(),
        ),
        Case(
            "softmax_single_unit",
            softmax_single_unit,
            expected=frozenset({"zero_gradient", "loss_mismatch"}),
            max_step=2,
            oracle=oracle_softmax_single_unit,
            config=fast(),
        ),
        Case(
            "sigmoid_regression",
            sigmoid_regression,
            expected=frozenset({"loss_mismatch"}),
            allowed=frozenset({"vanishing_gradient", "saturation"}),
            layer="output",
            step=0,
            oracle=oracle_sigmoid_regression,
            config=fast(),
        ),
        Case(
            "raw_pixels",
            raw_pixels,
            expected=frozenset({"input_scale"}),
            allowed=frozenset({"dead_relu", "update_ratio"}),
            layer="hidden",
            step=0,
            oracle=oracle_raw_pixels,
            config=fast(),
        ),
        Case(
            "tiny_init_deep_relu",
            tiny_init_deep_relu,
            expected=frozenset({"vanishing_gradient"}),
            allowed=frozenset({"dead_relu", "update_ratio"}),
            max_step=20,
            oracle=oracle_tiny_init,
            config=fast(),
        ),
        Case(
            "saturated_tanh",
            saturated_tanh,
            expected=frozenset({"saturation"}),
            allowed=frozenset({"vanishing_gradient"}),
            layer="tanh_1",
            max_step=20,
            oracle=oracle_saturated,
            config=fast(),
        ),
        Case(
            "learning_rate_1e-9",
            frozen_lr,
            expected=frozenset({"update_ratio"}),
            layer="hidden_0",
            max_step=20,
            oracle=oracle_frozen,
            config=fast(),
        ),
        Case(
            "nan_from_log_layer",
            log_of_zero,
            expected=frozenset({"non_finite"}),
            layer="log",
            step=0,
            oracle=oracle_log_of_zero,
            stops=True,
            config=fast(),
        ),
        Case(
            "nan_in_labels",
            nan_labels,
            expected=frozenset({"non_finite"}),
            layer=None,
            step=NAN_LABEL_ROW // 32,
            stops=True,
            oracle=oracle_nan_labels,
            config=fast(),
        ),
    )
}


def run_case(case: Case, logdir=None):
    """Trains one case with gradtrace; returns its TraceHistory."""
    import gradtrace

    model, kw = case.build()
    cfg = gradtrace.Config(console=False, **case.config)
    return gradtrace.fit(model, **kw, verbose=0, logdir=logdir, config=cfg)


def judge(case: Case, history) -> list[str]:
    """Problems with a run's findings for this case; [] when it passed."""
    findings = history.findings
    problems = []
    kinds = {f.kind for f in findings}
    counted = kinds - (TIMING_KINDS - case.expected)
    missing = case.expected - kinds
    extra = counted - case.expected - case.allowed
    if missing:
        problems.append(f"missed {sorted(missing)}")
    if extra:
        problems.append(
            "false alarm: "
            + "; ".join(
                f"{f.kind} at step {f.step} in {f.layer}: {f.message}"
                for f in findings
                if f.kind in extra
            )
        )
    for kind in sorted(case.expected & kinds):
        first = next(f for f in findings if f.kind == kind)
        if case.layer != ANY and first.layer != case.layer:
            problems.append(
                f"{kind} points at {first.layer!r}, expected {case.layer!r}"
            )
        if case.step is not None and first.step != case.step:
            problems.append(f"{kind} first at step {first.step}, expected {case.step}")
        if case.max_step is not None and first.step > case.max_step:
            problems.append(
                f"{kind} first at step {first.step}, expected by step {case.max_step}"
            )
    if case.stops:
        nan = next((f for f in findings if f.kind == "non_finite"), None)
        last = history.step_times[-1].step if history.step_times else None
        if nan is None or last != nan.step:
            problems.append(f"the run did not stop at the NaN: last step {last}")
    return problems

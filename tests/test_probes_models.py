"""Probes on every model kind: the expected tags exist with the right values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradtrace
from tests.conftest import quiet
from tests.helpers import dead_mlp, read_scalars, read_tags


def _fit(model, x, y, tmp_path, **kw):
    kw.setdefault("config", quiet())
    h = gradtrace.fit(
        model,
        x,
        y,
        batch_size=kw.pop("batch_size", 32),
        epochs=kw.pop("epochs", 1),
        verbose=0,
        shuffle=False,
        logdir=str(tmp_path),
        **kw,
    )
    return h, read_scalars(str(tmp_path / "train"))


def test_values_equal_a_manual_tape_on_the_same_batch(tmp_path):
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="relu", name="d1"),
            keras.layers.Dense(1, name="d2"),
        ]
    )
    m.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    w0 = [v.numpy() for v in m.trainable_variables]
    with tf.GradientTape() as tape:
        pred = m(x, training=True)
        loss = tf.reduce_mean(tf.square(pred[:, 0] - y[:, 0]))
    g = tape.gradient(loss, m.trainable_variables)
    h1 = np.maximum(x @ w0[0] + w0[1], 0)
    _, s = _fit(m, x, y, tmp_path)
    gn = np.sqrt(sum(float(np.sum(t.numpy() ** 2)) for t in g[:2]))
    assert s["gradients/d1/norm"][0][1] == pytest.approx(gn, rel=1e-5)
    w1 = [v.numpy() for v in m.trainable_variables]
    assert s["weights/d1/norm"][0][1] == pytest.approx(
        np.sqrt(np.sum(w1[0] ** 2) + np.sum(w1[1] ** 2)), rel=1e-5
    )
    upd = np.sqrt(np.sum((w1[0] - w0[0]) ** 2) + np.sum((w1[1] - w0[1]) ** 2))
    assert s["updates/d1/norm"][0][1] == pytest.approx(upd, rel=1e-4)
    assert s["updates/d1/ratio"][0][1] == pytest.approx(
        upd / s["weights/d1/norm"][0][1], rel=1e-4
    )
    assert s["activations/d1/mean"][0][1] == pytest.approx(h1.mean(), rel=1e-5)
    assert s["activations/d1/std"][0][1] == pytest.approx(h1.std(), rel=1e-4)
    assert s["gradients/d1/rms"][0][1] == pytest.approx(
        gn / np.sqrt(6 * 5 + 5), rel=1e-5
    )


def test_dead_layer_with_bias_minus_10(tmp_path, xy):
    x, y = xy
    _, s = _fit(dead_mlp(), x, y, tmp_path)
    assert [v for _, v in s["activations/dead/dead_frac"]] == [1.0] * 8
    assert s["activations/alive/dead_frac"][0][1] < 0.5
    assert "activations/out/dead_frac" not in s  # softmax: not ReLU family
    assert s["gradients/dead/norm"][0][1] == 0.0


class _Block(keras.layers.Layer):
    def __init__(self, **kw):  # noqa: D107
        super().__init__(**kw)
        self.a = keras.layers.Dense(8, activation="relu")
        self.b = keras.layers.Dense(8)

    def call(self, x):
        return self.b(self.a(x))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.block = _Block(name="block")
        self.inner = keras.Sequential(
            [keras.layers.Dense(6, activation="tanh", name="inner_dense")], name="inner"
        )
        self.drop = keras.layers.Dropout(0.1, name="drop")
        self.act = keras.layers.Activation("sigmoid", name="act")
        self.unused = keras.layers.Dense(3, name="unused")
        self.head = keras.layers.Dense(2, activation="softmax", name="head")

    def call(self, x, training=False):
        h = self.block(x)
        h = self.inner(h)
        h = self.act(self.drop(h, training=training))
        return self.head(h)


def test_subclassed_nested_weightless_and_unused(tmp_path, xy):
    x, y = xy
    keras.utils.set_random_seed(0)
    m = _Subclassed()
    m.compile("adam", "sparse_categorical_crossentropy")
    m(x[:2])
    m.unused.build((None, 6))
    h, s = _fit(m, x, y, tmp_path)
    for layer in ("block", "inner_dense", "head"):
        assert f"gradients/{layer}/norm" in s and f"activations/{layer}/mean" in s, (
            layer
        )
    for layer in ("drop", "act"):  # no weights: activations only
        assert f"activations/{layer}/mean" in s and f"gradients/{layer}/norm" not in s
    assert "activations/act/saturated_frac" in s
    assert "gradients/unused/norm" not in s  # None gradient: no crash, no tag
    (ng,) = [f for f in h.findings if f.kind == "no_gradient"]
    assert (
        ng.layer == "unused"
        and "kernel, bias" in ng.message
        and ng.severity == "warning"
    )
    # Forward order is the execution order of the training pass.
    import json

    layers = [
        d["name"]
        for d in json.loads((tmp_path / "gradtrace.json").read_text())["layers"]
    ]
    assert layers[:5] == ["block", "inner_dense", "drop", "act", "head"]
    assert not [f for f in h.findings if f.severity == "error"]


def test_multi_input_multi_output_functional(tmp_path):
    keras.utils.set_random_seed(0)
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    h = keras.layers.Dense(8, activation="relu", name="trunk")(
        keras.layers.Concatenate(name="cat")([a, b])
    )
    m = keras.Model(
        {"a": a, "b": b},
        [keras.layers.Dense(1, name="o1")(h), keras.layers.Dense(1, name="o2")(h)],
    )
    m.compile("adam", ["mse", "mse"])
    rng = np.random.default_rng(0)
    x = {
        "a": rng.normal(size=(64, 4)).astype("float32"),
        "b": rng.normal(size=(64, 3)).astype("float32"),
    }
    y = [rng.normal(size=(64, 1)).astype("float32")] * 2
    _, s = _fit(m, x, y, tmp_path)
    for layer in ("trunk", "o1", "o2"):
        assert f"gradients/{layer}/norm" in s
    assert "activations/cat/mean" in s
    import json

    infos = {
        d["name"]: d
        for d in json.loads((tmp_path / "gradtrace.json").read_text())["layers"]
    }
    assert (
        infos["o1"]["is_output"]
        and infos["o2"]["is_output"]
        and not infos["trunk"]["is_output"]
    )


def test_batchnorm_conv_lstm(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(1, name="o"),
        ]
    )
    conv.compile("adam", "mse")
    h, s = _fit(
        conv,
        rng.normal(size=(32, 8, 8, 1)).astype("float32"),
        rng.normal(size=(32, 1)).astype("float32"),
        tmp_path / "c",
    )
    assert "gradients/bn/norm" in s and "activations/conv/dead_frac" in s
    assert not h.findings  # moving mean/var have no gradient by design: not a finding
    rnn = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.LSTM(4, name="lstm"),
            keras.layers.Dense(1, name="o"),
        ]
    )
    rnn.compile("adam", "mse")
    _, s = _fit(
        rnn,
        rng.normal(size=(32, 5, 3)).astype("float32"),
        rng.normal(size=(32, 1)).astype("float32"),
        tmp_path / "r",
    )
    assert "gradients/lstm/norm" in s and "activations/lstm/mean" in s


def test_capture_leaves_the_model_unchanged_and_saveable(tmp_path, xy):
    x, y = xy
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy")
    cfg_before = m.get_config()
    _fit(m, x, y, tmp_path / "run")
    assert all("call" not in layer.__dict__ for layer in m.layers)
    assert m.get_config() == cfg_before
    path = str(tmp_path / "m.keras")
    m.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6
    )


def test_layer_filter_and_family_switches(tmp_path, xy):
    x, y = xy
    from tests.helpers import mlp

    _, s = _fit(mlp(), x, y, tmp_path / "f", config=quiet(layers=("hid*",)))
    assert "gradients/hidden/norm" in s and not any("/out/" in t for t in s)
    _, s = _fit(
        mlp(), x, y, tmp_path / "g", config=quiet(activations=False, updates=False)
    )
    assert not any(t.startswith(("activations/", "updates/")) for t in s)
    assert "gradients/hidden/norm" in s and "weights/hidden/norm" in s


def test_histograms_and_heatmaps_on_heavy_steps_only(tmp_path, xy):
    x, y = xy
    from tests.helpers import mlp

    _fit(
        mlp(),
        x,
        y,
        tmp_path,
        config=quiet(histogram_every=3, log_budget_kb=None),  # every heavy step
        epochs=1,
    )
    tags = read_tags(str(tmp_path / "train"))
    for tag in (
        "gradients/hidden/kernel",
        "weights/hidden/bias",
        "activations/hidden/histogram",
    ):
        assert tags.get(tag) == "histograms", tag
    assert (
        tags.get("gradients/heatmap") == "images"
        and tags.get("updates/heatmap") == "images"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0})
    ea.Reload()
    assert [e.step for e in ea.Tensors("gradients/hidden/kernel")] == [0, 3, 6]
    s = read_scalars(str(tmp_path / "train"))
    assert [st for st, _ in s["gradients/hidden/max_abs"]] == [
        0,
        3,
        6,
    ]  # heavy-tier scalar


def test_write_every_thins_tensorboard_not_detection(tmp_path, xy):
    x, y = xy
    from tests.helpers import mlp

    h, s = _fit(mlp(), x, y, tmp_path, config=quiet(write_every=4))
    assert [st for st, _ in s["gradients/hidden/norm"]] == [0, 4]
    assert len(h.step_times) == 8


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: keras.optimizers.SGD(0.1),
        lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.Adam(0.01),
        lambda: keras.optimizers.RMSprop(0.01),
        lambda: keras.optimizers.Adagrad(0.1),
        lambda: keras.optimizers.Nadam(0.01),
        lambda: keras.optimizers.Lion(0.01),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),  # copy fallback
        lambda: keras.optimizers.Adam(0.01, clipnorm=0.01),  # clipped update
    ],
)
def test_update_norm_is_the_applied_change_for_every_optimizer(make_opt, tmp_path):
    # Captured update (or weight copy, where the update cannot be captured)
    # equals the real change of the weights over the step.
    from gradtrace.probes.capture import can_capture_updates

    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="relu", name="d1"),
            keras.layers.Dense(1, name="d2"),
        ]
    )
    opt = make_opt()
    m.compile(opt, "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    m.fit(x[:1], y[:1], verbose=0)  # build optimizer slots, take one step
    w0 = [v.numpy() for v in m.trainable_variables]
    gradtrace.fit(
        m,
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        shuffle=False,
        logdir=str(tmp_path),
        config=quiet(histograms=False),
    )
    w1 = [v.numpy() for v in m.trainable_variables]
    s = read_scalars(str(tmp_path / "train"))
    for layer, (k, b) in (("d1", (0, 1)), ("d2", (2, 3))):
        upd = np.sqrt(np.sum((w1[k] - w0[k]) ** 2) + np.sum((w1[b] - w0[b]) ** 2))
        assert s[f"updates/{layer}/norm"][0][1] == pytest.approx(
            upd, rel=2e-3, abs=1e-7
        ), layer
    assert can_capture_updates(opt) == (not opt.weight_decay)

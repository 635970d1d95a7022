"""loss_mismatch and input_scale: the rules over SetupFacts, and the facts
gathered from real Keras models and batches (probes.setup.gather)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from gradtrace import Config
from gradtrace.detectors.input_scale import InputScaleDetector
from gradtrace.detectors.loss_mismatch import LossMismatchDetector
from gradtrace.probes.setup import gather
from gradtrace.records import SetupFacts


def mismatch(**facts):
    return LossMismatchDetector(Config(), ()).observe_setup(
        SetupFacts(output_layer="out", **facts), 0
    )


def scale(**facts):
    return InputScaleDetector(Config(), ()).observe_setup(
        SetupFacts(input_layer="first", **facts), 0
    )


CLASSIFIER = dict(target_min=0.0, target_max=1.0, target_integer=True)


@pytest.mark.parametrize(
    "facts, words",
    [
        # softmax over one unit: constant 1.0 (5 of 30 DeepLocalize SO programs)
        (
            dict(
                output_activation="softmax", output_units=1, loss="mean_squared_error"
            ),
            "single unit",
        ),
        (
            dict(
                output_activation="sigmoid",
                output_units=1,
                loss="categorical_crossentropy",
                from_logits=False,
            ),
            "always 0",
        ),
        (
            dict(
                output_activation="softmax",
                output_units=10,
                loss="categorical_crossentropy",
                from_logits=True,
            ),
            "applied twice",
        ),
        (
            dict(
                output_activation="sigmoid",
                output_units=3,
                loss="categorical_crossentropy",
                from_logits=False,
                target_row_sum_max=1.0,
            ),
            "applies a sigmoid to each",
        ),
        (
            dict(
                output_activation="relu",
                output_units=10,
                loss="categorical_crossentropy",
                from_logits=False,
            ),
            "expects probabilities",
        ),
        (
            dict(
                output_activation="linear",
                output_units=1,
                loss="binary_crossentropy",
                from_logits=False,
            ),
            "expects probabilities",
        ),
        (
            dict(
                output_activation="softmax",
                output_units=5,
                loss="mean_squared_error",
                target_min=0.0,
                target_max=1.0,
                target_row_sum_max=3.0,
            ),
            "multi-label",
        ),
        (
            dict(
                output_activation="softmax",
                output_units=10,
                loss="sparse_categorical_crossentropy",
                from_logits=False,
                target_min=0.0,
                target_max=10.0,
                target_integer=True,
            ),
            "class ids 0..9",
        ),
        (
            dict(
                output_activation="softmax",
                output_units=10,
                loss="sparse_categorical_crossentropy",
                from_logits=False,
                target_min=0.0,
                target_max=0.03,
                target_integer=False,
            ),
            "not whole numbers",
        ),
        (
            dict(
                output_activation="sigmoid",
                output_units=1,
                loss="binary_crossentropy",
                from_logits=False,
                target_min=0.0,
                target_max=9.0,
                target_integer=True,
            ),
            "needs targets in [0, 1]",
        ),
        (
            dict(
                output_activation="linear",
                output_units=1,
                loss="binary_crossentropy",
                from_logits=True,
                target_min=-1.0,
                target_max=1.0,
                target_integer=True,
            ),
            "needs targets in [0, 1]",
        ),
        # regression targets 3..103 through a sigmoid: loss stuck at 1788
        (
            dict(
                output_activation="sigmoid",
                output_units=1,
                loss="mean_squared_error",
                target_min=3.0,
                target_max=103.0,
            ),
            "can only produce values in [0, 1]",
        ),
        (
            dict(
                output_activation="tanh",
                output_units=1,
                loss="mean_absolute_error",
                target_min=-5.0,
                target_max=5.0,
            ),
            "[-1, 1]",
        ),
        (
            dict(
                output_activation="relu",
                output_units=1,
                loss="mean_squared_error",
                target_min=-2.0,
                target_max=5.0,
            ),
            "[0, inf]",
        ),
    ],
)
def test_loss_mismatch_rules(facts, words):
    (d,) = mismatch(**facts)
    assert (d.kind, d.layer, d.step) == ("loss_mismatch", "out", 0)
    assert words in d.message, d.message
    assert d.hint


@pytest.mark.parametrize(
    "facts",
    [
        # a confident sigmoid classifier
        dict(
            output_activation="sigmoid",
            output_units=1,
            loss="binary_crossentropy",
            from_logits=False,
            **CLASSIFIER,
        ),
        # a 2-unit softmax
        dict(
            output_activation="softmax",
            output_units=2,
            loss="sparse_categorical_crossentropy",
            from_logits=False,
            **CLASSIFIER,
        ),
        dict(
            output_activation="softmax",
            output_units=2,
            loss="categorical_crossentropy",
            from_logits=False,
            target_row_sum_max=1.0,
            **CLASSIFIER,
        ),
        # a healthy regression with targets ~1e4 and a linear output
        dict(
            output_activation="linear",
            output_units=1,
            loss="mean_squared_error",
            target_min=9e3,
            target_max=2e4,
            target_integer=False,
        ),
        # logits with from_logits=True
        dict(
            output_activation="linear",
            output_units=10,
            loss="sparse_categorical_crossentropy",
            from_logits=True,
            target_min=0.0,
            target_max=9.0,
            target_integer=True,
        ),
        # multi-label with sigmoid
        dict(
            output_activation="sigmoid",
            output_units=5,
            loss="binary_crossentropy",
            from_logits=False,
            target_row_sum_max=3.0,
            **CLASSIFIER,
        ),
        # nothing known
        dict(),
    ],
)
def test_loss_mismatch_near_misses_are_quiet(facts):
    assert mismatch(**facts) == []


def test_input_scale_raw_pixels():
    # MNIST 0-255 into Dense(784 -> 512) with Glorot: ~100x the intended scale
    (d,) = scale(
        input_class="Dense",
        input_fan_in=784,
        input_weight_rms=0.044,
        input_rms=78.0,
        input_max_abs=255.0,
    )
    assert (d.kind, d.layer, d.step) == ("input_scale", "first", 0)
    assert 50 < d.value < 150 and d.threshold == 10.0
    assert "1/255" in d.hint


def test_input_scale_raw_integers():
    (d,) = scale(
        input_class="Dense",
        input_fan_in=4,
        input_weight_rms=0.5,
        input_rms=3e9,
        input_max_abs=4e9,
    )
    assert d.value > 1e9


@pytest.mark.parametrize(
    "facts",
    [
        # already normalised inputs (pixels / 255, standardised features)
        dict(
            input_class="Dense",
            input_fan_in=784,
            input_weight_rms=0.044,
            input_rms=0.33,
        ),
        dict(
            input_class="Conv2D", input_fan_in=27, input_weight_rms=0.2, input_rms=1.0
        ),
        # a first layer that looks up or normalises: raw values are its job
        dict(input_class="Embedding", input_rms=5e3),
        dict(input_class="Normalization", input_rms=5e5),
        dict(input_class="Rescaling", input_rms=120.0),
        dict(input_class="BatchNormalization", input_rms=300.0),
        dict(),
    ],
)
def test_input_scale_near_misses_are_quiet(facts):
    assert scale(**facts) == []


def test_unit_scale_inputs_into_a_too_large_init_are_not_input_scale():
    # N(0, 3) kernels over 20 standardised features: pre-activations ~13,
    # the initialisation's fault (saturation), not the inputs'
    assert (
        scale(input_class="Dense", input_fan_in=20, input_weight_rms=3.0, input_rms=1.0)
        == []
    )


def test_config_sets_the_input_scale_threshold():
    d = InputScaleDetector(Config(input_scale_max=200.0), ())
    facts = SetupFacts(
        input_layer="f",
        input_class="Dense",
        input_fan_in=784,
        input_weight_rms=0.044,
        input_rms=78.0,
    )
    assert d.observe_setup(facts, 0) == []


# -- facts from real models -----------------------------------------------------


def _mlp(
    first=None, out_units=10, act="softmax", loss="sparse_categorical_crossentropy"
):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((20,))]
    if first is not None:
        layers.append(first)
    layers += [
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(out_units, activation=act, name="out"),
    ]
    m = keras.Sequential(layers)
    m.compile("adam", loss)
    return m


def test_gather_reads_output_loss_targets_and_first_layer():
    x = np.random.default_rng(0).uniform(0, 255, (8, 20)).astype("float32")
    y = np.arange(8) % 10
    f = gather(_mlp(), (x, y))
    assert (f.output_layer, f.output_activation, f.output_units) == (
        "out",
        "softmax",
        10,
    )
    assert (f.loss, f.from_logits) == ("sparse_categorical_crossentropy", False)
    assert (f.target_min, f.target_max, f.target_integer) == (0.0, 7.0, True)
    assert (f.input_layer, f.input_class, f.input_fan_in) == ("hidden", "Dense", 20)
    assert 100 < f.input_rms < 200 and f.input_max_abs <= 255


def test_gather_sees_loss_objects_and_separate_activation_layers():
    inp = keras.Input((4,))
    h = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inp))
    out = keras.layers.Activation("softmax", name="probs")(h)
    m = keras.Model(inp, out)
    m.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    y = np.eye(3)[[0, 1, 2, 0]]
    f = gather(m, (np.ones((4, 4), "float32"), y))
    assert (f.output_layer, f.output_activation) == ("probs", "softmax")
    assert (f.loss, f.from_logits, f.target_row_sum_max) == (
        "categorical_crossentropy",
        True,
        1.0,
    )
    assert f.input_layer == "logits"  # Flatten only reshapes
    (d,) = mismatch(**{k: v for k, v in f.__dict__.items() if k != "output_layer"})
    assert "applied twice" in d.message


@pytest.mark.parametrize(
    "first",
    [
        keras.layers.Normalization(mean=0.0, variance=1.0),
        keras.layers.Rescaling(1 / 255.0),
    ],
)
def test_gather_stops_at_a_first_layer_that_normalises(first):
    x = np.full((8, 20), 200.0, "float32")
    f = gather(_mlp(first), (x, np.zeros(8)))
    assert f.input_class in ("Normalization", "Rescaling")
    assert InputScaleDetector(Config(), ()).observe_setup(f, 0) == []


def test_gather_never_raises_on_unusual_batches():
    m = _mlp()
    # dict inputs, string targets, nothing: facts are partial, never an error
    assert gather(m, ({"a": np.ones((2, 20))}, np.array(["x", "y"]))).target_min is None
    f = gather(m, None)  # no batch: what the model says is still read
    assert (f.output_layer, f.target_min, f.input_rms) == ("out", None, None)

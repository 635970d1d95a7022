"""Which layers gradtrace probes, in which order, and what they own.

Host code, run once when the step is built. A *probed layer* is a leaf of the
model's tree of `keras.Model`s: nested Sequential/Functional/subclassed models
are opened, every other layer (Dense, Conv, LSTM, a custom block of layers)
is one unit: its activation is its `call` output and its variables are its
`trainable_weights`. Layers are identified by object, never by name guessing.
"""

from __future__ import annotations

import fnmatch

import keras

from .records import LayerInfo

_RELU = {"relu", "relu6"}
_SIGMOID = {"sigmoid", "hard_sigmoid"}
_TANH = {"tanh"}
_LINEAR = {"linear", None}


def leaf_layers(model) -> list:
    """Leaf layers of `model` (nested models opened), InputLayers dropped."""
    out = []
    seen = set()

    def visit(m):
        for layer in m.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model):
                visit(layer)
            elif isinstance(layer, keras.layers.InputLayer):
                continue
            else:
                out.append(layer)

    visit(model)
    return out


def selected(layer, patterns: tuple[str, ...] | None) -> bool:
    """Whether `Config.layers` (fnmatch patterns on `layer.name`) probes it."""
    return patterns is None or any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)


def activation_kind(layer) -> str:
    """The family of the last nonlinearity a layer's output passes through."""
    if isinstance(layer, keras.layers.ReLU):
        cfg = layer.get_config()
        if not cfg.get("negative_slope") and not cfg.get("threshold"):
            return "relu"
        return "other"
    if isinstance(layer, keras.layers.RNN) or not hasattr(layer, "activation"):
        return "linear" if not hasattr(layer, "activation") else "other"
    fn = layer.activation
    name = getattr(fn, "__name__", None) if fn is not None else None
    if isinstance(fn, str):
        name = fn
    if name in _RELU:
        return "relu"
    if name in _SIGMOID:
        return "sigmoid"
    if name in _TANH:
        return "tanh"
    if name in _LINEAR:
        return "linear"
    return "other"


def layer_info(
    layer, *, n_units: int, is_output: bool, name=None, variables=None, model=None
) -> LayerInfo:
    """`LayerInfo` of a probed layer; `name` (default `layer.name`) is its
    unique row name, `variables` (default its trainable weights) what its
    statistics cover."""
    variables = layer.trainable_weights if variables is None else variables
    return LayerInfo(
        name=layer.name if name is None else name,
        class_name=type(layer).__name__,
        activation=activation_kind(layer),
        n_params=int(sum(_size(v) for v in variables)),
        n_units=n_units,
        is_output=is_output,
        model=model,
    )


def _size(v):
    n = 1
    for d in v.shape:
        n *= int(d)
    return n

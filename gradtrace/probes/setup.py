"""`SetupFacts` from a model, its compiled loss and its first batch (host code).

Run once, at the first step of `gradtrace.fit` (the stock Keras step, where
the loss and the meaning of the batch are known): a few numpy reductions over
one batch and one kernel. Never raises: what cannot be read stays None and
the rules that need it stay quiet.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from ..records import SetupFacts

# Layers that only reshape, copy or drop values: the inputs reach the next
# layer at the scale they came in.
_PASSIVE = (
    keras.layers.InputLayer,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Permute,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.RepeatVector,
    keras.layers.Masking,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)


def gather(model, data) -> SetupFacts | None:
    """The facts of `model` (compiled) and its first batch `data`."""
    try:
        facts = {}
        facts.update(_output(model))
        facts.update(_loss(getattr(model, "loss", None)))
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        facts.update(_targets(y))
        facts.update(_inputs(model, x))
        return SetupFacts(**facts)
    except Exception:  # a fact we cannot read is a rule that stays quiet
        return None


def _numpy(t):
    if t is None or isinstance(t, (dict, list, tuple)):
        return None
    try:
        a = np.asarray(t)
    except Exception:
        return None
    if a.dtype.kind not in "biuf" or not a.size:
        return None
    return a.astype(np.float64, copy=False)


def output_activation(layer) -> str:
    """softmax / sigmoid / tanh / relu (>= 0) / linear / other."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    fn = getattr(layer, "activation", None)
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", None)
    if fn is None and not hasattr(layer, "activation"):
        return "linear" if isinstance(layer, keras.layers.Dense) else "other"
    name = (name or "linear").lower()
    if name in ("softmax",):
        return "softmax"
    if name in ("sigmoid", "hard_sigmoid"):
        return "sigmoid"
    if name in ("tanh",):
        return "tanh"
    if name in ("relu", "relu6", "softplus", "exponential"):
        return "relu"
    if name in ("linear",):
        return "linear"
    return "other"


def _output(model) -> dict:
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return {}
    history = getattr(outputs[0], "_keras_history", None)
    layer = history[0] if history else None
    if layer is None:
        return {}
    while isinstance(layer, keras.Model):  # a nested model's own output layer
        inner = layer.outputs[0]._keras_history[0] if len(layer.outputs) == 1 else None
        if inner is None:
            return {}
        layer = inner
    shape = tuple(outputs[0].shape)
    units = shape[-1] if shape else None
    return dict(
        output_layer=layer.name,
        output_activation=output_activation(layer),
        output_units=int(units) if units is not None else None,
    )


def _loss(loss) -> dict:
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss.values()))
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return {}
    from_logits = None
    if isinstance(loss, str):
        try:  # Keras' own aliases: "mse" -> mean_squared_error, "bce", "kld"
            name = keras.losses.get(loss).__name__
        except (ValueError, AttributeError):
            name = loss
    elif isinstance(loss, keras.losses.Loss):
        name = getattr(loss, "fn", None)
        name = getattr(name, "__name__", None) or _snake(type(loss).__name__)
        try:
            from_logits = loss.get_config().get("from_logits")
        except Exception:
            from_logits = None
    else:
        name = getattr(loss, "__name__", None)
    if not name:
        return {}
    name = name.lower()
    if from_logits is None and "crossentropy" in name:
        from_logits = False  # the string / function form: probabilities
    return dict(loss=name, from_logits=from_logits)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _targets(y) -> dict:
    a = _numpy(y)
    if a is None:
        return {}
    finite = a[np.isfinite(a)]
    if not finite.size:
        return {}
    facts = dict(
        target_min=float(finite.min()),
        target_max=float(finite.max()),
        target_integer=bool(np.all(finite == np.round(finite))),
    )
    if a.ndim >= 2 and a.shape[-1] > 1:
        facts["target_row_sum_max"] = float(np.nanmax(np.sum(a, axis=-1)))
    return facts


def first_consumer(model):
    """The first layer of a single-input model that does more than reshape or
    drop values, or None."""
    inputs = getattr(model, "inputs", None)
    if inputs is not None and len(inputs) != 1:
        return None
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return first_consumer(layer)
        if isinstance(layer, _PASSIVE):
            continue
        return layer
    return None


def _inputs(model, x) -> dict:
    layer = first_consumer(model)
    a = _numpy(x)
    if layer is None or a is None:
        return {}
    facts = dict(input_layer=layer.name, input_class=type(layer).__name__)
    finite = a[np.isfinite(a)]
    if finite.size:
        facts["input_rms"] = float(np.sqrt(np.mean(np.square(finite))))
        facts["input_max_abs"] = float(np.max(np.abs(finite)))
    kernel = getattr(layer, "kernel", None)
    if kernel is not None and not isinstance(layer, keras.layers.Embedding):
        k = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel)
        if k.ndim >= 2:
            facts["input_fan_in"] = int(np.prod(k.shape[:-1]))
            facts["input_weight_rms"] = float(np.sqrt(np.mean(np.square(k))))
    return facts

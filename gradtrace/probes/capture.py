"""Capture each probed layer's output from the training forward pass itself.

While the step function is being traced, every probed layer *instance* gets a
`call` attribute that calls the class's own `call` and remembers the output
tensor. The attribute is removed again before tracing ends, so the model, its
config and its saved form never change, and nothing runs at step time: the
captured tensors are simply reused by the statistics in the same graph.

Tensors produced inside a nested graph (an RNN cell inside its while loop, a
layer inside `tf.cond`) are not reachable from the step's graph and are
skipped.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf
from keras import tree


def _first_float(outputs):
    for t in tree.flatten(outputs):
        if isinstance(t, tf.Tensor) and t.dtype.is_floating:
            return t
    return None


@contextlib.contextmanager
def capture_outputs(layers):
    """Yields a dict that fills with {id(layer): output tensor} during a call.

    The dict keeps insertion order = forward (execution) order. A layer called
    twice (shared weights) keeps its first output.
    """
    outputs: dict[int, tf.Tensor] = {}
    graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
    patched = []

    def make_wrapper(layer, orig):
        def call(*args, **kwargs):
            out = orig(*args, **kwargs)
            t = _first_float(out)
            if (
                t is not None
                and id(layer) not in outputs
                and (graph is None or getattr(t, "graph", None) is graph)
            ):
                outputs[id(layer)] = t
            return out

        return call

    try:
        for layer in layers:
            if "call" in layer.__dict__:  # already patched or user-set: leave it
                continue
            object.__setattr__(layer, "call", make_wrapper(layer, layer.call))
            patched.append(layer)
        yield outputs
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")


# Keras optimizers whose `update_step` changes a model variable only through
# `assign_add`/`assign_sub` (checked for Keras 3.15). For these, the applied
# update is captured instead of copying every weight before the update.
_DELTA_OPTIMIZERS = (
    "SGD",
    "Adam",
    "RMSprop",
    "Adagrad",
    "Adamax",
    "Nadam",
    "Adadelta",
    "Lion",
    "Ftrl",
    "Lamb",
)


def can_capture_updates(optimizer) -> bool:
    """Whether `capture_updates` sees the whole update of every variable.

    Exact Keras classes only (a subclass may override `update_step`), no
    weight decay (applied to the variable directly), no gradient
    accumulation, no loss-scale wrapper (the update runs inside a `tf.cond`).
    """
    import keras

    cls = type(optimizer)
    return (
        cls.__name__ in _DELTA_OPTIMIZERS
        and getattr(keras.optimizers, cls.__name__, None) is cls
        and not getattr(optimizer, "weight_decay", None)
        and not getattr(optimizer, "gradient_accumulation_steps", None)
    )


@contextlib.contextmanager
def capture_updates(optimizer):
    """Yields {id(tf.Variable): [signed update tensors]} filled while the
    optimizer applies its update in the traced step (instance attributes set
    and removed around the call, like `capture_outputs`)."""
    deltas: dict[int, list] = {}
    graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()

    import keras

    def key(variable):
        # Keras passes its update_step the backend variable (`v.value`).
        return id(variable.value if isinstance(variable, keras.Variable) else variable)

    def make(name, sign):
        orig = getattr(optimizer, name)

        def method(variable, value):
            t = tf.convert_to_tensor(value)
            if graph is None or getattr(t, "graph", None) is graph:
                deltas.setdefault(key(variable), []).append((sign, t))
            return orig(variable, value)

        return method

    patched = {
        "assign_add": make("assign_add", 1.0),
        "assign_sub": make("assign_sub", -1.0),
    }
    try:
        for name, fn in patched.items():
            object.__setattr__(optimizer, name, fn)
        yield deltas
    finally:
        for name in patched:
            object.__delattr__(optimizer, name)

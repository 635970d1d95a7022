"""Capture the update an optimizer applies, instead of copying the weights.

While a step body is traced, `capture_updates` sets `assign_add`/`assign_sub`
attributes on one optimizer *instance* that record the signed update tensor
and call the original; they are removed again before tracing ends, so
nothing runs at step time and nothing changes in the optimizer.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

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
    and removed around the call)."""
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

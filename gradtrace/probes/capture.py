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

"""What a step body does, seen while it is traced: layer calls and optimizer applies.

Two class-level interceptions, installed only while gradtrace traces (or, for
an eager step, runs) a step body and active only in the thread that does it:

- `keras.Layer.__call__`: every layer call made by the body, with its output;
- `apply` of every Keras optimizer class that defines one (the base class,
  `LossScaleOptimizer`, ...): the gradients and variables handed to it, from
  `apply` or `apply_gradients` (which calls `apply`), whatever attribute holds
  the optimizer.

Any other thread, and every call once the trace is over, runs the original
methods untouched (one thread-local lookup). The one exception: a thread
that builds ops into the very graph being traced (MirroredStrategy runs each
replica of a `strategy.run` in its own thread) reports to that graph's
listener, so a step's replicas are never silently missed. Patches are reference-counted, so
nested or concurrent traces in several threads are safe.

A `Listener` receives the calls; see `probes.recorder.Recording`.
"""

from __future__ import annotations

import contextlib
import threading

_local = threading.local()
_lock = threading.Lock()
_installed = 0
_originals: list[tuple[type, str, object]] = []
# Graph being traced -> its listeners: a thread that builds ops in that graph
# without a listener of its own (MirroredStrategy runs each replica of a
# `strategy.run` in a thread of its own) reports to the graph's listener.
_by_graph: dict[int, list] = {}


class Listener:
    """What a recording implements (every method must call `proceed`)."""

    def layer_call(self, layer, proceed):  # pragma: no cover - interface
        return proceed()

    def optimizer_apply(self, optimizer, grads, variables, proceed):  # pragma: no cover
        return proceed()


def _optimizer_classes():
    """Every loaded Keras optimizer class that defines `apply` itself."""
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    out, todo = [], [BaseOptimizer]
    while todo:
        cls = todo.pop()
        if "apply" in cls.__dict__:
            out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def _current():
    listener = getattr(_local, "listener", None)
    if listener is None and _by_graph:
        import tensorflow as tf

        found = _by_graph.get(id(tf.compat.v1.get_default_graph()))
        listener = found[-1] if found else None
    return listener


def _patched_call(orig):
    def __call__(self, *args, **kwargs):
        listener = _current()
        if listener is None:
            return orig(self, *args, **kwargs)
        return listener.layer_call(self, lambda: orig(self, *args, **kwargs))

    __call__.__wrapped__ = orig
    return __call__


def _patched_apply(orig):
    def apply(self, grads, trainable_variables=None):
        listener = _current()
        if listener is None:
            return orig(self, grads, trainable_variables)
        return listener.optimizer_apply(
            self,
            grads,
            trainable_variables,
            lambda: orig(self, grads, trainable_variables),
        )

    apply.__wrapped__ = orig
    return apply


def _install():
    import keras

    global _installed
    with _lock:
        if _installed == 0:
            targets = [(keras.Layer, "__call__", _patched_call)] + [
                (cls, "apply", _patched_apply) for cls in _optimizer_classes()
            ]
            for cls, name, make in targets:
                orig = cls.__dict__[name]
                _originals.append((cls, name, orig))
                setattr(cls, name, make(orig))
        _installed += 1


def _uninstall():
    global _installed
    with _lock:
        _installed -= 1
        if _installed == 0:
            while _originals:
                cls, name, orig = _originals.pop()
                setattr(cls, name, orig)


@contextlib.contextmanager
def listening(listener: Listener):
    """Routes this thread's layer calls and optimizer applies to `listener`."""
    import tensorflow as tf

    previous = getattr(_local, "listener", None)
    graph = None if tf.executing_eagerly() else id(tf.compat.v1.get_default_graph())
    _install()
    _local.listener = listener
    if graph is not None:
        with _lock:
            _by_graph.setdefault(graph, []).append(listener)
    try:
        yield listener
    finally:
        _local.listener = previous
        if graph is not None:
            with _lock:
                _by_graph[graph].remove(listener)
                if not _by_graph[graph]:
                    del _by_graph[graph]
        _uninstall()

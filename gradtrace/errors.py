"""Typed errors and the argument checks of `gradtrace.fit`.

Every message says what was received, what was expected and how to fix it,
in Keras' style. Checks run before any weight changes.
"""

from __future__ import annotations

import os
import types


class GradtraceError(Exception):
    """Base of gradtrace's own errors; `exit_code` is what the CLI returns."""

    exit_code = 2


class LogdirError(GradtraceError, ValueError):
    """The logdir cannot be written (fit) or read (report)."""


def _is_dataset_like(x) -> bool:
    import keras
    import tensorflow as tf

    return isinstance(
        x, (tf.data.Dataset, keras.utils.PyDataset, types.GeneratorType)
    ) or (
        hasattr(tf.distribute, "DistributedDataset")
        and isinstance(x, tf.distribute.DistributedDataset)
    )


def _type(v) -> str:
    return type(v).__name__


def _int_or_none(name, v, minimum):
    if v is None:
        return
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be an int or None. Received: {name}={v!r} of type {_type(v)}."
        )
    if v < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={v}.")


def _num_samples(a):
    import keras
    import numpy as np
    import tensorflow as tf

    leaves = keras.tree.flatten(a)
    sizes = set()
    for leaf in leaves:
        if isinstance(leaf, (np.ndarray, tf.Tensor)) or hasattr(leaf, "__array__"):
            shape = getattr(leaf, "shape", None)
            if shape is not None and len(shape):
                sizes.add(int(shape[0]))
    return sizes


def check_fit_args(
    *,
    model,
    x,
    y,
    batch_size,
    epochs,
    verbose,
    callbacks,
    validation_split,
    validation_data,
    shuffle,
    class_weight,
    sample_weight,
    initial_epoch,
    steps_per_epoch,
    validation_steps,
    validation_freq,
    logdir,
    config,
):
    import keras
    import tensorflow as tf

    from .config import Config

    if not isinstance(model, keras.Model):
        raise TypeError(
            "gradtrace.fit expects a `keras.Model` as its first argument. "
            f"Received: model={model!r} of type {_type(model)}. Build a Keras "
            "model (Sequential, functional or subclassed) and compile it."
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "The model must be compiled before gradtrace.fit. Received: an "
            f"uncompiled model {model.name!r}. Call "
            "`model.compile(optimizer=..., loss=...)` first, as for model.fit."
        )
    if not isinstance(config, Config):
        raise TypeError(
            "`config` must be a gradtrace.Config or None. Received: "
            f"config={config!r} of type {_type(config)}. Use gradtrace.Config(...)."
        )
    if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(
            "`logdir` must be a path (str or os.PathLike) or None. Received: "
            f"logdir={logdir!r} of type {_type(logdir)}."
        )
    _int_or_none("batch_size", batch_size, 1)
    _int_or_none("steps_per_epoch", steps_per_epoch, 1)
    _int_or_none("validation_steps", validation_steps, 1)
    for name, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if v is None:
            raise TypeError(f"`{name}` must be an int. Received: {name}=None.")
        _int_or_none(name, v, 0)
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(
            "`verbose` must be 'auto', 0, 1 or 2, as for model.fit. Received: "
            f"verbose={verbose!r}."
        )
    if callbacks is not None:
        if isinstance(callbacks, keras.callbacks.CallbackList) or not isinstance(
            callbacks, (list, tuple)
        ):
            raise TypeError(
                "`callbacks` must be a list of keras.callbacks.Callback or None. "
                f"Received: callbacks={callbacks!r} of type {_type(callbacks)}."
            )
        for cb in callbacks:
            if not isinstance(cb, keras.callbacks.Callback):
                raise TypeError(
                    "Every callback must be a keras.callbacks.Callback. Received: "
                    f"{cb!r} of type {_type(cb)} in `callbacks`."
                )
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float))
        or not 0 <= validation_split < 1
    ):
        raise ValueError(
            "`validation_split` must be a float in [0, 1). Received: "
            f"validation_split={validation_split!r}."
        )
    if isinstance(validation_freq, bool) or not (
        (isinstance(validation_freq, int) and validation_freq >= 1)
        or (
            isinstance(validation_freq, (list, tuple))
            and all(isinstance(e, int) for e in validation_freq)
        )
    ):
        raise ValueError(
            "Expected `validation_freq` to be a list or int >= 1. Received: "
            f"validation_freq={validation_freq!r} of the type {_type(validation_freq)}."
        )
    if not (isinstance(shuffle, bool) or shuffle == "batch"):
        raise ValueError(
            f"`shuffle` must be True, False or 'batch'. Received: shuffle={shuffle!r}."
        )
    if class_weight is not None and not isinstance(class_weight, dict):
        raise TypeError(
            "`class_weight` must be a dict {class_index: weight} or None. "
            f"Received: class_weight={class_weight!r} of type {_type(class_weight)}."
        )
    if x is None:
        raise ValueError(
            "gradtrace.fit needs training data. Received: x=None. Pass arrays "
            "(x, y), a tf.data.Dataset, a keras.utils.PyDataset or a generator."
        )
    if _is_dataset_like(x):
        kind = _type(x)
        if batch_size is not None:
            raise ValueError(
                f"`batch_size` must be None when `x` is a {kind}, which yields "
                f"batches already. Received: batch_size={batch_size} with x of type "
                f"{kind}. Batch the data in the dataset itself (e.g. "
                f"dataset.batch({batch_size})) and drop batch_size."
            )
        if validation_split:
            raise ValueError(
                f"`validation_split` is only supported for arrays and tensors, not "
                f"for a {kind}. Received: validation_split={validation_split} with "
                f"x of type {kind}. Pass `validation_data=` (e.g. a separate "
                "dataset) instead."
            )
        if y is not None:
            raise ValueError(
                f"`y` must be None when `x` is a {kind} (it yields (x, y) pairs). "
                f"Received: y of type {_type(y)}."
            )
        if isinstance(x, tf.data.Dataset):
            card = int(x.cardinality())
            if card == 0:
                raise ValueError(
                    "gradtrace.fit received an empty tf.data.Dataset (cardinality "
                    "0). Check the source and any .filter()/.take() upstream."
                )
    else:
        xs, ys = _num_samples(x), _num_samples(y) if y is not None else set()
        sws = _num_samples(sample_weight) if sample_weight is not None else set()
        sizes = xs | ys | sws
        if len(sizes) > 1:
            raise ValueError(
                "`x`, `y` (and `sample_weight`) must have the same number of "
                f"samples. Received: x with {sorted(xs)} samples, y with "
                f"{sorted(ys)}, sample_weight with {sorted(sws) or 'none'}. "
                "Make every array's first dimension the number of examples."
            )
        if sizes == {0}:
            raise ValueError(
                "gradtrace.fit received empty training arrays (0 samples). "
                "Received: x with 0 samples. Pass at least one example."
            )

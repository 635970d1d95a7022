"""`gradtrace.fit`: the host loop, a drop-in for `model.fit`.

It is Keras' own `fit` (keras/src/backend/tensorflow/trainer.py) with three
changes: the batch is fetched on the host (so the wait for data is timed),
the step is gradtrace's probed `TrainStep` (the stock Keras step, or the
model's own `train_step` when its class overrides it), and after each step a
`session.Session` turns the packed statistics into records once, feeds the
detectors and the sinks.
Data handling (data adapters, `validation_split`, the epoch iterator),
callbacks (`CallbackList` with History and the progress bar) and validation
(`model.evaluate`) are Keras' own objects, so behaviour matches `model.fit`.
"""

from __future__ import annotations

import functools
import os
import tempfile

import keras
import numpy as np

from . import errors
from .config import Config
from .history import TraceHistory
from .session import Session
from .step import cached_step


def fit(
    model,
    x=None,
    y=None,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    class_weight=None,
    sample_weight=None,
    initial_epoch=0,
    steps_per_epoch=None,
    validation_steps=None,
    validation_freq=1,
    *,
    logdir=None,
    config=None,
) -> TraceHistory:
    """Trains `model` exactly as `model.fit` would, and traces why it is slow or broken.

    Arguments up to `validation_freq` mean what they mean for
    `keras.Model.fit`. The model must be compiled.

    Args:
        model: a compiled `keras.Model`.
        logdir: folder for TensorBoard event files (`train/`, `validation/`)
            and `findings.jsonl`; `None` records nothing to disk but still
            diagnoses (findings on the returned history, console warnings).
        config: a `gradtrace.Config`; `None` means defaults.

    Returns:
        A `gradtrace.TraceHistory` (a `keras.callbacks.History`) with
        `.findings`, `.logdir` and `.step_times`.

    Example:

    ```python
    history = gradtrace.fit(model, x, y, batch_size=64, epochs=5,
                            validation_split=0.1, logdir="runs/a")
    ```
    """
    from keras.src.backend.tensorflow.trainer import TFEpochIterator
    from keras.src.trainers.data_adapters import array_slicing, data_adapter_utils

    config = Config() if config is None else config
    errors.check_fit_args(
        model=model,
        x=x,
        y=y,
        batch_size=batch_size,
        epochs=epochs,
        verbose=verbose,
        callbacks=callbacks,
        validation_split=validation_split,
        validation_data=validation_data,
        shuffle=shuffle,
        class_weight=class_weight,
        sample_weight=sample_weight,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        validation_freq=validation_freq,
        logdir=logdir,
        config=config,
    )
    if logdir is not None and not is_chief(model.distribute_strategy):
        logdir = None  # only the chief writes, as Keras' own callbacks do
    logdir = _prepare_logdir(logdir)

    model._eval_epoch_iterator = None
    if validation_split and validation_data is None:
        (x, y, sample_weight), validation_data = array_slicing.train_validation_split(
            (x, y, sample_weight), validation_split=validation_split
        )
    if validation_data is not None:
        val_x, val_y, val_sample_weight = data_adapter_utils.unpack_x_y_sample_weight(
            validation_data
        )

    epoch_iterator = TFEpochIterator(
        x=x,
        y=y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        shuffle=shuffle,
        class_weight=class_weight,
        distribute_strategy=model.distribute_strategy,
        steps_per_execution=1,
    )
    _symbolic_build(model, epoch_iterator)
    epoch_iterator.reset()
    step_fn = cached_step(model, config)
    if not step_fn.custom and not model.optimizer.built and model.trainable_variables:
        # Under a strategy the optimizer's slots must exist before the step is
        # traced. (An unbuilt subclassed model has no variables yet outside a
        # strategy: it and its optimizer are built by the first trace, as in
        # model.fit.)
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)

    history = TraceHistory(logdir)
    cbs = list(callbacks or [])
    callback_list = keras.callbacks.CallbackList(
        [*cbs, history],
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=epoch_iterator.num_batches,
        model=model,
    )

    def stop():
        model.stop_training = True

    run = Session(
        step_fn,
        config,
        logdir,
        history,
        first_step=(
            step_fn.steps_done
            if step_fn.custom
            else int(np.asarray(model.optimizer.iterations))
        ),
        on_stop=stop,
        setup=None if step_fn.custom else functools.partial(_setup_facts, model),
    )
    model.stop_training = False
    try:
        callback_list.on_train_begin()
        training_logs = None
        logs = {}
        initial_epoch = model._initial_epoch or initial_epoch
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            steps_run = 0
            with epoch_iterator.catch_stop_iteration():
                for begin_step, end_step, iterator in epoch_iterator:
                    if run.profiler is not None:
                        run.profiler.begin_step(run.global_step)
                    run.clock.start()
                    callback_list.on_train_batch_begin(begin_step)
                    run.clock.fetch()
                    data = next(iterator)
                    out = run.step(data, epoch, getattr(iterator, "element_spec", None))
                    logs = out["result"]
                    callback_list.on_train_batch_end(end_step, logs)
                    run.after_step()
                    steps_run += 1
                    if model.stop_training:
                        break
            if steps_run == 0 and epoch == initial_epoch:
                raise ValueError(
                    "gradtrace.fit received no training data: the first epoch "
                    "produced no batch. Received: x of type "
                    f"{type(x).__name__}. Check that the dataset/generator is "
                    "not empty (and not already exhausted), or pass "
                    "`steps_per_epoch` with a repeated dataset."
                )
            epoch_logs = dict(model._get_metrics_result_or_logs(logs))
            if validation_data is not None and model._should_eval(
                epoch, validation_freq
            ):
                if getattr(model, "_eval_epoch_iterator", None) is None:
                    model._eval_epoch_iterator = TFEpochIterator(
                        x=val_x,
                        y=val_y,
                        sample_weight=val_sample_weight,
                        batch_size=batch_size,
                        distribute_strategy=model.distribute_strategy,
                        steps_per_execution=1,
                        steps_per_epoch=validation_steps,
                        shuffle=False,
                    )
                val_logs = _evaluate(
                    model, run.step_fn.test, model._eval_epoch_iterator, callback_list
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            # A custom train_step may not use model.optimizer at all.
            lr = None if step_fn.custom else _learning_rate(model.optimizer)
            run.epoch_end(
                epoch,
                epoch_logs
                if lr is None or "learning_rate" in epoch_logs
                else {**epoch_logs, "learning_rate": lr},
            )
            training_logs = epoch_logs
            if model.stop_training:
                break
        if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs > 0:
            model.optimizer.finalize_variable_values(model.trainable_weights)
        if getattr(model, "_eval_epoch_iterator", None) is not None:
            del model._eval_epoch_iterator
        run.finish()
        callback_list.on_train_end(logs=training_logs)
    finally:
        step_fn.steps_done = run.global_step
        run.close()
    return history


def _setup_facts(model, data):
    from .probes import setup

    return setup.gather(model, data)


def _symbolic_build(model, epoch_iterator):
    import tensorflow as tf

    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3's own build path fails here (keras-team/keras#20585: it
        # converts a PerReplica batch); build from one local, undistributed
        # batch instead.
        batch = next(iter(epoch_iterator.data_adapter.get_tf_dataset().take(1)))
        model._maybe_symbolic_build(data_batch=batch)
    else:
        model._maybe_symbolic_build(iterator=epoch_iterator)


def _evaluate(model, test_fn, epoch_iterator, callbacks):
    """Keras' `evaluate` loop on the cached validation iterator.

    The same steps as `model.evaluate(..., _use_cached_eval_dataset=True)`
    (`model.test_step`, the same callbacks, the same final metric read) minus
    its symbolic build (the model is built by now) and with a test function
    that also works under MultiWorkerMirroredStrategy.
    """
    from keras.src.utils.python_utils import pythonify_logs

    epoch_iterator.reset()
    model.stop_evaluating = False
    callbacks.on_test_begin()
    logs = {}
    model.reset_metrics()
    with epoch_iterator.catch_stop_iteration():
        for begin_step, end_step, iterator in epoch_iterator:
            callbacks.on_test_batch_begin(begin_step)
            logs = test_fn(next(iterator))
            callbacks.on_test_batch_end(end_step, logs)
            if model.stop_evaluating:
                break
    logs = pythonify_logs(model._get_metrics_result_or_logs(logs))
    callbacks.on_test_end(logs)
    return logs


def is_chief(strategy) -> bool:
    """Whether this process writes logs: not a non-chief multi-worker task."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def _prepare_logdir(logdir):
    if logdir is None:
        return None
    path = os.fspath(logdir)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise errors.LogdirError(
            f"`logdir` cannot be written: {e.strerror or e}. Received: "
            f"logdir={path!r}. Pass a folder you can create and write to, "
            "or logdir=None to record nothing to disk."
        ) from e
    return path


def _learning_rate(optimizer):
    opt = getattr(optimizer, "inner_optimizer", optimizer)
    try:
        return float(np.asarray(opt.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None

"""`gradtrace.fit`: the host loop, a drop-in for `model.fit`.

It is Keras' own `fit` (keras/src/backend/tensorflow/trainer.py) with three
changes: the batch is fetched on the host (so the wait for data is timed),
the step is gradtrace's probed `TrainStep`, and after each step the packed
statistics become records once, feed the detectors and go to the sinks.
Data handling (data adapters, `validation_split`, the epoch iterator),
callbacks (`CallbackList` with History and the progress bar) and validation
(`model.evaluate`) are Keras' own objects, so behaviour matches `model.fit`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import tempfile
import time

import keras
import numpy as np

from . import errors, tags
from .config import Config
from .diagnose import Diagnoser
from .findings import FindingBook
from .history import TraceHistory
from .profiler import StepProfiler
from .records import LAYER_FIELDS, StatsBlock
from .step import cached_step
from .timing import StepClock, retrace_reason, spec_of

HEATMAP_EVERY = 100
HEATMAP_STEPS = 256
# The detectors judge, and the sinks write, the steps of a block at once:
# every BLOCK_STEPS steps or BLOCK_SECS seconds, at once after a step with a
# NaN/Inf, and at every epoch end. (Per-step host work in Python was the main
# cost of the probes on small, fast models.)
BLOCK_STEPS = 32
BLOCK_SECS = 1.0


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
    if not model.optimizer.built and model.trainable_variables:
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

    run = _Run(model, config, logdir, history)
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
                    logs = out["logs"]
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
            run.epoch_end(epoch, epoch_logs)
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
        run.close()
    return history


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


class _Run:
    """Per-fit host state: the compiled step, the clock, records and sinks."""

    def __init__(self, model, config: Config, logdir, history: TraceHistory):
        self.model = model
        self.config = config
        self.history = history
        self.logdir = logdir
        self.step_fn = cached_step(model, config)
        from .timing import DeviceMemory

        # Peak device memory: GPU only (guarded: not every device reports it).
        self.clock = StepClock(memory=DeviceMemory.default() if config.timing else None)
        self.profiler = StepProfiler.from_config(config, logdir)
        self.tb = None
        self.jsonl = None
        self.console = None
        if logdir is not None:
            from .sinks.jsonl import JsonlSink
            from .sinks.tensorboard import TensorBoardSink

            self.tb = TensorBoardSink(logdir)
            self.jsonl = JsonlSink(os.path.join(logdir, tags.FINDINGS_FILE))
        if config.console:
            from .sinks.console import ConsoleSink

            self.console = ConsoleSink()
        self.book = FindingBook(self._on_finding)
        self.diagnoser = None
        self.global_step = int(np.asarray(model.optimizer.iterations))
        self._n_params = None
        self._loss_scale = None
        self._last_heatmap = None
        # Recent records for the heatmap images: kept only when they are drawn.
        self._recent = (
            collections.deque(maxlen=HEATMAP_STEPS)
            if self.tb is not None and self.step_fn.heavy is not None
            else None
        )
        self._pending = None
        # Steps not judged and written yet: (step, epoch, loss, packed stats,
        # loss scale, histograms, wall time) and (StepTime, wall time).
        self._rows: list[tuple] = []
        self._times: list[tuple] = []
        self._timed: list = []  # timing detections not filed yet
        self._flushed_at = time.monotonic()
        self._last_data: dict = {}  # variant -> the last input (retrace reasons)
        self._epoch_of_last_step = None

    # -- per step -----------------------------------------------------------
    def step(self, data, epoch, spec=None):
        """Runs one step; its statistics join the pending block."""
        self.clock.data_ready()
        cfg = self.config
        step = self.global_step
        variant = "light"
        if self.step_fn.heavy is not None and step % cfg.histogram_every == 0:
            variant = "heavy"
        counts = self.step_fn.trace_counts
        traces = counts[variant]
        self.step_fn.trace_for(variant, spec)
        out = getattr(self.step_fn, variant)(data)
        stats = out["stats"].numpy() if "stats" in out else None
        loss = float(out["loss"].numpy())
        scale = float(out["loss_scale"].numpy()) if "loss_scale" in out else None
        bad = bool(out["bad"].numpy()) if "bad" in out else False
        self.clock.compute_done()
        retraced = counts[variant] != traces
        reason = None
        if cfg.timing:
            if retraced:
                reason = (
                    f"first call of the {variant} step (trace and compile)"
                    if traces == 0
                    else retrace_reason(self._last_spec(variant), spec_of(data))
                )
            self._last_data[variant] = data
        self._pending = (step, epoch, retraced, reason)
        # Recorded before the callbacks: a step that ran is kept even if a
        # callback raises right after it (`close` flushes the block).
        self._rows.append(
            (step, epoch, loss, stats, scale, out.get("hists"), time.time())
        )
        self.global_step = step + 1
        if (
            bad
            or not math.isfinite(loss)
            or (scale is not None and scale < cfg.loss_scale_min)
        ):
            # NaN/Inf: judged now, so the run can stop right after this step.
            self.flush()
        return out

    def _last_spec(self, variant):
        # The previous call's input, in this fit or (cached step) an earlier one.
        data = self._last_data.get(variant)
        if data is not None:
            return spec_of(data)
        return self.step_fn.last_input_spec[variant]

    def after_step(self):
        """After the callbacks: closes the step's clock; judges and writes
        the pending block when it is full (or old)."""
        step, epoch, retraced, reason = self._pending
        self._pending = None
        if self.config.timing:
            t = self.clock.finish(step, epoch, retraced, reason, self.clock.now())
            if self.step_fn.multi_worker:
                # Every worker's own part of the step, for the straggler rule
                # (one small collective per step, multi-worker runs only).
                # An epoch's first data wait is left out: there every worker
                # waits for the slowest to start the epoch (iterator start-up,
                # the chief's epoch-end logging), which is not its own delay.
                first = epoch != self._epoch_of_last_step
                own = self.step_fn.gather_worker_ms(
                    t.host_ms + (0.0 if first else t.data_ms)
                )
                t = dataclasses.replace(t, worker_ms=tuple(float(v) for v in own))
            self.history.step_times.append(t)
            self._times.append((t, time.time()))
            if self.diagnoser is None:
                self._start_diagnosis(step)
            # Timing rules every step (filed with the block), so that the
            # profiler can trace the steps right after a slow one.
            found = self.diagnoser.judge_time(t)
            if found:
                self._timed += found
                if self.profiler is not None:
                    for d in found:
                        if d.kind == "slow_step":
                            self.profiler.slow_step(d.step)
        self._epoch_of_last_step = epoch
        if self.profiler is not None:
            self.profiler.end_step(step)
        if (
            len(self._rows) >= BLOCK_STEPS
            or len(self._times) >= BLOCK_STEPS
            or time.monotonic() - self._flushed_at >= BLOCK_SECS
        ):
            self.flush()

    def flush(self):
        """Judges the pending steps as one block and writes them."""
        self._flushed_at = time.monotonic()
        rows, self._rows = self._rows, []
        times, self._times = self._times, []
        timed, self._timed = self._timed, []
        if not rows and not times:
            return
        if self.diagnoser is None:
            self._start_diagnosis(rows[0][0] if rows else times[0][0].step)
        block = self._block(rows) if rows else None
        self.diagnoser.observe(block, timed=timed)
        if self.tb is not None:
            every = self.config.write_every
            times = [(t, w) for t, w in times if t.step % every == 0]
            t_steps, t_walls = [t for t, _ in times], [w for _, w in times]
            if block is not None:
                # A step's statistics and its timing go out as one event.
                self.tb.stats_block(
                    block,
                    [r[6] for r in rows],
                    np.flatnonzero(block.steps % every == 0),
                    t_steps,
                    t_walls,
                )
                self._histograms(block, rows)
            else:
                self.tb.times_block(t_steps, t_walls)
        if self.diagnoser.stop_requested and self.config.stop_on_non_finite:
            self.model.stop_training = True

    def _block(self, rows) -> StatsBlock:
        names = self.step_fn.layer_names
        values = {}
        if rows[0][3] is not None:
            packed = np.stack([r[3] for r in rows]).astype(np.float64)  # [K, L, F]
            values = {f: packed[:, :, j] for j, f in enumerate(LAYER_FIELDS)}
        values["n_params"] = self._n_params
        scales = [r[4] for r in rows]
        return StatsBlock(
            steps=[r[0] for r in rows],
            epochs=[r[1] for r in rows],
            loss=[r[2] for r in rows],
            layers=names,
            values=values,
            loss_scale=(
                None if scales[0] is None else np.array(scales, dtype=np.float64)
            ),
        )

    def _histograms(self, block, rows):
        """Histograms of the block's heavy steps, and the heatmap images."""
        for i, r in enumerate(rows):
            if self._recent is not None and block.values.keys() - {"n_params"}:
                self._recent.append((block.grad_rms[i], block.update_ratio[i]))
            hists = r[5]
            if hists is None:
                continue
            step = r[0]
            self.tb.histograms(step, self.step_fn.hist_tags, hists.numpy())
            # Heatmap images span the last HEATMAP_STEPS steps: one every
            # HEATMAP_EVERY steps is enough even when histograms run every step.
            if self._last_heatmap is None or step - self._last_heatmap >= HEATMAP_EVERY:
                self._last_heatmap = step
                self._heatmaps(step)

    def _heatmaps(self, step):
        """Layer x step images of log10 gradient RMS and update ratio."""
        if not self._recent or not self.step_fn.layer_infos:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.config.gradients:
                m = np.stack([g for g, _ in self._recent], axis=1)
                self.tb.heatmap(tags.GRADIENT_HEATMAP, step, np.log10(m))
            if self.config.updates:
                m = np.stack([u for _, u in self._recent], axis=1)
                self.tb.heatmap(tags.UPDATE_HEATMAP, step, np.log10(m))

    def _start_diagnosis(self, first_step):
        infos = self.step_fn.layer_infos or ()
        if self.logdir is not None:
            from . import runinfo

            runinfo.write(self.logdir, self.config, infos)
        self._n_params = np.array([i.n_params for i in infos], dtype=np.float64)
        self.diagnoser = Diagnoser(self.config, infos, self.book)
        for layer, names in self.step_fn.no_gradient.items():
            self.book.add(
                "no_gradient",
                first_step,
                layer=layer,
                message=(
                    f"trainable variable(s) {', '.join(names)} received no gradient "
                    "(None): the optimizer never changes them."
                ),
                hint=(
                    "If that is intended, set `layer.trainable = False`; otherwise "
                    "check that the layer's output reaches the loss."
                ),
            )

    # -- per epoch / end ----------------------------------------------------
    def epoch_end(self, epoch, logs):
        self.flush()
        if self.tb is not None:
            logs = dict(logs)
            lr = _learning_rate(self.model.optimizer)
            if lr is not None and "learning_rate" not in logs:
                logs["learning_rate"] = lr
            self.tb.epoch(epoch, logs)
        if self.jsonl is not None:
            self.jsonl.flush()

    def finish(self):
        self.flush()
        if self.diagnoser is not None:
            self.diagnoser.finish()

    def close(self):
        self.flush()
        for variant, data in self._last_data.items():
            # A later fit explains its first retrace against this input.
            self.step_fn.last_input_spec[variant] = spec_of(data)
        self._last_data = {}
        if self.profiler is not None:
            self.profiler.close()
        self.history.findings = self.book.findings
        if self.tb is not None:
            self.tb.close()
        if self.jsonl is not None:
            self.jsonl.close()

    def _on_finding(self, finding, is_new):
        self.history.findings = self.book.findings
        if self.jsonl is not None:
            self.jsonl.write(finding, is_new)
        if self.console is not None:
            self.console.write(finding, is_new)
        if self.tb is not None and is_new:
            from .sinks.console import format_finding

            self.tb.finding(finding.step, format_finding(finding))


def _learning_rate(optimizer):
    opt = getattr(optimizer, "inner_optimizer", optimizer)
    try:
        return float(np.asarray(opt.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None

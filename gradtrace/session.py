"""The host side of a traced run, shared by `gradtrace.fit` and `gradtrace.Tracer`.

A `Session` runs one step at a time through a compiled `step.ProbedStep`,
times it (`timing.StepClock`), turns its packed statistics into records once
(`records.StatsBlock`), has the `Diagnoser` judge them block by block and
hands everything to the sinks (TensorBoard, findings.jsonl, console). The fit
loop and the Tracer differ only in where steps come from and what stops them.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time

import numpy as np

from . import tags
from .budget import LogPlan
from .budget import plan as plan_log
from .config import Config
from .diagnose import Diagnoser
from .findings import FindingBook
from .profiler import StepProfiler
from .records import LAYER_FIELDS, StatsBlock
from .timing import StepClock, retrace_reason, spec_of

HEATMAP_EVERY = 100
HEATMAP_STEPS = 256
# The detectors judge, and the sinks write, the steps of a block at once:
# every BLOCK_STEPS steps or BLOCK_SECS seconds, at once after a step with a
# NaN/Inf, and at every epoch end. (Per-step host work in Python was the main
# cost of the probes on small, fast models.)
BLOCK_STEPS = 32
BLOCK_SECS = 1.0
# A big model's light steps measure weight and update norms every this many
# steps (and where per-layer scalars are written): `_measures_weights`.
WEIGHT_NORMS_EVERY = 8
_WEIGHT_COL = LAYER_FIELDS.index("weight_norm")


def scalar_items(result) -> dict[str, float]:
    """{key: value} of the scalars a step returned (a dict of scalars, or a
    bare scalar, which is ``loss``); anything else is left out."""

    def scalar(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float, np.number)):
            return float(v)
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) == 0 and hasattr(v, "numpy"):
            try:
                return float(v.numpy())
            except (TypeError, ValueError):
                return None
        return None

    if isinstance(result, dict):
        out = {}
        for k, v in result.items():
            f = scalar(v)
            if f is not None:
                out[str(k)] = f
        return out
    f = scalar(result)
    return {} if f is None else {"loss": f}


def _examples(data) -> int | None:
    """Examples in a batch: the leading dimension of its first tensor (None
    when unknown, e.g. per-replica values)."""
    from keras import tree

    leaves = tree.flatten(data)
    shape = getattr(leaves[0], "shape", None) if leaves else None
    n = shape[0] if shape is not None and len(shape) else None
    return int(n) if n is not None else None


def pick_loss_key(keys) -> str | None:
    """The series the loss rules judge: ``loss``, else the first key that
    names a loss, else the first scalar; None when there is none."""
    keys = list(keys)
    if "loss" in keys:
        return "loss"
    return next((k for k in keys if "loss" in k.lower()), keys[0] if keys else None)


class Session:
    """Host state of one traced run: the compiled step, the clock, records, sinks.

    Args:
        step_fn: the run's `step.ProbedStep`.
        config: the run's `gradtrace.Config`.
        logdir: where to write, or None.
        results: where `findings` and `step_times` go (a `TraceHistory`, a
            `Tracer`).
        first_step: the global step number of the first step.
        on_stop: called when a non-finite finding asks the run to stop.
        setup: ``data -> SetupFacts | None``, called with the first batch
            (`gradtrace.probes.setup.gather`); its facts are judged at the
            first step (`loss_mismatch`, `input_scale`).
    """

    def __init__(
        self,
        step_fn,
        config: Config,
        logdir,
        results,
        *,
        first_step=0,
        on_stop=None,
        setup=None,
    ):
        self.config = config
        self.history = results
        self.logdir = logdir
        self.step_fn = step_fn
        self.on_stop = on_stop
        self._setup = setup
        self.setup_facts = None
        from .timing import DeviceMemory

        # Peak device memory: GPU only (guarded: not every device reports it).
        self.clock = StepClock(memory=DeviceMemory.default() if config.timing else None)
        self.profiler = StepProfiler.from_config(config, logdir)
        self.tb = None
        self.jsonl = None
        self.console = None
        if logdir is not None:
            import tensorflow as tf

            from .sinks.guard import Guarded
            from .sinks.jsonl import JsonlSink
            from .sinks.tensorboard import TensorBoardSink

            # Logging never stops training (see sinks.guard).
            errors = (OSError, tf.errors.OpError)
            self.tb = Guarded(
                TensorBoardSink(logdir), "TensorBoard event files", logdir, errors
            )
            self.jsonl = Guarded(
                JsonlSink(os.path.join(logdir, tags.FINDINGS_FILE)),
                tags.FINDINGS_FILE,
                logdir,
                errors,
            )
        if config.console:
            from .sinks.console import ConsoleSink

            self.console = ConsoleSink()
        self.book = FindingBook(self._on_finding)
        # Histograms exist only to be written: no heavy step without a logdir.
        self._heavy = step_fn.heavy if self.tb is not None else None
        # What goes to disk how often (gradtrace.budget): planned from the
        # bytes of the first block's scalars and of the largest heavy step
        # (`step_fn.heavy_bytes`: a later fit of the same model starts from it).
        self.plan = LogPlan(config.write_every, config.histogram_every)
        self._sizes = None  # (model-wide event, per-layer scalars) bytes
        self.diagnoser = None
        self.global_step = self._first_step = int(first_step)
        # Steps whose body returns its logs (a custom train_step, a Tracer
        # function): the scalars it returns, and the one the loss rules judge.
        self.loss_key = None
        self.scalar_keys: tuple[str, ...] | None = None
        self._n_params = None
        self._last_heatmap = None
        # Recent records for the heatmap images: kept only when they are drawn.
        self._recent = (
            collections.deque(maxlen=HEATMAP_STEPS) if self._heavy is not None else None
        )
        self._pending = None
        # Steps not judged and written yet: (step, epoch, loss, packed stats,
        # loss scale, histograms, wall time, returned scalars) and
        # (StepTime, wall time).
        self._rows: list[tuple] = []
        self._times: list[tuple] = []
        self._timed: list = []  # timing detections not filed yet
        self._flushed_at = time.monotonic()
        self._last_data: dict = {}  # variant -> the last input (retrace reasons)
        self._epoch_of_last_step = None
        self._weight_norms = None  # the last measured (`_carry_weight_norms`)

    # -- per step -----------------------------------------------------------
    def step(self, data, epoch, spec=None, kwargs=None):
        """Runs one step on `data` (the positional arguments of a Tracer
        step: a tuple); its statistics join the pending block."""
        self.clock.data_ready()
        cfg = self.config
        step = self.global_step
        variant = "light"
        if self._heavy is not None and (
            step % self.plan.hist_every == 0
            # A run that starts mid-count (resumed, or its optimizer already
            # counted steps) compiles its heavy variant at its first step, as
            # a fresh run does at step 0: no later step stalls for a compile.
            or (step == self._first_step and self.step_fn.trace_counts["heavy"] == 0)
        ):
            variant = "heavy"
        if self._setup is not None:
            self.setup_facts, self._setup = self._setup(data), None
        counts = self.step_fn.trace_counts
        traces = counts[variant]
        fn = getattr(self.step_fn, variant)
        if kwargs is None:
            self.step_fn.trace_for(variant, spec)
        sparse = variant == "light" and self.step_fn.sparse_norms
        measured = not sparse or self._measures_weights(step)
        if sparse:
            self.step_fn.measure_weights(measured)
        out = fn(data) if kwargs is None else fn(*data, **kwargs)
        stats = out["stats"].numpy() if "stats" in out else None
        bad = bool(out["bad"].numpy()) if "bad" in out else False
        if stats is not None:
            # A NaN/Inf step measured every norm (`probes.recorder`).
            stats = self._carry_weight_norms(stats, measured or bad)
        extras = None
        if "loss" in out:
            loss = float(out["loss"].numpy())
        else:
            values = scalar_items(out["result"])
            if self.scalar_keys is None:
                self.loss_key = pick_loss_key(values)
                self.scalar_keys = tuple(k for k in values if k != "loss")
            extras = [values.get(k, math.nan) for k in self.scalar_keys]
            # No scalar returned (or not this step): no loss value to judge
            # (0 keeps the loss rules quiet; batch_loss is then not written).
            loss = values.get(self.loss_key, 0.0) if self.loss_key else 0.0
        scale = float(out["loss_scale"].numpy()) if "loss_scale" in out else None
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
        clipped = float(out["clipped"].numpy()) if "clipped" in out else None
        examples = _examples(data)
        self._rows.append(
            (
                step,
                epoch,
                loss,
                stats,
                scale,
                out.get("hists"),
                time.time(),
                extras,
                clipped,
                examples,
            )
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

    def _measures_weights(self, step) -> bool:
        """A big model's light step measures weight and update norms every
        `WEIGHT_NORMS_EVERY` steps and on every step whose per-layer scalars
        are written (so every written value is measured); also at its first
        step (a resumed run, or `write_every` > 1) so there is one to carry."""
        return (
            self._weight_norms is None  # nothing measured yet in this run
            or step % WEIGHT_NORMS_EVERY == 0
            or step % self.plan.layer_every == 0
        )

    def _carry_weight_norms(self, stats, measured):
        """A step that did not measure weight norms keeps the last measured
        ones (its update norms stay NaN: not measured)."""
        if measured:
            self._weight_norms = stats[:, _WEIGHT_COL].copy()
        elif self._weight_norms is not None and len(self._weight_norms) == len(stats):
            stats[:, _WEIGHT_COL] = self._weight_norms
        return stats

    def _last_spec(self, variant):
        # The previous call's input, in this fit or (cached step) an earlier one.
        data = self._last_data.get(variant)
        if data is not None:
            return spec_of(data)
        return getattr(self.step_fn, "last_input_spec", {}).get(variant)

    def after_step(self):
        """After the callbacks: closes the step's clock; judges and writes
        the pending block when it is full (or old)."""
        step, epoch, retraced, reason = self._pending
        self._pending = None
        if self.config.timing:
            t = self.clock.finish(step, epoch, retraced, reason, self.clock.now())
            if getattr(self.step_fn, "multi_worker", False):
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
                extra = None
                if self.scalar_keys:
                    extra = (
                        tuple(tags.batch_tag(k) for k in self.scalar_keys),
                        np.array([r[7] for r in rows], dtype=np.float64),
                    )
                with_loss = self.loss_key is not None or self.scalar_keys is None
                if self._sizes is None:
                    self._sizes = self.tb.block_bytes(
                        block, extra, with_loss, self.config.timing
                    )
                    self._replan()
                self.tb.stats_block(
                    block,
                    [r[6] for r in rows],
                    np.flatnonzero(block.steps % every == 0),
                    t_steps,
                    t_walls,
                    extra=extra,
                    with_loss=with_loss,
                    layer_every=self.plan.layer_every,
                )
                self._histograms(block, rows)
            else:
                self.tb.times_block(t_steps, t_walls)
        if (
            self.diagnoser.stop_requested
            and self.config.stop_on_non_finite
            and self.on_stop is not None
        ):
            self.on_stop()

    def _block(self, rows) -> StatsBlock:
        names = self.step_fn.layer_names
        values = {}
        if rows[0][3] is not None:
            packed = np.stack([r[3] for r in rows]).astype(np.float64)  # [K, L, F]
            values = {f: packed[:, :, j] for j, f in enumerate(LAYER_FIELDS)}
        values["n_params"] = self._n_params
        scales = [r[4] for r in rows]
        block = StatsBlock(
            steps=[r[0] for r in rows],
            epochs=[r[1] for r in rows],
            loss=[r[2] for r in rows],
            layers=names,
            values=values,
            loss_scale=(
                None if scales[0] is None else np.array(scales, dtype=np.float64)
            ),
        )
        if any(r[9] is not None for r in rows):
            block.examples = np.array(
                [np.nan if r[9] is None else r[9] for r in rows], dtype=np.float64
            )
        if rows[0][8] is not None:
            # 1.0 where an optimizer's gradient clipping engaged at that step
            block.clipped = np.array([r[8] for r in rows], dtype=np.float64)
        return block

    def _histograms(self, block, rows):
        """Histograms of the block's heavy steps, and the heatmap images."""
        for i, r in enumerate(rows):
            if self._recent is not None and block.values.keys() - {"n_params"}:
                self._recent.append((block.grad_rms[i], block.update_ratio[i]))
            hists = r[5]
            if hists is None:
                continue
            step = r[0]
            before = self.tb.bytes_written
            self.tb.histograms(step, self.step_fn.hist_tags, hists.numpy())
            # Heatmap images span the last HEATMAP_STEPS steps: one every
            # HEATMAP_EVERY steps is enough even when histograms run every step.
            if self._last_heatmap is None or step - self._last_heatmap >= HEATMAP_EVERY:
                self._last_heatmap = step
                self._heatmaps(step)
            written = self.tb.bytes_written - before
            if written > (self.step_fn.heavy_bytes or 0):
                self.step_fn.heavy_bytes = written
                self._replan()

    def _replan(self):
        """The log plan from what was measured so far (gradtrace.budget)."""
        if self._sizes is None:
            return
        cfg = self.config
        budget = cfg.log_budget_kb
        self.plan = plan_log(
            None if budget is None else budget * 1000.0,
            wide_bytes=self._sizes[0],
            layer_bytes=self._sizes[1],
            heavy_bytes=0 if self._heavy is None else self.step_fn.heavy_bytes,
            write_every=cfg.write_every,
            histogram_every=cfg.histogram_every,
        )
        self._tell_timing()

    def _tell_timing(self):
        # The timing rules give heavy steps their own baseline.
        if self.diagnoser is not None:
            self.diagnoser.timing.heavy_every = (
                None if self._heavy is None else self.plan.hist_every
            )

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

            try:
                runinfo.write(self.logdir, self.config, infos, self.setup_facts)
            except OSError as e:
                import warnings

                warnings.warn(
                    f"gradtrace: cannot write {runinfo.RUN_FILE} in logdir "
                    f"{self.logdir!r} ({type(e).__name__}: {e}); training and "
                    "diagnosis go on.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        nested = getattr(self.step_fn.recorder, "nested_applies", 0)
        if nested:
            import warnings

            warnings.warn(
                f"gradtrace: {nested} optimizer.apply call(s) of the step ran inside "
                "a tf.cond or tf.while_loop, whose tensors cannot be read from the "
                "step's graph: their gradients and updates are not recorded. Call "
                "the optimizer outside such blocks (a Python loop unrolls in the "
                "traced step) to have them recorded.",
                RuntimeWarning,
                stacklevel=2,
            )
        self._n_params = np.array([i.n_params for i in infos], dtype=np.float64)
        self.diagnoser = Diagnoser(self.config, infos, self.book)
        self._tell_timing()
        if self.setup_facts is not None:
            self.diagnoser.observe_setup(self.setup_facts, first_step)
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
        """Judges and writes what is pending; `epoch_<key>` scalars of `logs`."""
        self.flush()
        self._closing_heatmaps(run_end=False)
        if self.tb is not None:
            self.tb.epoch(epoch, logs)
        if self.jsonl is not None:
            self.jsonl.flush()

    def finish(self):
        self.flush()
        self._closing_heatmaps(run_end=True)
        if self.diagnoser is not None:
            self.diagnoser.finish()

    def _closing_heatmaps(self, run_end):
        """The heatmap images also at the run's end, so a short run shows
        more than its step-0 column, and at an epoch's end when heavy steps
        would have drawn them by now (images of a big model weigh ~0.1 MB
        each: not at every end of short epochs, which would break the log
        budget)."""
        last = self.global_step - 1
        due = (
            run_end
            or self._last_heatmap is None
            or last - self._last_heatmap >= max(HEATMAP_EVERY, self.plan.hist_every)
        )
        if self._recent and self._last_heatmap != last and due:
            self._last_heatmap = last
            self._heatmaps(last)

    def close(self):
        self.flush()
        for variant, data in self._last_data.items():
            # A later fit explains its first retrace against this input.
            if hasattr(self.step_fn, "last_input_spec"):
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

"""gradtrace's own training step: one `tf.GradientTape` pass, probed in-graph.

`TrainStep` builds, once per fit, up to two compiled functions over the same
Python body (Keras' `train_step`, reproduced): a *light* one run every step
and a *heavy* one (the light outputs plus histogram buckets) run every
`Config.histogram_every` steps. Both are `tf.function(reduce_retracing=True,
jit_compile=model.jit_compile)`; they are traced on first use and reused.

Data contract of one call, `step(data) -> dict` of tensors:

    "logs":  the model's metrics, as `model.compute_metrics` returns them
    "loss":  scalar float32, the step's total loss (regularization included,
             loss scaling undone)
    "stats": [n_layers, len(records.LAYER_FIELDS)] float32, rows in forward
             order (`TrainStep.layer_infos`), NaN = not measured; only when a
             probe family is on
    "hists": [n, 2 + bins] float32, one histogram per row (`probes.stats.
             histogram`), tags in `TrainStep.hist_tags`; heavy step only

All statistics come from the tensors of the pass that trains the model: the
tape's gradients (before any clipping by the optimizer, unscaled under loss
scaling; under a strategy, all-reduced), the variables just after
`optimizer.apply`, the update it applied (captured from the optimizer's
`assign_add`/`assign_sub`, or the difference from a copy taken just before),
and the layer outputs of the training forward pass (see `probes.capture`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import tensorflow as tf
from keras import tree

from . import layers as layers_mod
from . import tags
from .probes import stats as st
from .probes.capture import can_capture_updates, capture_outputs, capture_updates
from .records import ACT_FIELDS, GRAD_FIELDS, LAYER_FIELDS, LayerInfo

_NAN = float("nan")
HIST_BINS = 30


def _unpack(data):
    # Keras' own unpacking of (x,), (x, y), (x, y, sample_weight).
    from keras.src.trainers.data_adapters import data_adapter_utils

    return data_adapter_utils.unpack_x_y_sample_weight(data)


def _none_for_optionals(data):
    # Keras turns (nested) tf.experimental.Optional inputs into None.
    return tree.map_structure(
        lambda i: None if isinstance(i, tf.experimental.Optional) else i, data
    )


# Compiled steps kept per model, one per Config (fits that alternate a few
# configs on one model do not trace again).
MAX_CACHED_STEPS = 4


def cached_step(model, config) -> TrainStep:
    """The model's TrainStep for this config, built once and reused.

    Like Keras' `model.train_function`, the compiled step lives as long as
    the model and its compiled state: a new `compile()` (new optimizer, loss
    or metrics objects) builds a new one; the last `MAX_CACHED_STEPS`
    configs each keep theirs.
    """
    key = (
        config,
        id(model.optimizer),
        id(getattr(model, "_compile_loss", None)),
        id(getattr(model, "_compile_metrics", None)),
        model.run_eagerly,
        model.jit_compile,
    )
    cache = model.__dict__.get("_gradtrace_steps")
    if cache is None:
        cache = {}
        # Bypass Keras' attribute tracking: this is a cache, not model state.
        object.__setattr__(model, "_gradtrace_steps", cache)
    step = cache.get(key)
    if step is None:
        # Steps of a previous compile() can never be used again.
        for k in [k for k in cache if k[1:] != key[1:]]:
            del cache[k]
        while len(cache) >= MAX_CACHED_STEPS:  # the oldest config goes
            del cache[next(iter(cache))]
        step = cache[key] = TrainStep(model, config)
    return step


def _num_workers(strategy) -> int:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def _all_reduce_sum(grads):
    ctx = tf.distribute.get_replica_context()
    present = [g for g in grads if g is not None]
    if ctx is None or not present:
        return grads
    reduced = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(reduced) for g in grads]


class TrainStep:
    """The compiled train step(s) of one `gradtrace.fit` call."""

    def __init__(self, model, config):
        self.model = model
        self.config = config
        self.probed = config.probes_on
        self.units = (
            layers_mod.select(layers_mod.leaf_layers(model), config.layers)
            if self.probed
            else []
        )
        # Which trainable variables each probed layer owns: indexed when the
        # step is traced (an unbuilt subclassed model creates its variables
        # during the first trace, as with model.fit).
        self._var_idx: list[list[int]] = []
        self._scale = getattr(model.optimizer, "dynamic_scale", None)
        self.strategy = model.distribute_strategy
        self.n_replicas = int(self.strategy.num_replicas_in_sync)
        self.xla = bool(model.jit_compile) and not model.run_eagerly
        self.multi_worker = _num_workers(self.strategy) > 1
        # Capture the applied update instead of copying the weights: one
        # device, a known optimizer (see probes.capture.can_capture_updates).
        self._capture_updates = self.n_replicas == 1 and can_capture_updates(
            model.optimizer
        )
        self.layer_infos: tuple[LayerInfo, ...] | None = None
        # {layer name: [variable names]} whose gradient was None (set when traced)
        self.no_gradient: dict[str, list[str]] = {}
        self.trace_counts = {"light": 0, "heavy": 0}
        self.hist_tags: tuple[str, ...] = ()
        self._traced_specs = {"light": set(), "heavy": set()}
        self._last_spec = {"light": None, "heavy": None}
        self.last_input_spec = {"light": None, "heavy": None}  # see training._Run.step
        self.light = self._compile(heavy=False)
        self.heavy = (
            self._compile(heavy=True) if (config.histograms and self.probed) else None
        )

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.layer_infos or ())

    def _compile(self, heavy: bool):
        fn = functools.partial(self._replica_step, heavy=heavy)
        strategy = self.model.distribute_strategy
        variant = "heavy" if heavy else "light"

        @tf.autograph.experimental.do_not_convert
        def step(data):
            if not tf.executing_eagerly():  # tracing (run_eagerly never traces)
                self.trace_counts[variant] += 1
            data = _none_for_optionals(data)
            out = strategy.run(fn, args=(data,))
            return self._merge_replicas(out)

        if self.model.run_eagerly:
            return step
        return tf.function(
            step, reduce_retracing=True, jit_compile=bool(self.model.jit_compile)
        )

    def trace_for(self, variant: str, spec) -> None:
        """Traces `variant` once for the dataset's element spec.

        The spec has a `None` batch dimension (and `None` wherever the data
        varies), so, as with model.fit, whose function takes the iterator, a
        smaller last batch does not retrace. Later calls with concrete
        tensors reuse this trace (`reduce_retracing`); a spec the function
        already has a trace for costs a cache lookup.
        """
        if spec is self._last_spec[variant]:  # the same iterator: nothing to do
            return
        self._last_spec[variant] = spec
        key = str(spec)  # specs of dict inputs are not hashable
        if spec is None or self.model.run_eagerly or key in self._traced_specs[variant]:
            return
        self._traced_specs[variant].add(key)
        getattr(self, variant).get_concrete_function(spec)

    def gather_worker_ms(self, ms: float):
        """Every worker's value of `ms`, in task order (multi-worker only)."""
        strategy = self.strategy
        with strategy.scope():
            value = strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant([ms], tf.float32)
            )
            return strategy.gather(value, axis=0).numpy()

    @functools.cached_property
    def test(self):
        """The model's own `test_step`, compiled for validation.

        Keras' `test_function` cannot be used under
        MultiWorkerMirroredStrategy (it reduces scalar metrics along axis 0),
        so validation runs `model.test_step` through the same
        strategy-aware wrapper as training.
        """
        strategy = self.strategy
        model = self.model

        @tf.autograph.experimental.do_not_convert
        def test(data):
            data = _none_for_optionals(data)
            return self._merge_replicas(
                {"logs": strategy.run(model.test_step, args=(data,))}
            )["logs"]

        if model.run_eagerly:
            return test
        return tf.function(
            test, reduce_retracing=True, jit_compile=bool(model.jit_compile)
        )

    def _merge_replicas(self, out):
        """Per-replica outputs -> one value each (cross-replica context)."""
        if not any(
            isinstance(v, tf.distribute.DistributedValues) for v in tree.flatten(out)
        ):
            return out
        from keras.src.backend.tensorflow.trainer import reduce_per_replica

        merged = {"logs": reduce_per_replica(out["logs"], self.strategy, "auto")}
        # Everything else was all-reduced inside the replica step, so every
        # replica holds the same value (activation histograms: replica 0's).
        for k, v in out.items():
            if k != "logs":
                merged[k] = tree.map_structure(
                    lambda t: self.strategy.experimental_local_results(t)[0], v
                )
        return merged

    # -- the step body (pure tensor code) -----------------------------------
    def _replica_step(self, data, heavy: bool):
        from keras.src.losses import loss as loss_module

        model = self.model
        cfg = self.config
        x, y, sample_weight = _unpack(data)
        capture_layers = self.units if cfg.activations else []
        with capture_outputs(capture_layers) as acts, tf.GradientTape() as tape:
            if model._call_has_training_arg:
                y_pred = model(x, training=True)
            else:
                y_pred = model(x)
            loss = model._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            batch = tf.shape(next(i for i in tree.flatten(x) if i is not None))[0]
            model._loss_tracker.update_state(
                loss_module.unscale_loss_for_distribution(loss), sample_weight=batch
            )
            scaled_loss = model.optimizer.scale_loss(loss)
        out = {"loss": tf.cast(loss, tf.float32)}
        if self.n_replicas > 1 and not self.probed:
            # Keras scales each replica's loss by 1/replicas: the sum is the
            # loss of the global batch. (With probes on, `_stats` reduces it
            # in its single batched all-reduce.)
            out["loss"] = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, out["loss"]
            )
        tw = model.trainable_weights
        index = {id(v): i for i, v in enumerate(tw)}
        self._var_idx = [
            [index[id(v)] for v in u.trainable_weights if id(v) in index]
            for u in self.units
        ]
        skipped = None
        if tw:
            grads = tape.gradient(scaled_loss, tw)
            probe_grads = grads
            if self.n_replicas > 1 and cfg.gradients and self.probed:
                # Statistics of the gradient the optimizer applies: the sum over
                # replicas (Keras all-reduces inside `apply`, after clipping;
                # this one extra all-reduce is only for the probes).
                probe_grads = _all_reduce_sum(grads)
            if self._scale is not None:
                scale = tf.cast(self._scale, tf.float32)
                out["loss_scale"] = scale
                if cfg.gradients and self.probed:
                    probe_grads = [
                        None if g is None else tf.cast(g, tf.float32) / scale
                        for g in probe_grads
                    ]
                    # A loss-scale overflow makes the optimizer skip the step:
                    # normal under mixed precision, not a non-finite finding.
                    present = [g for g in probe_grads if g is not None]
                    if present:
                        skipped = ~tf.math.is_finite(st.sumsq(present))
            before = deltas = None
            if cfg.updates and self.probed and self._capture_updates:
                # The update the optimizer applies, captured: no weight copy.
                with capture_updates(model.optimizer) as captured:
                    model.optimizer.apply_gradients(zip(grads, tw))
                deltas = {}
                for idx in self._var_idx:
                    for i in idx:
                        parts = captured.get(id(tw[i].value), [])
                        if parts:
                            deltas[i] = tf.add_n(
                                [tf.cast(t, tf.float32) for _, t in parts]
                            )
            else:
                if cfg.updates and self.probed:
                    before = {
                        i: tf.identity(tw[i].value)
                        for idx in self._var_idx
                        for i in idx
                    }
                model.optimizer.apply_gradients(zip(grads, tw))
        else:
            warnings.warn(
                "The model does not have any trainable weights.", stacklevel=2
            )
            grads = probe_grads = []
            before = deltas = None
        out["logs"] = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if self.probed:
            out["stats"], order = self._stats(
                probe_grads, before, acts, y_pred, loss, heavy, deltas
            )
            if self.n_replicas > 1:
                out["loss"] = self._global_loss
            if skipped is not None:
                grad_cols = [LAYER_FIELDS.index(f) for f in GRAD_FIELDS]
                mask = tf.constant([j in grad_cols for j in range(len(LAYER_FIELDS))])
                out["stats"] = tf.where(
                    skipped & mask[None, :], tf.constant(_NAN), out["stats"]
                )
            if self._bad is not None:
                # Some norm, moment or the loss is NaN/Inf: the host judges
                # this step at once instead of with its block.
                out["bad"] = self._bad
            if heavy:
                out["hists"] = self._heavy_hists
        return out

    def _stats(self, grads, before, acts, y_pred, loss, heavy, deltas=None):
        """The packed [L, len(LAYER_FIELDS)] statistics of this step.

        Built family by family as whole columns, not layer by layer (a step
        of ~100 small ops instead of ~400: on a 3 ms step each op counts).
        """
        cfg = self.config
        tw = self.model.trainable_weights
        # Forward order: layers in the order their outputs were produced,
        # then layers that own weights but whose output was not captured.
        pos = {id(u): k for k, u in enumerate(self.units)}
        order = [pos[i] for i in acts if i in pos]
        done = set(order)
        order += [
            k for k in range(len(self.units)) if k not in done and self._var_idx[k]
        ]
        outputs = [t for t in tree.flatten(y_pred) if isinstance(t, tf.Tensor)]
        n = len(order)
        infos = []
        # Tensors whose L2 norms are taken per (family, layer) group in one
        # `group_norms`: group r gradients, n + r weights, 2n + r updates.
        sq, seg = [], []
        present = np.zeros((3, n), dtype=bool)
        heavy_vals, heavy_var, heavy_seg, heavy_size = [], [], [], np.zeros(n)
        act_rows, dead, act_present = [], [], np.zeros(n, dtype=bool)
        layer_grads, layer_acts = [], []
        unit_sums: dict[int, tf.Tensor] = {}  # row -> per-unit sums (distributed)
        nan = tf.constant(_NAN)
        nan_sums = tf.fill([len(st.ACT_SUMS)], _NAN)
        for r, k in enumerate(order):
            unit = self.units[k]
            idx = self._var_idx[k]
            with_grad = [i for i in idx if grads[i] is not None]
            if len(with_grad) < len(idx):
                self.no_gradient[unit.name] = [
                    tw[i].name for i in idx if grads[i] is None
                ]
            g = [grads[i] for i in with_grad] if cfg.gradients else []
            for i in with_grad if cfg.gradients else ():
                sq.append(grads[i])
                seg.append(r)
                present[0, r] = True
                if heavy:
                    heavy_vals.append(st._f32(grads[i]))
                    heavy_var.append(i)
                    heavy_seg.append(r)
                    heavy_size[r] += int(np.prod(tw[i].shape))
            if (cfg.weights or cfg.updates) and idx:
                present[1, r] = True
                for i in idx:
                    sq.append(tw[i].value)
                    seg.append(n + r)
            if idx and (before is not None or deltas is not None):
                present[2, r] = True
                for i in idx:
                    if before is not None:
                        d = st._f32(tw[i].value) - st._f32(before[i])
                    elif i in deltas:
                        d = deltas[i]
                    else:
                        continue  # not applied this step: adds 0
                    sq.append(d)
                    seg.append(2 * n + r)
            t = acts.get(id(unit))
            kind = layers_mod.activation_kind(unit)
            # Weightless layers without a nonlinearity (pooling, dropout,
            # flatten, ...) only reshape what the layer before them made:
            # their activation statistics come with heavy steps only.
            light_ok = bool(idx) or kind in ("relu", "sigmoid", "tanh")
            if t is not None and (heavy or light_ok):
                sums, d = st.act_sums(t, kind, heavy, self._keep_unit_sum(unit_sums, r))
                act_present[r] = True
            else:
                sums, d = nan_sums, nan
            act_rows.append(sums)
            dead.append(d)
            layer_grads.append(g)
            layer_acts.append(t)
            n_units = (
                int(t.shape[-1])
                if t is not None and t.shape.rank and t.shape[-1] is not None
                else 0
            )
            is_output = t is not None and any(t is o for o in outputs)
            infos.append(
                layers_mod.layer_info(unit, n_units=n_units, is_output=is_output)
            )
        if infos and not any(i.is_output for i in infos):
            last = max(
                (j for j, k in enumerate(order) if id(self.units[k]) in acts),
                default=None,
            )
            if last is not None:
                infos[last] = dataclasses.replace(infos[last], is_output=True)
        self.layer_infos = tuple(infos)
        self._bad = None
        self._heavy_hists = tf.zeros([0, HIST_BINS + 2])
        if not n:
            return tf.zeros([0, len(LAYER_FIELDS)]), order

        norms = st.group_norms(sq, seg, 3 * n)
        grad_norm, weight_norm, update_norm = tf.unstack(
            tf.reshape(tf.where(tf.constant(present.reshape(-1)), norms, nan), [3, n])
        )
        act_sums = tf.stack(act_rows)  # [n, 5]
        dead = tf.stack(dead)  # [n]

        # Exact non-finite counts only when a norm, a sum or the loss already
        # shows a NaN/Inf (each propagates one), on any step: one tf.cond.
        checks = [tf.reshape(tf.cast(loss, tf.float32), [1]), norms]
        if act_present.any():  # the sum and the sum of squares of each output
            rows = tf.constant(np.flatnonzero(act_present), tf.int32)
            checks.append(tf.reshape(tf.gather(act_sums, rows)[:, :2], [-1]))
        bad = tf.reduce_any(~tf.math.is_finite(tf.concat(checks, 0)))

        def counts():
            gc = [st.count_nonfinite(g) if g else nan for g in layer_grads]
            ac = [st.count_nonfinite([t]) if t is not None else nan for t in layer_acts]
            return tf.stack(gc), tf.stack(ac)

        def zeros():
            gc = [0.0 if g else _NAN for g in layer_grads]
            ac = [0.0 if t is not None else _NAN for t in layer_acts]
            return tf.constant(gc), tf.constant(ac)

        grad_nonfinite, act_nonfinite = tf.cond(bad, counts, zeros)

        if heavy:
            self._heavy_hists, grad_range = self._hists(grads, acts, order, bad)
        if heavy and heavy_vals:
            seg_h = tf.constant(heavy_seg, tf.int32)
            flat = [tf.reshape(v, [-1]) for v in heavy_vals]
            # max |g| from the min and max the histograms took (no |g| copy)
            lows, highs = zip(*(grad_range[i] for i in heavy_var))
            max_abs = tf.math.unsorted_segment_max(
                tf.maximum(-tf.stack(lows), tf.stack(highs)), seg_h, n
            )
            nonzero = tf.math.unsorted_segment_sum(
                tf.cond(
                    bad,
                    lambda: tf.stack(
                        [tf.math.count_nonzero(v, dtype=tf.float32) for v in flat]
                    ),
                    lambda: tf.stack([st.nonzero_count(v) for v in flat]),
                ),
                seg_h,
                n,
            )
            size = tf.constant(np.maximum(heavy_size, 1.0), tf.float32)
            has = tf.constant(present[0])
            grad_max_abs = tf.where(has, max_abs, nan)
            grad_zero_frac = tf.where(has, 1.0 - nonzero / size, nan)
        else:
            grad_max_abs = grad_zero_frac = tf.fill([n], _NAN)
        if self.n_replicas > 1:
            act_sums, act_nonfinite, dead, self._global_loss = self._combine_replicas(
                act_sums, act_nonfinite, dead, unit_sums, loss
            )
        columns = dict(
            zip(ACT_FIELDS, tf.unstack(st.act_finish(act_sums, dead), axis=1)),
            grad_norm=grad_norm,
            grad_max_abs=grad_max_abs,
            grad_zero_frac=grad_zero_frac,
            grad_nonfinite=grad_nonfinite,
            weight_norm=weight_norm,
            update_norm=update_norm,
            act_nonfinite=act_nonfinite,  # act_finish leaves it NaN
        )
        self._bad = bad
        return tf.stack([columns[f] for f in LAYER_FIELDS], axis=1), order

    def _keep_unit_sum(self, unit_sums, row):
        """Under a strategy: keep a ReLU layer's per-unit sums for the batched
        all-reduce (its dead share is recomputed from the global sums)."""
        if self.n_replicas == 1:
            return None

        def keep(v):
            unit_sums[row] = v
            return v

        return keep

    def _combine_replicas(self, act_sums, act_nonfinite, dead, unit_sums, loss):
        """Statistics over the global batch (all replicas), with ONE
        all-reduce for all of them (collectives are costly on their own).

        Activation sums and non-finite counts add up exactly; a ReLU unit is
        dead iff its summed output is 0 on every replica. Gradient, weight
        and update columns are already identical. Also returns the global
        batch's loss (Keras scales each replica's by 1/replicas).
        """
        ctx = tf.distribute.get_replica_context()
        keys = sorted(unit_sums)
        payload = [act_sums, act_nonfinite, tf.cast(loss, tf.float32)] + [
            unit_sums[k] for k in keys
        ]
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, payload)
        if keys:
            shares = [
                tf.reduce_mean(tf.cast(tf.equal(total, 0.0), tf.float32))
                for total in reduced[3:]
            ]
            dead = tf.tensor_scatter_nd_update(
                dead, tf.constant([[k] for k in keys], tf.int32), tf.stack(shares)
            )
        return reduced[0], reduced[1], dead, reduced[2]

    def _hists(self, grads, acts, order, bad):
        """All histograms of a heavy step as one [n, 2 + bins] tensor, and
        the (min, max) of each gradient, by variable index.

        Row k belongs to `self.hist_tags[k]` (set when traced). Every
        tensor's min and max are taken once, outside the `tf.cond`: they are
        the range of its histogram when every tensor is finite (the step's
        norms say so; then each histogram is one more pass over a sample),
        and give the gradients' max |g|. Otherwise the NaN/Inf-proof version
        runs.
        """
        cfg = self.config
        tw = self.model.trainable_weights
        tags_, tensors, grad_rows = [], [], {}
        for k in order:
            unit = self.units[k]
            for i in self._var_idx[k]:
                vname = tw[i].name
                if cfg.gradients and grads[i] is not None:
                    tags_.append(tags.layer_tag("gradients", unit.name, vname))
                    grad_rows[i] = len(tensors)
                    tensors.append(grads[i])
                if cfg.weights:
                    tags_.append(tags.layer_tag("weights", unit.name, vname))
                    tensors.append(tw[i].value)
            t = acts.get(id(unit))
            if cfg.activations and t is not None:
                tags_.append(tags.layer_tag("activations", unit.name, "histogram"))
                tensors.append(t)
        self.hist_tags = tuple(tags_)
        if not tensors:
            return tf.zeros([0, HIST_BINS + 2]), {}
        ranges = [st.value_range(t) for t in tensors]

        def build(finite):
            return tf.stack(
                [
                    st.histogram(
                        t, HIST_BINS, xla=self.xla, finite=finite, known_range=r
                    )
                    for t, r in zip(tensors, ranges)
                ]
            )

        hists = tf.cond(bad, lambda: build(False), lambda: build(True))
        return hists, {i: ranges[row] for i, row in grad_rows.items()}

"""The probe recorder: installed around ANY step body while it is traced.

A body is the stock Keras step, a model's own `train_step`, or a user's
function under `gradtrace.Tracer`. While it is traced (see
`probes.intercept`), a `Recording` sees:

- every layer call, with its output. A *unit* is a layer called while no
  other non-model layer is running (nested `keras.Model`s are opened, a
  custom block of layers is one unit), as `layers.leaf_layers` defines it;
- every `optimizer.apply` / `apply_gradients`: the gradients as handed to the
  optimizer (before its clipping; under a `LossScaleOptimizer` divided by the
  dynamic scale read before the call, recorded once, not again by the inner
  optimizer it calls; under a strategy, summed over replicas), and the update
  it made (captured from the optimizer's `assign_add`/`assign_sub`, or the
  difference from a copy taken before the first apply of the variable).

Several applies of one variable in a step (a critic trained 3 times per
step): the gradient statistics are those of the LAST gradient applied, the
update is the total change of the step. A layer called several times in a
step (a discriminator on real and fake batches): its activation moments are
over all calls together and a unit is dead only if it output 0 in every
call; histograms show the first call. Gradients a tape computes but nobody
applies (a gradient penalty) are never seen.

`Recorder.pack` then turns one recording into the step's packed statistics
(data contract in `gradtrace.step`). Rows, in forward order: the units in the
order they were first called (then units of the called models that own an
applied variable but were not called), then one row per applied variable
that belongs to no unit, named by its path. A unit's name is `layer.name`,
or `<model>/<layer>` when units of different models share a name.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf
from keras import tree

from .. import layers as layers_mod
from .. import tags
from ..records import ACT_FIELDS, GRAD_FIELDS, LAYER_FIELDS, LayerInfo
from . import intercept
from . import stats as st
from .capture import can_capture_updates, capture_updates

_NAN = float("nan")
HIST_BINS = 30
# Models with at least this many trained parameters measure weight and update
# norms on the light steps the host asks for (`Recorder.measure_flag`).
SPARSE_NORMS_MIN_PARAMS = 1_000_000


def _first_float(outputs):
    for t in tree.flatten(outputs):
        if isinstance(t, tf.Tensor) and t.dtype.is_floating:
            return t
    return None


def _key(v):
    """One identity for a Keras variable and its backend tf.Variable."""
    import keras

    return id(v.value) if isinstance(v, keras.Variable) else id(v)


@dataclasses.dataclass
class _Unit:
    layer: object
    model: object | None  # the outermost model it was called in
    outputs: list = dataclasses.field(default_factory=list)


class Recording(intercept.Listener):
    """What one trace of a step body did (graph tensors; see the module doc)."""

    def __init__(self, want_outputs: bool, want_updates: bool, n_replicas: int):
        self.graph = (
            None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        )
        self.want_outputs = want_outputs
        self.want_updates = want_updates
        self.n_replicas = n_replicas
        self.units: dict[int, _Unit] = {}  # id(layer) -> unit, call order
        self.models: dict[int, object] = {}  # outermost models called, in order
        self.output_ids: set[int] = set()  # tensors the outermost models returned
        self.variables: dict[int, object] = {}  # applied variables, apply order
        self.grads: dict[int, object] = {}  # key -> last gradient applied (or None)
        self.deltas: dict[int, list] = {}  # key -> captured update parts
        self.before: dict[int, tf.Tensor] = {}  # key -> value before the first apply
        self.loss_scale = None  # dynamic loss scale (float32 scalar)
        self.skipped = None  # the loss-scale optimizer skipped this step (bool)
        self.clipped = None  # an optimizer's gradient clipping engaged (bool)
        self.nested_applies = 0  # applies inside a nested graph: not recorded
        self._stack: list = []  # models and units running now
        self._apply_depth = 0

    def _in_graph(self, t) -> bool:
        return self.graph is None or getattr(t, "graph", None) is self.graph

    # -- layer calls -----------------------------------------------------------
    def layer_call(self, layer, proceed):
        import keras

        if any(not isinstance(s, keras.Model) for s in self._stack):
            return proceed()  # inside a unit: part of it
        is_model = isinstance(layer, keras.Model)
        top = not self._stack
        self._stack.append(layer)
        try:
            out = proceed()
        finally:
            self._stack.pop()
        if is_model:
            if top:
                self.models.setdefault(id(layer), layer)
                self.output_ids.update(id(t) for t in tree.flatten(out))
            return out
        unit = self.units.get(id(layer))
        if unit is None:
            unit = self.units[id(layer)] = _Unit(
                layer, self._stack[0] if self._stack else None
            )
        t = _first_float(out) if self.want_outputs else None
        if t is not None and self._in_graph(t):
            unit.outputs.append(t)
        return out

    # -- optimizer applies -----------------------------------------------------
    def optimizer_apply(self, optimizer, grads, variables, proceed):
        if self._apply_depth:  # an optimizer inside one being recorded
            return proceed()
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync != self.n_replicas:
            raise ValueError(
                "gradtrace records per-layer statistics of the global batch, but "
                f"this optimizer.apply runs on {ctx.num_replicas_in_sync} replicas "
                f"of a tf.distribute strategy inside a step gradtrace runs on "
                f"{self.n_replicas}. Received: `{type(optimizer).__name__}.apply` "
                "inside `strategy.run` in a gradtrace.Tracer step, which is not "
                "supported (its statistics would be one replica's). Use "
                "gradtrace.fit with the model compiled under `strategy.scope()`, "
                "or trace the loop without a strategy."
            )
        grads = list(grads)
        variables = list(
            optimizer._trainable_variables if variables is None else variables
        )
        present = [g for g in grads if g is not None]
        nested = (
            self.graph is not None
            and tf.compat.v1.get_default_graph() is not self.graph
        )
        if nested or not all(self._in_graph(g) for g in present):
            # Inside a tf.cond / tf.while_loop of the body: its tensors cannot
            # be read from the step's graph. Counted; the host warns once.
            self.nested_applies += 1
            return proceed()
        if self.n_replicas > 1:
            grads = _all_reduce_sum(grads)
        scale = getattr(optimizer, "dynamic_scale", None)
        if scale is not None and hasattr(optimizer, "inner_optimizer"):
            # LossScaleOptimizer: the gradients are scaled; it skips the step
            # (normal under mixed precision) when any is not finite.
            scale = tf.cast(tf.identity(scale), tf.float32)
            self.loss_scale = scale
            grads = [None if g is None else st._f32(g) / scale for g in grads]
            ok = [g for g in grads if g is not None]
            if ok:
                skipped = ~tf.math.is_finite(st.sumsq(ok))
                self.skipped = (
                    skipped if self.skipped is None else self.skipped | skipped
                )
        factor = getattr(optimizer, "loss_scale_factor", None)
        if factor is not None:
            grads = [None if g is None else st._f32(g) / factor for g in grads]
        engaged = _clip_engaged(optimizer, grads)
        if engaged is not None:
            self.clipped = engaged if self.clipped is None else self.clipped | engaged
        for g, v in zip(grads, variables):
            k = _key(v)
            self.variables.setdefault(k, v)
            self.grads[k] = g
        self._apply_depth += 1
        try:
            if not self.want_updates:
                return proceed()
            if self.n_replicas == 1 and can_capture_updates(optimizer):
                with capture_updates(optimizer) as captured:
                    result = proceed()
                for k, parts in captured.items():
                    self.deltas.setdefault(k, []).extend(t for _, t in parts)
                return result
            for v in variables:
                k = _key(v)
                if k not in self.before and k not in self.deltas:
                    self.before[k] = tf.identity(v.value)
            return proceed()
        finally:
            self._apply_depth -= 1


CLIP_OPTIONS = ("global_clipnorm", "clipnorm", "clipvalue")


def _clip_engaged(optimizer, grads):
    """bool scalar: the optimizer's gradient clipping changes these (unscaled)
    gradients; None when it does not clip. One pass over the gradients, only
    for an optimizer that clips (it makes the same pass itself)."""
    opt = getattr(optimizer, "inner_optimizer", None) or optimizer
    present = [st._f32(g) for g in grads if g is not None]
    if not present:
        return None
    flags = []
    for name in CLIP_OPTIONS:
        value = getattr(opt, name, None)
        if not value:
            continue
        if name == "global_clipnorm":
            flags.append(st.sumsq(present) > float(value) ** 2)
        elif name == "clipnorm":
            norms = tf.stack([2.0 * tf.nn.l2_loss(g) for g in present])
            flags.append(tf.reduce_max(norms) > float(value) ** 2)
        else:
            top = tf.stack([tf.reduce_max(tf.abs(g)) for g in present])
            flags.append(tf.reduce_max(top) > float(value))
    if not flags:
        return None
    return tf.reduce_any(tf.stack(flags))


def _all_reduce_sum(grads):
    ctx = tf.distribute.get_replica_context()
    present = [g for g in grads if g is not None]
    if ctx is None or not present:
        return grads
    reduced = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(reduced) for g in grads]


@dataclasses.dataclass
class _Row:
    name: str
    layer: object | None
    keys: list  # applied variables' keys
    outputs: list
    kind: str
    model: str | None = None


class Recorder:
    """Packs what a body did into the step's statistics. One per compiled step.

    Set when a body is traced (read by the host): `layer_infos` (rows, forward
    order), `hist_tags` (heavy step), `no_gradient` ({row name: [variable
    names]} handed to an optimizer with a `None` gradient), `nested_applies`.
    """

    def __init__(self, config, n_replicas: int = 1, measure_flag=None):
        self.config = config
        self.n_replicas = int(n_replicas)
        # bool tf.Variable the host sets before a light step: measure the
        # weight and update norms of a big model at this step (see `pack`).
        self.measure_flag = measure_flag
        # The last light trace measures them only when told (set by `pack`).
        self.sparse_norms = False
        self.layer_infos: tuple[LayerInfo, ...] | None = None
        self.hist_tags: tuple[str, ...] = ()
        self.no_gradient: dict[str, list[str]] = {}
        self.nested_applies = 0

    @contextlib.contextmanager
    def record(self):
        """Listens to the body run inside the block; yields the `Recording`."""
        cfg = self.config
        rec = Recording(cfg.activations, cfg.updates, self.n_replicas)
        with intercept.listening(rec):
            yield rec

    # -- rows ------------------------------------------------------------------
    def _rows(self, rec: Recording) -> list[_Row]:
        patterns = self.config.layers
        owner: dict[int, int] = {}  # variable key -> id(layer)
        candidates: dict[int, _Unit] = dict(rec.units)
        for unit in rec.units.values():
            for v in unit.layer.trainable_weights:
                owner.setdefault(_key(v), id(unit.layer))
        for model in rec.models.values():  # layers of the called models, not called
            for layer in layers_mod.leaf_layers(model):
                for v in layer.trainable_weights:
                    if _key(v) in rec.variables and _key(v) not in owner:
                        owner[_key(v)] = id(layer)
                        candidates.setdefault(id(layer), _Unit(layer, model))
        # Called units in call order, then uncalled layers that own an
        # applied variable (added above only in that case).
        order = list(candidates)
        names = _unique_names([candidates[i] for i in order])
        rows = []
        for i, name in zip(order, names):
            unit = candidates[i]
            if not layers_mod.selected(unit.layer, patterns):
                continue
            keys = [
                _key(v)
                for v in unit.layer.trainable_weights
                if _key(v) in rec.variables
            ]
            rows.append(
                _Row(
                    name,
                    unit.layer,
                    keys,
                    unit.outputs,
                    layers_mod.activation_kind(unit.layer),
                    None if unit.model is None else unit.model.name,
                )
            )
        if patterns is None:
            for k, v in rec.variables.items():
                if k not in owner:  # trained, but no layer owns it
                    rows.append(_Row(v.path, None, [k], [], "other"))
        return rows

    # -- statistics ------------------------------------------------------------
    def pack(self, rec: Recording, heavy: bool, loss=None) -> dict:
        """The packed statistics of one recorded body (see `gradtrace.step`).

        Returns a dict with ``stats`` ([rows, len(LAYER_FIELDS)]), ``bad``
        (bool scalar: some norm, moment or the loss is NaN/Inf), ``hists``
        (heavy only), ``loss_scale`` (loss-scale optimizer only) and, under a
        strategy, ``loss`` (the global batch's, when `loss` is given).
        """
        cfg = self.config
        self.nested_applies = rec.nested_applies
        rows = self._rows(rec)
        variables, grads = rec.variables, rec.grads
        n = len(rows)
        infos = []
        no_gradient = {}
        # Tensors whose L2 norms are taken per (family, row) group in one
        # `group_norms`: group r gradients, n + r weights, 2n + r updates.
        sq, seg = [], []
        present = np.zeros((3, n), dtype=bool)
        heavy_vals, heavy_keys, heavy_seg, heavy_size = [], [], [], np.zeros(n)
        act_rows, dead, act_present = [], [], np.zeros(n, dtype=bool)
        row_grads, row_acts = [], []
        unit_sums: dict[int, tf.Tensor] = {}  # row -> per-unit sums (distributed)
        nan = tf.constant(_NAN)
        nan_sums = tf.fill([len(st.ACT_SUMS)], _NAN)
        for r, row in enumerate(rows):
            with_grad = [k for k in row.keys if grads[k] is not None]
            if len(with_grad) < len(row.keys):
                no_gradient[row.name] = [
                    variables[k].name for k in row.keys if grads[k] is None
                ]
            g = [grads[k] for k in with_grad] if cfg.gradients else []
            for k in with_grad if cfg.gradients else ():
                sq.append(grads[k])
                seg.append(r)
                present[0, r] = True
                if heavy:
                    heavy_vals.append(st._f32(grads[k]))
                    heavy_keys.append(k)
                    heavy_seg.append(r)
                    heavy_size[r] += int(np.prod(variables[k].shape))
            if (cfg.weights or cfg.updates) and row.keys:
                present[1, r] = True
                for k in row.keys:
                    sq.append(variables[k].value)
                    seg.append(n + r)
            if row.keys and cfg.updates and (rec.before or rec.deltas):
                present[2, r] = True
                for k in row.keys:
                    if k in rec.before:
                        d = st._f32(variables[k].value) - st._f32(rec.before[k])
                    elif rec.deltas.get(k):
                        d = tf.add_n([st._f32(t) for t in rec.deltas[k]])
                    else:
                        continue  # not applied this step: adds 0
                    sq.append(d)
                    seg.append(2 * n + r)
            outs = row.outputs if cfg.activations else []
            # Weightless layers without a nonlinearity (pooling, dropout,
            # flatten, ...) only reshape what the layer before them made:
            # their activation statistics come with heavy steps only.
            light_ok = bool(row.keys) or row.kind in ("relu", "sigmoid", "tanh")
            if outs and (heavy or light_ok):
                sums, d = st.act_sums_calls(
                    outs, row.kind, heavy, self._keep_unit_sum(unit_sums, r)
                )
                act_present[r] = True
            else:
                sums, d = nan_sums, nan
            act_rows.append(sums)
            dead.append(d)
            row_grads.append(g)
            row_acts.append(outs)
            t = outs[0] if outs else None
            n_units = (
                int(t.shape[-1])
                if t is not None and t.shape.rank and t.shape[-1] is not None
                else 0
            )
            is_output = any(id(o) in rec.output_ids for o in row.outputs)
            if row.layer is None:
                v = variables[row.keys[0]]
                infos.append(
                    LayerInfo(
                        name=row.name,
                        class_name="Variable",
                        activation="other",
                        n_params=int(np.prod(v.shape)),
                        n_units=0,
                    )
                )
            else:
                infos.append(
                    layers_mod.layer_info(
                        row.layer,
                        n_units=n_units,
                        is_output=is_output,
                        name=row.name,
                        variables=[variables[k] for k in row.keys],
                        model=row.model,
                    )
                )
        if infos and not any(i.is_output for i in infos):
            last = max((j for j, row in enumerate(rows) if row.outputs), default=None)
            if last is not None:
                infos[last] = dataclasses.replace(infos[last], is_output=True)
        self.layer_infos = tuple(infos)
        self.no_gradient = no_gradient
        out = {}
        if rec.loss_scale is not None:
            out["loss_scale"] = rec.loss_scale
        if rec.clipped is not None:
            out["clipped"] = tf.cast(rec.clipped, tf.float32)
        if not n:
            out["stats"] = tf.zeros([0, len(LAYER_FIELDS)])
            if heavy:
                self.hist_tags = ()
                out["hists"] = tf.zeros([0, HIST_BINS + 2])
            if self.n_replicas > 1 and loss is not None:
                out["loss"] = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, tf.cast(loss, tf.float32)
                )
            return out

        # A big model's light step measures weight and update norms only when
        # the host says so (`measure_flag`): two passes over every weight
        # were ~5% of a ResNet-50 step. Gradient norms are measured always.
        sparse = (
            not heavy
            and self.measure_flag is not None
            and present[1:].any()
            and sum(int(np.prod(v.shape)) for v in variables.values())
            >= SPARSE_NORMS_MIN_PARAMS
        )
        if not heavy:
            self.sparse_norms = bool(sparse)
        if sparse:
            every = [i for i, g in enumerate(seg) if g < n]
            some = [i for i, g in enumerate(seg) if g >= n]
            flag = tf.convert_to_tensor(self.measure_flag)
            norms = tf.concat(
                [
                    st.group_norms([sq[i] for i in every], [seg[i] for i in every], n),
                    tf.cond(
                        flag,
                        lambda: st.group_norms(
                            [sq[i] for i in some], [seg[i] - n for i in some], 2 * n
                        ),
                        lambda: tf.zeros([2 * n]),  # finite: `bad` ignores them
                    ),
                ],
                0,
            )
        else:
            norms = st.group_norms(sq, seg, 3 * n)
        act_sums = tf.stack(act_rows)  # [n, 5]
        dead = tf.stack(dead)  # [n]

        # Exact non-finite counts only when a norm, a sum or the loss already
        # shows a NaN/Inf (each propagates one), on any step: one tf.cond.
        checks = [norms]
        if loss is not None:
            checks.append(tf.reshape(tf.cast(loss, tf.float32), [1]))
        if act_present.any():  # the sum and the sum of squares of each output
            idx = tf.constant(np.flatnonzero(act_present), tf.int32)
            checks.append(tf.reshape(tf.gather(act_sums, idx)[:, :2], [-1]))
        bad = tf.reduce_any(~tf.math.is_finite(tf.concat(checks, 0)))

        def counts():
            gc = [st.count_nonfinite(g) if g else nan for g in row_grads]
            ac = [st.count_nonfinite(a) if a else nan for a in row_acts]
            # A norm may be Inf only because its float32 square overflowed:
            # statistics never invent an Inf the tensors do not hold. (A
            # sparse step measures every norm here.)
            plain = st.group_norms(sq, seg, 3 * n) if sparse else norms
            safe = st.group_norms_safe(sq, seg, 3 * n, plain)
            return tf.stack(gc), tf.stack(ac), safe

        def zeros():
            gc = [0.0 if g else _NAN for g in row_grads]
            ac = [0.0 if a else _NAN for a in row_acts]
            return tf.constant(gc), tf.constant(ac), norms

        grad_nonfinite, act_nonfinite, norms = tf.cond(bad, counts, zeros)
        mask = tf.constant(present.reshape(-1))
        if sparse:  # weight and update norms: NaN (not measured) unless measured
            measured = tf.concat(
                [tf.ones([n], tf.bool), tf.fill([2 * n], flag | bad)], 0
            )
            mask = mask & measured
        grad_norm, weight_norm, update_norm = tf.unstack(
            tf.reshape(tf.where(mask, norms, nan), [3, n])
        )

        if heavy:
            out["hists"], grad_range = self._hists(rec, rows)
        if heavy and heavy_vals:
            seg_h = tf.constant(heavy_seg, tf.int32)
            flat = [tf.reshape(v, [-1]) for v in heavy_vals]
            # max |g| from the min and max the histograms took (no |g| copy)
            lows, highs = zip(*(grad_range[k] for k in heavy_keys))
            max_abs = tf.math.unsorted_segment_max(
                tf.maximum(-tf.stack(lows), tf.stack(highs)), seg_h, n
            )
            # One op per gradient (NaN counts as non-zero), no tf.cond: the
            # heavy variant's size is its compile time.
            nonzero = tf.math.unsorted_segment_sum(
                tf.stack([tf.math.count_nonzero(v, dtype=tf.float32) for v in flat]),
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
            act_sums, act_nonfinite, dead, global_loss = self._combine_replicas(
                act_sums, act_nonfinite, dead, unit_sums, loss
            )
            if loss is not None:
                out["loss"] = global_loss
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
        stats = tf.stack([columns[f] for f in LAYER_FIELDS], axis=1)
        if rec.skipped is not None:
            # A loss-scale overflow makes the optimizer skip the step: normal
            # under mixed precision, not a non-finite finding.
            grad_cols = [LAYER_FIELDS.index(f) for f in GRAD_FIELDS]
            mask = tf.constant([j in grad_cols for j in range(len(LAYER_FIELDS))])
            stats = tf.where(rec.skipped & mask[None, :], tf.constant(_NAN), stats)
        out["stats"] = stats
        # Some norm, moment or the loss is NaN/Inf: the host judges this step
        # at once instead of with its block.
        out["bad"] = bad
        return out

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
        loss = tf.constant(0.0) if loss is None else tf.cast(loss, tf.float32)
        payload = [act_sums, act_nonfinite, loss] + [unit_sums[k] for k in keys]
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

    def _hists(self, rec, rows):
        """All histograms of a heavy step as one [n, 2 + bins] tensor, and
        the (min, max) of each gradient, by variable key.

        Row k belongs to `self.hist_tags[k]` (set when traced). Every
        tensor's min and max are taken once: they are the range of its
        histogram (when finite) and give the gradients' max |g|; the
        histograms themselves are one packed computation over a sample of
        every tensor (`stats.histograms`).
        """
        cfg = self.config
        tags_, tensors, grad_rows = [], [], {}
        for row in rows:
            for k in row.keys:
                v = rec.variables[k]
                g = rec.grads[k]
                if cfg.gradients and g is not None:
                    tags_.append(tags.layer_tag("gradients", row.name, v.name))
                    grad_rows[k] = len(tensors)
                    tensors.append(g)
                if cfg.weights:
                    tags_.append(tags.layer_tag("weights", row.name, v.name))
                    tensors.append(v.value)
            if cfg.activations and row.outputs:
                tags_.append(tags.layer_tag("activations", row.name, "histogram"))
                tensors.append(row.outputs[0])
        self.hist_tags = tuple(tags_)
        if not tensors:
            return tf.zeros([0, HIST_BINS + 2]), {}
        ranges = [st.value_range(t) for t in tensors]
        hists = st.histograms(tensors, ranges, HIST_BINS)
        return hists, {k: ranges[i] for k, i in grad_rows.items()}


def _unique_names(units: list[_Unit]) -> list[str]:
    """`layer.name`, or `<model>/<layer>` where different layers share a name
    (then `#2`, `#3`... if even that collides)."""
    count: dict[str, int] = {}
    for u in units:
        count[u.layer.name] = count.get(u.layer.name, 0) + 1
    names, seen = [], set()
    for u in units:
        name = u.layer.name
        if count[name] > 1 and u.model is not None:
            name = f"{u.model.name}/{name}"
        base, i = name, 2
        while name in seen:
            name = f"{base}#{i}"
            i += 1
        seen.add(name)
        names.append(name)
    return names

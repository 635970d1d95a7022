"""gradtrace's compiled steps: any step body, probed in-graph by one recorder.

A *body* is what trains: the stock Keras step (`stock_body`: Keras'
`train_step`, reproduced), a model's own `train_step` (`model_body`), or a
user's function under `gradtrace.Tracer`. `ProbedStep` wraps a body in up to
two compiled functions: a *light* one run every step and a *heavy* one (the
light outputs plus histogram buckets) run every `Config.histogram_every`
steps, both `tf.function(reduce_retracing=True, jit_compile=...)`, traced on
first use and reused. While a body is traced, a `probes.recorder.Recorder`
listens to it (layer calls, optimizer applies) and packs its statistics in
the same graph. `TrainStep` is the `ProbedStep` of `gradtrace.fit`: the body
runs under the model's distribution strategy.

Data contract of one call, `step(*args) -> dict` of tensors:

    "result": what the body returned (fit: the logs, as Keras' train_step
              returns them; Tracer: the user's function's return value)
    "loss":   scalar float32, the step's total loss (regularization included,
              loss scaling undone); stock body only
    "stats":  [n_rows, len(records.LAYER_FIELDS)] float32, rows in forward
              order (`ProbedStep.layer_infos`), NaN = not measured; only when
              a probe family is on
    "bad":    bool scalar: a norm, a moment or the loss is NaN/Inf
    "hists":  [n, 2 + bins] float32, one histogram per row (`probes.stats.
              histogram`), tags in `ProbedStep.hist_tags`; heavy step only
    "loss_scale": the dynamic loss scale (LossScaleOptimizer only)

All statistics come from the tensors of the pass that trains the model (see
`probes.recorder`).
"""

from __future__ import annotations

import contextlib
import functools

import tensorflow as tf
from keras import tree
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as _eager_context

from .probes.recorder import Recorder


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


def overrides_train_step(model) -> bool:
    import keras

    return type(model).train_step is not keras.Model.train_step


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


# -- bodies: (replica context) args -> (result, loss or None) ----------------


def stock_body(model):
    """Keras' own `train_step` (TensorFlow backend), reproduced: forward,
    loss, tape, `optimizer.apply_gradients`, metrics. Returns (logs, loss)."""

    def body(data):
        from keras.src.losses import loss as loss_module

        x, y, sample_weight = _unpack(data)
        with tf.GradientTape() as tape:
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
        tw = model.trainable_weights
        if tw:
            grads = tape.gradient(scaled_loss, tw)
            model.optimizer.apply_gradients(zip(grads, tw))
        else:
            import warnings

            warnings.warn(
                "The model does not have any trainable weights.", stacklevel=2
            )
        logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return logs, loss

    return body


def model_body(model):
    """The model's own `train_step`, unchanged. Returns (logs, None): the
    loss is read from the logs on the host (`session.pick_loss_key`)."""

    def body(data):
        return model.train_step(data), None

    return body


class ProbedStep:
    """Light and heavy compiled variants of one body, probed by one recorder.

    Args:
        body: `(*args, **kwargs) -> (result, loss or None)`, pure tensor code.
        config: the run's `gradtrace.Config`.
        eager: run the body eagerly (statistics computed eagerly too).
        jit_compile: compile with XLA.
        n_replicas: replicas the body runs on (statistics all-reduced).
    """

    def __init__(self, body, config, *, eager=False, jit_compile=False, n_replicas=1):
        self.body = body
        self.config = config
        self.eager = bool(eager)
        self.jit_compile = bool(jit_compile)
        self.n_replicas = int(n_replicas)
        self.probed = config.probes_on
        # Set by the host before a light step (`measure_weights`).
        self._measure = (
            tf.Variable(True, trainable=False, name="gradtrace_measure_weights")
            if self.probed and (config.weights or config.updates)
            else None
        )
        self._measuring = True
        self.recorder = (
            Recorder(config, self.n_replicas, measure_flag=self._measure)
            if self.probed
            else None
        )
        self.trace_counts = {"light": 0, "heavy": 0}
        self.heavy_bytes = None  # what one heavy step wrote (session.py)
        self.light = self._compile(heavy=False)
        self.heavy = (
            self._compile(heavy=True) if (config.histograms and self.probed) else None
        )

    # What the recorder learnt when the body was traced.
    @property
    def layer_infos(self):
        return self.recorder.layer_infos if self.recorder else None

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.layer_infos or ())

    @property
    def hist_tags(self) -> tuple[str, ...]:
        return self.recorder.hist_tags if self.recorder else ()

    @property
    def no_gradient(self) -> dict:
        return self.recorder.no_gradient if self.recorder else {}

    @property
    def sparse_norms(self) -> bool:
        """The light step measures weight and update norms only when told
        (`measure_weights`): a big model (`probes.recorder`)."""
        return bool(self.recorder and self.recorder.sparse_norms)

    def measure_weights(self, on: bool) -> None:
        """Whether the next light step measures weight and update norms (a
        sparse step's only; one variable assign when the answer changes)."""
        on = bool(on)
        if self._measure is not None and on != self._measuring:
            self._measure.assign(on)
            self._measuring = on

    def _wrap(self, heavy: bool):
        """`(*args) -> out` of one replica (the data contract above)."""

        def replica_step(*args, **kwargs):
            if self.recorder is None:
                result, loss = self.body(*args, **kwargs)
                out = {"result": result}
                if loss is not None:
                    loss = tf.cast(loss, tf.float32)
                    if self.n_replicas > 1:
                        # Keras scales each replica's loss by 1/replicas: the
                        # sum is the loss of the global batch.
                        loss = tf.distribute.get_replica_context().all_reduce(
                            tf.distribute.ReduceOp.SUM, loss
                        )
                    out["loss"] = loss
                return out
            with self.recorder.record() as rec:
                result, loss = self.body(*args, **kwargs)
            out = {"result": result}
            if loss is not None:
                out["loss"] = tf.cast(loss, tf.float32)
            out.update(self.recorder.pack(rec, heavy, loss))
            return out

        return replica_step

    def _outer(self, heavy: bool):
        """The function that is compiled: one replica's step by default."""
        return self._wrap(heavy)

    def _compile(self, heavy: bool):
        inner = self._outer(heavy)
        variant = "heavy" if heavy else "light"

        @tf.autograph.experimental.do_not_convert
        def step(*args, **kwargs):
            if not tf.executing_eagerly():  # tracing (eager steps never trace)
                self.trace_counts[variant] += 1
            return inner(*args, **kwargs)

        if self.eager:
            return step
        fn = tf.function(step, reduce_retracing=True, jit_compile=self.jit_compile)
        return _WithoutGraphRewrites(fn) if heavy else fn


class _WithoutGraphRewrites:
    """A `tf.function` (the heavy variant) whose graph Grappler leaves alone.

    Grappler's rewrites of a big step graph take longer than the step
    itself: on ResNet-50 they were ~27 s of the heavy variant's 60 s first
    call, and the heavy step ran no faster with them (2.0 s either way, CPU).
    The heavy step runs once in `histogram_every` steps, so it is called with
    Grappler off; the light step, run every step, keeps every rewrite. The
    option is set for the calling thread only, around each call (a concrete
    function is optimized once, at its first call, with the options of that
    call).
    """

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, *args, **kwargs):
        with _grappler_off():
            return self._fn(*args, **kwargs)

    def get_concrete_function(self, *args, **kwargs):
        with _grappler_off():
            return self._fn.get_concrete_function(*args, **kwargs)


@contextlib.contextmanager
def _grappler_off():
    ctx = _eager_context.context()
    before = ctx.function_call_options
    config = config_pb2.ConfigProto()
    config.ParseFromString(before.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    ctx.function_call_options = _eager_context.FunctionCallOptions(
        executor_type=before.executor_type, config_proto=config
    )
    try:
        yield
    finally:
        ctx.function_call_options = before


class TrainStep(ProbedStep):
    """The compiled train step(s) of `gradtrace.fit` for one model and config.

    The body is the stock Keras step, or the model's own `train_step` when its
    class overrides it; it runs under the model's distribution strategy.
    """

    def __init__(self, model, config):
        self.model = model
        self.strategy = model.distribute_strategy
        self.multi_worker = _num_workers(self.strategy) > 1
        self.custom = overrides_train_step(model)
        self.steps_done = 0  # custom bodies: steps run by earlier fits
        self._traced_specs = {"light": set(), "heavy": set()}
        self._last_spec = {"light": None, "heavy": None}
        self.last_input_spec = {"light": None, "heavy": None}  # see training._Run.step
        super().__init__(
            model_body(model) if self.custom else stock_body(model),
            config,
            eager=model.run_eagerly,
            jit_compile=bool(model.jit_compile),
            n_replicas=int(self.strategy.num_replicas_in_sync),
        )

    def _outer(self, heavy: bool):
        fn = self._wrap(heavy)
        strategy = self.strategy

        def step(data):
            data = _none_for_optionals(data)
            return self._merge_replicas(strategy.run(fn, args=(data,)))

        return step

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
        if spec is None or self.eager or key in self._traced_specs[variant]:
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
                {"result": strategy.run(model.test_step, args=(data,))}
            )["result"]

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

        merged = {"result": reduce_per_replica(out["result"], self.strategy, "auto")}
        # Everything else was all-reduced inside the replica step, so every
        # replica holds the same value (activation histograms: replica 0's).
        for k, v in out.items():
            if k != "result":
                merged[k] = tree.map_structure(
                    lambda t: self.strategy.experimental_local_results(t)[0], v
                )
        return merged

"""Per-layer statistics, reduced in-graph to a handful of scalars.

Each function takes tensors of one layer and returns a float32 vector whose
columns follow `gradtrace.records` (GRAD_FIELDS, ACT_FIELDS). NaN marks a
statistic that does not apply or is not measured at this tier. Works eagerly,
inside `tf.function` and under XLA (static shapes only).

Two tiers, chosen for cost (every pass over a large tensor counts on a 3 ms
step; measured here: `tf.nn.l2_loss` reads a 200k-float kernel in ~25 us where
`reduce_sum(square(.))` takes ~175 us):

- light (every step): gradient norm, weight norm, update norm, activation
  mean/std, dead-unit share (ReLU family), saturated share (sigmoid/tanh).
  Non-finite entries are caught through the norms (a sum of squares with a
  NaN/Inf is NaN/Inf) and counted exactly only when one is present.
- heavy (histogram steps): adds gradient max-abs and zero share, activation
  zero share, and exact non-finite counts.
"""

from __future__ import annotations

import tensorflow as tf

_NAN = float("nan")
# Saturation: output within 1% of a bound of sigmoid/tanh (local derivative
# below ~1% of its maximum).
SIGMOID_EPS = 0.01
TANH_BOUND = 0.99


def _dense_values(g):
    # Sparse gradients (Embedding): statistics over the touched rows.
    return g.values if isinstance(g, tf.IndexedSlices) else g


def _f32(t):
    t = _dense_values(t)
    return t if t.dtype == tf.float32 else tf.cast(t, tf.float32)


def sumsq(tensors) -> tf.Tensor:
    """Sum of squares over a list of tensors, one fused pass each."""
    return 2.0 * tf.add_n([tf.nn.l2_loss(_f32(t)) for t in tensors])


def norm(tensors) -> tf.Tensor:
    """L2 norm over a list of tensors, as one scalar."""
    return tf.sqrt(sumsq(tensors))


def count_nonfinite(tensors) -> tf.Tensor:
    return tf.add_n(
        [
            tf.reduce_sum(tf.cast(~tf.math.is_finite(_f32(t)), tf.float32))
            for t in tensors
        ]
    )


def grad_stats(grads, n: int, heavy: bool) -> tf.Tensor:
    """[norm, max_abs, zero_frac, nonfinite] over all of a layer's gradients.

    Args:
        grads: non-empty list of gradient tensors (no None).
        n: total number of elements of the layer's variables.
        heavy: also compute max_abs and zero_frac (else NaN).

    `nonfinite` is NaN here; `step` fills it (see `nonfinite_counts`).
    """
    nan = tf.constant(_NAN)
    g_norm = norm(grads)
    if not heavy:
        return tf.stack([g_norm, nan, nan, nan])
    vals = [_f32(g) for g in grads]
    max_abs = tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(v)) for v in vals]))
    nonzero = tf.add_n([tf.cast(tf.math.count_nonzero(v), tf.float32) for v in vals])
    zero_frac = 1.0 - nonzero / float(n) if n else nan
    return tf.stack([g_norm, max_abs, zero_frac, nan])


def update_norm(before, after) -> tf.Tensor:
    """||after - before|| over a layer's variables."""
    return norm([_f32(a) - _f32(b) for a, b in zip(after, before)])


# Light-step activation moments are estimated from the first this many
# examples of the batch (a contiguous block of memory, so the estimate reads
# only that share of a conv feature map; batches are usually shuffled).
MOMENT_EXAMPLES = 16


def _examples(x):
    return x[:MOMENT_EXAMPLES] if x.shape.rank else x


def act_stats(t, kind: str, heavy: bool, reduce_unit_sum=None) -> tf.Tensor:
    """[mean, std, zero_frac, dead_frac, saturated_frac, nonfinite] of an output.

    `dead_frac` (ReLU family only): share of units (last axis) that output 0
    for every example and position of the batch. `saturated_frac` (sigmoid /
    tanh only): share of outputs within 1% of the activation's bounds.
    `zero_frac` is heavy-only; `nonfinite` is filled by the step.
    `reduce_unit_sum` (under a distribution strategy) adds up the per-unit
    sums across replicas, so a unit is dead only if dead on every replica.

    Cost, which matters on conv feature maps (memory passes): on light steps
    `std` and `saturated_frac` (and `mean`, except for ReLU layers) are
    estimated from the first `MOMENT_EXAMPLES` examples of the batch; a
    ReLU layer's mean and dead share come exactly from one pass over every
    example (the per-unit sum). Heavy steps use every example for all.
    """
    x = _f32(t)
    nan = tf.constant(_NAN)
    size = tf.cast(tf.size(x), tf.float32)
    xs = x if heavy else _examples(x)
    size_s = tf.cast(tf.size(xs), tf.float32)
    mean_s = tf.reduce_mean(xs)
    if kind == "relu" and x.shape.rank and x.shape.rank >= 2 and x.shape[-1]:
        # ReLU outputs are >= 0, so a unit's sum over the batch is 0 exactly
        # when it output 0 everywhere (a sum of non-negative floats cannot
        # cancel or underflow below its largest term).
        unit_sum = tf.reduce_sum(tf.reshape(x, [-1, x.shape[-1]]), axis=0)
        mean = tf.reduce_sum(unit_sum) / size
        if reduce_unit_sum is not None:
            unit_sum = reduce_unit_sum(unit_sum)
        dead = tf.reduce_mean(tf.cast(tf.equal(unit_sum, 0.0), tf.float32))
    else:
        mean = mean_s
        dead = nan
    meansq = 2.0 * tf.nn.l2_loss(xs) / size_s
    std = tf.sqrt(tf.maximum(meansq - tf.square(mean_s), 0.0))
    if kind == "sigmoid":
        sat = tf.reduce_mean(tf.cast(tf.abs(xs - 0.5) > 0.5 - SIGMOID_EPS, tf.float32))
    elif kind == "tanh":
        sat = tf.reduce_mean(tf.cast(tf.abs(xs) > TANH_BOUND, tf.float32))
    else:
        sat = nan
    zero = (
        (1.0 - tf.cast(tf.math.count_nonzero(x), tf.float32) / size) if heavy else nan
    )
    return tf.stack([mean, std, zero, dead, sat, nan])


def histogram(t, bins: int = 30, xla: bool = False, finite: bool = False) -> tf.Tensor:
    """Histogram of the finite entries as a float32 vector [lo, hi, counts...].

    `bins` equal-width buckets between the finite minimum `lo` and maximum
    `hi` (widened by 0.5 each way for a constant tensor); the host turns the
    vector into TensorBoard's (left, right, count) rows
    (`sinks.tensorboard.histogram_buckets`), which keeps the heavy step's graph small and
    quick to trace. Non-finite entries are left out of the counts.
    `xla=True` counts with a scatter-add (`unsorted_segment_sum`), which XLA
    compiles; `tf.histogram_fixed_width` (faster on CPU) has no XLA kernel.
    `finite=True` promises every entry is finite (the caller knows it from
    the step's norms): the range from two passes, the bucket counts from a
    sample of large tensors (`HIST_SAMPLE`, scaled up to the tensor's size);
    otherwise about ten passes over everything.
    """
    t = _f32(t)
    x = tf.reshape(t, [-1])
    if finite:
        lo = tf.reduce_min(x) if x.shape.num_elements() != 0 else tf.constant(0.0)
        hi = tf.reduce_max(x) if x.shape.num_elements() != 0 else tf.constant(0.0)
        has = tf.size(x) > 0
        flat = ~has | (hi <= lo)
        lo = tf.where(has, lo, 0.0) - tf.where(flat, 0.5, 0.0)
        hi = tf.where(has, hi, 0.0) + tf.where(flat, 0.5, 0.0)
        xs = _bucket_sample(t, x)
        counts = _bucket_counts(xs, lo, hi, bins, xla)
        if xs is not x:  # estimated from a sample: scale up to the whole tensor
            counts = counts * (
                tf.cast(tf.size(x), tf.float32)
                / tf.cast(tf.maximum(tf.size(xs), 1), tf.float32)
            )
        return tf.concat([tf.stack([lo, hi]), counts], axis=0)
    # No tf.cond here: a cond per histogram made the heavy step much slower
    # to trace; the extra passes cost little on a heavy step.
    finite = tf.math.is_finite(x)
    lo = tf.reduce_min(tf.where(finite, x, float("inf")))
    hi = tf.reduce_max(tf.where(finite, x, float("-inf")))
    has = lo <= hi  # at least one finite entry
    flat = ~has | (hi <= lo)
    lo = tf.where(has, lo, 0.0) - tf.where(flat, 0.5, 0.0)
    hi = tf.where(has, hi, 0.0) + tf.where(flat, 0.5, 0.0)
    # Non-finite entries are counted into the first bucket, then taken out.
    n_bad = tf.reduce_sum(tf.cast(~finite, tf.float32))
    x = tf.where(finite, x, lo)
    counts = _bucket_counts(x, lo, hi, bins, xla)
    return tf.concat([tf.stack([lo, hi, counts[0] - n_bad]), counts[1:]], axis=0)


# Above this many entries, bucket counts (not the range) are estimated from a
# sample: an evenly strided one for a tensor of static size (weights,
# gradients), the first `MOMENT_EXAMPLES` examples for a batch (activations).
HIST_SAMPLE = 65536


def _bucket_sample(t, x):
    n = x.shape.num_elements()
    if n is not None:
        if n <= HIST_SAMPLE:
            return x
        return x[:: -(-n // HIST_SAMPLE)]
    if t.shape.rank and t.shape.rank >= 2 and t.shape[1:].num_elements() is not None:
        per_example = t.shape[1:].num_elements()
        if per_example * MOMENT_EXAMPLES > HIST_SAMPLE // 4:
            return tf.reshape(t[:MOMENT_EXAMPLES], [-1])
    return x


def _bucket_counts(x, lo, hi, bins, xla):
    if xla:
        pos = (x - lo) / (hi - lo) * bins
        idx = tf.clip_by_value(tf.cast(tf.floor(pos), tf.int32), 0, bins - 1)
        return tf.math.unsorted_segment_sum(tf.ones_like(x), idx, bins)
    return tf.cast(
        tf.histogram_fixed_width(x, tf.stack([lo, hi]), nbins=bins), tf.float32
    )

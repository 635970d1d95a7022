"""Per-layer statistics, reduced in-graph to a handful of scalars.

Tensor code only (the step assembles the columns of `gradtrace.records`):
norms of groups of tensors, sums over a layer output, value ranges, zero and
non-finite counts, histograms. NaN marks a statistic that does not apply or
is not measured at this tier. Works eagerly, inside `tf.function` and under
XLA (static shapes only).

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


def group_norms(tensors, groups, n: int) -> tf.Tensor:
    """[n] L2 norms: entry g over the tensors whose `groups` entry is g
    (0 for a group without tensors). One fused pass per tensor
    (`tf.nn.l2_loss`) and one segment sum for all groups."""
    if not tensors:
        return tf.zeros([n])
    sq = tf.stack([tf.nn.l2_loss(_f32(t)) for t in tensors])
    return tf.sqrt(
        2.0 * tf.math.unsorted_segment_sum(sq, tf.constant(groups, tf.int32), n)
    )


def group_norms_safe(tensors, groups, n: int, plain) -> tf.Tensor:
    """`group_norms` without overflow: each group's tensors scaled by the
    group's largest |entry| before squaring (float32 squares overflow above
    ~1.8e19, so finite weights of 2e19 had an "Inf" norm). `plain` is
    `group_norms`' result, kept where a tensor holds NaN/Inf (its norm is
    then NaN/Inf for real). Several passes per tensor: for steps where a norm
    already came out NaN/Inf only."""
    if not tensors:
        return plain
    seg = tf.constant(groups, tf.int32)
    top = tf.stack([tf.reduce_max(tf.abs(_f32(t))) for t in tensors])
    big = tf.math.unsorted_segment_max(top, seg, n)  # -max_float if empty
    big = tf.where(big > 0, big, 1.0)
    scaled = tf.stack(
        [tf.nn.l2_loss(_f32(t) / big[g]) for t, g in zip(tensors, groups)]
    )
    safe = big * tf.sqrt(2.0 * tf.math.unsorted_segment_sum(scaled, seg, n))
    return tf.where(tf.math.is_finite(safe), safe, plain)


def count_nonfinite(tensors) -> tf.Tensor:
    return tf.add_n(
        [
            tf.reduce_sum(tf.cast(~tf.math.is_finite(_f32(t)), tf.float32))
            for t in tensors
        ]
    )


# Light steps read the whole output of a layer whose examples hold at most
# LIGHT_PER_EXAMPLE values (dense layers: a few passes over a small tensor).
# Above that (conv feature maps, where every pass over the batch costs several
# percent of a step), light-step moments come from the first examples of the
# batch that hold about MOMENT_ELEMENTS values (a contiguous block, so reading
# it reads nothing else; batches are usually shuffled), at most
# MOMENT_EXAMPLES of them.
LIGHT_PER_EXAMPLE = 1024
MOMENT_ELEMENTS = 65536
MOMENT_EXAMPLES = 16


def light_sample(x):
    """The part of a layer output that light-step moments are computed from."""
    if not x.shape.rank:
        return x
    per = x.shape[1:].num_elements()
    if per is None or per <= LIGHT_PER_EXAMPLE:
        return x
    return x[: max(1, min(MOMENT_EXAMPLES, MOMENT_ELEMENTS // per))]


# Columns of `act_sums`.
ACT_SUMS = ("sum", "sum_sq", "count", "zeros", "saturated")


def act_sums(t, kind: str, heavy: bool, keep_unit_sum=None):
    """Sums over one layer output, and its dead-unit share.

    Returns ``(sums, dead)``: `sums` a float32 vector with the columns of
    `ACT_SUMS` (sum, sum of squares, number of values, exact zeros,
    saturated values) over the values read, and `dead` (ReLU family only,
    else NaN) the share of units (last axis) that output 0 for every example
    and position of the batch. Sums, not means, so that layers stack into one
    matrix that `act_finish` turns into statistics with a few operations, and
    replicas add up exactly. `zeros` is heavy-only (NaN on light steps);
    `saturated` only for sigmoid/tanh: values within 1% of the bounds.

    Light steps read `light_sample(t)`; heavy steps every value. The dead
    share is always exact for the whole batch: ReLU outputs are >= 0, so a
    unit's sum is 0 exactly when it output 0 everywhere (a sum of
    non-negative floats cannot cancel or underflow below its largest term).
    When the sample is only part of the batch, a unit that fired on it is
    alive, and the rest of the batch is read only if some unit was silent
    on the sample (`tf.cond`), which healthy layers never pay for.

    `keep_unit_sum` (under a distribution strategy) receives the per-unit
    sums of the whole batch and returns the value to judge (the step keeps
    them for its one batched all-reduce, so a unit is dead only if dead on
    every replica).
    """
    x = _f32(t)
    nan = tf.constant(_NAN)
    xs = x if heavy else light_sample(x)
    count = tf.cast(tf.size(xs), tf.float32)
    units = x.shape[-1] if x.shape.rank and x.shape.rank >= 2 else None
    if kind == "relu" and units:
        sampled = _unit_sum(xs)
        total = tf.reduce_sum(sampled)
        if keep_unit_sum is not None:
            dead = _dead_share(keep_unit_sum(sampled if xs is x else _unit_sum(x)))
        elif xs is x:
            dead = _dead_share(sampled)
        else:
            dead = tf.cond(
                tf.reduce_any(tf.equal(sampled, 0.0)),
                lambda: _dead_share(_unit_sum(x)),
                lambda: tf.constant(0.0),
            )
    else:
        total = tf.reduce_sum(xs)
        dead = nan
    sum_sq = 2.0 * tf.nn.l2_loss(xs)
    if kind == "sigmoid":
        sat = tf.reduce_sum(tf.cast(tf.abs(xs - 0.5) > 0.5 - SIGMOID_EPS, tf.float32))
    elif kind == "tanh":
        sat = tf.reduce_sum(tf.cast(tf.abs(xs) > TANH_BOUND, tf.float32))
    else:
        sat = nan
    zeros = count - nonzero_count(x) if heavy else nan
    return tf.stack([total, sum_sq, count, zeros, sat]), dead


def _unit_sum(v):
    """Per-unit (last axis) sums over a whole layer output."""
    units = v.shape[-1]
    per = v.shape[1:].num_elements()
    if per is not None and per > units:
        # Over the batch first, along rows of a whole example (a wide, fast
        # column reduction), then over the positions.
        v = tf.reduce_sum(tf.reshape(v, [-1, per]), axis=0)
    return tf.reduce_sum(tf.reshape(v, [-1, units]), axis=0)


def _dead_share(unit_sums):
    return tf.reduce_mean(tf.cast(tf.equal(unit_sums, 0.0), tf.float32))


def act_sums_calls(ts, kind: str, heavy: bool, keep_unit_sum=None):
    """`act_sums` over the outputs of every call of one layer in a step.

    The sums add up over the calls (moments over all calls together); a ReLU
    unit is dead only if it output 0 in every call (its per-unit sums over
    all calls are 0).
    """
    if len(ts) == 1:
        return act_sums(ts[0], kind, heavy, keep_unit_sum)
    xs = [_f32(t) for t in ts]
    relu = kind == "relu" and xs[0].shape.rank and xs[0].shape.rank >= 2
    parts = [act_sums(x, "linear" if relu else kind, heavy)[0] for x in xs]
    sums = tf.add_n(parts)
    if not relu:
        return sums, tf.constant(_NAN)
    u = tf.add_n([_unit_sum(x) for x in xs])
    if keep_unit_sum is not None:
        u = keep_unit_sum(u)
    return sums, _dead_share(u)


def nonzero_count(x) -> tf.Tensor:
    """Number of non-zero entries in two passes (sign, then a fused sum of
    squares) where `count_nonzero` takes three and a 64-bit temporary. NaN
    if `x` holds a NaN (then the statistic is not measured)."""
    return 2.0 * tf.nn.l2_loss(tf.sign(_f32(x)))


def act_finish(sums, dead) -> tf.Tensor:
    """`act_sums` rows ``[..., 5]`` and dead shares ``[...]`` -> statistics
    ``[..., 6]``: mean, std, zero_frac, dead_frac, saturated_frac, nonfinite
    (NaN: the step fills it)."""
    total, sum_sq, count, zeros, sat = tf.unstack(sums, axis=-1)
    mean = total / count
    std = tf.sqrt(tf.maximum(sum_sq / count - tf.square(mean), 0.0))
    nan = tf.fill(tf.shape(mean), _NAN)
    return tf.stack([mean, std, zeros / count, dead, sat / count, nan], axis=-1)


def act_stats(t, kind: str, heavy: bool, reduce_unit_sum=None) -> tf.Tensor:
    """[mean, std, zero_frac, dead_frac, saturated_frac, nonfinite] of one
    layer output (`act_sums` then `act_finish`; see there)."""
    return act_finish(*act_sums(t, kind, heavy, reduce_unit_sum))


def value_range(t):
    """(min, max) of all entries as float32 scalars (0, 0 for an empty tensor)."""
    x = tf.reshape(_f32(t), [-1])
    if x.shape.num_elements() == 0:
        return tf.constant(0.0), tf.constant(0.0)
    return tf.reduce_min(x), tf.reduce_max(x)


def histogram(t, bins: int = 30) -> tf.Tensor:
    """Histogram of the finite entries of one tensor as a float32 vector
    [lo, hi, counts...]: `histograms` of ``[t]`` (see there)."""
    return histograms([t], [value_range(t)], bins)[0]


def histograms(tensors, ranges, bins: int = 30) -> tf.Tensor:
    """Histograms of many tensors in one packed pass: ``[n, 2 + bins]`` rows
    [lo, hi, counts...], one per tensor.

    `ranges` are each tensor's ``value_range`` (the caller has them: they
    also give the gradients' max |g|). Bins are equal-width between the
    finite minimum `lo` and maximum `hi` (widened for a constant tensor);
    non-finite entries are left out of the counts. Above `HIST_SAMPLE`
    entries the counts come from a sample (`_bucket_sample`), scaled up to
    the tensor's size; the range is always exact when finite.

    One graph for every tensor of the heavy step: each tensor contributes a
    sample (a reshape or a gather), then a single concat, one segment
    min/max for the NaN/Inf-proof ranges, one bucket computation and one
    scatter-add over all of them (XLA compiles it). The per-tensor form this
    replaces was ~12 ops per tensor in each branch of a `tf.cond`: ~20k ops
    on ResNet-50, most of the heavy variant's trace and compile time.
    """
    n = len(tensors)
    samples, segs, scale = [], [], []
    for i, t in enumerate(tensors):
        t = _f32(t)
        x = tf.reshape(t, [-1])
        xs = _bucket_sample(t, x)
        samples.append(xs)
        m = tf.size(xs)
        segs.append(tf.fill([m], i))  # static under XLA (shapes are)
        scale.append(
            tf.cast(tf.size(x), tf.float32) / tf.cast(tf.maximum(m, 1), tf.float32)
        )
    values = tf.concat(samples, axis=0)
    seg = tf.concat(segs, axis=0)
    finite = tf.math.is_finite(values)
    # Ranges: the exact ones when finite, else the finite entries' of the sample.
    lo_exact = tf.stack([tf.cast(r[0], tf.float32) for r in ranges])
    hi_exact = tf.stack([tf.cast(r[1], tf.float32) for r in ranges])
    inf = tf.constant(float("inf"))
    lo_s = tf.math.unsorted_segment_min(tf.where(finite, values, inf), seg, n)
    hi_s = tf.math.unsorted_segment_max(tf.where(finite, values, -inf), seg, n)
    exact = tf.math.is_finite(lo_exact) & tf.math.is_finite(hi_exact)
    lo = tf.where(exact, lo_exact, lo_s)
    hi = tf.where(exact, hi_exact, hi_s)
    has = lo <= hi  # at least one finite entry
    flat = ~has | (hi <= lo)
    lo, hi = _widen(has, flat, lo, hi)
    width = tf.gather(hi - lo, seg)
    pos = (tf.where(finite, values, 0.0) - tf.gather(lo, seg)) / width * bins
    idx = tf.clip_by_value(tf.cast(tf.floor(pos), tf.int32), 0, bins - 1)
    counts = tf.math.unsorted_segment_sum(
        tf.cast(finite, tf.float32), idx + seg * bins, n * bins
    )
    counts = tf.reshape(counts, [n, bins]) * tf.stack(scale)[:, None]
    return tf.concat([lo[:, None], hi[:, None], counts], axis=1)


def _widen(has, flat, lo, hi):
    """A constant (or empty) tensor's range widened to a non-empty one: by 0.5
    each way, or by 1e-5 of the value where 0.5 is below float32 precision
    (a constant -4e7 stayed a zero-width range and crashed the histogram)."""
    lo = tf.where(has, lo, 0.0)
    hi = tf.where(has, hi, 0.0)
    pad = tf.where(
        flat, tf.maximum(0.5, 1e-5 * tf.maximum(tf.abs(lo), tf.abs(hi))), 0.0
    )
    return lo - pad, hi + pad


# Above this many entries, bucket counts (not the range) are estimated from a
# sample of about this size: evenly strided rows for a tensor of static size
# (weights, gradients), the first examples of a batch (activations).
HIST_SAMPLE = 16384


def _bucket_sample(t, x):
    n = x.shape.num_elements()
    if n is not None:
        if n <= HIST_SAMPLE:
            return x
        # Evenly spaced rows (of a kernel: every output unit, a spread of
        # inputs), gathered row by row: a strided slice copies entry by entry
        # and costs ~20x more here.
        rows = t if t.shape.rank >= 2 else tf.reshape(x[: n - n % 64], [-1, 64])
        per = rows.shape[1:].num_elements()
        step = -(-rows.shape[0] // max(1, HIST_SAMPLE // per))
        return tf.reshape(tf.gather(rows, tf.range(0, rows.shape[0], step)), [-1])
    if t.shape.rank and t.shape.rank >= 2 and t.shape[1:].num_elements():
        # A batch: its first examples (a contiguous block).
        per = t.shape[1:].num_elements()
        return tf.reshape(t[: max(1, HIST_SAMPLE // per)], [-1])
    return x

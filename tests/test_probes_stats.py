"""In-graph statistics against a slow, obvious numpy oracle, eagerly and in tf.function."""

import numpy as np
import pytest
import tensorflow as tf

from gradtrace.probes import stats as st
from gradtrace.sinks.tensorboard import histogram_buckets

MODES = ["eager", "function"]


def run(mode, fn, *args):
    return _run(mode, fn, *args)


def hist(mode, t, bins):
    return histogram_buckets(_run(mode, lambda v: st.histogram(v, bins), t))


def _run(mode, fn, *args):
    if mode == "eager":
        return fn(*args).numpy()
    return tf.function(fn)(*args).numpy()


def oracle_grad(arrays, heavy=True):
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    return [
        np.sqrt(np.sum(flat**2)),
        np.max(np.abs(flat)) if heavy else np.nan,
        np.mean(flat == 0) if heavy else np.nan,
    ]


def oracle_act(x, kind, heavy=True):
    x = x.astype(np.float64)
    flat = x.reshape(-1, x.shape[-1])
    dead = np.mean(np.all(flat <= 0, axis=0)) if kind == "relu" else np.nan
    if kind == "sigmoid":
        sat = np.mean((x < 0.01) | (x > 0.99))
    elif kind == "tanh":
        sat = np.mean(np.abs(x) > 0.99)
    else:
        sat = np.nan
    return [x.mean(), x.std(), np.mean(x == 0) if heavy else np.nan, dead, sat]


@pytest.mark.parametrize("mode", MODES)
def test_group_norms(mode):
    # Groups: 0 = a kernel and a bias, 1 = nothing (a layer without weights),
    # 2 = a one-unit layer that is all zero.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5)).astype("float32")
    b = rng.normal(size=(5,)).astype("float32")
    z = np.zeros((3, 1), "float32")
    got = run(
        mode,
        lambda p, q, r: st.group_norms([p, q, r], [0, 0, 2], 3),
        tf.constant(a),
        tf.constant(b),
        tf.constant(z),
    )
    np.testing.assert_allclose(
        got, [oracle_grad([a, b])[0], 0.0, 0.0], rtol=1e-5, atol=0
    )


@pytest.mark.parametrize("mode", MODES)
def test_max_abs_and_zero_count_of_a_gradient(mode):
    # What a heavy step reports per gradient: max |g| from the value range,
    # the exact number of non-zero entries.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5)).astype("float32")
    a[0] = 0
    lo, hi = (v.numpy() for v in st.value_range(tf.constant(a)))
    assert max(-lo, hi) == pytest.approx(oracle_grad([a])[1])
    nz = run(mode, st.nonzero_count, tf.constant(a))
    assert 1 - nz / a.size == pytest.approx(oracle_grad([a])[2])
    one = tf.zeros([3, 1])
    assert run(mode, st.nonzero_count, one) == 0.0
    assert [v.numpy() for v in st.value_range(one)] == [0.0, 0.0]


@pytest.mark.parametrize("mode", MODES)
def test_nan_gradient_shows_in_norm_and_count(mode):
    g = np.ones((4, 4), "float32")
    g[1, 2] = np.nan
    g[3, 3] = np.inf
    norm = run(mode, lambda t: st.group_norms([t], [0], 1), tf.constant(g))
    assert not np.isfinite(norm[0])
    assert run(mode, lambda t: st.count_nonfinite([t]), tf.constant(g)) == 2


@pytest.mark.parametrize("mode", MODES)
def test_sparse_gradient(mode):
    vals = np.array([[3.0, 4.0]], "float32")
    slices = tf.IndexedSlices(tf.constant(vals), tf.constant([1]), tf.constant([5, 2]))
    assert run(mode, lambda: st.group_norms([slices], [0], 1))[0] == pytest.approx(5.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["relu", "sigmoid", "tanh", "linear"])
@pytest.mark.parametrize("heavy", [False, True])
def test_act_stats(mode, kind, heavy):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4, 6)).astype("float32") * 3
    if kind == "relu":
        x = np.maximum(x, 0)
        x[..., 2] = 0  # one dead unit: zero for every example and position
    elif kind == "sigmoid":
        x = 1 / (1 + np.exp(-x))
    elif kind == "tanh":
        x = np.tanh(x)
    got = run(mode, lambda t: st.act_stats(t, kind, heavy), tf.constant(x))
    np.testing.assert_allclose(
        got[:5], oracle_act(x, kind, heavy), rtol=1e-4, atol=1e-6
    )
    if kind == "relu":
        assert got[3] == pytest.approx(1 / 6)


@pytest.mark.parametrize("mode", MODES + ["xla"])
@pytest.mark.parametrize("kind", ["relu", "tanh"])
def test_light_statistics_of_a_feature_map_read_a_sample(mode, kind):
    # 64 examples of 16x16x8 = 2048 values each (> LIGHT_PER_EXAMPLE): light
    # moments come from the first MOMENT_EXAMPLES examples; the dead share is
    # still exact for the whole batch.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 16, 16, 8)).astype("float32")
    if kind == "relu":
        x = np.maximum(x, 0)
        x[..., 1] = 0  # dead for the whole batch
        x[..., 2] = 0
        x[40, 3, 3, 2] = 1.0  # silent on the sample, alive in example 40
    else:
        x = np.tanh(3 * x)
    k = min(st.MOMENT_EXAMPLES, st.MOMENT_ELEMENTS // (16 * 16 * 8))
    assert k < 64
    fn = lambda t: st.act_stats(t, kind, False)  # noqa: E731
    got = (
        tf.function(fn, jit_compile=True)(tf.constant(x)).numpy()
        if mode == "xla"
        else run(mode, fn, tf.constant(x))
    )
    want = oracle_act(x[:k], kind, heavy=False)
    np.testing.assert_allclose(
        [got[0], got[1], got[4]], [want[0], want[1], want[4]], rtol=1e-4
    )
    if kind == "relu":
        assert got[3] == pytest.approx(1 / 8)  # unit 1 only: unit 2 fired once
        assert oracle_act(x, kind)[3] == pytest.approx(1 / 8)
        x[..., :] = np.maximum(x, 0.5)  # every unit fires on the sample
        assert run(mode, fn, tf.constant(x))[3] == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_dead_share_of_all_zero_layer_and_one_unit(mode):
    assert (
        run(mode, lambda t: st.act_stats(t, "relu", True), tf.zeros([8, 1]))[3] == 1.0
    )
    assert run(mode, lambda t: st.act_stats(t, "relu", True), tf.ones([8, 1]))[3] == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_half_zero_per_example_is_not_dead(mode):
    x = np.zeros((4, 2), "float32")
    x[0, 0] = 1.0
    x[1, 1] = 1.0  # every unit fires for some example: none dead, 75% zeros
    got = run(mode, lambda t: st.act_stats(t, "relu", True), tf.constant(x))
    assert got[3] == 0.0 and got[2] == pytest.approx(0.75)


@pytest.mark.parametrize("mode", MODES + ["xla"])
@pytest.mark.parametrize("bins", [1, 5, 30])
def test_histogram_matches_numpy(mode, bins):
    x = np.random.default_rng(2).normal(size=1000).astype("float32")
    if mode == "xla":
        fn = tf.function(lambda t: st.histogram(t, bins), jit_compile=True)
        got = histogram_buckets(fn(tf.constant(x)).numpy())
    else:
        got = hist(mode, tf.constant(x), bins)
    counts, edges = np.histogram(x, bins=bins, range=(x.min(), x.max()))
    np.testing.assert_allclose(got[:, 0], edges[:-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[:, 1], edges[1:], rtol=1e-5, atol=1e-5)
    assert got[:, 2].sum() == 1000
    assert np.abs(got[:, 2] - counts).max() <= 1  # edge rounding


@pytest.mark.parametrize("mode", MODES)
def test_histogram_edges(mode):
    # constant tensor, NaN/Inf left out, empty tensor
    got = hist(mode, tf.fill([10], 2.0), 4)
    assert got[:, 2].sum() == 10 and got[0, 0] < 2.0 < got[-1, 1]
    # a large constant, where +-0.5 is below float32 precision (a real
    # program's activations: -4.00017e7 everywhere crashed the step)
    got = hist(mode, tf.fill([10], -4.00017e7), 4)
    assert got[:, 2].sum() == 10 and got[0, 0] < -4.00017e7 < got[-1, 1]
    x = np.array([1.0, np.nan, 2.0, np.inf, 3.0], "float32")
    got = hist(mode, tf.constant(x), 2)
    assert got[:, 2].tolist() == [1.0, 2.0]
    got = hist(mode, tf.zeros([0]), 3)
    assert got.shape == (3, 3) and got[:, 2].sum() == 0


def test_empty_batch_gives_nan_not_crash():
    got = st.act_stats(tf.zeros([0, 4]), "relu", True).numpy()
    assert np.isnan(got[0])


@pytest.mark.parametrize("mode", MODES)
def test_histogram_of_a_large_tensor_is_estimated_from_a_sample(mode):
    # 200k entries > HIST_SAMPLE: exact range; counts from evenly spaced rows
    # (about HIST_SAMPLE entries) scaled to the whole tensor.
    x = np.random.default_rng(3).normal(size=(800, 250)).astype("float32")
    got = hist(mode, tf.constant(x), 30)
    assert got[0, 0] == pytest.approx(x.min()) and got[-1, 1] == pytest.approx(x.max())
    assert got[:, 2].sum() == pytest.approx(x.size, rel=1e-6)
    step = -(-800 // (st.HIST_SAMPLE // 250))
    rows = x[::step]
    assert rows.size <= st.HIST_SAMPLE
    scale = x.size / rows.size
    sampled, _ = np.histogram(rows, bins=30, range=(x.min(), x.max()))
    # (an entry on a bucket edge may fall either side in float32)
    np.testing.assert_allclose(got[:, 2], sampled * scale, atol=2 * scale)
    exact, _ = np.histogram(x, bins=30, range=(x.min(), x.max()))
    big = exact > 10000  # and close to the exact histogram where counts are large
    np.testing.assert_allclose(got[big, 2], exact[big], rtol=0.1)

"""Big models measure weight and update norms on some light steps only.

Two passes over every weight (the weight norm after the update and the update
norm) were most of a ResNet-50 step's overhead. A model with at least
`probes.recorder.SPARSE_NORMS_MIN_PARAMS` trained parameters measures them
every `session.WEIGHT_NORMS_EVERY` steps, on the steps whose per-layer
scalars are written, on heavy steps and on NaN/Inf steps; in between the
detectors see the last measured weight norm and no update norm.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from gradtrace import session
from gradtrace.diagnose import Diagnoser
from gradtrace.probes import recorder
from tests.conftest import quiet
from tests.helpers import read_scalars

STEPS, BATCH = 72, 8


def _model(width):
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu", name="h1"),
            keras.layers.Dense(width, activation="relu", name="h2"),
            keras.layers.Dense(10, name="o"),
        ]
    )
    m.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return m


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 64)).astype("float32")
    return x, rng.integers(0, 10, STEPS * BATCH)


@pytest.fixture
def seen(monkeypatch):
    """(step, weight_norm row, update_norm row) of every step the detectors saw."""
    rows = []
    observe = Diagnoser.observe

    def spy(self, block, timed=()):
        if block is not None:
            for i, step in enumerate(block.steps):
                rows.append(
                    (
                        int(step),
                        block.column("weight_norm")[i].copy(),
                        block.column("update_norm")[i].copy(),
                    )
                )
        return observe(self, block, timed)

    monkeypatch.setattr(Diagnoser, "observe", spy)
    return rows


def _fit(model, data, logdir, budget):
    import gradtrace

    x, y = data
    return gradtrace.fit(
        model,
        x,
        y,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
        logdir=logdir,
        config=quiet(log_budget_kb=budget, histogram_every=1000),
    )


def test_big_model_measures_weight_norms_every_few_steps(tmp_path, data, seen):
    model = _model(1024)  # ~1.1M parameters
    assert model.count_params() >= recorder.SPARSE_NORMS_MIN_PARAMS
    logdir = str(tmp_path / "sparse")
    _fit(model, data, logdir, budget=1.0)
    s = read_scalars(os.path.join(logdir, "train"))
    written = [st for st, _ in s["weights/h1/norm"]]
    k = written[1]
    assert k > 1 and written == list(range(0, STEPS, k))
    every = session.WEIGHT_NORMS_EVERY

    by_step = {step: (w, u) for step, w, u in seen}
    assert sorted(by_step) == list(range(STEPS))
    measured = [st for st in range(STEPS) if not np.isnan(by_step[st][1]).any()]
    # Once the log plan is known (at the first block's flush, by step 31):
    # every `every` steps and the written ones.
    later = [st for st in measured if st >= 32]
    assert later == [st for st in range(32, STEPS) if st % every == 0 or st % k == 0]
    assert len(later) < (STEPS - 32) / 2
    # Between measurements the detectors see the last measured weight norm.
    last = None
    for st in range(STEPS):
        w, u = by_step[st]
        assert np.isfinite(w).all()
        if st in measured:
            last = w
        else:
            np.testing.assert_array_equal(w, last)

    # Every value written was measured at its step: the same as a run that
    # measures every step (log everything: every step is written).
    full_dir = str(tmp_path / "full")
    _fit(_model(1024), data, full_dir, budget=None)
    full = read_scalars(os.path.join(full_dir, "train"))
    for tag in ("weights/h2/norm", "updates/h2/norm", "updates/h2/ratio"):
        ref = dict(full[tag])
        assert [st for st, _ in s[tag]] == written, tag
        for st, v in s[tag]:
            assert v == pytest.approx(ref[st], rel=1e-5), (tag, st)


def test_small_model_measures_every_step(tmp_path, data, seen):
    model = _model(64)
    assert model.count_params() < recorder.SPARSE_NORMS_MIN_PARAMS
    _fit(model, data, str(tmp_path / "small"), budget=1.0)
    assert len(seen) == STEPS
    for step, w, u in seen:
        assert np.isfinite(w).all() and np.isfinite(u).all(), step


def test_a_non_finite_step_is_measured(tmp_path, data, seen):
    """A NaN/Inf step measures every norm whatever the cadence: the weights
    the update broke are seen at that step, not the last finite norm."""
    x, y = data
    x = x.copy()
    bad = 43
    x[bad * BATCH, 0] = np.nan
    logdir = str(tmp_path / "bad")
    _fit(_model(1024), (x, y), logdir, budget=1.0)
    written = [
        st for st, _ in read_scalars(os.path.join(logdir, "train"))["weights/h1/norm"]
    ]
    k = written[1]
    assert bad % session.WEIGHT_NORMS_EVERY and bad % k  # not a measuring step
    by_step = {step: (w, u) for step, w, u in seen}
    assert np.isfinite(by_step[bad - 1][0]).all()
    w, u = by_step[bad]
    # h1's weights broke (not the last finite norm); h2 and o were measured
    # too (their update norms: NaN on a step that does not measure them).
    assert np.isnan(w[0]) and np.isnan(u[0])
    assert np.isfinite(u[1:]).all()


def test_a_run_starting_between_measurements_measures_its_first_step(data, seen):
    """A run whose first step is not a measuring step (its optimizer already
    counted 250 steps; write_every=3; no logdir, so no heavy step) measures
    that step anyway: there is a weight norm to carry, no false NaN."""
    import gradtrace

    model = _model(1024)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(250)
    assert 250 % session.WEIGHT_NORMS_EVERY and 250 % 3
    x, y = data
    h = gradtrace.fit(
        model,
        x[: 16 * BATCH],
        y[: 16 * BATCH],
        batch_size=BATCH,
        verbose=0,
        config=quiet(write_every=3),
    )
    assert [step for step, _, _ in seen] == list(range(250, 266))
    assert all(np.isfinite(w).all() for _, w, _ in seen)
    assert not h.findings

"""The log budget (gradtrace.budget): bounded bytes per step, every step judged."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from gradtrace import tags
from gradtrace.budget import LogPlan, plan
from tests.conftest import quiet
from tests.helpers import read_scalars

KW = dict(write_every=1, histogram_every=100)


def test_no_budget_writes_everything():
    got = plan(None, wide_bytes=1e6, layer_bytes=1e6, heavy_bytes=1e9, **KW)
    assert got == LogPlan(layer_every=1, hist_every=100)


def test_small_model_is_written_every_step():
    got = plan(5000, wide_bytes=300, layer_bytes=1700, heavy_bytes=17000, **KW)
    assert got == LogPlan(1, 100)


def test_per_layer_scalars_get_half_the_room_and_histograms_the_other():
    # target 4500 - 500 model-wide = 4000; halves of 2000 bytes per step
    got = plan(5000, wide_bytes=500, layer_bytes=60_000, heavy_bytes=500_000, **KW)
    assert got.layer_every == 30  # 60 kB / 2 kB
    # 500 kB / 200 kB per 100 steps = 2.5, so 4 x 100 (powers of two)
    assert got.hist_every == 400
    assert 500 + 60_000 / 30 + 500_000 / 400 <= 4500


def test_per_layer_cadence_does_not_wait_for_the_heavy_step():
    before = plan(5000, wide_bytes=500, layer_bytes=60_000, heavy_bytes=None, **KW)
    after = plan(5000, wide_bytes=500, layer_bytes=60_000, heavy_bytes=10, **KW)
    assert before.layer_every == after.layer_every == 30
    assert before.hist_every == after.hist_every == 100


def test_without_histograms_per_layer_scalars_get_the_whole_room():
    got = plan(5000, wide_bytes=500, layer_bytes=60_000, heavy_bytes=0, **KW)
    assert got.layer_every == 15


def test_cadences_are_multiples_of_the_configured_ones():
    got = plan(
        5000,
        wide_bytes=500,
        layer_bytes=60_000,
        heavy_bytes=500_000,
        write_every=4,
        histogram_every=7,
    )
    assert got.layer_every % 4 == 0 and got.hist_every == 7 * 64
    assert 500 / 4 + 60_000 / got.layer_every + 500_000 / got.hist_every <= 4500


def test_model_wide_series_over_budget_still_leave_a_quarter_for_layers():
    got = plan(1000, wide_bytes=5000, layer_bytes=900, heavy_bytes=0, **KW)
    assert got.layer_every == 4  # 900 / (900 / 4) rounded up


@pytest.mark.parametrize(
    "value, error",
    [
        (0, ValueError),
        (-1.0, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("5", TypeError),
        (True, TypeError),
    ],
)
def test_bad_budget_is_a_clear_error(value, error):
    import gradtrace

    # names the field and the value, and the way to write everything
    with pytest.raises(error, match=r"log_budget_kb.*None.*Received"):
        gradtrace.Config(log_budget_kb=value)


def _deep(depth=24):
    """A deep narrow sigmoid MLP: many layers (many tags) and a gradient
    that vanishes towards the input (findings to compare)."""
    import keras

    keras.utils.set_random_seed(3)
    layers = [keras.Input((8,))]
    layers += [
        keras.layers.Dense(8, activation="sigmoid", name=f"d{i:02d}")
        for i in range(depth)
    ]
    layers.append(keras.layers.Dense(2, activation="softmax", name="out"))
    m = keras.Sequential(layers)
    m.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    return m


def _event_bytes(logdir):
    return sum(
        os.path.getsize(f)
        for f in glob.glob(
            os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True
        )
    )


def test_many_layers_stay_within_the_budget_and_every_step_is_judged(tmp_path):
    import gradtrace

    rng = np.random.default_rng(0)
    steps, batch = 300, 16  # batch <= 16: light and heavy statistics are equal
    x = rng.normal(size=(steps * batch, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    runs = {}
    for name, budget in (("all", None), ("budget", 3.0)):
        m = _deep()
        logdir = str(tmp_path / name)
        h = gradtrace.fit(
            m,
            x,
            y,
            batch_size=batch,
            shuffle=False,
            verbose=0,
            logdir=logdir,
            config=quiet(histogram_every=20, log_budget_kb=budget),
        )
        runs[name] = (h, logdir)

    h_all, all_dir = runs["all"]
    h, logdir = runs["budget"]
    # Everything would be ~3x the budget; thinned, the run keeps to it
    # (everything written counted: headers, first-sight metadata, epochs).
    assert _event_bytes(all_dir) / steps > 3 * 3000
    assert _event_bytes(logdir) / steps <= 3000

    # The detectors saw every layer at every step: the same findings (timing
    # ones aside: they judge this machine's clock, not the statistics).
    timing = {"slow_step", "input_bound", "retracing", "straggler"}

    def judged(history):
        return sorted(
            (f.kind, f.layer, f.step) for f in history.findings if f.kind not in timing
        )

    found = judged(h)
    assert found == judged(h_all)
    assert ("vanishing_gradient", "d00") in {(k, layer) for k, layer, _ in found}

    s = read_scalars(os.path.join(logdir, "train"))
    every_step = list(range(steps))
    for tag in (tags.BATCH_LOSS, tags.GLOBAL_NORM, tags.timing_tag("total_ms")):
        assert [st for st, _ in s[tag]] == every_step, tag
    layer_steps = [st for st, _ in s[tags.layer_tag("gradients", "d00", "norm")]]
    k = layer_steps[1]
    assert k > 1 and layer_steps == list(range(0, steps, k))
    # ...and the values written are the values of those steps.
    full = dict(read_scalars(os.path.join(all_dir, "train"))["gradients/d00/norm"])
    for st, v in s["gradients/d00/norm"]:
        assert v == pytest.approx(full[st], rel=1e-5)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(os.path.join(logdir, "train"), size_guidance={"tensors": 0})
    ea.Reload()
    # Heavy steps on multiples of histogram_every, thinned (the interval
    # doubles as the heatmap images, drawn over more steps, grow).
    hist_steps = [e.step for e in ea.Tensors("gradients/d00/kernel")]
    gaps = np.diff(hist_steps)
    assert hist_steps[0] == 0 and len(hist_steps) >= 2
    assert all(st % 20 == 0 for st in hist_steps)
    assert gaps.min() > 20 and (np.diff(gaps) >= 0).all()


def test_short_epochs_do_not_each_draw_the_heatmap_images(tmp_path, xy):
    # Images of a big model weigh ~0.1 MB each: drawn at every end of a
    # short epoch they alone would break the budget. Step 0 and the run's end.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import gradtrace
    from tests.helpers import mlp

    x, y = xy
    gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=32,  # 8 steps per epoch
        epochs=6,
        verbose=0,
        logdir=str(tmp_path),
        config=quiet(),
    )
    ea = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0})
    ea.Reload()
    for tag in (tags.GRADIENT_HEATMAP, tags.UPDATE_HEATMAP):
        assert [e.step for e in ea.Tensors(tag)] == [0, 47], tag

"""The step clock (against known sleeps), retrace reasons, device helpers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gradtrace.timing import (
    DeviceMemory,
    StepClock,
    _described,
    make_device_sync,
    retrace_reason,
    spec_of,
)

SLACK_MS = 25.0  # sleep overshoot on a busy 2-core host


def between(value, lo, hi=None):
    return lo <= value <= (lo + SLACK_MS if hi is None else hi)


def test_clock_splits_known_sleeps():
    clock = StepClock()
    clock.start()
    time.sleep(0.02)  # on_train_batch_begin: host
    clock.fetch()
    time.sleep(0.05)  # the iterator's next: data
    clock.data_ready()
    time.sleep(0.03)  # the compiled step: compute
    clock.compute_done()
    time.sleep(0.04)  # callbacks, summaries: host
    t = clock.finish(7, 2, True, "why", clock.now())
    assert (t.step, t.epoch, t.retraced, t.retrace_reason) == (7, 2, True, "why")
    assert between(t.data_ms, 50.0)
    assert between(t.compute_ms, 30.0)
    assert between(t.host_ms, 60.0, 60.0 + 2 * SLACK_MS)
    assert between(t.total_ms, 140.0, 140.0 + 4 * SLACK_MS)
    assert t.total_ms == pytest.approx(t.data_ms + t.compute_ms + t.host_ms)


def test_clock_without_fetch_mark_counts_from_start():
    clock = StepClock()
    clock.start()
    time.sleep(0.01)
    clock.data_ready()
    clock.compute_done()
    t = clock.finish(0, 0, False, None, clock.now())
    assert between(t.data_ms, 10.0)


def test_clock_waits_for_the_device_sync():
    calls = []
    clock = StepClock(sync=lambda: (calls.append(1), time.sleep(0.03)))
    clock.start()
    clock.fetch()
    clock.data_ready()
    clock.compute_done()
    t = clock.finish(0, 0, False, None, clock.now())
    assert calls == [1]
    assert between(t.compute_ms, 30.0)


def test_device_sync_is_a_no_op_on_cpu():
    import tensorflow as tf

    sync = make_device_sync()
    if not tf.config.list_logical_devices("GPU"):
        assert sync() is None
        assert sync is not tf.test.experimental.sync_devices


def test_device_memory_is_guarded():
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        assert DeviceMemory.default() is None
        gpu = DeviceMemory("GPU:0")
        assert gpu.peak_mb() is None and not gpu.ok
    cpu = DeviceMemory("CPU:0")
    _ = tf.ones((256, 256)) * 2.0
    peak = cpu.peak_mb()
    assert peak is None or peak >= 0.0


def test_spec_of_tensors_and_python_values():
    import tensorflow as tf

    spec = spec_of((tf.zeros((4, 3)), np.zeros(4, dtype="int64"), 0.5))
    assert _described(spec) == [
        (0, (4, 3), "float32"),
        (1, (4,), "int64"),
        (2, "value", "0.5"),
    ]
    smaller = spec_of((tf.zeros((2, 3)), np.zeros(4, dtype="int64"), 0.5))
    assert "[4, 3] -> [2, 3] (a smaller last batch)" in retrace_reason(spec, smaller)
    other = spec_of((tf.zeros((4, 3)), np.zeros(4, dtype="int64"), 0.7))
    assert "input 2 is a Python value that changed: 0.5 -> 0.7" in retrace_reason(
        spec, other
    )


@pytest.mark.parametrize(
    "prev, cur, words",
    [
        (None, [(0, (4, 3), "float32")], "first call"),
        ([(0, (32, 3), "float32")], [(0, (8, 3), "float32")], "a smaller last batch"),
        (
            [(0, (8, 10, 4), "float32")],
            [(0, (8, 20, 4), "float32")],
            "changed shape [8, 10, 4] -> [8, 20, 4]",
        ),
        ([(0, (4,), "float32")], [(0, (4,), "float64")], "dtype float32 -> float64"),
        ([(0, "value", "1")], [(0, "value", "2")], "Python value that changed: 1 -> 2"),
        (
            [(0, (4,), "float32")],
            [(0, (4,), "float32"), (1, (4,), "float32")],
            "structure changed (1 -> 2",
        ),
        ([(0, (4,), "float32")], [(0, (4,), "float32")], "same input signature"),
    ],
)
def test_retrace_reason(prev, cur, words):
    assert words in retrace_reason(prev, cur)


def test_larger_batch_is_not_called_a_smaller_last_batch():
    r = retrace_reason([(0, (8, 3), "float32")], [(0, (32, 3), "float32")])
    assert "changed shape" in r and "smaller" not in r


def test_fit_charges_batch_begin_callbacks_to_host_not_data(xy):
    import keras

    import gradtrace

    from .conftest import quiet
    from .helpers import mlp

    class SlowBegin(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 5:
                time.sleep(0.06)

    x, y = xy
    h = gradtrace.fit(
        mlp(), x, y, batch_size=32, verbose=0, callbacks=[SlowBegin()], config=quiet()
    )
    t = h.step_times[5]
    assert t.host_ms >= 60.0 and t.data_ms < 30.0
    for t in h.step_times:
        assert t.total_ms == pytest.approx(
            t.data_ms + t.compute_ms + t.host_ms, abs=1e-6
        )
        assert min(t.data_ms, t.compute_ms, t.host_ms) >= 0.0
    assert [t.step for t in h.step_times] == list(range(8))
    # No logdir: nothing to write histograms to, so no heavy variant; the
    # light variant's first call is the only compile.
    assert [t.retraced for t in h.step_times[:2]] == [True, False]


def test_peak_memory_read_after_the_clock_and_recorded():
    from gradtrace.timing import StepClock

    class FakeMemory:
        def peak_mb(self):
            return 123.0

    clock = StepClock(sync=lambda: None, memory=FakeMemory())
    clock.start()
    clock.data_ready()
    clock.compute_done()
    t = clock.finish(0, 0, False, None, clock.now())
    assert t.peak_memory_mb == 123.0
    assert StepClock(sync=lambda: None).finish.__self__.peak_mb is None

"""The optional profiler window: trace files, step markers, the traps."""

from __future__ import annotations

import glob
import logging
import os
import time

import numpy as np
import pytest

from gradtrace.config import Config
from gradtrace.profiler import StepProfiler

from .conftest import quiet
from .helpers import mlp


def xplanes(logdir):
    return sorted(
        glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    )


def step_markers(path):
    """Step numbers of the `Trace("train", step_num=..., _r=1)` events in an xplane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    steps = []
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        stats = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for e in line.events:
                if names.get(e.metadata_id) == "train":
                    s = {
                        stats.get(x.metadata_id): x.int64_value or x.uint64_value
                        for x in e.stats
                    }
                    if s.get("_r") == 1:
                        steps.append(int(s["step_num"]))
    return sorted(steps)


@pytest.fixture
def caplog(caplog):
    # gradtrace's console logger does not propagate to the root logger.
    log = logging.getLogger("gradtrace")
    log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="gradtrace.profiler")
    yield caplog
    log.removeHandler(caplog.handler)


@pytest.fixture
def xy640():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_profile_steps_window_writes_xplane_with_step_markers(tmp_path, xy640, caplog):
    import gradtrace

    x, y = xy640
    gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=32,
        verbose=0,
        logdir=str(tmp_path),
        config=quiet(profile_steps=(5, 8)),
    )
    [path] = xplanes(tmp_path)
    assert os.path.getsize(path) > 1000
    assert step_markers(path) == [5, 6, 7, 8]
    assert "profiler trace of steps 5-8" in caplog.text


def test_profile_on_slow_step_traces_the_next_expected_slow_step(
    tmp_path, xy640, caplog
):
    import keras

    import gradtrace

    # Slow every 20 steps; the 1 s sleep at 40 also puts the two traces in
    # different seconds, so neither window is moved. Each stall costs more
    # than `slow_step_stall_ms` (200 ms): a 0.2 s sleep on a ~2 ms step sat
    # right at that threshold and was a finding only sometimes.
    sleeps = {20: 0.3, 40: 1.05, 60: 0.3}

    class Periodic(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(sleeps.get(batch, 0.0))

    x, y = xy640
    cfg = quiet(profile_on_slow_step=True, profile_length=3)
    h = gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=8,
        verbose=0,
        callbacks=[Periodic()],
        logdir=str(tmp_path),
        config=cfg,
    )
    [slow] = [f for f in h.findings if f.kind == "slow_step"]
    assert (slow.step, slow.last_step, slow.count) == (20, 60, 3)
    paths = xplanes(tmp_path)
    assert len(paths) == 2
    # First: right after the first slow step. Second: aimed at the next one
    # (period 20 seen at 40 -> window 59..61 holds step 60).
    assert step_markers(paths[0]) == [21, 22, 23]
    assert step_markers(paths[1]) == [59, 60, 61]
    assert "profiler trace of steps 59-61" in caplog.text


def test_no_profiler_and_no_trace_context_when_off(xy640, monkeypatch):
    import tensorflow as tf

    import gradtrace

    assert StepProfiler.from_config(Config(), "/tmp/x") is None

    def boom(*a, **k):
        raise AssertionError("the profiler must not be touched when profiling is off")

    monkeypatch.setattr(tf.profiler.experimental, "Trace", boom)
    monkeypatch.setattr(tf.profiler.experimental, "start", boom)
    x, y = xy640
    gradtrace.fit(mlp(), x[:64], y[:64], batch_size=32, verbose=0, config=quiet())


def test_needs_a_logdir(xy640):
    import gradtrace

    x, y = xy640
    with pytest.warns(UserWarning, match="needs a logdir"):
        gradtrace.fit(
            mlp(),
            x[:64],
            y[:64],
            batch_size=32,
            verbose=0,
            config=quiet(profile_steps=(0, 1)),
        )


def test_another_running_profiler_is_a_warning_not_a_crash(tmp_path, xy640):
    import tensorflow as tf

    import gradtrace

    x, y = xy640
    tf.profiler.experimental.start(str(tmp_path / "theirs"))
    try:
        with pytest.warns(
            UserWarning, match="another TensorFlow profiler is already running"
        ):
            h = gradtrace.fit(
                mlp(),
                x[:256],
                y[:256],
                batch_size=32,
                verbose=0,
                logdir=str(tmp_path / "ours"),
                config=quiet(profile_steps=(2, 4)),
            )
    finally:
        tf.profiler.experimental.stop()
    assert len(h.step_times) == 8
    assert xplanes(tmp_path / "ours") == []


def test_exception_inside_the_window_stops_and_writes_the_trace(tmp_path, xy640):
    import keras
    import tensorflow as tf

    import gradtrace

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 6:
                raise RuntimeError("planted")

    x, y = xy640
    with pytest.raises(RuntimeError, match="planted"):
        gradtrace.fit(
            mlp(),
            x,
            y,
            batch_size=32,
            verbose=0,
            callbacks=[Crash()],
            logdir=str(tmp_path),
            config=quiet(profile_steps=(5, 9)),
        )
    [path] = xplanes(tmp_path)
    assert step_markers(path) == [5, 6]
    # The profiler is not left running: a new one can start.
    tf.profiler.experimental.start(str(tmp_path / "after"))
    tf.profiler.experimental.stop()


# -- the window logic, with a fake profiler ---------------------------------------


class _FakeProfiler:
    def __init__(self, logdir):
        self.logdir = logdir
        self.running = False
        self.starts = []
        self.experimental = self

    def start(self, logdir):
        if self.running:
            raise _Errors.AlreadyExistsError("running")
        self.running = True
        self.starts.append(time.time())

    def stop(self):
        self.running = False
        d = os.path.join(
            self.logdir, "plugins", "profile", time.strftime("%Y_%m_%d_%H_%M_%S")
        )
        os.makedirs(d, exist_ok=True)

    class Trace:
        def __init__(self, name, step_num, _r):
            self.args = (name, step_num, _r)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False


class _Errors:
    class OpError(Exception):
        pass

    class AlreadyExistsError(OpError):
        pass


class _FakeTF:
    def __init__(self, logdir):
        self.profiler = _FakeProfiler(logdir)
        self.errors = _Errors


def fake(tmp_path, **kw):
    prof = StepProfiler(str(tmp_path), **kw)
    prof._tf = _FakeTF(str(tmp_path))
    return prof


def drive(prof, steps, slow=()):
    for s in steps:
        prof.begin_step(s)
        prof.end_step(s)
        if s in slow:
            prof.slow_step(s)
    prof.close()
    return [(a, b) for a, b, _ in prof.traces]


def test_window_without_recurrence_follows_the_slow_step(tmp_path):
    prof = fake(tmp_path, on_slow_step=True, length=4)
    assert drive(prof, range(30), slow={10}) == [(11, 14)]


def test_max_traces_and_recurrence(tmp_path, monkeypatch):
    prof = fake(tmp_path, on_slow_step=True, length=2, max_traces=2)
    # Pretend every step takes 0.6 s so windows are never in the same second.
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])

    def tick(step):
        now[0] += 0.6

    for s in range(120):
        prof.begin_step(s)
        prof.end_step(s)
        tick(s)
        if s in (30, 60, 90):
            prof.slow_step(s)
    prof.close()
    assert [(a, b) for a, b, _ in prof.traces] == [(31, 32), (89, 90)]


def test_same_second_moves_the_window(tmp_path, monkeypatch):
    prof = fake(tmp_path, steps=(0, 1), on_slow_step=True, length=2)
    # The wall clock never leaves one second.
    monkeypatch.setattr(time, "time", lambda: 5000.2)
    prof.slow_step(1)  # queued while the explicit window is pending
    for s in range(6):
        prof.begin_step(s)
        prof.end_step(s)
    got = [(a, b) for a, b, _ in prof.traces]
    assert got == [(0, 1)]  # (2, 3) waits for the next second
    monkeypatch.setattr(time, "time", lambda: 5001.0)
    prof.begin_step(6)
    prof.end_step(6)
    prof.begin_step(7)
    prof.end_step(7)
    prof.close()
    assert [(a, b) for a, b, _ in prof.traces] == [(0, 1), (6, 7)]


def test_window_before_the_first_step_is_missed(tmp_path):
    prof = fake(tmp_path, steps=(2, 4))
    assert drive(prof, range(10, 20)) == []


def test_close_mid_window(tmp_path):
    prof = fake(tmp_path, steps=(3, 8))
    for s in range(5):
        prof.begin_step(s)
        prof.end_step(s)
    prof.close()
    prof.close()
    assert [(a, b) for a, b, _ in prof.traces] == [(3, 4)]
    assert not prof.running


def test_far_explicit_window_does_not_block_slow_step_windows(tmp_path):
    prof = fake(tmp_path, steps=(500, 502), on_slow_step=True, length=3)
    assert drive(prof, range(20), slow={5}) == [(6, 8)]

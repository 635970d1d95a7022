"""The step clock: data / compute / host split, device sync, retrace reasons.

Host code. `StepClock` is read around each step by the fit loop; the clock
stops for `compute_ms` only after the device finished the step: on CPU a
`tf.function` call returns when its work is done; on GPU,
`tf.test.experimental.sync_devices()` waits for every device.
"""

from __future__ import annotations

import time

import tensorflow as tf
from keras import tree

from .records import StepTime


def make_device_sync():
    """A no-argument callable that returns once all devices are idle."""
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return tf.test.experimental.sync_devices
    return lambda: None


def spec_of(data):
    """(path, shape, dtype) of every tensor leaf; Python values by repr."""
    out = []
    for i, leaf in enumerate(tree.flatten(data)):
        shape = getattr(leaf, "shape", None)
        dtype = getattr(leaf, "dtype", None)
        if shape is not None and dtype is not None:
            out.append((i, tuple(shape), str(getattr(dtype, "name", dtype))))
        else:
            out.append((i, "value", repr(leaf)))
    return out


def retrace_reason(prev, cur) -> str:
    """Which input changed between the previous call and a retracing one."""
    if prev is None:
        return "first call (trace and compile)"
    if len(prev) != len(cur):
        return f"the input structure changed ({len(prev)} -> {len(cur)} leaves)"
    for (i, s0, d0), (_, s1, d1) in zip(prev, cur):
        if s0 == "value" or s1 == "value":
            if d0 != d1:
                return f"input {i} is a Python value that changed: {d0} -> {d1}"
        elif s0 != s1:
            return f"input {i} changed shape {list(s0)} -> {list(s1)}" + (
                " (a smaller last batch)"
                if len(s0) == len(s1)
                and s1
                and s0
                and s1[0] != s0[0]
                and s1[1:] == s0[1:]
                else ""
            )
        elif d0 != d1:
            return f"input {i} changed dtype {d0} -> {d1}"
    return "the step function was traced again (same input signature)"


class StepClock:
    """Times one step at a time; produces `StepTime` records."""

    def __init__(self):
        self._now = time.perf_counter
        self._sync = make_device_sync()
        self.t_start = self.t_data = self.t_compute = None

    def start(self):
        self.t_start = self._now()

    def data_ready(self):
        self.t_data = self._now()

    def compute_done(self):
        self._sync()
        self.t_compute = self._now()

    def finish(self, step, epoch, retraced, reason, t_next_start) -> StepTime:
        total = (t_next_start - self.t_start) * 1e3
        data = (self.t_data - self.t_start) * 1e3
        compute = (self.t_compute - self.t_data) * 1e3
        return StepTime(
            step=int(step),
            epoch=int(epoch),
            total_ms=total,
            data_ms=data,
            compute_ms=compute,
            host_ms=max(total - data - compute, 0.0),
            retraced=bool(retraced),
            retrace_reason=reason,
        )

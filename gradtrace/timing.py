"""The step clock: data / compute / host split, device sync, retrace reasons.

Host code. The fit loop reads one `StepClock` around each step:

    start()          the step begins (before `on_train_batch_begin`)
    fetch()          the input pipeline's `next` is called
    data_ready()     the batch is on the host
    compute_done()   the compiled step finished on the device
    finish(...)      the step's host work is done; returns a `StepTime`

so that ``data_ms = data_ready - fetch`` (blocked in the input pipeline
only), ``compute_ms = compute_done - data_ready`` and ``host_ms`` is the rest
of ``total_ms = finish - start`` (callbacks, progress bar, gradtrace's
per-step bookkeeping). The creation of an epoch's iterator, validation,
``on_epoch_*`` callbacks and gradtrace's judging and writing of a block of
steps fall between steps and are in no step.

Device synchronisation: on CPU a `tf.function` call returns when its work is
done (and the step's outputs are fetched with ``.numpy()`` before
`compute_done`). When a GPU or TPU is visible, `compute_done` first calls
`tf.test.experimental.sync_devices()`, which returns once every device is idle,
so asynchronous kernels are charged to `compute_ms`, not to the next step.
Only the CPU path has been exercised here.
"""

from __future__ import annotations

import time

import tensorflow as tf
from keras import tree

from .records import StepTime

__all__ = [
    "StepClock",
    "DeviceMemory",
    "make_device_sync",
    "retrace_reason",
    "spec_of",
]

FIRST_CALL = "first call"  # prefix of the reason of a variant's first trace


def make_device_sync():
    """A no-argument callable that returns once all devices are idle.

    A no-op on CPU-only hosts (a compiled call is already synchronous there);
    `tf.test.experimental.sync_devices` when a GPU or TPU is visible.
    """
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return tf.test.experimental.sync_devices
    return lambda: None


class DeviceMemory:
    """Peak memory of one device since the previous read (MiB), if supported.

    `tf.config.experimental.get_memory_info` / `reset_memory_stats` are not
    implemented for every device; any error disables the probe for the run
    (`peak_mb()` then returns None).

    Args:
        device: e.g. ``"GPU:0"``. `DeviceMemory.default()` picks the first GPU,
            or returns None on a CPU-only host (off by default there).
    """

    def __init__(self, device: str):
        self.device = device
        self.ok = True

    @classmethod
    def default(cls) -> DeviceMemory | None:
        gpus = tf.config.list_logical_devices("GPU")
        return cls("GPU:0") if gpus else None

    def peak_mb(self) -> float | None:
        """The peak since the last call, then resets the peak counter."""
        if not self.ok:
            return None
        try:
            peak = tf.config.experimental.get_memory_info(self.device)["peak"]
            tf.config.experimental.reset_memory_stats(self.device)
        except (ValueError, KeyError, tf.errors.OpError, AttributeError):
            self.ok = False
            return None
        return peak / 2**20


def spec_of(data):
    """The input signature of one step call, cheap enough for every step.

    A list with, per leaf of `data` (`keras.tree` order), ``(shape, dtype)``
    as the leaf holds them (no conversion), or ``("value", repr(leaf))`` for a
    Python value. `retrace_reason` turns two of them into words, only when a
    retrace happened.
    """
    out = []
    for leaf in tree.flatten(data):
        shape = getattr(leaf, "shape", None)
        dtype = getattr(leaf, "dtype", None)
        if shape is not None and dtype is not None:
            out.append((shape, dtype))
        else:
            out.append(("value", repr(leaf)))
    return out


def _described(spec):
    # (index, shape tuple | "value", dtype name | repr) per leaf.
    out = []
    for i, entry in enumerate(spec):
        if len(entry) == 3:  # already described
            out.append(entry)
            continue
        shape, dtype = entry
        if isinstance(shape, str):
            out.append((i, shape, dtype))
        else:
            out.append((i, tuple(shape), str(getattr(dtype, "name", dtype))))
    return out


def retrace_reason(prev, cur) -> str:
    """Which input changed between the previous call and a retracing one.

    Args:
        prev: `spec_of` the previous call's inputs (None: no previous call),
            or its described form ``[(index, shape tuple, dtype name), ...]``.
        cur: `spec_of` the retracing call's inputs (either form).

    Returns:
        One clause for a person, e.g. ``"input 0 changed shape [32, 20] ->
        [24, 20] (a smaller last batch)"``.
    """
    if prev is None:
        return f"{FIRST_CALL} (trace and compile)"
    prev, cur = _described(prev), _described(cur)
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
                and s1[0] is not None
                and s0[0] is not None
                and s1[0] < s0[0]
                and s1[1:] == s0[1:]
                else ""
            )
        elif d0 != d1:
            return f"input {i} changed dtype {d0} -> {d1}"
    return "the step function was traced again (same input signature)"


class StepClock:
    """Times one step at a time; produces `StepTime` records.

    Example:

    ```python
    clock = StepClock()
    clock.start(); clock.fetch(); batch = next(it); clock.data_ready()
    out = step(batch); loss = out["loss"].numpy(); clock.compute_done()
    t = clock.finish(step=0, epoch=0, retraced=False, reason=None,
                     t_next_start=time.perf_counter())
    ```
    """

    def __init__(self, sync=None, memory: DeviceMemory | None = None):
        self._now = time.perf_counter
        self._sync = make_device_sync() if sync is None else sync
        self._memory = memory
        self.peak_mb = None
        self.t_start = self.t_fetch = self.t_data = self.t_compute = None

    def now(self) -> float:
        """The clock's time in seconds (`time.perf_counter`)."""
        return self._now()

    def start(self):
        self.t_start = self._now()
        self.t_fetch = None

    def fetch(self):
        """Marks the call of the iterator's `next` (what came before is host)."""
        self.t_fetch = self._now()

    def data_ready(self):
        self.t_data = self._now()

    def compute_done(self):
        self._sync()
        self.t_compute = self._now()
        if self._memory is not None:  # after the clock: not part of compute_ms
            self.peak_mb = self._memory.peak_mb()

    def finish(self, step, epoch, retraced, reason, t_next_start) -> StepTime:
        """The `StepTime` of the step begun by the last `start()`.

        Args:
            step: 0-based global step.
            epoch: 0-based epoch.
            retraced: the step function was traced during this step.
            reason: what changed (see `retrace_reason`), when `retraced`.
            t_next_start: `time.perf_counter()` when the step's host work ended.
        """
        t_fetch = self.t_start if self.t_fetch is None else self.t_fetch
        total = (t_next_start - self.t_start) * 1e3
        data = (self.t_data - t_fetch) * 1e3
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
            peak_memory_mb=self.peak_mb,
        )

"""Synthetic `StepTime` streams for the timing detector tests (numpy only)."""

from __future__ import annotations

import numpy as np

from gradtrace.records import StepTime


def st(
    step,
    total=3.0,
    data=0.3,
    compute=None,
    host=0.2,
    epoch=0,
    retraced=False,
    reason=None,
):
    """A StepTime whose compute is the rest of `total` unless given."""
    if compute is None:
        compute = total - data - host
    return StepTime(
        step=step,
        epoch=epoch,
        total_ms=float(total),
        data_ms=float(data),
        compute_ms=float(compute),
        host_ms=float(host),
        retraced=retraced,
        retrace_reason=reason,
    )


def jittery(n, base=3.0, jitter=0.3, seed=0, start=0, steps_per_epoch=None):
    """n steps of `base` ms with uniform +-`jitter` relative noise, split like a real step."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        step = start + i
        total = base * (1 + rng.uniform(-jitter, jitter))
        epoch = 0 if steps_per_epoch is None else step // steps_per_epoch
        out.append(
            st(step, total=total, data=0.1 * total, host=0.1 * total, epoch=epoch)
        )
    return out


def compile_steps():
    """Steps 0 and 1 as a real run has them: first calls of the heavy and light step."""
    return [
        st(
            0,
            total=900.0,
            data=10.0,
            host=5.0,
            retraced=True,
            reason="first call of the heavy step (trace and compile)",
        ),
        st(
            1,
            total=250.0,
            data=0.8,
            host=0.5,
            retraced=True,
            reason="first call of the light step (trace and compile)",
        ),
    ]


def run(detector, times):
    out = []
    for t in times:
        out += detector.observe(t)
    return out + detector.finish()

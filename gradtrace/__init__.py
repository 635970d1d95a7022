"""gradtrace: why is my Keras training slow, stuck or broken?

Replace ``model.fit(...)`` with ``gradtrace.fit(model, ..., logdir="runs/a")``
(or decorate a hand-written step with ``gradtrace.Tracer(...).step``); then
``tensorboard --logdir runs/a`` and ``gradtrace report runs/a``.

`fit` and `TraceHistory` import Keras (and so TensorFlow) on first use, so
``gradtrace report`` and the record/detector modules start without it.
"""

from .config import Config
from .findings import Finding

__all__ = ["Config", "Finding", "TraceHistory", "Tracer", "fit"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "fit":
        from .training import fit

        return fit
    if name == "Tracer":
        from .tracer import Tracer

        return Tracer
    if name == "TraceHistory":
        from .history import TraceHistory

        return TraceHistory
    raise AttributeError(f"module 'gradtrace' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["fit", "TraceHistory", "Tracer"])

"""gradtrace: why is my Keras training slow, stuck or broken?

Replace ``model.fit(...)`` with ``gradtrace.fit(model, ..., logdir="runs/a")``;
then ``tensorboard --logdir runs/a`` and ``gradtrace report runs/a``.
"""

from .config import Config
from .findings import Finding
from .fit import fit
from .history import TraceHistory

__all__ = ["Config", "Finding", "TraceHistory", "fit"]
__version__ = "0.1.0"

"""Real buggy programs (DeepLocalize benchmark) ported to Keras 3.

Each program is a `Program`: the published buggy version and its corrected twin,
each a function returning a `Run` (a compiled model, its data and the `fit`
arguments). `benchmarks/realworld.py` trains both through `gradtrace.fit` and
judges whether the buggy one is identified and the fixed one clean.

Ports keep the published facts: layers, activations, initialisers (Keras 2's
``init='uniform'`` is RandomUniform(-0.05, 0.05), ``'normal'`` is
RandomNormal(stddev=0.05), ``'glorot_uniform'`` the default), optimiser and
learning rate, loss, batch size and the data's shape and scale. Epochs are cut
where the symptom shows in the first epoch. Data is the MNIST test split in
``../shared/data/mnist`` or generated with the published shape and scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class Run:
    """One version of a program: what `gradtrace.fit(model, x, y, **fit)` gets."""

    model: Any  # a compiled keras.Model
    x: Any
    y: Any = None
    fit: dict = dataclasses.field(default_factory=dict)  # epochs, batch_size, ...


@dataclasses.dataclass
class Program:
    id: str  # "SO 48385830", "G#1"
    source: str  # the post or repository the program comes from
    bug: str  # the real problem, one line
    # finding kinds any of which names the real problem (identified = one found)
    expect: tuple[str, ...]
    buggy: Callable[[], Run] | None
    fixed: Callable[[], Run] | None
    # where the benchmark's label is not a training-dynamics bug (too few epochs,
    # a wrong accuracy formula, ...) and nothing should be found: why
    not_dynamics: str = ""
    # where the program cannot be run offline: why (counts as not identified)
    offline: str = ""
    # where the published fix leaves a real problem in the "fixed" twin (so a
    # finding there is true, not a false alarm): what remains
    fixed_note: str = ""

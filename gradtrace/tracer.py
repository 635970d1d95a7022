"""`gradtrace.Tracer`: gradtrace for hand-written training loops.

The user's step function is the body of a `step.ProbedStep` (compiled by
default, or eager), so its statistics come from the pass that trains, as in
`gradtrace.fit`; a `session.Session` (the same host side as `fit`) times,
judges and writes each step.
"""

from __future__ import annotations

import functools
import os

from .config import Config
from .findings import Finding
from .records import StepTime

__all__ = ["Tracer"]


class Tracer:
    """Traces a hand-written training loop: any tapes, models and optimizers.

    Decorate the step function with `tracer.step` (instead of
    `@tf.function`); each call is one step, numbered from 0. Statistics come
    from the gradients handed to every `optimizer.apply`/`apply_gradients`
    in the step, the updates they made and the outputs of every Keras layer
    called, computed in the same compiled step. Scalars the function returns
    (a scalar, or a dict of them) are written as ``batch_<key>`` and feed the
    loss rules.

    Args:
        logdir: folder for TensorBoard event files and `findings.jsonl`
            (the layout of `gradtrace.fit`); None records nothing to disk.
        config: a `gradtrace.Config`; None means defaults.

    Attributes:
        findings: `list[gradtrace.Finding]`, in order of first occurrence.
        step_times: per-step timing records (see `gradtrace.TraceHistory`).
        logdir: the run's log directory, or None.

    Example:

    ```python
    with gradtrace.Tracer(logdir="runs/gan") as tracer:

        @tracer.step
        def train_step(images):
            ...  # tapes; d_opt.apply_gradients(...); g_opt.apply_gradients(...)
            return {"d_loss": d_loss, "g_loss": g_loss}

        for epoch in range(3):
            for batch in tracer.iterate(dataset):
                logs = train_step(batch)
            tracer.end_epoch(epoch, logs)
    print(tracer.findings)
    ```
    """

    def __init__(self, logdir=None, config: Config | None = None):
        config = Config() if config is None else config
        if not isinstance(config, Config):
            raise TypeError(
                "`config` must be a gradtrace.Config or None. Received: "
                f"config={config!r} of type {type(config).__name__}. Use "
                "gradtrace.Config(...)."
            )
        if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
            raise TypeError(
                "`logdir` must be a path (str or os.PathLike) or None. Received: "
                f"logdir={logdir!r} of type {type(logdir).__name__}."
            )
        from .training import _prepare_logdir

        self.config = config
        self.logdir = _prepare_logdir(logdir)
        self.findings: list[Finding] = []
        self.step_times: list[StepTime] = []
        self._session = None
        self._fn_name = None
        self._epoch = 0
        self._pending = False  # a step ran whose clock is not finished yet
        self._started = False  # iterate() started the next step's clock
        self._closed = False

    # -- the step --------------------------------------------------------------
    def step(self, fn=None, *, eager: bool = False, jit_compile: bool = False):
        """Wraps a step function: `@tracer.step`, `@tracer.step(eager=True)`
        or `tracer.step(fn)`.

        Args:
            fn: the step function (or a `tf.function`, whose Python function
                gradtrace compiles itself).
            eager: run the step eagerly (statistics computed eagerly too).
            jit_compile: compile the step with XLA.

        Returns:
            A callable that runs one step and returns exactly what `fn` returns.
        """
        if fn is None:
            return functools.partial(self.step, eager=eager, jit_compile=jit_compile)
        for name, v in (("eager", eager), ("jit_compile", jit_compile)):
            if not isinstance(v, bool):
                raise TypeError(
                    f"`{name}` must be True or False. Received: {name}={v!r}."
                )
        python_fn = getattr(fn, "python_function", fn)
        if not callable(python_fn):
            raise TypeError(
                "tracer.step expects the training step function. Received: "
                f"{fn!r} of type {type(fn).__name__}."
            )
        if self._closed:
            raise RuntimeError(self._closed_message())
        if self._session is not None:
            raise ValueError(
                "A Tracer traces one step function; it already traces "
                f"{self._fn_name!r}. Received a second one: "
                f"{getattr(python_fn, '__name__', python_fn)!r}. Use one Tracer "
                "(and logdir) per training loop."
            )
        from .session import Session
        from .step import ProbedStep

        def body(*args, **kwargs):
            return python_fn(*args, **kwargs), None

        step_fn = ProbedStep(body, self.config, eager=eager, jit_compile=jit_compile)
        self._fn_name = getattr(python_fn, "__name__", repr(python_fn))
        self._session = Session(step_fn, self.config, self.logdir, self)

        @functools.wraps(python_fn)
        def traced_step(*args, **kwargs):
            return self._call(args, kwargs)

        return traced_step

    def _closed_message(self):
        return (
            "This Tracer is closed: its logs are flushed and no further step "
            "is recorded. Received a call after `close()` (or after its `with` "
            "block). Create a new gradtrace.Tracer for a new run."
        )

    def _call(self, args, kwargs):
        if self._closed:
            raise RuntimeError(self._closed_message())
        run = self._session
        if not self._started:
            self._finish_pending()
            self._begin()
        self._started = False
        out = run.step(args, self._epoch, kwargs=kwargs)
        self._pending = True
        return out["result"]

    def _begin(self):
        run = self._session
        if run.profiler is not None:
            run.profiler.begin_step(run.global_step)
        run.clock.start()

    def _finish_pending(self):
        if self._pending:
            self._pending = False
            self._session.after_step()

    # -- the loop --------------------------------------------------------------
    def iterate(self, iterable):
        """Yields the items of `iterable`, timing the wait for each one as the
        next step's ``data_ms`` (so an input-bound loop is found)."""
        if self._session is None:
            raise ValueError(
                "tracer.iterate() times the data wait of the traced step: "
                "decorate the step function with @tracer.step first."
            )
        iterator = iter(iterable)
        while True:
            if self._closed:
                raise RuntimeError(self._closed_message())
            self._finish_pending()
            self._begin()
            self._session.clock.fetch()
            try:
                item = next(iterator)
            except StopIteration:
                self._started = False
                return
            self._started = True
            yield item

    def end_epoch(self, epoch: int, logs=None) -> None:
        """Ends an epoch: judges and writes what is pending, writes
        ``epoch_<key>`` for every scalar in `logs`, flushes. Later steps
        belong to epoch ``epoch + 1``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise TypeError(
                "`epoch` must be an int >= 0. Received: "
                f"epoch={epoch!r} of type {type(epoch).__name__}."
            )
        if self._closed:
            raise RuntimeError(self._closed_message())
        if self._session is None:
            return
        from .session import scalar_items

        self._finish_pending()
        self._started = False
        values = scalar_items(logs) if logs is not None else {}
        self._session.epoch_end(epoch, values)
        self._epoch = epoch + 1

    def close(self) -> None:
        """Judges, writes and flushes everything; later steps are an error.
        Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        run = self._session
        if run is None:
            return
        try:
            self._finish_pending()
            run.finish()
        finally:
            run.close()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False  # an exception propagates unchanged

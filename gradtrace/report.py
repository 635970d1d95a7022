"""`gradtrace report`: what a logdir says about its run, as text or JSON.

Reads a finished or still-running run from its logdir alone and never imports
TensorFlow (event files are read with TensorBoard's own `EventAccumulator`,
which falls back to its pure-Python record reader when TensorFlow is absent).

Sources, and what is taken from each:

- ``findings.jsonl``: the findings, as the live run recorded them; the last
  line per (kind, layer) is that finding's state. Nothing is re-diagnosed:
  the file is appended and fsync'ed the moment a finding is made, so a crash
  loses none, while re-running the rules over the event files (float32,
  possibly every ``write_every``-th step only) could invent findings the run
  never made.
- ``gradtrace.json``: layer order, class and activation.
- ``train/`` event files: the last value of ``gradients/<layer>/norm``,
  ``updates/<layer>/ratio`` and ``activations/<layer>/dead_frac``; the
  ``timing/*`` tags of every recorded step; ``batch_loss`` and the
  ``epoch_*`` tags (also from ``validation/``).

A run still being written (or killed mid-write) may end in an incomplete
event record or an incomplete last line of ``findings.jsonl``: both are
skipped with a note. Anything else that is not what gradtrace writes is a
`LogdirError` naming the file (and line).

JSON document (``gradtrace report LOGDIR --json``), format_version 1::

    {
      "format_version": 1,
      "logdir": str,                       # as given
      "status": "ok" | "errors",           # "errors": an error-severity finding
      "run": {
        "steps": int,                      # steps with a recorded batch_loss
        "last_step": int | null,
        "epochs": int,                     # epochs with a recorded epoch_loss
        "loss": float | null,              # last epoch_loss (train/)
        "val_loss": float | null           # last epoch_loss (validation/)
      },
      "findings": [ {Finding fields}, ... ],   # worst first, last state each
      "layers": [                          # forward order (gradtrace.json)
        {"name": str, "class_name": str | null, "activation": str | null,
         "grad_norm": float | null, "grad_norm_step": int | null,
         "update_ratio": float | null, "update_ratio_step": int | null,
         "dead_frac": float | null, "dead_frac_step": int | null}, ...
      ],
      "timing": null | {                   # null: the run recorded no timing
        "steps": int,                      # steps with timing/total_ms
        "median_ms": float, "p95_ms": float,
        "max_ms": float, "max_step": int,
        "share": {"data": float, "compute": float, "host": float} | null,
                                           # fractions of the summed step time,
                                           # retraced steps excluded
        "retrace_count": int, "retraced_steps": [int, ...],
        "retrace_reasons": [str, ...],     # messages of `retracing` findings
        "slowest": [                       # up to 5 steps taking >= 2x the
                                           # median step time, slowest first
          {"step": int, "total_ms": float, "data_ms": float,
           "compute_ms": float, "host_ms": float, "retraced": bool,
           "cause": str,                   # "retrace/compile", "input pipeline",
                                           # "device compute" or "host"
           "excess_ms": float}, ...]       # the cause's time over its median
      },
      "notes": [str, ...]                  # incomplete records/lines skipped, ...
    }

Values are null when not measured or not finite; ``*_step`` is the step of
the value shown (earlier than the run's last step when the layer stopped
being recorded, e.g. its statistic became NaN). Exit status: 1 when
``status`` is ``"errors"``, else 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct

import numpy as np

from . import runinfo, tags
from .errors import LogdirError
from .findings import Finding, read_findings, sort_worst_first

__all__ = ["Report", "LayerRow", "TimingSummary", "load", "read_findings"]

FORMAT_VERSION = 1
N_SLOWEST = 5
SLOW_FACTOR = 2.0  # "slowest steps" lists only steps at least this x the median
_CAUSES = (
    ("data_ms", "input pipeline"),
    ("compute_ms", "device compute"),
    ("host_ms", "host"),
)
# A tag family written only by gradtrace (keras.callbacks.TensorBoard writes
# epoch_* and batch_* tags only).
_GRADTRACE_PREFIXES = ("gradients/", "weights/", "updates/", "activations/", "timing/")


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """The last recorded statistics of one layer (None: not recorded)."""

    name: str
    class_name: str | None
    activation: str | None
    grad_norm: float | None
    grad_norm_step: int | None
    update_ratio: float | None
    update_ratio_step: int | None
    dead_frac: float | None
    dead_frac_step: int | None


@dataclasses.dataclass(frozen=True)
class SlowStep:
    step: int
    total_ms: float
    data_ms: float
    compute_ms: float
    host_ms: float
    retraced: bool
    cause: str
    excess_ms: float


@dataclasses.dataclass(frozen=True)
class TimingSummary:
    """Step-time statistics over the recorded steps (see the module docstring)."""

    steps: int
    median_ms: float
    p95_ms: float
    max_ms: float
    max_step: int
    share: dict[str, float] | None
    retrace_count: int
    retraced_steps: list[int]
    retrace_reasons: list[str]
    slowest: list[SlowStep]


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything `gradtrace report` shows; `to_dict()` is the JSON document.

    Example:

    ```python
    rep = gradtrace.report.load("runs/a")
    print(rep.format_text())
    raise SystemExit(rep.exit_code)
    ```
    """

    logdir: str
    findings: list[Finding]
    layers: list[LayerRow]
    timing: TimingSummary | None
    run: dict
    notes: list[str]

    @property
    def has_error(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def exit_code(self) -> int:
        """1 when there is an error-severity finding, else 0 (API.md §6)."""
        return 1 if self.has_error else 0

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "logdir": self.logdir,
            "status": "errors" if self.has_error else "ok",
            "run": self.run,
            "findings": [f.to_dict() for f in self.findings],
            "layers": [dataclasses.asdict(r) for r in self.layers],
            "timing": None if self.timing is None else dataclasses.asdict(self.timing),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def format_text(self) -> str:
        return _format_text(self)


# -- loading -----------------------------------------------------------------


def load(logdir: str | os.PathLike) -> Report:
    """Reads a gradtrace logdir into a `Report`.

    Args:
        logdir: the folder given to `gradtrace.fit(..., logdir=...)`.

    Returns:
        A `Report`.

    Raises:
        LogdirError: the path is not a readable gradtrace logdir, or one of
            its files is not what gradtrace writes. The message says which
            and how to fix it.
    """
    shown = os.fspath(logdir)
    path = _check_dir(shown)
    notes: list[str] = []

    findings_path = os.path.join(path, tags.FINDINGS_FILE)
    has_findings_file = os.path.isfile(findings_path)
    findings = read_findings(findings_path, notes) if has_findings_file else []

    infos = ()
    has_runinfo = os.path.isfile(os.path.join(path, runinfo.RUN_FILE))
    if has_runinfo:
        try:
            _, infos = runinfo.read(path)
        except (OSError, ValueError, TypeError) as e:
            notes.append(
                f"{runinfo.RUN_FILE} could not be read ({e}); layer order is "
                "taken from the event files."
            )

    train, n_train_files = _read_scalars(os.path.join(path, tags.TRAIN_DIR), notes)
    val, n_val_files = _read_scalars(os.path.join(path, tags.VALIDATION_DIR), notes)
    has_gradtrace_tags = any(t.startswith(_GRADTRACE_PREFIXES) for t in train)

    if not (has_findings_file or has_runinfo or has_gradtrace_tags):
        _raise_not_a_run(shown, path, n_train_files + n_val_files, notes)

    return Report(
        logdir=shown,
        findings=sort_worst_first(findings),
        layers=_layer_rows(infos, train),
        timing=_timing(train, findings),
        run=_run_summary(train, val),
        notes=notes,
    )


def _check_dir(shown: str) -> str:
    if not os.path.exists(shown):
        raise LogdirError(
            f"The logdir does not exist. Received: {shown!r}. Pass the folder "
            "given to gradtrace.fit(..., logdir=...)."
        )
    if not os.path.isdir(shown):
        raise LogdirError(
            f"The logdir must be a folder, not a file. Received: {shown!r}. Pass "
            "the folder given to gradtrace.fit(..., logdir=...) (the one that "
            f"holds {runinfo.RUN_FILE} and train/)."
        )
    try:
        os.listdir(shown)
    except OSError as e:
        raise LogdirError(
            f"The logdir cannot be read: {e.strerror or e}. Received: {shown!r}."
        ) from e
    return shown


def _raise_not_a_run(shown: str, path: str, n_event_files: int, notes: list[str]):
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.basename(os.path.abspath(path)) in (
        tags.TRAIN_DIR,
        tags.VALIDATION_DIR,
    ) and os.path.isfile(os.path.join(parent, runinfo.RUN_FILE)):
        raise LogdirError(
            f"This is the {os.path.basename(os.path.abspath(path))}/ folder of a "
            f"gradtrace run, not the run itself. Received: {shown!r}. Pass its "
            f"parent folder: gradtrace report {parent}"
        )
    if notes and n_event_files:
        raise LogdirError(f"No readable gradtrace data in {shown!r}: {' '.join(notes)}")
    if n_event_files:
        raise LogdirError(
            f"{shown!r} has TensorBoard event files but no gradtrace data (no "
            f"{runinfo.RUN_FILE}, no {tags.FINDINGS_FILE}, no gradients/ or "
            "timing/ tags): it looks like a logdir of keras.callbacks.TensorBoard. "
            "Train with gradtrace.fit(model, ..., logdir=...) to get a report."
        )
    runs = sorted(
        d
        for d in os.listdir(path)
        if os.path.isfile(os.path.join(path, d, runinfo.RUN_FILE))
        or os.path.isfile(os.path.join(path, d, tags.FINDINGS_FILE))
    )
    if runs:
        raise LogdirError(
            f"{shown!r} is not a gradtrace run but holds {len(runs)}: "
            f"{', '.join(runs)}. Pass one of them, e.g. gradtrace report "
            f"{os.path.join(shown, runs[0])}"
        )
    raise LogdirError(
        f"No gradtrace run in {shown!r}: no {runinfo.RUN_FILE}, "
        f"{tags.FINDINGS_FILE} or event files. gradtrace.fit(model, ..., "
        "logdir=...) writes them from the first training step on; check the path."
    )


# -- event files -----------------------------------------------------------------


def _read_scalars(run_dir: str, notes: list[str]) -> tuple[dict, int]:
    """{tag: [(step, value), ...]} of the scalar-plugin tags, and the file count."""
    if not os.path.isdir(run_dir):
        return {}, 0
    from tensorboard.backend.event_processing import event_accumulator, io_wrapper
    from tensorboard.util import tensor_util

    files = sorted(
        os.path.join(run_dir, n)
        for n in os.listdir(run_dir)
        if io_wrapper.IsSummaryEventsFile(os.path.join(run_dir, n))
    )
    if not files:
        return {}, 0
    rel = os.path.basename(run_dir)
    for f in files:
        try:
            problem = _record_problem(f)
        except OSError as e:
            raise LogdirError(f"{f} cannot be read: {e.strerror or e}.") from e
        if problem:
            notes.append(f"{rel}/{os.path.basename(f)} {problem}")
    acc = event_accumulator.EventAccumulator(
        run_dir,
        size_guidance={event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0},
    )
    try:
        acc.Reload()
    except Exception as e:  # noqa: BLE001 - whatever the reader hit, say which files
        raise LogdirError(
            f"The event files in {run_dir} cannot be read: {type(e).__name__}: "
            f"{e}. Received files: {[os.path.basename(f) for f in files]}."
        ) from e
    try:
        scalar_tags = acc.PluginTagToContent("scalars")
    except KeyError:  # no scalar at all in these files
        scalar_tags = {}
    out = {
        tag: [
            (int(e.step), float(tensor_util.make_ndarray(e.tensor_proto).item()))
            for e in acc.Tensors(tag)
        ]
        for tag in scalar_tags
    }
    return out, len(files)


def _record_problem(path: str) -> str | None:
    """Walks the TFRecord framing of an event file; says what is wrong, if anything.

    TensorBoard's readers stop silently at an incomplete or corrupt record
    (right for a file still being written); this says so to the user. Only
    the 12-byte record headers are read, so it costs one seek per record.
    """
    try:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (
            masked_crc32c,
        )
    except ImportError:  # pragma: no cover - older/newer TensorBoard layout
        masked_crc32c = None
    size = os.path.getsize(path)
    n = pos = 0
    with open(path, "rb") as f:
        while pos < size:
            head = f.read(12)
            length, crc = struct.unpack("<QI", head) if len(head) == 12 else (0, 0)
            if len(head) == 12 and masked_crc32c and masked_crc32c(head[:8]) != crc:
                return (
                    f"is corrupt at byte {pos} (bad record header): only the "
                    f"{n} records before it were read."
                )
            if len(head) < 12 or pos + 16 + length > size:
                return (
                    f"ends in an incomplete record at byte {pos} (the run is still "
                    f"writing, or stopped mid-write): the {n} complete records "
                    "before it were read."
                )
            pos += 16 + length
            f.seek(pos)
            n += 1
    return None


# -- derived views -----------------------------------------------------------------


def _last(points):
    """(value, step) of the last point, value None when not finite."""
    if not points:
        return None, None
    step, v = points[-1]
    return (v if math.isfinite(v) else None), step


def _layer_rows(infos, train: dict) -> list[LayerRow]:
    names = [i.name for i in infos]
    for tag in train:  # layers only seen in event files (no gradtrace.json)
        parsed = tags.parse_layer_tag(tag)
        if parsed and parsed[1] not in names:
            names.append(parsed[1])
    by_name = {i.name: i for i in infos}
    rows = []
    for name in names:
        info = by_name.get(name)
        g, gs = _last(train.get(tags.layer_tag("gradients", name, "norm")))
        u, us = _last(train.get(tags.layer_tag("updates", name, "ratio")))
        d, ds = _last(train.get(tags.layer_tag("activations", name, "dead_frac")))
        rows.append(
            LayerRow(
                name=name,
                class_name=info.class_name if info else None,
                activation=info.activation if info else None,
                grad_norm=g,
                grad_norm_step=gs,
                update_ratio=u,
                update_ratio_step=us,
                dead_frac=d,
                dead_frac_step=ds,
            )
        )
    return rows


def _timing(train: dict, findings: list[Finding]) -> TimingSummary | None:
    cols = {f: dict(train.get(tags.timing_tag(f), ())) for f in tags.TIMING_FIELDS}
    steps = sorted(cols["total_ms"])
    if not steps:
        return None

    def col(field):
        c = cols[field]
        return np.array([c.get(s, np.nan) for s in steps], dtype=np.float64)

    total = col("total_ms")
    parts = {f: col(f) for f, _ in _CAUSES}
    retraced = col("retraced") > 0.5
    steady = ~retraced if (~retraced).any() else np.ones_like(retraced)

    share = None
    sums = {f: np.nansum(parts[f][steady]) for f in parts}
    denom = sum(sums.values())
    if denom > 0:
        share = {f[: -len("_ms")]: float(sums[f] / denom) for f in parts}

    medians = {f: float(np.nanmedian(parts[f][steady])) for f in parts}
    median = float(np.median(total))
    slowest = []
    for i in np.argsort(-total, kind="stable")[:N_SLOWEST]:
        if total[i] < SLOW_FACTOR * median:
            break
        excess = {f: parts[f][i] - medians[f] for f in parts}
        field = max(excess, key=lambda f: -np.inf if np.isnan(excess[f]) else excess[f])
        slowest.append(
            SlowStep(
                step=steps[i],
                total_ms=_r(total[i]),
                data_ms=_r(parts["data_ms"][i]),
                compute_ms=_r(parts["compute_ms"][i]),
                host_ms=_r(parts["host_ms"][i]),
                retraced=bool(retraced[i]),
                cause="retrace/compile" if retraced[i] else dict(_CAUSES)[field],
                excess_ms=_r(excess[field]),
            )
        )
    imax = int(np.argmax(total))
    return TimingSummary(
        steps=len(steps),
        median_ms=_r(median),
        p95_ms=_r(np.percentile(total, 95)),
        max_ms=_r(total[imax]),
        max_step=steps[imax],
        share=share,
        retrace_count=int(retraced.sum()),
        retraced_steps=[s for s, r in zip(steps, retraced) if r],
        retrace_reasons=[f.message for f in findings if f.kind == "retracing"],
        slowest=slowest,
    )


def _r(x) -> float | None:
    x = float(x)
    return round(x, 3) if math.isfinite(x) else None


def _run_summary(train: dict, val: dict) -> dict:
    losses = train.get(tags.BATCH_LOSS, [])
    epochs = train.get(tags.epoch_tag("loss"), [])
    clipped = [v for _, v in train.get(tags.CLIPPED, []) if v == v]
    return {
        "steps": len(losses),
        "last_step": losses[-1][0] if losses else None,
        "epochs": len(epochs),
        "loss": _last(epochs)[0],
        "val_loss": _last(val.get(tags.epoch_tag("loss")))[0],
        "global_norm": _last(train.get(tags.GLOBAL_NORM))[0],
        # share of the written steps where the optimizer's clipping engaged
        "clip_share": (sum(clipped) / len(clipped)) if clipped else None,
        "clip_steps": len(clipped),
    }


# -- text --------------------------------------------------------------------------


def _g(x, fmt=".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _format_text(rep: Report) -> str:
    out = [f"gradtrace report: {rep.logdir}"]
    run = rep.run
    if run["steps"]:
        line = f"run: {run['steps']} steps recorded (last step {run['last_step']})"
        if run["epochs"]:
            line += f", {run['epochs']} epoch(s); last loss {_g(run['loss'])}"
            if run["val_loss"] is not None:
                line += f", val_loss {_g(run['val_loss'])}"
        out.append(line)
    if run.get("global_norm") is not None:
        line = f"global gradient norm (last step): {_g(run['global_norm'])}"
        if run.get("clip_share") is not None:
            line += (
                f"; gradient clipping engaged at {100 * run['clip_share']:.0f}% of "
                f"{run['clip_steps']} steps"
            )
        out.append(line)

    out.append("")
    if rep.findings:
        out.append(f"Findings ({len(rep.findings)}, worst first):")
        for f in rep.findings:
            where = f" in layer '{f.layer}'" if f.layer else ""
            steps = (
                f"step {f.step}"
                if f.last_step == f.step
                else f"steps {f.step}-{f.last_step}"
            )
            out.append(
                f"  {f.severity.upper():<8}{f.kind}{where}, {steps} ({f.count}x)"
            )
            out.append(f"          {f.message}")
            out.append(f"          hint: {f.hint}")
    else:
        out.append("Findings: none.")

    if rep.layers:
        last = rep.run["last_step"]
        out.append("")
        out.append(
            "Layers (last recorded values"
            + (f", step {last}" if last is not None else "")
            + "):"
        )
        table = [("layer", "type", "grad norm", "update ratio", "dead units")]
        for r in rep.layers:
            kind = r.class_name or "?"
            if r.activation and r.activation not in ("linear", "other"):
                kind += f" ({r.activation})"
            table.append(
                (
                    r.name,
                    kind,
                    _cell(r.grad_norm, r.grad_norm_step, last, ".3g"),
                    _cell(r.update_ratio, r.update_ratio_step, last, ".2e"),
                    _cell(r.dead_frac, r.dead_frac_step, last, ".0%"),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            out.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
            )
        if any("@" in c for row in table[1:] for c in row[2:]):
            out.append("  (v@N: last recorded at step N; later values were not finite)")

    t = rep.timing
    out.append("")
    if t is None:
        out.append("Timing: not recorded (Config(timing=False), or no step yet).")
    else:
        out.append(f"Timing ({t.steps} steps recorded):")
        out.append(
            f"  step time: median {t.median_ms:.1f} ms, p95 {t.p95_ms:.1f} ms, "
            f"max {t.max_ms:.1f} ms (step {t.max_step})"
        )
        if t.share:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in t.share.items())
            excl = f", excluding {t.retrace_count} retraced" if t.retrace_count else ""
            out.append(f"  time share{excl}: {shares}")
        out.append(
            f"  slowest steps (>= {SLOW_FACTOR:g}x the median):"
            + ("" if t.slowest else " none")
        )
        for s in t.slowest:
            extra = "" if s.retraced else f" +{s.excess_ms:.1f} ms over its median"
            out.append(
                f"    step {s.step:<6} {s.total_ms:9.1f} ms  {s.cause}{extra} "
                f"(data {s.data_ms:.1f}, compute {s.compute_ms:.1f}, "
                f"host {s.host_ms:.1f} ms)"
            )
        if t.retrace_count:
            shown = ", ".join(str(s) for s in t.retraced_steps[:10])
            more = ", ..." if len(t.retraced_steps) > 10 else ""
            out.append(
                f"  retraces: {t.retrace_count} (steps {shown}{more}; the first "
                "call of each step variant traces and compiles it)"
            )
            for reason in t.retrace_reasons:
                out.append(f"    cause: {reason}")
        else:
            out.append("  retraces: 0")

    if rep.notes:
        out.append("")
        out.append("Notes:")
        out.extend(f"  - {n}" for n in rep.notes)

    out.append("")
    n_err = sum(f.severity == "error" for f in rep.findings)
    out.append(
        f"status: errors ({n_err} error finding(s)); exit 1"
        if n_err
        else "status: ok (no error finding)"
    )
    return "\n".join(out)


def _cell(value, step, last, fmt) -> str:
    if value is None and step is None:
        return "-"
    text = "not finite" if value is None else format(value, fmt)
    return text if step == last or last is None else f"{text}@{step}"

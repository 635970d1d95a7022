"""`gradtrace.Finding` and the book that keeps one finding per (kind, layer).

Data contract: a `Finding` serialises to exactly its fields
(`dataclasses.asdict`); `findings.jsonl` holds one such object per line per
state change (first detection, then every update of `last_step`/`count`).
This module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

from .tags import FINDINGS_FILE

__all__ = ["Finding", "KINDS", "SEVERITIES"]

# Every kind gradtrace can raise, with its default severity. Order = display
# order for equal severity.
KINDS = {
    "non_finite": "error",
    "loss_mismatch": "error",
    "zero_gradient": "error",
    "exploding_gradient": "error",
    "loss_divergence": "error",
    "vanishing_gradient": "warning",
    "dead_relu": "warning",
    "saturation": "warning",
    "input_scale": "warning",
    "update_ratio": "warning",
    "slow_step": "warning",
    "straggler": "warning",
    "input_bound": "warning",
    "retracing": "warning",
    "no_gradient": "warning",
}
SEVERITIES = ("error", "warning")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosed problem, for one layer (or the whole model).

    Attributes:
        kind: e.g. ``"dead_relu"``; see the README for every kind.
        severity: ``"warning"`` or ``"error"``.
        step: first global step (0-based optimizer step) where it was seen.
        last_step: last step where it was seen.
        count: in how many checks it was seen.
        layer: the Keras ``layer.name`` it points at, ``None`` if model-wide.
        value: the measured statistic that triggered it.
        threshold: the threshold it crossed.
        message: one sentence, for a person.
        hint: the most likely fix, for a person.

    Example:

    ```python
    for f in history.findings:
        print(f.kind, f.layer, f.step, f.message)
    ```
    """

    kind: str
    severity: str
    step: int
    last_step: int
    count: int
    layer: str | None
    value: float | None
    threshold: float | None
    message: str
    hint: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(
                f"A finding record needs the fields {names}. Missing: {missing}. "
                f"Received: {d!r}."
            )
        return cls(**{n: d[n] for n in names})


class FindingBook:
    """Keeps one `Finding` per (kind, layer); reports every state change.

    `on_change(finding, is_new)` is called for each first detection and each
    update, so sinks (console, jsonl, TensorBoard) stay in sync.
    """

    def __init__(self, on_change: Callable[[Finding, bool], None] | None = None):
        self._by_key: dict[tuple[str, str | None], Finding] = {}
        self._on_change = on_change

    def add(
        self,
        kind: str,
        step: int,
        *,
        layer: str | None = None,
        value: float | None = None,
        threshold: float | None = None,
        message: str,
        hint: str,
        severity: str | None = None,
    ) -> Finding:
        key = (kind, layer)
        old = self._by_key.get(key)
        if old is None:
            f = Finding(
                kind=kind,
                severity=severity or KINDS.get(kind, "warning"),
                step=int(step),
                last_step=int(step),
                count=1,
                layer=layer,
                value=_finite_or_none(value),
                threshold=_finite_or_none(threshold),
                message=message,
                hint=hint,
            )
        else:
            # A rule may file an earlier step late (recurring slow steps are
            # findings once they add up): step/last_step stay the extremes.
            f = dataclasses.replace(
                old,
                step=min(old.step, int(step)),
                last_step=max(old.last_step, int(step)),
                count=old.count + 1,
            )
        self._by_key[key] = f
        if self._on_change is not None:
            self._on_change(f, old is None)
        return f

    @property
    def findings(self) -> list[Finding]:
        """In order of first occurrence (dicts keep insertion order)."""
        return list(self._by_key.values())


def _finite_or_none(x) -> float | None:
    # findings.jsonl is strict JSON: NaN/Inf have no representation there.
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def sort_worst_first(findings: list[Finding]) -> list[Finding]:
    """Errors before warnings, then by kind order, then by first step."""
    order = list(KINDS)
    return sorted(
        findings,
        key=lambda f: (
            SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 9,
            order.index(f.kind) if f.kind in order else len(order),
            f.step,
        ),
    )


# -- findings.jsonl ------------------------------------------------------------

_FIELD_TYPES = {
    "kind": (str,),
    "severity": (str,),
    "step": (int,),
    "last_step": (int,),
    "count": (int,),
    "layer": (str, type(None)),
    "value": (int, float, type(None)),
    "threshold": (int, float, type(None)),
    "message": (str,),
    "hint": (str,),
}


def read_findings(path: str, notes: list[str] | None = None) -> list[Finding]:
    """The last state of each (kind, layer) finding in a findings.jsonl file.

    Args:
        path: the findings.jsonl file.
        notes: if given, a note is appended when an incomplete last line
            (a run still writing, or killed mid-write) is skipped.

    Returns:
        Findings in order of first occurrence, each in its last state.

    Raises:
        LogdirError: a line is not one JSON object with the Finding fields;
            the message gives the line number.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        from .errors import LogdirError

        raise LogdirError(f"{path} cannot be read: {e}.") from e
    lines = text.split("\n")
    by_key: dict[tuple[str, str | None], Finding] = {}
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            finding = _parse_finding(line)
        except ValueError as e:
            if i == len(lines) and notes is not None:
                # No newline after it: the writer had not finished this line.
                notes.append(
                    f"{FINDINGS_FILE} line {i} is incomplete (the run is "
                    "still writing, or stopped mid-write) and was skipped."
                )
                continue
            from .errors import LogdirError

            snippet = line if len(line) <= 80 else line[:77] + "..."
            raise LogdirError(
                f"{path}, line {i}: not a gradtrace finding ({e}). Received: "
                f"{snippet!r}. Each line must be one JSON object with exactly the "
                "Finding fields; fix or delete that line."
            ) from e
        by_key[(finding.kind, finding.layer)] = finding
    return list(by_key.values())


def _parse_finding(line: str) -> Finding:
    try:
        d = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(d, dict):
        raise ValueError(f"a JSON {type(d).__name__}, not an object")
    missing = [k for k in _FIELD_TYPES if k not in d]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    for k, types in _FIELD_TYPES.items():
        if not isinstance(d[k], types) or isinstance(d[k], bool):
            raise ValueError(f"`{k}` is {d[k]!r}")
    if d["severity"] not in SEVERITIES:
        raise ValueError(
            f"`severity` must be one of {SEVERITIES}, not {d['severity']!r}"
        )
    return Finding.from_dict(d)


def _reject_constant(name: str):
    # Python's json accepts NaN/Infinity; strict JSON (what gradtrace writes)
    # does not.
    raise ValueError(f"{name} is not valid JSON (gradtrace writes null)")

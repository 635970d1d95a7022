"""findings.jsonl: one JSON object per line per finding state change.

Each object has exactly the `gradtrace.Finding` fields. A *new* finding is
appended, flushed and fsync'ed the moment it is made, so a crash loses none.
Later updates of the same finding (its `last_step` and `count`, possibly at
every step) are coalesced: the latest state of each is appended at most once
per `UPDATE_SECS`, and at every `flush()` (epoch end) and `close()`. A reader
takes the last line per (kind, layer).
"""

from __future__ import annotations

import json
import os
import time

from ..findings import Finding

UPDATE_SECS = 1.0


class JsonlSink:
    def __init__(self, path: str):
        self.path = path
        self._f = None
        self._pending: dict[tuple, Finding] = {}
        self._last_write = 0.0

    def write(self, finding: Finding, is_new: bool = True) -> None:
        if not is_new:
            self._pending[(finding.kind, finding.layer)] = finding
            if time.monotonic() - self._last_write >= UPDATE_SECS:
                self.flush()
            return
        self._pending.pop((finding.kind, finding.layer), None)
        self._append([finding], sync=True)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = list(self._pending.values()), {}
            self._append(pending, sync=False)

    def _append(self, findings, sync: bool) -> None:
        if self._f is None:  # opened lazily: a clean run leaves no file
            self._f = open(self.path, "a", encoding="utf-8")
        for f in findings:
            self._f.write(json.dumps(f.to_dict(), allow_nan=False) + "\n")
        self._f.flush()
        if sync:
            os.fsync(self._f.fileno())
        self._last_write = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._f is not None:
            self._f.close()
            self._f = None

"""findings.jsonl: one JSON object per line per finding state change.

Each object has exactly the `gradtrace.Finding` fields. Lines are appended,
flushed and fsync'ed the moment a finding is made, so a crash loses none.
"""

from __future__ import annotations

import json
import os

from ..findings import Finding


class JsonlSink:
    def __init__(self, path: str):
        self.path = path
        self._f = None

    def write(self, finding: Finding) -> None:
        if self._f is None:  # opened lazily: a clean run leaves no file open
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write(json.dumps(finding.to_dict(), allow_nan=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

"""One warning line per new finding, through `logging` and `warnings`-free."""

from __future__ import annotations

import logging

from ..findings import Finding

logger = logging.getLogger("gradtrace")
if not logger.handlers:
    # A library must not configure the root logger; give our own logger a
    # plain stderr handler so warnings show in a bare script, as Keras does.
    _h = logging.StreamHandler()
    _h.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_h)
    logger.propagate = False
    logger.setLevel(logging.INFO)


def format_finding(f: Finding) -> str:
    where = f" in layer '{f.layer}'" if f.layer else ""
    return f"gradtrace: {f.kind} at step {f.step}{where}: {f.message} Hint: {f.hint}"


class ConsoleSink:
    def write(self, finding: Finding, is_new: bool) -> None:
        if not is_new:
            return
        if finding.severity == "error":
            logger.error(format_finding(finding))
        else:
            logger.warning(format_finding(finding))

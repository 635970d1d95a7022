"""`LOGDIR/gradtrace.json`: what `gradtrace report` needs to judge a run.

Data contract (format_version 1), written once when the step is first traced:

    {"format_version": 1,
     "config": {<every gradtrace.Config field>},
     "layers": [{<every LayerInfo field>}, ...],   # forward order
     "setup": {<every SetupFacts field>} | null}   # gradtrace.fit's first batch

Never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os

from .records import LayerInfo

RUN_FILE = "gradtrace.json"
FORMAT_VERSION = 1


def write(logdir: str, config, layers, setup=None) -> None:
    cfg = dataclasses.asdict(config)
    if cfg.get("layers") is not None:
        cfg["layers"] = list(cfg["layers"])
    doc = {
        "format_version": FORMAT_VERSION,
        "config": cfg,
        "layers": [dataclasses.asdict(info) for info in layers],
        "setup": None if setup is None else dataclasses.asdict(setup),
    }
    path = os.path.join(logdir, RUN_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=_jsonable)
    os.replace(tmp, path)


def _jsonable(o):
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o).__name__)


def read(logdir: str):
    """Returns (config_kwargs: dict, layers: tuple[LayerInfo, ...]); raises OSError/ValueError."""
    path = os.path.join(logdir, RUN_FILE)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a gradtrace run file of format_version {FORMAT_VERSION}."
        )
    layers = tuple(LayerInfo(**d) for d in doc.get("layers", []))
    return dict(doc.get("config", {})), layers

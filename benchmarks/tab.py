"""How fast the gradtrace tab opens a big run, through a real TensorBoard.

    python benchmarks/tab.py [--layers 86] [--steps 2000]

Writes a synthetic run with gradtrace's own sinks (86 layers x 15 per-layer
tags + batch_loss + timing = 1,296 tags, ResNet-50's count under the default
Config), starts a real `tensorboard` on a free 127.0.0.1 port and times:
until the tab's run list names the run, and each tab request (/health for
every quantity, /timing, /findings) once the run is loaded. Prints the event
file size too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from gradtrace import Config, runinfo, tags  # noqa: E402
from gradtrace.records import LAYER_FIELDS, LayerInfo, StatsBlock, StepTime  # noqa: E402
from gradtrace.sinks.tensorboard import TensorBoardSink  # noqa: E402
from tests.helpers import get_json, tensorboard_server  # noqa: E402


def write_run(folder, n_layers, steps, chunk=500):
    infos = tuple(
        LayerInfo(f"conv{i}", "Conv2D", "relu", 1000, 64, is_output=i == n_layers - 1)
        for i in range(n_layers)
    )
    os.makedirs(folder)
    runinfo.write(folder, Config(), infos)
    sink = TensorBoardSink(folder)
    rng = np.random.default_rng(0)
    for start in range(0, steps, chunk):
        k = np.arange(start, min(steps, start + chunk))
        values = {
            f: rng.uniform(0.01, 1.0, size=(len(k), n_layers)) for f in LAYER_FIELDS
        }
        values["n_params"] = np.full(n_layers, 1000.0)
        block = StatsBlock(
            k, 0 * k, rng.uniform(size=len(k)), [i.name for i in infos], values
        )
        times = [StepTime(int(s), 0, 30.0, 1.0, 28.0, 1.0, False) for s in k]
        sink.stats_block(block, 1e9 + k, np.arange(len(k)), times, 1e9 + k)
    sink.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=86)
    p.add_argument("--steps", type=int, default=2000)
    a = p.parse_args(argv)
    root = tempfile.mkdtemp(prefix="gradtrace-tab-")
    try:
        t = time.perf_counter()
        write_run(os.path.join(root, "big"), a.layers, a.steps)
        written = time.perf_counter() - t
        size = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(root)
            for f in fs
        )
        print(f"# python benchmarks/tab.py --layers {a.layers} --steps {a.steps}")
        print(
            f"run: {a.layers * len(tags.SCALAR_TAGS) + 6} tags x {a.steps} steps, "
            f"{size / 1e6:.1f} MB of event files (written in {written:.1f} s)"
        )
        from pathlib import Path

        t0 = time.perf_counter()
        with tensorboard_server(Path(root), wait_for_runs=False) as port:
            up = time.perf_counter() - t0
            while not get_json(port, "/data/plugin/gradtrace/runs"):
                time.sleep(0.2)
            listed = time.perf_counter() - t0
            q = urllib.parse.urlencode(
                {"run": "big", "layer": "conv0", "quantity": "grad_rms"}
            )
            while get_json(port, f"/data/plugin/gradtrace/series?{q}")[-1][0] < (
                a.steps - 1
            ):
                time.sleep(0.5)
            loaded = time.perf_counter() - t0
            print(
                f"tensorboard answers: {up:.1f} s; tab lists the run: {listed:.1f} s; "
                f"every step loaded: {loaded:.1f} s"
            )
            for route, params in [
                ("health", {"quantity": q})
                for q in ("grad_rms", "update_ratio", "dead_frac", "act_std")
            ] + [("timing", {}), ("findings", {})]:
                q = urllib.parse.urlencode({"run": "big", **params})
                t = time.perf_counter()
                get_json(port, f"/data/plugin/gradtrace/{route}?{q}")
                print(
                    f"  /{route} {params.get('quantity', '')}: {time.perf_counter() - t:.2f} s"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

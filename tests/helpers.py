"""Shared test helpers: small models, event-file reading."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np


def mlp(seed=0, hidden=16, n_in=8, n_out=2, reg=None, activation="relu"):
    import keras

    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(
                hidden, activation=activation, kernel_regularizer=reg, name="hidden"
            ),
            keras.layers.Dense(n_out, activation="softmax", name="out"),
        ]
    )
    m.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return m


def dead_mlp(dead_name="dead"):
    """8 -> relu 16 ("alive") -> relu 16 with bias -10 (dead: every unit
    outputs 0) -> softmax 2 ("out"); SGD, sparse categorical cross-entropy."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="alive"),
            keras.layers.Dense(
                16,
                activation="relu",
                bias_initializer=keras.initializers.Constant(-10.0),
                name=dead_name,
            ),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ]
    )
    m.compile("sgd", "sparse_categorical_crossentropy")
    return m


def read_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    ea = EventAccumulator(run_dir, size_guidance={"tensors": 0, "scalars": 0})
    ea.Reload()
    out = {}
    for tag in ea.Tags()["tensors"]:
        if ea.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        out[tag] = [
            (e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
            for e in ea.Tensors(tag)
        ]
    return out


def read_tags(run_dir: str) -> dict[str, str]:
    """{tag: plugin_name} for every tensor tag in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    ea.Reload()
    return {
        t: ea.SummaryMetadata(t).plugin_data.plugin_name for t in ea.Tags()["tensors"]
    }


def event_files(run_dir: str) -> list[str]:
    return glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))


def weights_close(a, b, atol=1e-6, rtol=1e-5):
    return all(
        np.allclose(p, q, atol=atol, rtol=rtol)
        for p, q in zip(a.get_weights(), b.get_weights())
    )


def assert_same_series(run_a: str, run_b: str, tag_list, rtol=1e-4):
    """The scalar series of `tag_list` are equal in two run folders."""
    a, b = read_scalars(run_a), read_scalars(run_b)
    for tag in tag_list:
        np.testing.assert_allclose(
            [v for _, v in b[tag]], [v for _, v in a[tag]], rtol=rtol, err_msg=tag
        )


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def tensorboard_server(logdir, wait_for_runs=True):
    """A real `tensorboard` on a free 127.0.0.1 port serving `logdir`; yields the port."""
    exe = shutil.which("tensorboard") or os.path.join(
        os.path.dirname(sys.executable), "tensorboard"
    )
    port = _free_port()
    log = open(logdir.parent / "tb.log", "w")
    p = subprocess.Popen(
        [
            exe,
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                get_json(port, "/data/environment")
                break
            except OSError:
                assert p.poll() is None, (logdir.parent / "tb.log").read_text()
                assert time.time() < deadline, "tensorboard did not answer in 60 s"
                time.sleep(0.5)
        # wait until the runs are loaded
        while (
            wait_for_runs
            and time.time() < deadline
            and not get_json(port, "/data/plugin/scalars/tags")
        ):
            time.sleep(0.5)
        yield port
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()

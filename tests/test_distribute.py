"""tf.distribute: MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy
(2 worker processes on 127.0.0.1), each in subprocesses so device setup never leaks."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import read_scalars

CHILD = os.path.join(os.path.dirname(__file__), "dist_child.py")
ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONPATH": os.path.dirname(os.path.dirname(__file__)),
}


def _load(out, name):
    w = np.load(os.path.join(out, f"{name}.npz"))
    with open(os.path.join(out, f"{name}.json")) as f:
        return [w[k] for k in sorted(w, key=lambda k: int(k.split("_")[1]))], json.load(
            f
        )


def _close(a, b):
    return max(float(np.abs(p - q).max()) for p, q in zip(a, b)) < 1e-5


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mirrored"))
    subprocess.run(
        [sys.executable, CHILD, "mirrored", out],
        env=ENV,
        check=True,
        timeout=300,
        capture_output=True,
    )
    return out


def test_mirrored_matches_single_device(mirrored):
    w_single, single = _load(mirrored, "single")
    w_mirr, mirr = _load(mirrored, "mirrored")
    assert _close(w_single, w_mirr)
    assert single["history"].keys() == mirr["history"].keys()
    for k in single["history"]:
        np.testing.assert_allclose(single["history"][k], mirr["history"][k], rtol=1e-5)


def test_mirrored_statistics_are_of_the_global_batch(mirrored):
    # The all-reduced gradient and the whole batch's activations: the same
    # numbers as one device seeing the whole batch.
    s = read_scalars(os.path.join(mirrored, "single_log", "train"))
    m = read_scalars(os.path.join(mirrored, "mirrored_log", "train"))
    for tag in (
        "gradients/h1/norm",
        "activations/h1/mean",
        "activations/h2/dead_frac",
        "updates/h2/ratio",
        "batch_loss",
    ):
        np.testing.assert_allclose(
            [v for _, v in m[tag]],
            [v for _, v in s[tag]],
            rtol=1e-4,
            atol=1e-7,
            err_msg=tag,
        )
    # std is estimated from the first 16 examples on light steps (per replica
    # under a strategy); heavy steps (step 0) use every example: exact there.
    np.testing.assert_allclose(
        m["activations/h1/std"][0][1], s["activations/h1/std"][0][1], rtol=1e-4
    )


def test_mirrored_dead_relu_still_detected(mirrored):
    _, dead = _load(mirrored, "mirrored_dead")
    kinds = {(f["kind"], f["layer"]) for f in dead["findings"]}
    assert ("dead_relu", "h2") in kinds


def test_mirrored_custom_train_step_trains_and_probes_the_global_batch(mirrored):
    w_single, single = _load(mirrored, "single_custom")
    w_mirr, mirr = _load(mirrored, "mirrored_custom")
    assert _close(w_single, w_mirr)
    for k in single["history"]:
        np.testing.assert_allclose(single["history"][k], mirr["history"][k], rtol=1e-5)
    s = read_scalars(os.path.join(mirrored, "single_custom", "train"))
    m = read_scalars(os.path.join(mirrored, "mirrored_custom", "train"))
    for tag in ("gradients/h1/norm", "activations/h2/dead_frac", "updates/out/ratio"):
        np.testing.assert_allclose(
            [v for _, v in m[tag]], [v for _, v in s[tag]], rtol=1e-4, err_msg=tag
        )


def test_tracer_step_calling_strategy_run_is_a_clear_error(mirrored):
    with open(os.path.join(mirrored, "tracer_strategy.json")) as f:
        error = json.load(f)["error"]
    assert error and "2 replicas" in error and "not supported" in error


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_two_processes(tmp_path):
    out = str(tmp_path)
    ports = [_port(), _port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {
            **ENV,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            ),
        }
        log = open(os.path.join(out, f"w{i}.log"), "w")
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, CHILD, "worker", out],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    try:
        for p, _ in procs:
            p.wait(timeout=180)
    finally:
        for p, log in procs:  # one dead worker blocks the other in the collective
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    for i, (p, _) in enumerate(procs):
        assert p.returncode == 0, open(os.path.join(out, f"w{i}.log")).read()[-3000:]
    subprocess.run(
        [sys.executable, CHILD, "single", out],
        env=ENV,
        check=True,
        timeout=300,
        capture_output=True,
    )
    w0, j0 = _load(out, "worker0")
    w1, j1 = _load(out, "worker1")
    ws, js = _load(out, "single")
    assert _close(w0, w1) and _close(w0, ws)
    for k in js["history"]:
        np.testing.assert_allclose(j0["history"][k], js["history"][k], rtol=1e-5)
    # Per-worker step times, the same on both workers; worker 1 slept 0.4 s in
    # a callback once: the chief names it as the straggler of that step.
    own = j0["worker_ms"]
    assert all(len(w) == 2 for w in own) and own == j1["worker_ms"]
    slowest = max(range(len(own)), key=lambda i: own[i][1])
    assert own[slowest][1] >= 400.0 > own[slowest][0]
    (strag,) = [f for f in j0["findings"] if f["kind"] == "straggler"]
    assert strag["step"] == slowest and "Worker 1" in strag["message"], (own, strag)
    # Exactly one set of logs: the chief's.
    assert j0["logdir"] is not None and j1["logdir"] is None
    mw = os.path.join(out, "mw_log")
    assert sorted(os.listdir(mw)) == [
        "findings.jsonl",
        "gradtrace.json",
        "train",
        "validation",
    ]
    assert len(os.listdir(os.path.join(mw, "train"))) == 1
    assert len(read_scalars(os.path.join(mw, "train"))["batch_loss"]) == 16

"""gradtrace.report: a logdir (finished, running, damaged or foreign) -> Report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradtrace import report
from gradtrace.errors import LogdirError
from gradtrace.findings import Finding, sort_worst_first

STEPS_PER_EPOCH = 12  # 512 samples, validation_split=0.25, batch_size=32
EPOCHS = 2
REPO = Path(__file__).resolve().parents[1]


# -- logdirs -------------------------------------------------------------------


def make_fit_run(base: Path) -> dict:
    """A tiny real gradtrace.fit run, once per session (cached on disk).

    Returns paths: "run" (finished logdir), "snapshot" (a copy of the logdir
    taken while the run was between its two epochs: files flushed, not
    closed) and "findings" (history.findings of the live run, as dicts).
    """
    paths = {
        "run": base / "fit_run",
        "snapshot": base / "fit_snapshot",
        "findings": base / "fit_findings.json",
    }
    if paths["findings"].exists():
        return paths
    import keras
    import numpy as np

    import gradtrace

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                shutil.copytree(paths["run"], paths["snapshot"])

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = gradtrace.fit(
        model,
        x,
        y,
        batch_size=32,
        epochs=EPOCHS,
        validation_split=0.25,
        verbose=0,
        callbacks=[Snapshot()],
        logdir=str(paths["run"]),
        config=gradtrace.Config(console=False),
    )
    paths["findings"].write_text(json.dumps([f.to_dict() for f in history.findings]))
    return paths


def make_keras_tensorboard_logdir(base: Path) -> Path:
    """A logdir written by plain model.fit + keras.callbacks.TensorBoard."""
    d = base / "keras_tb"
    if d.exists():
        return d
    import keras
    import numpy as np

    x = np.zeros((32, 4), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(
        x,
        x[:, :1],
        epochs=1,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(d))],
    )
    return d


@pytest.fixture(scope="session")
def fit_run(tmp_path_factory):
    return make_fit_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def keras_tb_logdir(tmp_path_factory):
    return make_keras_tensorboard_logdir(tmp_path_factory.getbasetemp())


def finding(
    kind="dead_relu", layer="hidden", step=3, count=1, severity="warning", **kw
):
    d = dict(
        kind=kind,
        severity=severity,
        step=step,
        last_step=kw.pop("last_step", step),
        count=count,
        layer=layer,
        value=kw.pop("value", 0.97),
        threshold=kw.pop("threshold", 0.9),
        message=kw.pop("message", f"{kind} seen."),
        hint=kw.pop("hint", "do something."),
    )
    d.update(kw)
    return d


def write_findings(logdir: Path, *records, tail="\n") -> Path:
    path = logdir / "findings.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + tail)
    return path


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def train_event_file(logdir: Path) -> Path:
    (f,) = (logdir / "train").glob("events.out.tfevents.*")
    return f


# -- a real run ------------------------------------------------------------------


def test_real_run_layers_in_forward_order_with_last_values(fit_run):
    rep = report.load(fit_run["run"])
    assert [r.name for r in rep.layers] == ["hidden", "out"]
    hidden, out = rep.layers
    last = EPOCHS * STEPS_PER_EPOCH - 1
    assert (hidden.class_name, hidden.activation) == ("Dense", "relu")
    assert hidden.grad_norm > 0 and hidden.grad_norm_step == last
    assert 0 < hidden.update_ratio < 1 and hidden.update_ratio_step == last
    assert 0 <= hidden.dead_frac <= 1 and hidden.dead_frac_step == last
    # A sigmoid layer has no dead-unit statistic: not recorded, not zero.
    assert out.dead_frac is None and out.dead_frac_step is None
    assert out.grad_norm > 0


def test_real_run_summary_and_timing(fit_run):
    rep = report.load(fit_run["run"])
    n = EPOCHS * STEPS_PER_EPOCH
    assert rep.run["steps"] == n and rep.run["last_step"] == n - 1
    assert rep.run["epochs"] == EPOCHS
    assert rep.run["loss"] > 0 and rep.run["val_loss"] > 0
    t = rep.timing
    assert t.steps == n
    assert 0 < t.median_ms <= t.p95_ms <= t.max_ms
    # Step 0 traces and compiles the step: it is a retrace and the slowest.
    assert 0 in t.retraced_steps and t.retrace_count == len(t.retraced_steps)
    assert t.slowest[0].step == t.max_step and 1 <= len(t.slowest) <= report.N_SLOWEST
    assert all(s.total_ms >= report.SLOW_FACTOR * t.median_ms for s in t.slowest)
    assert [s.total_ms for s in t.slowest] == sorted(
        (s.total_ms for s in t.slowest), reverse=True
    )
    assert t.slowest[0].cause == "retrace/compile"
    assert sum(t.share.values()) == pytest.approx(1.0)
    assert rep.notes == []


def test_real_run_findings_are_the_live_runs(fit_run):
    live = [Finding.from_dict(d) for d in json.loads(fit_run["findings"].read_text())]
    rep = report.load(fit_run["run"])
    assert rep.findings == sort_worst_first(live)
    assert rep.exit_code == (1 if any(f.severity == "error" for f in live) else 0)


def test_json_document_follows_the_schema(fit_run):
    doc = json.loads(report.load(fit_run["run"]).to_json())
    assert set(doc) == {
        "format_version",
        "logdir",
        "status",
        "run",
        "findings",
        "layers",
        "timing",
        "notes",
    }
    assert doc["format_version"] == 1 and doc["status"] in ("ok", "errors")
    assert set(doc["run"]) == {
        "steps",
        "last_step",
        "epochs",
        "loss",
        "val_loss",
        "global_norm",
        "clip_share",
        "clip_steps",
    }
    assert set(doc["layers"][0]) == {
        "name",
        "class_name",
        "activation",
        "grad_norm",
        "grad_norm_step",
        "update_ratio",
        "update_ratio_step",
        "dead_frac",
        "dead_frac_step",
    }
    assert set(doc["timing"]) == {
        "steps",
        "median_ms",
        "p95_ms",
        "max_ms",
        "max_step",
        "share",
        "retrace_count",
        "retraced_steps",
        "retrace_reasons",
        "slowest",
    }
    assert set(doc["timing"]["share"]) == {"data", "compute", "host"}
    assert set(doc["timing"]["slowest"][0]) == {
        "step",
        "total_ms",
        "data_ms",
        "compute_ms",
        "host_ms",
        "retraced",
        "cause",
        "excess_ms",
    }


def test_text_shows_every_section(fit_run):
    text = report.load(fit_run["run"]).format_text()
    for expected in (
        f"gradtrace report: {fit_run['run']}",
        f"run: {EPOCHS * STEPS_PER_EPOCH} steps recorded",
        "Layers (last recorded values, step 23):",
        "hidden  Dense (relu)",
        "Timing (24 steps recorded):",
        "step time: median",
        "slowest steps (>= 2x the median):",
        "retrace/compile",
        "status:",
    ):
        assert expected in text


def test_running_run_snapshot_reports_what_was_flushed(fit_run):
    # Copied between epochs: event files flushed at the epoch end, not closed.
    rep = report.load(fit_run["snapshot"])
    assert rep.run["steps"] == STEPS_PER_EPOCH and rep.run["epochs"] == 1
    assert rep.timing.steps == STEPS_PER_EPOCH
    assert rep.layers[0].grad_norm_step == STEPS_PER_EPOCH - 1


def test_slow_step_cause_is_the_part_that_grew():
    # 10 steps of 4 ms (data 1, compute 2, host 1); step 0 compiles; step 5
    # waits 49 ms more on the host, step 7 29 ms more on the input pipeline.
    parts = {s: (1.0, 2.0, 1.0) for s in range(10)}
    parts[0], parts[5], parts[7] = (1.0, 98.0, 1.0), (1.0, 2.0, 50.0), (30.0, 2.0, 1.0)
    train = {
        "timing/data_ms": [(s, p[0]) for s, p in parts.items()],
        "timing/compute_ms": [(s, p[1]) for s, p in parts.items()],
        "timing/host_ms": [(s, p[2]) for s, p in parts.items()],
        "timing/total_ms": [(s, sum(p)) for s, p in parts.items()],
        "timing/retraced": [(s, float(s == 0)) for s in parts],
    }
    t = report._timing(train, [])
    assert [(s.step, s.cause, s.excess_ms) for s in t.slowest] == [
        (0, "retrace/compile", 96.0),
        (5, "host", 49.0),
        (7, "input pipeline", 29.0),
    ]
    assert (t.steps, t.median_ms, t.max_ms, t.max_step) == (10, 4.0, 100.0, 0)
    assert (t.retrace_count, t.retraced_steps) == (1, [0])
    # Shares over steps 1-9 only: data 38 ms, compute 18 ms, host 58 ms.
    assert t.share == pytest.approx(
        {"data": 38 / 114, "compute": 18 / 114, "host": 58 / 114}
    )


# -- findings.jsonl ----------------------------------------------------------------


def test_last_state_per_kind_and_layer_worst_first(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    write_findings(
        d,
        finding("dead_relu", "hidden", step=3),
        finding("slow_step", None, step=12, value=80.0, threshold=10.0),
        finding("dead_relu", "hidden", step=3, last_step=9, count=4),
        finding("non_finite", "out", step=20, severity="error", value=None),
    )
    rep = report.load(d)
    assert [(f.kind, f.layer) for f in rep.findings] == [
        ("non_finite", "out"),
        ("dead_relu", "hidden"),
        ("slow_step", None),
    ]
    dead = rep.findings[1]
    assert (dead.step, dead.last_step, dead.count) == (3, 9, 4)
    assert rep.exit_code == 1 and rep.to_dict()["status"] == "errors"
    text = rep.format_text()
    assert "ERROR   non_finite in layer 'out', step 20 (1x)" in text
    assert "WARNING dead_relu in layer 'hidden', steps 3-9 (4x)" in text
    assert text.index("non_finite") < text.index("dead_relu") < text.index("slow_step")


def test_warnings_only_exit_zero(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    write_findings(d, finding("vanishing_gradient", "hidden"))
    rep = report.load(d)
    assert rep.exit_code == 0 and rep.to_dict()["status"] == "ok"


def test_retrace_reasons_come_from_retracing_findings(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    msg = "Step 11 retraced: the batch shape changed from (32, 8) to (16, 8)."
    write_findings(d, finding("retracing", None, step=11, message=msg))
    rep = report.load(d)
    assert rep.timing.retrace_reasons == [msg]
    assert f"cause: {msg}" in rep.format_text()


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not an object"),
        (
            json.dumps({k: v for k, v in finding().items() if k != "hint"}),
            "missing field(s) hint",
        ),
        (json.dumps(finding(step="3")), "`step` is '3'"),
        (json.dumps(finding(severity="fatal")), "`severity` must be one of"),
        (json.dumps(finding(value=float("nan"))), "NaN is not valid JSON"),
    ],
)
def test_malformed_line_names_the_line(tmp_path, bad, reason):
    write_findings(tmp_path, finding(), bad, finding("saturation", "out"))
    with pytest.raises(
        LogdirError, match=r"findings.jsonl, line 2: not a gradtrace finding"
    ) as e:
        report.load(tmp_path)
    assert reason in str(e.value)


def test_incomplete_last_line_is_skipped_with_a_note(tmp_path):
    # A run killed mid-write leaves a last line without its newline.
    write_findings(tmp_path, finding(), '{"kind": "satur', tail="")
    rep = report.load(tmp_path)
    assert [f.kind for f in rep.findings] == ["dead_relu"]
    assert any("line 2 is incomplete" in n for n in rep.notes)


def test_findings_alone_are_a_report(tmp_path):
    write_findings(tmp_path, finding("non_finite", None, severity="error"))
    rep = report.load(tmp_path)
    assert rep.timing is None and rep.layers == [] and rep.exit_code == 1
    assert "Timing: not recorded" in rep.format_text()


# -- damaged event files -------------------------------------------------------------


def test_truncated_event_file_reports_what_is_readable(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    f = train_event_file(d)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    rep = report.load(d)
    (note,) = rep.notes
    assert f"train/{f.name} ends in an incomplete record" in note
    assert 0 < rep.run["steps"] < EPOCHS * STEPS_PER_EPOCH
    assert rep.layers[0].grad_norm is not None and rep.timing.steps > 0


def test_last_record_cut_short(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    f = train_event_file(d)
    f.write_bytes(f.read_bytes()[:-3])
    rep = report.load(d)
    assert "incomplete record" in rep.notes[0]
    assert rep.timing.steps == EPOCHS * STEPS_PER_EPOCH


def test_corrupt_record_header(fit_run, tmp_path):
    d = copy_run(fit_run["run"], tmp_path / "run")
    f = train_event_file(d)
    data = bytearray(f.read_bytes())
    # Find the header of the 3rd record and flip a bit of its length field.
    pos = 0
    for _ in range(2):
        pos += 16 + int.from_bytes(data[pos : pos + 8], "little")
    data[pos] ^= 0x01
    f.write_bytes(bytes(data))
    rep = report.load(d)
    assert f"is corrupt at byte {pos}" in rep.notes[0]
    assert "the 2 records before it were read" in rep.notes[0]


def test_only_garbage_is_unreadable(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "events.out.tfevents.1.host").write_bytes(b"not a record" * 3)
    with pytest.raises(
        LogdirError, match="No readable gradtrace data.*is corrupt at byte 0"
    ):
        report.load(tmp_path)


# -- not a gradtrace logdir ---------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(
        LogdirError, match="The logdir does not exist. Received: '.*nope'"
    ):
        report.load(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "findings.jsonl"
    f.write_text("")
    with pytest.raises(LogdirError, match="must be a folder, not a file"):
        report.load(f)


def test_empty_folder(tmp_path):
    with pytest.raises(LogdirError, match="No gradtrace run in .*: no gradtrace.json"):
        report.load(tmp_path)


def test_plain_keras_tensorboard_logdir(keras_tb_logdir):
    with pytest.raises(
        LogdirError,
        match="has TensorBoard event files but no gradtrace data .* "
        "keras.callbacks.TensorBoard",
    ):
        report.load(keras_tb_logdir)


def test_train_subfolder_points_to_its_parent(fit_run):
    with pytest.raises(
        LogdirError, match="This is the train/ folder of a gradtrace run"
    ):
        report.load(fit_run["run"] / "train")


def test_folder_of_runs_names_them(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_findings(tmp_path / name, finding())
    with pytest.raises(LogdirError, match="holds 2: a, b. Pass one of them"):
        report.load(tmp_path)


# -- no TensorFlow --------------------------------------------------------------------

_NO_TF = """
import json, sys, types
sys.modules["tensorflow"] = None  # any `import tensorflow` now fails
# Load gradtrace's submodules without running gradtrace/__init__.py (which
# imports fit, hence Keras and TensorFlow): this checks report/cli themselves.
pkg = types.ModuleType("gradtrace")
pkg.__path__ = [sys.argv[1] + "/gradtrace"]
pkg.__version__ = "0"
sys.modules["gradtrace"] = pkg
import gradtrace.cli, gradtrace.report
print(json.dumps(gradtrace.report.load(sys.argv[2]).to_dict()))
"""


def test_report_reads_without_tensorflow(fit_run):
    # TensorBoard's stub reader (no TensorFlow) gives the same report.
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TF, str(REPO), str(fit_run["run"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == report.load(fit_run["run"]).to_dict()


def test_importing_the_cli_does_not_import_tensorflow():
    code = "import sys; sys.modules['tensorflow'] = None; import gradtrace.cli"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


_CLI_NO_TF = """
import sys, types
pkg = types.ModuleType("gradtrace")
pkg.__path__ = [sys.argv[1] + "/gradtrace"]
pkg.__version__ = "0"
sys.modules["gradtrace"] = pkg
import gradtrace.cli
code = gradtrace.cli.main(["report", sys.argv[2]])
print("tensorflow loaded:", "tensorflow" in sys.modules)
sys.exit(code)
"""


def test_cli_reads_a_small_logdir_without_importing_tensorflow(fit_run):
    # TensorFlow is installed but not needed: the command makes TensorBoard
    # use its pure-Python reader instead of importing TensorFlow (~3 s).
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_NO_TF, str(REPO), str(fit_run["run"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Layers (last recorded values" in proc.stdout
    assert proc.stdout.rstrip().endswith("tensorflow loaded: False")

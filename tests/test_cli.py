"""The `gradtrace` command: exit status and output of report, demo and --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types

import pytest

import gradtrace
from gradtrace import cli
from tests.test_report import (  # noqa: F401 (fixtures are used by name)
    EPOCHS,
    STEPS_PER_EPOCH,
    finding,
    fit_run,
    keras_tb_logdir,
    write_findings,
)

# The session fixtures of test_report.py (each logdir is built once).


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def error_run(fit_run, tmp_path):
    """The real run plus an error-severity finding."""
    d = tmp_path / "run"
    shutil.copytree(fit_run["run"], d)
    write_findings(
        d,
        finding("dead_relu", "hidden", step=5),
        finding("non_finite", "out", step=20, severity="error", value=None),
    )
    return d


# -- report ------------------------------------------------------------------------


def test_report_text_exit_0(capsys, fit_run):
    code, out, err = run(capsys, "report", str(fit_run["run"]))
    live = json.loads(fit_run["findings"].read_text())
    assert code == (1 if any(f["severity"] == "error" for f in live) else 0)
    assert out.startswith(f"gradtrace report: {fit_run['run']}\n")
    assert "Layers (last recorded values" in out and "Timing (" in out
    assert err == ""


def test_report_json(capsys, fit_run):
    code, out, _ = run(capsys, "report", str(fit_run["run"]), "--json")
    doc = json.loads(out)
    assert doc["logdir"] == str(fit_run["run"])
    assert [r["name"] for r in doc["layers"]] == ["hidden", "out"]
    assert doc["timing"]["steps"] == EPOCHS * STEPS_PER_EPOCH
    assert code == (1 if doc["status"] == "errors" else 0)


def test_error_finding_exits_1(capsys, error_run):
    code, out, _ = run(capsys, "report", str(error_run))
    assert code == 1
    assert out.index("ERROR   non_finite in layer 'out'") < out.index("dead_relu")
    assert "status: errors (1 error finding(s)); exit 1" in out
    code, out, _ = run(capsys, "report", str(error_run), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "errors"
    assert [f["kind"] for f in doc["findings"]] == ["non_finite", "dead_relu"]


def test_warning_findings_exit_0(capsys, tmp_path):
    write_findings(tmp_path, finding("dead_relu"), finding("slow_step", None))
    code, out, _ = run(capsys, "report", str(tmp_path))
    assert code == 0 and "Findings (2, worst first):" in out


# -- bad input: one line on stderr, exit 2 ----------------------------------------------


def _bad(capsys, path, match):
    code, out, err = run(capsys, "report", str(path))
    assert code == 2 and out == ""
    assert err.startswith("gradtrace report: error: ") and err.count("\n") == 1
    assert match in err
    return err


def test_missing_logdir(capsys, tmp_path):
    _bad(capsys, tmp_path / "nope", "The logdir does not exist.")


def test_file_logdir(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    _bad(capsys, tmp_path / "f", "must be a folder, not a file")


def test_empty_logdir(capsys, tmp_path):
    _bad(capsys, tmp_path, "No gradtrace run in")


def test_keras_tensorboard_logdir(capsys, keras_tb_logdir):
    _bad(capsys, keras_tb_logdir, "TensorBoard event files but no gradtrace data")


def test_malformed_findings_line(capsys, tmp_path):
    write_findings(tmp_path, finding(), "oops", finding())
    _bad(capsys, tmp_path, "findings.jsonl, line 2: not a gradtrace finding")


def test_corrupt_only_event_file(capsys, tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "events.out.tfevents.1.h").write_bytes(b"\xff" * 40)
    _bad(capsys, tmp_path, "No readable gradtrace data")


def test_truncated_event_file_still_reports(capsys, fit_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(fit_run["run"], d)
    (f,) = (d / "train").glob("events.out.tfevents.*")
    f.write_bytes(f.read_bytes()[:-100])
    code, out, err = run(capsys, "report", str(d))
    assert code in (0, 1) and err == ""
    assert "Notes:\n  - train/" in out and "ends in an incomplete record" in out


# -- usage ------------------------------------------------------------------------------


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: gradtrace [-h] [--version] COMMAND ...")
    assert "report" in out and "demo" in out and "Exit status" in out


def test_report_help(capsys):
    code, out, _ = run(capsys, "report", "--help")
    assert code == 0
    assert out.startswith("usage: gradtrace report [-h] [--json] LOGDIR")


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"gradtrace {gradtrace.__version__}"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "a command is required (report or demo)"),
        (["report"], "the following arguments are required: LOGDIR"),
        (["report", "x", "--yaml"], "unrecognized arguments: --yaml"),
    ],
)
def test_bad_usage_exits_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


# -- demo -------------------------------------------------------------------------------


def test_demo_delegates_its_arguments(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("gradtrace.demo")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "gradtrace.demo", fake)
    monkeypatch.setattr(gradtrace, "demo", fake, raising=False)
    assert cli.main(["demo", "--scenario", "dead_relu", "--help"]) == 3
    assert seen == [["--scenario", "dead_relu", "--help"]]


def test_demo_missing_fails_cleanly(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradtrace.demo", None)  # import fails
    monkeypatch.delattr(gradtrace, "demo", raising=False)
    code, out, err = run(capsys, "demo")
    assert code == 1 and out == ""
    assert err.startswith("gradtrace demo: error: the demo is not available")


def test_demo_usage_error_maps_to_its_exit_code(monkeypatch):
    def main(argv):
        raise gradtrace.errors.GradtraceError("Unknown scenario. Received: 'x'.")

    fake = types.ModuleType("gradtrace.demo")
    fake.main = main
    monkeypatch.setitem(sys.modules, "gradtrace.demo", fake)
    monkeypatch.setattr(gradtrace, "demo", fake, raising=False)
    assert cli.main(["demo", "--scenario", "x"]) == 2


# -- the installed command ----------------------------------------------------------------


def test_console_script_and_module(error_run):
    exe = shutil.which("gradtrace")
    assert exe, "the `gradtrace` console script is not installed (pip install -e .)"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [exe, "report", str(error_run), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["status"] == "errors"
    proc = subprocess.run(
        [sys.executable, "-m", "gradtrace", "report", str(error_run / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "gradtrace report: error: The logdir does not exist." in proc.stderr
    assert "Traceback" not in proc.stderr

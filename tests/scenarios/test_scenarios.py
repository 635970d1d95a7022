"""Every scenario: the expected findings and no false alarm; every oracle."""

import json
import os

import pytest

from . import programs

FAULTY = [c for c in programs.CASES.values() if c.oracle is not None]


@pytest.mark.parametrize("name", list(programs.CASES))
def test_scenario_findings(name):
    case = programs.CASES[name]
    history = programs.run_case(case)
    assert programs.judge(case, history) == []
    if case.healthy:
        assert not [f for f in history.findings if f.severity == "error"]


@pytest.mark.parametrize("name", [c.name for c in FAULTY])
def test_oracle_confirms_the_fault_without_gradtrace(name):
    assert programs.CASES[name].oracle()


def test_every_demo_scenario_is_in_the_suite():
    from gradtrace import demo

    builds = {c.build for c in programs.CASES.values()}
    assert {s.build for s in demo.SCENARIOS.values()} <= builds
    assert all(c.oracle for c in programs.CASES.values() if c.expected)


def test_nan_finding_is_on_disk_and_the_run_stops(tmp_path):
    case = programs.CASES["nan_from_log_layer"]
    history = programs.run_case(case, logdir=str(tmp_path))
    assert history.step_times[-1].step == 0
    with open(os.path.join(tmp_path, "findings.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert [(r["kind"], r["layer"], r["step"], r["severity"]) for r in rows] == [
        ("non_finite", "log", 0, "error")
    ]

import json
import os

import pytest

from gradtrace import demo


def test_demo_scenario_prints_what_it_found_and_the_tensorboard_command(
    tmp_path, capsys
):
    logdir = str(tmp_path / "runs")
    assert demo.main(["--scenario", "exploding", "--logdir", logdir]) == 0
    out = capsys.readouterr().out
    assert "[1/1] exploding:" in out
    assert "exploding_gradient at step" in out
    assert "[caught]" in out
    assert f"tensorboard --logdir {logdir}" in out
    assert "the gradtrace tab shows" in out
    with open(
        os.path.join(logdir, "exploding", "findings.jsonl"), encoding="utf-8"
    ) as f:
        kinds = {json.loads(line)["kind"] for line in f}
    assert "exploding_gradient" in kinds
    assert os.path.isdir(os.path.join(logdir, "exploding", "train"))


def test_bad_usage_exits_2(capsys):
    assert demo.main(["--scenario", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert demo.main(["--help"]) == 0


def test_scenarios_are_named_and_documented():
    assert set(demo.SCENARIOS) == {
        "healthy",
        "vanishing",
        "exploding",
        "dead_relu",
        "nan",
        "slow_input",
    }
    for name, s in demo.SCENARIOS.items():
        assert s.name == name and s.description
    with pytest.raises(ValueError, match=r"Unknown demo scenario 'x'.*healthy"):
        demo.run_scenario("x")

"""The public surface is small, documented, and importing it changes nothing.

(That records/detectors never import TensorFlow: tests/test_diagnose.py.)
"""

import os
import re
import subprocess
import sys

import gradtrace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_all_matches_the_readme_api_list():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"The public names are (.*?) \(`gradtrace.__all__`\)", readme, re.S)
    assert m, "README must list the public names"
    listed = sorted(re.findall(r"`gradtrace\.(\w+)`", m.group(1)))
    assert listed == sorted(gradtrace.__all__)
    for name in gradtrace.__all__:
        assert getattr(gradtrace, name).__doc__, f"{name} needs a docstring"


def test_import_changes_no_tensorflow_state():
    # If importing gradtrace had initialised the TF runtime (run an op, listed
    # logical devices, set a policy), configuring devices afterwards would fail.
    code = (
        "import gradtrace, tensorflow as tf, keras\n"
        "(cpu,) = tf.config.list_physical_devices('CPU')\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "assert len(tf.config.list_logical_devices('CPU')) == 2\n"
        "assert keras.mixed_precision.global_policy().name == 'float32'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]

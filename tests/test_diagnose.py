import subprocess
import sys

import numpy as np
import pytest

from gradtrace import Config
from gradtrace.detectors import Detection
from gradtrace.diagnose import SETUP_DETECTORS, STATS_DETECTORS, Diagnoser
from gradtrace.findings import KINDS, FindingBook
from gradtrace.records import StepTime

from .detector_helpers import info, stats

LAYERS = (info("h", n_units=8), info("out", "sigmoid", is_output=True))
HEALTHY = dict(
    grad_norm=[0.1, 0.2],
    weight_norm=[3.0, 1.0],
    update_norm=[3e-3, 1e-3],
    act_dead_frac=[0.1, np.nan],
    act_saturated_frac=[np.nan, 0.2],
    grad_nonfinite=0,
    act_nonfinite=0,
)


def test_diagnosis_modules_import_without_tensorflow():
    # The live run and `gradtrace report` share these modules; they must not
    # need TensorFlow (nor Keras).
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['tensorflow'] = None\n"  # any `import tensorflow` fails
        "sys.modules['keras'] = None\n"
        "import gradtrace, gradtrace.records, gradtrace.findings\n"
        "import gradtrace.diagnose, gradtrace.detectors\n"
        "for m in pkgutil.iter_modules(gradtrace.detectors.__path__):\n"
        "    importlib.import_module('gradtrace.detectors.' + m.name)\n"
        "from gradtrace.diagnose import Diagnoser\n"
        "from gradtrace.findings import FindingBook\n"
        "Diagnoser(gradtrace.Config(), (), FindingBook()).finish()\n"
        "loaded = [k for k, v in sys.modules.items() if v is not None]\n"
        "assert not [k for k in loaded if k.startswith(('tensorflow', 'keras'))]\n"
        "print('ok')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_every_detector_kind_is_a_known_kind():
    kinds = {cls.kind for cls in STATS_DETECTORS}
    assert kinds == {
        "non_finite",
        "exploding_gradient",
        "loss_divergence",
        "vanishing_gradient",
        "dead_relu",
        "saturation",
        "update_ratio",
        "zero_gradient",
    }
    assert kinds <= set(KINDS)
    setup = {cls.kind for cls in SETUP_DETECTORS}
    assert setup == {"loss_mismatch", "input_scale"} and setup <= set(KINDS)


def test_healthy_stream_makes_no_finding():
    book = FindingBook()
    diag = Diagnoser(Config(), LAYERS, book)
    for i in range(100):
        diag.observe_stats(stats(i, LAYERS, loss=1.0 / (1 + i), **HEALTHY))
    diag.finish()
    assert book.findings == [] and not diag.stop_requested


def test_nan_stops_and_is_an_error_finding():
    changes = []
    book = FindingBook(lambda f, new: changes.append((f.kind, f.count, new)))
    diag = Diagnoser(Config(), LAYERS, book)
    diag.observe_stats(stats(0, LAYERS, **HEALTHY))
    bad = dict(HEALTHY, act_nonfinite=[4, 4])
    diag.observe_stats(stats(1, LAYERS, loss=float("nan"), **bad))
    assert diag.stop_requested
    (f,) = book.findings
    assert (f.kind, f.severity, f.layer, f.step) == ("non_finite", "error", "h", 1)
    diag.observe_stats(stats(2, LAYERS, loss=float("nan"), **bad))
    assert changes == [("non_finite", 1, True), ("non_finite", 2, False)]
    assert book.findings[0].last_step == 2


def test_collapsed_loss_scale_stops_the_run():
    from gradtrace.records import StepStats

    book = FindingBook()
    diag = Diagnoser(Config(), (), book)
    n = {"n_params": np.zeros(0)}
    diag.observe_stats(StepStats(0, 0, 1.0, (), n, loss_scale=2.0**15))
    assert not diag.stop_requested
    diag.observe_stats(StepStats(1, 0, 1.0, (), n, loss_scale=0.5))
    assert diag.stop_requested
    assert [(f.kind, f.severity, f.step) for f in book.findings] == [
        ("non_finite", "error", 1)
    ]


def test_one_finding_per_kind_and_layer_with_counts():
    book = FindingBook()
    diag = Diagnoser(Config(), LAYERS, book)
    dead = dict(HEALTHY, act_dead_frac=[1.0, np.nan])
    for i in range(30):
        diag.observe_stats(stats(i, LAYERS, **dead))
    (f,) = book.findings
    assert (f.kind, f.layer, f.step, f.last_step, f.count) == (
        "dead_relu",
        "h",
        10,
        29,
        20,
    )
    assert f.severity == "warning" and f.hint


def test_timing_detections_become_findings(monkeypatch):
    seen = []

    class FakeTiming:
        def __init__(self, config):
            self.config = config

        def observe(self, t):
            seen.append(t.step)
            if t.total_ms > 100:
                return [
                    Detection("slow_step", t.step, None, t.total_ms, 40.0, "m", "h")
                ]
            return []

        def finish(self):
            return [Detection("input_bound", 9, None, 0.9, 0.5, "m2", "h2")]

    import gradtrace.diagnose as diagnose

    monkeypatch.setattr(diagnose, "TimingDetector", FakeTiming)
    book = FindingBook()
    diag = Diagnoser(Config(), LAYERS, book)
    for i, ms in enumerate([5.0, 500.0, 5.0]):
        diag.observe_time(StepTime(i, 0, ms, 1.0, 2.0, 1.0, False))
    diag.finish()
    diag.finish()  # idempotent
    assert seen == [0, 1, 2]
    assert [(f.kind, f.step) for f in book.findings] == [
        ("slow_step", 1),
        ("input_bound", 9),
    ]


def test_empty_layers_and_probes_off():
    from gradtrace.records import StepStats

    book = FindingBook()
    diag = Diagnoser(Config(), (), book)
    for i in range(20):
        diag.observe_stats(StepStats(i, 0, 1.0, (), {"n_params": np.zeros(0)}))
    diag.observe_stats(StepStats(20, 0, float("nan"), (), {"n_params": np.zeros(0)}))
    assert [(f.kind, f.layer) for f in book.findings] == [("non_finite", None)]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (
            dict(dead_relu_frac=1.5),
            ValueError,
            r"dead_relu_frac.*Received: dead_relu_frac=1.5",
        ),
        (dict(diagnosis_patience=0), ValueError, r"diagnosis_patience.*>= 1"),
        (dict(diagnosis_warmup=-1), ValueError, r"diagnosis_warmup"),
        (dict(vanishing_ratio="x"), TypeError, r"vanishing_ratio.*number"),
        (dict(exploding_factor=0.5), ValueError, r"exploding_factor"),
        (dict(loss_window=2.0), TypeError, r"loss_window.*int"),
        (
            dict(update_ratio_min=0.5, update_ratio_max=0.1),
            ValueError,
            r"update_ratio_min.*below.*update_ratio_max",
        ),
    ],
)
def test_config_thresholds_are_validated(kwargs, err, match):
    with pytest.raises(err, match=match):
        Config(**kwargs)


def _random_run(seed, n=400):
    """A stream of records that wanders in and out of every rule: spikes,
    dead and saturated stretches, tiny and huge updates, divergence, NaN,
    columns not measured on some steps, a collapsing loss scale."""
    rng = np.random.default_rng(seed)
    layers = (
        info("c1", "relu", n_params=400, n_units=8, class_name="Conv2D"),
        info("d1", "relu", n_params=800, n_units=16),
        info("t1", "tanh", n_params=200, n_units=4),
        info("pool", "linear", n_params=0, n_units=4, class_name="MaxPooling2D"),
        info("out", "sigmoid", n_params=50, n_units=1, is_output=True),
    )
    out = []
    loss = 1.0
    for i in range(n):
        regime = (i // 37 + seed) % 6
        g = np.exp(rng.normal(-2.0, 0.5, 5))
        if regime == 1:
            g[:2] *= 1e-6  # vanishing
        if rng.random() < 0.02:
            g *= 10.0 ** rng.integers(2, 6)  # a spike
        w = np.exp(rng.normal(0.0, 0.3, 5))
        u = w * np.exp(rng.normal(np.log(1e-3), 1.0, 5))
        if regime == 2:
            u = w * 0.5  # too large
        if regime == 3:
            u = w * 1e-9  # too small
        dead = rng.uniform(0, 0.3, 5)
        if regime == 4:
            dead[1] = 0.99
        sat = rng.uniform(0, 0.3, 5)
        if regime == 5:
            sat[2] = 0.95
        loss = loss * np.exp(rng.normal(0.05 if regime == 5 else -0.01, 0.05))
        cols = dict(
            grad_norm=g,
            weight_norm=w,
            update_norm=u,
            act_dead_frac=np.where([1, 1, 0, 0, 0], dead, np.nan),
            act_saturated_frac=np.where([0, 0, 1, 0, 1], sat, np.nan),
            grad_nonfinite=np.zeros(5),
            act_nonfinite=np.zeros(5),
        )
        cols["grad_norm"][3] = np.nan  # weightless layer
        if i % 7 == 3:  # a light step that does not measure some columns
            cols["act_saturated_frac"] = np.full(5, np.nan)
        step_loss = loss
        if rng.random() < 0.01:
            cols["grad_nonfinite"][1] = 3.0
            cols["grad_norm"][1] = np.nan
        if rng.random() < 0.01:
            step_loss = float("nan")
        r = stats(i, layers, loss=step_loss, epoch=i // 100, **cols)
        if seed % 2:
            scale = 2.0 ** (15 - max(0, i - 300) // 5)
            r = type(r)(r.step, r.epoch, r.loss, r.layers, r.values, loss_scale=scale)
        out.append(r)
    return layers, out


@pytest.mark.parametrize("seed", range(6))
def test_blocks_file_exactly_what_step_by_step_files(seed):
    # The fit loop judges blocks of steps (`Diagnoser.observe`); `report`
    # and the per-step contract feed one record at a time. Same findings,
    # same order, same counts and steps, whatever the block boundaries.
    from gradtrace.records import StatsBlock

    layers, records = _random_run(seed)
    slow = {250: 300.0, 251: 280.0}  # two slow steps: a slow_step finding
    times = [
        StepTime(
            r.step,
            r.epoch,
            5.0 + slow.get(r.step, 0.0),
            1.0,
            3.0,
            1.0 + slow.get(r.step, 0.0),
            False,
        )
        for r in records
    ]
    cfg = Config()
    one = FindingBook()
    diag = Diagnoser(cfg, layers, one)
    for r, t in zip(records, times):
        diag.observe_stats(r)
        diag.observe_time(t)
    diag.finish()
    kinds = {f.kind for f in one.findings}
    assert len(kinds) >= 6 and "slow_step" in kinds, kinds  # it exercises the rules
    rng = np.random.default_rng(seed)
    blocks = FindingBook()
    diag = Diagnoser(cfg, layers, blocks)
    i = 0
    while i < len(records):
        k = int(rng.integers(1, 40))
        timed = [d for t in times[i : i + k] for d in diag.judge_time(t)]
        diag.observe(StatsBlock.of(records[i : i + k]), timed)
        i += k
    diag.finish()
    assert repr(blocks.findings) == repr(one.findings)

"""The gradtrace tab in TensorBoard (API.md §8): routes in-process, a real
`tensorboard` server, and a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gradtrace
from tests.conftest import quiet
from tests.helpers import dead_mlp, get_json, tensorboard_server

HOSTILE = "<img src=x onerror=window.__pwned=1>"  # TF refuses it: a crafted logdir
CHROMIUM = "/usr/bin/chromium"


def _hostile_run(folder, steps=40):
    """A run written through gradtrace's own sinks whose layer is named
    HOSTILE (TensorFlow would refuse the name; a logdir can still hold it)."""
    from gradtrace import Config, runinfo
    from gradtrace.findings import Finding
    from gradtrace.records import LayerInfo, StatsBlock
    from gradtrace.sinks.jsonl import JsonlSink
    from gradtrace.sinks.tensorboard import TensorBoardSink

    infos = (
        LayerInfo(HOSTILE, "Dense", "relu", 136, 16),
        LayerInfo("out", "Dense", "linear", 17, 1, is_output=True),
    )
    folder.mkdir()
    runinfo.write(str(folder), Config(), infos)
    k = np.arange(steps)
    values = {
        "grad_norm": np.stack([np.zeros(steps), 0.1 + 0 * k], axis=1),
        "act_dead_frac": np.stack([np.ones(steps), np.full(steps, np.nan)], axis=1),
        "n_params": np.array([136.0, 17.0]),
    }
    block = StatsBlock(k, 0 * k, 1.0 + 0 * k, [i.name for i in infos], values)
    tb = TensorBoardSink(str(folder))
    tb.stats_block(block, 1e9 + k, k)
    tb.close()
    sink = JsonlSink(str(folder / "findings.jsonl"))
    sink.write(
        Finding(
            kind="dead_relu",
            severity="warning",
            step=10,
            last_step=39,
            count=30,
            layer=HOSTILE,
            value=1.0,
            threshold=0.7,
            message=f"{HOSTILE} is dead <b>bold?</b>",
            hint="<script>window.__pwned=2</script>",
        )
    )
    sink.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """Two gradtrace runs: `dead` (a real fit, its 2nd hidden layer dead) and
    `hostile` (crafted names)."""
    root = tmp_path_factory.mktemp("tab")
    m = dead_mlp("dead_layer")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    gradtrace.fit(
        m,
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        logdir=str(root / "dead"),
        config=quiet(histogram_every=8),
    )
    _hostile_run(root / "hostile")
    return root


@pytest.fixture(scope="module")
def plugin(logdir):
    from tensorboard.backend.event_processing import (
        data_provider,
        plugin_event_multiplexer,
    )
    from tensorboard.plugins import base_plugin

    from gradtrace.tbplugin import GradtracePlugin

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    ctx = base_plugin.TBContext(logdir=str(logdir), data_provider=provider)
    return GradtracePlugin(ctx)


def _client(plugin, route):
    from werkzeug.test import Client

    return Client(plugin.get_plugin_apps()[route])


def _get(plugin, route, path=None, **params):
    r = _client(plugin, route).get(path or route, query_string=params)
    return r.status_code, r.get_data()


def test_plugin_import_adds_nothing_but_gradtrace_modules():
    # TensorBoard loads every plugin entry point unguarded: the plugin imports
    # only what TensorBoard itself has loaded (its own modules, werkzeug) and
    # gradtrace's standard-library-only modules; never TensorFlow or Keras.
    code = (
        "import sys\n"
        "from tensorboard import context, plugin_util\n"
        "from tensorboard.backend import http_util\n"
        "from tensorboard.data import provider\n"
        "from tensorboard.plugins import base_plugin\n"
        "from werkzeug import wrappers\n"
        "before = set(sys.modules)\n"
        "import gradtrace.tbplugin\n"
        "new = sorted(m for m in set(sys.modules) - before if not m.startswith('gradtrace'))\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print(new, bad)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[] []", r.stdout


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    (ep,) = [
        e for e in entry_points(group="tensorboard_plugins") if e.name == "gradtrace"
    ]
    assert ep.load().plugin_name == "gradtrace"


def test_runs_findings_health_timing_routes(plugin):
    assert plugin.is_active()
    code, body = _get(plugin, "/runs")
    assert code == 200 and json.loads(body) == [
        {"run": "dead", "train": "dead/train"},
        {"run": "hostile", "train": "hostile/train"},
    ]
    code, body = _get(plugin, "/findings", run="dead")
    found = json.loads(body)
    assert code == 200 and (found[0]["kind"], found[0]["layer"]) == (
        "dead_relu",
        "dead_layer",
    )
    code, body = _get(plugin, "/health", run="dead", quantity="dead_frac")
    h = json.loads(body)
    assert h["layers"] == ["alive", "dead_layer"]  # ReLU layers only have dead_frac
    assert len(h["steps"]) == 32 and h["steps"][0] == 0
    assert h["values"][1] == [1.0] * 32 and max(h["values"][0]) < 1.0
    code, body = _get(plugin, "/health", run="dead", quantity="grad_rms")
    assert json.loads(body)["layers"] == ["alive", "dead_layer", "out"]
    code, body = _get(
        plugin, "/series", run="dead", layer="dead_layer", quantity="dead_frac"
    )
    assert code == 200 and [p[1] for p in json.loads(body)] == [1.0] * 32
    code, body = _get(plugin, "/timing", run="dead")
    t = json.loads(body)
    assert code == 200 and len(t["total_ms"]) == 32 and t["retraced"][0] == 1.0
    # a crafted layer name is served as data (JSON-escaped), never interpreted
    code, body = _get(plugin, "/health", run="hostile", quantity="dead_frac")
    assert json.loads(body)["layers"] == [HOSTILE]


def test_heatmap_images_at_step_0_and_the_runs_end(logdir):
    # A 32-step run (< 100 steps): the images show more than step 0's column.
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    ea = EventAccumulator(str(logdir / "dead" / "train"), size_guidance={"tensors": 0})
    ea.Reload()
    for tag in ("gradients/heatmap", "updates/heatmap"):
        assert [e.step for e in ea.Tensors(tag)] == [0, 31], tag


def test_bad_requests_and_path_traversal_are_refused(plugin):
    assert _get(plugin, "/findings", run="../../etc")[0] == 404
    assert _get(plugin, "/findings")[0] == 404
    assert _get(plugin, "/health", run="dead", quantity="../../x")[0] == 400
    assert (
        _get(plugin, "/series", run="dead", layer="nope", quantity="grad_rms")[0] == 404
    )
    for path in (
        "/static/../../gradtrace.json",
        "/static/..%2F..%2Ftbplugin.py",
        "/static/../tbplugin.py",
        "/static/%2Fetc%2Fpasswd",
    ):
        code, _ = _get(plugin, "/static/*", path)
        assert code == 404, path
    code, body = _get(plugin, "/static/*", "/static/style.css")
    assert code == 200 and b".row-label" in body
    code, body = _get(plugin, "/index.js")
    assert code == 200 and b"export async function render" in body


def _browser_or_skip():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def test_tab_in_a_real_tensorboard_and_a_real_browser(logdir, tmp_path):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with tensorboard_server(logdir) as port:
        listing = get_json(port, "/data/plugins_listing")
        assert listing["gradtrace"]["enabled"]
        assert listing["gradtrace"]["loading_mechanism"]["module_path"].endswith(
            "/index.js"
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(
                    f"http://127.0.0.1:{port}/#gradtrace", wait_until="networkidle"
                )
                page.wait_for_function(
                    "() => [...document.querySelectorAll('iframe')].some("
                    "f => f.contentDocument && f.contentDocument.body"
                    " && f.contentDocument.body.getAttribute('data-ready'))",
                    timeout=30000,
                )
                (tab,) = [f for f in page.frames if "plugin_entry" in f.url]
                # what a person sees: the finding's kind and layer
                row = tab.locator("tr.finding").first
                assert row.locator("td.kind").inner_text() == "dead_relu"
                assert row.locator("td.layer").inner_text() == "dead_layer"
                # one health-map row per probed layer, the dead one marked
                layers = [
                    d["name"]
                    for d in json.loads(
                        (logdir / "dead" / "gradtrace.json").read_text()
                    )["layers"]
                ]
                labels = tab.locator(".row-label")
                assert labels.all_inner_texts() == layers
                marked = tab.locator(".row-label.marked").all_inner_texts()
                assert marked == ["dead_layer"]
                # hovering a cell of the dead row shows its value
                box = tab.locator("canvas.health").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + 18 * 1.5)
                tip = tab.locator(".tooltip")
                tip.wait_for(state="visible", timeout=5000)
                text = tip.inner_text()
                assert "layer dead_layer" in text and "gradient RMS 0" in text, text
                # clicking a row draws that layer's series
                labels.nth(1).click()
                tab.locator("canvas.series").wait_for(timeout=5000)
                assert (
                    "dead_layer: gradient RMS"
                    in tab.locator(".series-box h2").inner_text()
                )
                # choosing another quantity redraws the map
                tab.select_option("select.quantity-picker", "dead_frac")
                tab.wait_for_function(
                    "() => document.querySelectorAll('.row-label').length === 2"
                )
                page.screenshot(
                    path=str(tmp_path / "gradtrace-tab.png"), full_page=True
                )
                # a crafted layer name renders as text, nothing runs
                tab.select_option("select.run-picker", "hostile")
                tab.wait_for_function(
                    "() => document.body.getAttribute('data-ready') === 'hostile'"
                )
                assert tab.locator("td.layer").first.inner_text() == HOSTILE
                assert tab.locator(".row-label").first.inner_text() == HOSTILE
                assert tab.evaluate("() => window.__pwned") is None
                assert tab.locator("img, b").count() == 0
            finally:
                browser.close()
    assert (tmp_path / "gradtrace-tab.png").stat().st_size > 10_000


def test_tensorboard_starts_with_gradtrace_installed_on_a_logdir_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with tensorboard_server(tmp_path / "empty", wait_for_runs=False) as port:
        listing = get_json(port, "/data/plugins_listing")
        assert listing["gradtrace"]["enabled"] is False
        assert listing["scalars"] is not None

"""A real `tensorboard` server serves every gradtrace family (issue: probes)."""

import urllib.parse
import urllib.request

import pytest

import gradtrace
from tests.conftest import quiet
from tests.helpers import get_json as _get
from tests.helpers import mlp, tensorboard_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, xy_module):
    x, y = xy_module
    logdir = tmp_path_factory.mktemp("tb") / "run"
    gradtrace.fit(
        mlp(),
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        validation_split=0.25,
        logdir=str(logdir),
        config=quiet(histogram_every=4, log_budget_kb=None),  # every step served
    )
    with tensorboard_server(logdir) as port:
        yield port


@pytest.fixture(scope="module")
def xy_module():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_scalar_families_served(server):
    tags = _get(server, "/data/plugin/scalars/tags")
    train = tags["train"]
    for family in ("gradients/", "weights/", "updates/", "activations/", "timing/"):
        assert any(t.startswith(family) for t in train), family
    assert {"epoch_loss", "epoch_accuracy", "batch_loss"} <= set(train)
    assert "epoch_loss" in tags["validation"]
    q = urllib.parse.urlencode({"run": "train", "tag": "gradients/hidden/norm"})
    points = _get(server, f"/data/plugin/scalars/scalars?{q}")
    assert [p[1] for p in points] == list(range(12))


def test_histograms_images_text_served(server):
    h = _get(server, "/data/plugin/histograms/tags")["train"]
    assert {
        "gradients/hidden/kernel",
        "weights/out/bias",
        "activations/hidden/histogram",
    } <= set(h)
    images = _get(server, "/data/plugin/images/tags")["train"]
    assert {"gradients/heatmap", "updates/heatmap"} <= set(images)
    plugins = _get(server, "/data/plugins_listing")
    for name in ("scalars", "histograms", "images"):
        assert plugins[name]["enabled"], name


def test_a_gan_run_serves_every_family_of_both_models(tmp_path):
    from tests import custom_models as cm

    logdir = tmp_path / "gan"
    gradtrace.fit(
        cm.gan(),
        cm.images(32),
        batch_size=8,
        epochs=2,
        verbose=0,
        logdir=str(logdir),
        config=quiet(histogram_every=4, log_budget_kb=None),  # every step served
    )
    with tensorboard_server(logdir) as port:
        train = _get(port, "/data/plugin/scalars/tags")["train"]
        for family in ("gradients", "weights", "updates", "activations"):
            for layer in ("generator/conv1", "discriminator/conv1", "hidden"):
                assert (
                    f"{family}/{layer}/"
                    + ("mean" if family == "activations" else "norm")
                    in train
                ), (family, layer)
        assert {"batch_loss", "batch_d_loss", "batch_g_loss", "epoch_d_loss"} <= set(
            train
        )
        assert any(t.startswith("timing/") for t in train)
        q = urllib.parse.urlencode(
            {"run": "train", "tag": "gradients/generator/conv1/norm"}
        )
        assert [p[1] for p in _get(port, f"/data/plugin/scalars/scalars?{q}")] == list(
            range(8)
        )
        h = _get(port, "/data/plugin/histograms/tags")["train"]
        assert {
            "gradients/discriminator/conv1/kernel",
            "activations/hidden/histogram",
        } <= set(h)

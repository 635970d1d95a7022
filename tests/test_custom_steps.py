"""gradtrace.fit on models whose class overrides `train_step` (API.md §1, §7):
trained by their own step exactly as by model.fit, probed from that step."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import gradtrace
from gradtrace import tags as gt_tags
from tests import custom_models as cm
from tests.conftest import quiet
from tests.helpers import assert_same_series, read_scalars, read_tags, weights_close

FAMILIES = ("gradients", "weights", "updates", "activations")


def _both(build, x, y=None, epochs=2, batch_size=16, tmp_path=None, config=None):
    """(model.fit model, its History, gradtrace.fit model, its TraceHistory)."""
    a = build()
    ha = a.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False)
    b = build()
    hb = gradtrace.fit(
        b,
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        logdir=None if tmp_path is None else str(tmp_path),
        # every step written: the series are compared step by step
        config=config or quiet(histogram_every=3, log_budget_kb=None),
    )
    return a, ha, b, hb


def _assert_same_training(a, ha, b, hb):
    assert weights_close(a, b), "weights differ from model.fit's"
    assert hb.history.keys() == ha.history.keys()
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-5, atol=1e-6)


def _layer_names(tmp_path):
    return [
        d["name"]
        for d in json.loads((tmp_path / "gradtrace.json").read_text())["layers"]
    ]


def _trained_rows(model_list):
    """Row names gradtrace must give each trainable layer of these models."""
    return {
        layer.name for m in model_list for layer in m.layers if layer.trainable_weights
    }


def test_gan_trains_like_model_fit_and_every_layer_of_both_models_is_probed(tmp_path):
    x = cm.images(64)
    a, ha, b, hb = _both(cm.gan, x, tmp_path=tmp_path)
    _assert_same_training(a, ha, b, hb)
    assert set(hb.history) == {"d_loss", "g_loss"}  # nothing of gradtrace's in logs
    s = read_scalars(str(tmp_path / "train"))
    names = _layer_names(tmp_path)
    # Both models have "conv1" and "lrelu": those rows are model-qualified.
    for name in (
        "generator/conv1",
        "discriminator/conv1",
        "project",
        "up",
        "hidden",
        "score",
    ):
        assert f"gradients/{name}/norm" in s, name
        assert f"updates/{name}/ratio" in s, name
        assert len(s[f"gradients/{name}/norm"]) == 8  # every step
        assert all(np.isfinite(v) and v > 0 for _, v in s[f"gradients/{name}/norm"])
    assert "conv1" not in names and "lrelu" not in names
    assert names.index("project") < names.index("discriminator/conv1")  # call order
    # Activations of the discriminator over both calls (fake+real, then fake)
    assert "activations/hidden/dead_frac" in s
    # batch_<key> for each returned scalar; batch_loss = the judged series (d_loss)
    assert s["batch_loss"] == s["batch_d_loss"]
    assert "batch_g_loss" in s
    assert not [f for f in hb.findings if f.severity == "error"], hb.findings
    assert {f.kind for f in hb.findings}.isdisjoint({"no_gradient"})


def test_vae_trains_like_model_fit(tmp_path):
    x = cm.vae_data()
    a, ha, b, hb = _both(cm.vae, x, tmp_path=tmp_path)
    _assert_same_training(a, ha, b, hb)
    s = read_scalars(str(tmp_path / "train"))
    for name in ("enc_hidden", "z_mean", "z_var", "dec_hidden", "dec_out"):
        assert f"gradients/{name}/norm" in s, name
    assert "activations/sampling/mean" in s  # a weightless custom layer
    assert s["batch_loss"] == s["batch_total_loss"]  # no "loss": first *loss* key


def test_wgan_gp_critic_applied_three_times_and_gradient_penalty_not_recorded(
    tmp_path,
):
    x = cm.images(32)
    a, ha, b, hb = _both(cm.wgan_gp, x, epochs=1, tmp_path=tmp_path)
    _assert_same_training(a, ha, b, hb)
    tags = read_tags(str(tmp_path / "train"))
    rows = set(_layer_names(tmp_path))
    expected = {
        "project",
        "reshape",
        "up",
        "generator/lrelu",
        "generator/conv1",
        "discriminator/conv1",
        "discriminator/lrelu",
        "flat",
        "hidden",
        "score",
    }
    assert rows == expected  # nothing for the input gradient of the penalty
    for tag in tags:
        parts = tag.split("/")
        if parts[0] in FAMILIES and tag not in gt_tags.MODEL_WIDE:
            assert "/".join(parts[1:-1]) in expected, tag
    # The critic's update is the total of its 3 applies: larger than one
    # Adam step (lr 2e-4 per weight) could make on its own.
    s = read_scalars(str(tmp_path / "train"))
    n_params = sum(
        int(np.prod(v.shape)) for v in b.critic.get_layer("hidden").trainable_weights
    )
    upd = s["updates/hidden/norm"][0][1]
    assert upd > 2e-4 * np.sqrt(n_params) * 1.5


def test_distillation_frozen_teacher_gives_activations_not_gradients(tmp_path, xy):
    x, y = xy
    y = y % 3
    a, ha, b, hb = _both(cm.distiller, x, y, tmp_path=tmp_path)
    _assert_same_training(a, ha, b, hb)
    s = read_scalars(str(tmp_path / "train"))
    assert "gradients/student/dense1/norm" in s and "gradients/student/logits/norm" in s
    assert "activations/teacher/dense1/mean" in s
    assert not [t for t in s if t.startswith(("gradients/teacher", "updates/teacher"))]
    assert not [f for f in hb.findings if f.kind == "no_gradient"]


def test_loss_scale_optimizer_records_unscaled_gradients_once(tmp_path, xy):
    x, _ = xy
    y = x[:, :1] * 2.0
    a, ha, b, hb = _both(cm.scaled_step, x, y, tmp_path=tmp_path)
    _assert_same_training(a, ha, b, hb)
    s = read_scalars(str(tmp_path / "train"))
    # Step 0: the gradient of the first batch at the initial weights.
    import tensorflow as tf

    m = cm.scaled_step()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(m(x[:16]) - y[:16]))
    g = tape.gradient(loss, m.get_layer("o").trainable_variables)
    expected = np.sqrt(sum(float(np.sum(t.numpy() ** 2)) for t in g))
    assert s["gradients/o/norm"][0][1] == pytest.approx(expected, rel=1e-4)
    assert s["gradients/loss_scale"][0][1] == 32768.0


def test_gan_dead_relu_in_the_discriminator_is_found_and_named():
    x = cm.images(64)
    m = cm.gan(dead_bias=-50.0)
    h = gradtrace.fit(
        m, x, batch_size=8, epochs=3, verbose=0, shuffle=False, config=quiet()
    )
    dead = [f for f in h.findings if f.kind == "dead_relu"]
    assert [f.layer for f in dead] == ["hidden"], h.findings


def test_deep_sigmoid_generator_vanishing_gradient_is_found():
    x = cm.images(64)
    m = cm.gan(depth=8, activation="sigmoid")
    h = gradtrace.fit(
        m, x, batch_size=8, epochs=2, verbose=0, shuffle=False, config=quiet()
    )
    found = [f for f in h.findings if f.kind == "vanishing_gradient"]
    assert found and found[0].layer.startswith("deep"), h.findings


def test_vae_nan_from_the_log_of_a_negative_variance_is_traced_to_its_layer():
    x = cm.vae_data()
    m = cm.vae(log_var=False, var_bias=-1.0)
    h = gradtrace.fit(
        m, x, batch_size=16, epochs=2, verbose=0, shuffle=False, config=quiet()
    )
    nf = [f for f in h.findings if f.kind == "non_finite"]
    assert nf and nf[0].layer == "sampling" and nf[0].step == 0, h.findings
    assert nf[0].severity == "error"
    assert len(h.step_times) == 1  # stopped right after the step


def test_custom_step_run_eagerly_gives_the_same_statistics(tmp_path):
    for name, eager in (("c", False), ("e", True)):
        m = cm.gan()
        m.run_eagerly = eager
        gradtrace.fit(
            m,
            cm.images(32),
            batch_size=16,
            verbose=0,
            shuffle=False,
            logdir=str(tmp_path / name),
            config=quiet(),
        )
    assert_same_series(
        str(tmp_path / "c" / "train"),
        str(tmp_path / "e" / "train"),
        (
            "gradients/hidden/norm",
            "updates/generator/conv1/ratio",
            "activations/project/std",
            "weights/score/norm",
        ),
    )


def test_custom_step_under_xla(tmp_path):
    x = cm.images(32)
    m = cm.gan()
    m.jit_compile = True
    h = gradtrace.fit(
        m,
        x,
        batch_size=16,
        verbose=0,
        shuffle=False,
        logdir=str(tmp_path),
        config=quiet(histogram_every=1, log_budget_kb=None),
    )
    s = read_scalars(str(tmp_path / "train"))
    assert len(s["gradients/hidden/norm"]) == 2
    assert "gradients/hidden/kernel" in read_tags(str(tmp_path / "train"))
    assert not h.findings


def test_a_resumed_custom_fit_continues_the_step_count(tmp_path):
    x = cm.images(32)
    m = cm.gan()
    gradtrace.fit(
        m, x, batch_size=16, epochs=1, verbose=0, logdir=str(tmp_path), config=quiet()
    )
    gradtrace.fit(
        m,
        x,
        batch_size=16,
        epochs=2,
        initial_epoch=1,
        verbose=0,
        logdir=str(tmp_path),
        config=quiet(),
    )
    s = read_scalars(str(tmp_path / "train"))
    assert [st for st, _ in s["batch_loss"]] == [0, 1, 2, 3]


def test_interception_is_gone_after_the_step_is_traced():
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    before = (keras.Layer.__call__, BaseOptimizer.apply)
    gradtrace.fit(cm.gan(), cm.images(16), batch_size=16, verbose=0, config=quiet())
    assert (keras.Layer.__call__, BaseOptimizer.apply) == before

import numpy as np

from gradtrace import Config
from gradtrace.detectors.vanishing_gradient import VanishingGradientDetector

from .detector_helpers import feed, info, stats

N = 100  # params per layer: grad_norm = rms * 10
LAYERS = (
    info("h0", "sigmoid"),
    info("h1", "sigmoid"),
    info("h2", "sigmoid"),
    info("out", "sigmoid", is_output=True),
)


def run(rms, layers=LAYERS, n=15, config=None, **cols):
    rms = np.asarray(rms, dtype=float)
    recs = [stats(i, layers, grad_norm=rms * 10.0, **cols) for i in range(n)]
    return feed(VanishingGradientDetector(config or Config(), layers), recs)


def test_deep_sigmoid_chain_names_the_first_layer():
    ds = run([1e-9, 1e-8, 1e-3, 1e-1])
    assert [d.step for d in ds] == list(range(10, 15))
    d = ds[0]
    assert (d.kind, d.layer, d.threshold) == ("vanishing_gradient", "h0", 1e-3)
    assert np.isclose(d.value, 1e-8)
    assert "that of the output layer 'out'" in d.message
    assert "1 more layer too ('h1')" in d.message
    assert "He initialisation" in d.hint


def test_warmup_and_patience():
    assert run([1e-9, 1e-2, 1e-2, 1e-1], n=10) == []
    ds = run([1e-9, 1e-2, 1e-2, 1e-1], config=Config(diagnosis_warmup=0))
    assert ds[0].step == 4  # the fifth consecutive check


def test_converged_model_with_tiny_gradients_everywhere_is_not_vanishing():
    assert run([1e-9, 1e-9, 1e-9, 1e-9]) == []


def test_small_relative_but_large_absolute_gradient_is_not_vanishing():
    assert run([5e-4, 1e-2, 1e-2, 10.0]) == []


def test_sigmoid_output_alone_and_single_layer():
    assert run([1e-12], layers=(info("out", "sigmoid", is_output=True),)) == []
    assert run([], layers=()) == []


def test_reference_is_the_last_layer_when_no_output_is_marked():
    layers = (info("a"), info("b"))
    assert run([1e-9, 1e-1], layers=layers)[0].layer == "a"


def test_layer_without_gradient_is_skipped():
    assert run([np.nan, 1e-2, 1e-2, 1e-1]) == []


def test_zero_gradient_behind_a_dead_relu_layer_is_dead_relus_finding():
    layers = (info("r0"), info("r1"), info("out", "sigmoid", is_output=True))
    dead = [0.0, 1.0, np.nan]
    assert run([0.0, 0.0, 1e-1], layers=layers, act_dead_frac=dead) == []
    assert run([0.0, 0.0, 1e-1], layers=layers, act_dead_frac=0.0)[0].layer == "r0"


def test_embedding_sparse_gradient_is_skipped():
    layers = (
        info("emb", "linear", class_name="Embedding"),
        info("out", is_output=True),
    )
    assert run([1e-7, 1e-1], layers=layers) == []


def test_output_gradient_zero_gives_no_reference():
    assert run([1e-9, 1e-9, 1e-9, 0.0]) == []


def _two_models(model_g="generator", model_d="discriminator"):
    import dataclasses

    def of(model, *infos):
        return tuple(dataclasses.replace(i, model=model) for i in infos)

    return of(
        model_g, info("g_hidden", "relu"), info("g_out", "sigmoid", is_output=True)
    ) + of(model_d, info("d_hidden", "relu"), info("d_out", "linear", is_output=True))


def test_layers_are_compared_with_their_own_models_output_layer():
    # g_hidden is 1e-5 of the discriminator's output layer but 1/10 of its own
    # model's output layer: not vanishing (it was, judged against d_out).
    healthy = [1e-6, 1e-5, 1e-2, 1e-1]
    assert run(healthy, layers=_two_models()) == []
    # without model groups, the same numbers were a (false) finding
    one_model = _two_models(None, None)
    assert [d.layer for d in run(healthy, layers=one_model)][:1] == ["g_hidden"]
    # within one model the rule still fires
    ds = run([1e-9, 1e-1, 1e-2, 1e-1], layers=_two_models())
    assert ds and ds[0].layer == "g_hidden"
    assert "output layer 'g_out'" in ds[0].message

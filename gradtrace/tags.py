"""Every TensorBoard tag gradtrace writes, in one place (format version 1).

Tag grammar (all in ``LOGDIR/train`` unless said otherwise; ``<layer>`` is
``layer.name``, or ``<model>/<layer>`` when layers of two models called in
one step share a name, or a trained variable's ``path`` when no layer owns
it; ``<var>`` the last component of ``variable.path``):

    epoch_<name>                        Keras' own epoch tags (train/ and validation/)
    batch_loss                          the step's total loss (as Keras' update_freq="batch");
                                        a custom step: the series the loss rules judge
    batch_<key>                         a custom train_step / Tracer step: each scalar it returns
    gradients/<layer>/norm|rms|max_abs|zero_frac|nonfinite
    gradients/<layer>/<var>             histogram (heavy steps)
    gradients/heatmap                   image: layer x step log10 gradient RMS (last 256 steps;
                                        heavy steps, at most every 100 steps)
    gradients/global_norm               global gradient norm (all layers, before any clipping)
    gradients/clipped                   1 where the optimizer's clipping engaged, else 0
                                        (only when it clips: clipnorm/global_clipnorm/clipvalue)
    gradients/loss_scale                dynamic loss scale (mixed precision only)
    weights/<layer>/norm|rms
    weights/<layer>/<var>               histogram (heavy steps)
    updates/<layer>/ratio|norm
    updates/heatmap                     image: layer x step log10 update ratio
    activations/<layer>/mean|std|zero_frac|dead_frac|saturated_frac|nonfinite
    activations/<layer>/histogram       histogram (heavy steps)
    timing/total_ms|data_ms|compute_ms|host_ms|retraced
    timing/peak_memory_mb               GPU only: peak device memory of the step
    findings                            text: one line per new finding

Step is the 0-based optimizer step for per-step tags, the epoch for epoch_*.
"""

from __future__ import annotations

FORMAT_VERSION = 1

TRAIN_DIR = "train"
VALIDATION_DIR = "validation"
FINDINGS_FILE = "findings.jsonl"
FINDINGS = "findings"
BATCH_LOSS = "batch_loss"
LOSS_SCALE = "gradients/loss_scale"
GLOBAL_NORM = "gradients/global_norm"
CLIPPED = "gradients/clipped"
GRADIENT_HEATMAP = "gradients/heatmap"
UPDATE_HEATMAP = "updates/heatmap"
# Model-wide tags under the layer families (two components, never a layer's)
MODEL_WIDE = frozenset(
    {LOSS_SCALE, GRADIENT_HEATMAP, UPDATE_HEATMAP, GLOBAL_NORM, CLIPPED}
)

# (record field, tag family, statistic name)
SCALAR_TAGS = (
    ("grad_norm", "gradients", "norm"),
    ("grad_rms", "gradients", "rms"),
    ("grad_max_abs", "gradients", "max_abs"),
    ("grad_zero_frac", "gradients", "zero_frac"),
    ("grad_nonfinite", "gradients", "nonfinite"),
    ("weight_norm", "weights", "norm"),
    ("weight_rms", "weights", "rms"),
    ("update_ratio", "updates", "ratio"),
    ("update_norm", "updates", "norm"),
    ("act_mean", "activations", "mean"),
    ("act_std", "activations", "std"),
    ("act_zero_frac", "activations", "zero_frac"),
    ("act_dead_frac", "activations", "dead_frac"),
    ("act_saturated_frac", "activations", "saturated_frac"),
    ("act_nonfinite", "activations", "nonfinite"),
)
TIMING_FIELDS = ("total_ms", "data_ms", "compute_ms", "host_ms", "retraced")


def batch_tag(name: str) -> str:
    return f"batch_{name}"


def epoch_tag(name: str) -> str:
    return f"epoch_{name}"


def layer_tag(family: str, layer: str, stat: str) -> str:
    return f"{family}/{layer}/{stat}"


def timing_tag(field: str) -> str:
    return f"timing/{field}"


def parse_layer_tag(tag: str) -> tuple[str, str, str] | None:
    """Inverse of `layer_tag` for scalar tags: (family, layer, stat) or None.

    The first component is the family, the last the statistic, and what is
    between them the layer (which may hold '/': ``<model>/<layer>``).
    """
    parts = tag.split("/")
    if len(parts) < 3 or parts[0] not in (
        "gradients",
        "weights",
        "updates",
        "activations",
    ):
        return None
    return parts[0], "/".join(parts[1:-1]), parts[-1]

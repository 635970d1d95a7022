"""The heavy variant is compiled without Grappler; the light one with it."""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context

from gradtrace.step import ProbedStep
from tests.conftest import quiet


def _grappler_disabled() -> bool:
    serialized = context.context().function_call_options.config_proto_serialized
    config = config_pb2.ConfigProto.FromString(serialized)
    return config.graph_options.rewrite_options.disable_meta_optimizer


def test_heavy_variant_is_called_without_graph_rewrites_light_with_them():
    seen = []

    def body(x):
        seen.append(_grappler_disabled())  # runs while the variant is traced
        return {"sum": tf.reduce_sum(x * 2.0)}, None

    step = ProbedStep(body, quiet())
    before = context.context().function_call_options
    x = tf.ones([4])
    assert float(step.light(x)["result"]["sum"]) == 8.0
    assert float(step.heavy(x)["result"]["sum"]) == 8.0
    assert seen == [False, True]
    # The option is the calling thread's, and only during the heavy call.
    assert context.context().function_call_options is before
    assert not _grappler_disabled()
    step.heavy(x)
    assert seen == [False, True]  # traced once
    assert step.heavy.get_concrete_function(x) is not None

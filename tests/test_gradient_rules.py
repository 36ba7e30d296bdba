"""Gradient rules: each replacement computes what onnxruntime's own gradient kernel computes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxprune
from onnxprune.ops.gradient_rules import speed_up_gradients
from onnxprune.ops.training_rules import legalize
from onnxprune.passmanager import AnalysisManager

from .conftest import ZOO, run_ort

MS = "com.microsoft"


def gradient_model(node: onnx.NodeProto, inputs: dict[str, tuple], outputs: list[str]) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


def rewritten(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy, speed_up_gradients(copy)


def test_relu_grad_rule_matches_the_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 5, 5)).astype(np.float32)
    x[0, 0] = 0.0  # the boundary: no gradient at exactly zero
    feeds = {"dy": rng.standard_normal(x.shape).astype(np.float32), "x": x}
    model = gradient_model(helper.make_node("ReluGrad", ["dy", "x"], ["dx"], domain=MS),
                           {n: a.shape for n, a in feeds.items()}, ["dx"])
    fast, count = rewritten(model)
    assert count == 1 and all(n.domain != MS for n in fast.graph.node)
    (expected,), (got,) = run_ort(model, feeds), run_ort(fast, feeds)
    assert np.array_equal(expected, got)  # -0.0 == 0.0: the only difference allowed
    assert np.array_equal(got != 0, (x > 0) & (feeds["dy"] != 0))


def depthwise_case(kernel=(3, 3), pads=(1, 1, 1, 1), outputs=("dx", "dw", "db"), channels=4, multiplier=1,
                   declare_weight_shape=True, **attributes):
    rng = np.random.default_rng(1)
    h, w = 7, 6
    out = (h + pads[0] + pads[2] - kernel[0] + 1, w + pads[1] + pads[3] - kernel[1] + 1)
    feeds = {"dy": rng.standard_normal((2, channels * multiplier, *out)).astype(np.float32),
             "x": rng.standard_normal((2, channels, h, w)).astype(np.float32),
             "w": rng.standard_normal((channels * multiplier, 1, *kernel)).astype(np.float32)}
    node = helper.make_node("ConvGrad", ["dy", "x", "w"], list(outputs), domain=MS, kernel_shape=list(kernel),
                            pads=list(pads), group=channels, **attributes)
    shapes = {n: a.shape for n, a in feeds.items()}
    if not declare_weight_shape:
        shapes["w"] = None
    return gradient_model(node, shapes, [o for o in outputs if o]), feeds


@pytest.mark.parametrize("kernel, pads", [((3, 3), (1, 1, 1, 1)), ((5, 5), (2, 2, 2, 2)), ((3, 3), (0, 1, 2, 0)),
                                          ((3, 1), (1, 0, 1, 0)), ((3, 3), (0, 0, 0, 0)), ((1, 1), (0, 0, 0, 0))])
def test_depthwise_conv_grad_rule_matches_the_kernel(kernel, pads):
    model, feeds = depthwise_case(kernel, pads)
    fast, count = rewritten(model)
    assert count == 1 and [n.op_type for n in fast.graph.node].count("Conv") == 1
    (dx, dw, db), (fast_dx, fast_dw, fast_db) = run_ort(model, feeds), run_ort(fast, feeds)
    assert np.array_equal(dw, fast_dw) and np.array_equal(db, fast_db)  # still ConvGrad's own
    np.testing.assert_allclose(fast_dx, dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change", [dict(strides=[2, 2]), dict(dilations=[2, 2]), dict(channels=1),
                                    dict(multiplier=2), dict(pads=(3, 3, 3, 3)), dict(outputs=("", "dw", "db")),
                                    dict(auto_pad="SAME_UPPER"), dict(declare_weight_shape=False)])
def test_depthwise_conv_grad_rule_leaves_other_convolutions_alone(change):
    model, _ = depthwise_case(**change)  # never run: some of these are not valid convolutions
    fast, count = rewritten(model)
    assert count == 0 and fast == model


@pytest.mark.parametrize("name", ["fashion_cnn", "mobilenetv2"])
def test_training_graph_uses_the_rules_and_computes_the_same_gradients(tmp_path, name):
    from onnxprune.runtime import random_inputs
    from onnxprune.train.artifacts import build_artifacts
    from onnxprune.train.engine import TrainingEngine

    graph = onnxprune.load(ZOO / f"{name}.onnx")
    legal = graph.copy()
    added = legalize(legal, AnalysisManager(graph).get("shapes"))
    inputs = random_inputs(graph, np.random.default_rng(0), 4)
    feeds = [*inputs.values(), np.random.default_rng(1).integers(0, 10, 4).astype(np.int64)]
    grads, losses, ops = {}, {}, {}
    for rules in (False, True):
        artifacts = build_artifacts(legal, tmp_path / str(rules), "cross-entropy", exclude=added, gradient_rules=rules)
        ops[rules] = sorted(n.op_type for n in onnx.load(artifacts.training_model).graph.node)
        engine = TrainingEngine(artifacts, threads=1)
        losses[rules] = engine.step(feeds)
        grads[rules] = {k: v.numpy().copy() for k, v in engine.grads.items()}
    assert ops[True] != ops[False]  # some rule applied
    assert "ReluGrad" not in ops[True]
    assert losses[True] == losses[False]
    assert grads[True].keys() == grads[False].keys()
    for tensor, expected in grads[False].items():
        np.testing.assert_allclose(grads[True][tensor], expected, rtol=1e-4, atol=1e-6, err_msg=tensor)

"""Gradient rules: each replacement computes what onnxruntime's own gradient kernel computes."""

from __future__ import annotations

import numpy as np
import onnx
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


def test_training_graph_uses_the_rules_and_computes_the_same_gradients(tmp_path):
    from onnxprune.train.artifacts import build_artifacts
    from onnxprune.train.engine import TrainingEngine

    graph = onnxprune.load(ZOO / "fashion_cnn.onnx")
    legal = graph.copy()
    added = legalize(legal, AnalysisManager(graph).get("shapes"))
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((4, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 4).astype(np.int64)]
    grads, losses = {}, {}
    for rules in (False, True):
        artifacts = build_artifacts(legal, tmp_path / str(rules), "cross-entropy", exclude=added, gradient_rules=rules)
        ops = [n.op_type for n in onnx.load(artifacts.training_model).graph.node]
        assert ("ReluGrad" in ops) != rules
        engine = TrainingEngine(artifacts, threads=1)
        losses[rules] = engine.step(feeds)
        grads[rules] = {k: v.numpy().copy() for k, v in engine.grads.items()}
    assert losses[True] == losses[False]
    assert grads[True].keys() == grads[False].keys()
    for name, expected in grads[False].items():
        np.testing.assert_allclose(grads[True][name], expected, rtol=1e-4, atol=1e-6, err_msg=name)

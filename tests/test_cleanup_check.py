"""cleanup removes what does not matter without changing outputs; check accepts good models and
rejects broken ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.errors import CheckFailed
from onnxprune.passmanager import PassManager

from .conftest import ZOO, assert_same_outputs, random_feeds, run_ort


def _cluttered() -> onnx.ModelProto:
    """Relu -> Identity -> Relu -> Identity(output), plus a dead branch and an unused initializer."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("Neg", ["b"], ["c"]),
        helper.make_node("Identity", ["c"], ["y"]),
        helper.make_node("Sigmoid", ["a"], ["dead1"]),
        helper.make_node("Add", ["dead1", "w"], ["dead2"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
                              [numpy_helper.from_array(np.ones(3, np.float32), "w"),
                               numpy_helper.from_array(np.ones(3, np.float32), "unused")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cleanup_removes_identities_dead_ops_and_unused_initializers():
    model = _cluttered()
    graph = onnxprune.load(model)
    report = PassManager("cleanup", verify_each=True).run(graph)
    assert report.modified
    assert [op.op_type for op in graph.topological_order()] == ["Relu", "Neg"]
    assert graph.initializers == []
    assert [v.name for v in graph.outputs] == ["y"]  # the interface keeps its name
    feeds = {"x": np.array([-1, 0, 2], np.float32)}
    assert_same_outputs(run_ort(model, feeds), run_ort(graph.to_onnx(), feeds))
    assert not PassManager("cleanup").run(graph).modified  # a second run finds nothing to do


def test_cleanup_keep_identity():
    graph = onnxprune.load(_cluttered())
    PassManager("cleanup{keep-identity=true}").run(graph)
    assert sorted(op.op_type for op in graph.ops()) == ["Identity", "Identity", "Neg", "Relu"]


def test_identity_between_input_and_output_stays():
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    g = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert not PassManager("cleanup").run(g).modified


def test_cleanup_keeps_zoo_outputs_bit_exact(zoo_path):
    graph = onnxprune.load(zoo_path)
    PassManager("cleanup,check", verify_each=True).run(graph)
    feeds = random_feeds(onnx.load(zoo_path))
    assert_same_outputs(run_ort(zoo_path, feeds), run_ort(graph.to_onnx(), feeds))


def test_cleanup_keeps_values_read_by_subgraphs():
    from .test_roundtrip import _rich_model

    graph = onnxprune.load(_rich_model())
    PassManager("cleanup", verify_each=True).run(graph)
    assert "h" in graph and "b" in graph  # read only by the If's branches
    onnx.checker.check_model(graph.to_onnx(), full_check=True)


def test_infer_shapes_records_value_info():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    assert not graph.value_info
    PassManager("infer-shapes").run(graph)
    model = graph.to_onnx()
    typed = {vi.name for vi in model.graph.value_info}
    produced = {v.name for op in graph.ops() for v in graph.outputs_of(op) if v is not None}
    assert produced - {v.name for v in graph.outputs} <= typed


def test_check_passes_on_zoo_models(zoo_path):
    report = PassManager("check").run(onnxprune.load(zoo_path))
    assert report.results["check"].checker and report.results["check"].onnxruntime


def test_check_rejects_a_model_the_checker_refuses():
    # Structurally valid, but the declared output type contradicts what Relu produces: only the
    # full check (strict type and shape inference) sees it.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3])])
    g = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(CheckFailed, match="check failed: fails the ONNX checker: .*type"):
        PassManager("check").run(g)


def test_check_rejects_an_ir_version_onnxruntime_cannot_load():
    graph = onnxprune.load(ZOO / "mlp.onnx")
    graph.model.ir_version = 11
    with pytest.raises(CheckFailed, match="IR version 11 is newer than onnxruntime 1.19 loads"):
        PassManager("check").run(graph)

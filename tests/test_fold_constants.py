"""fold-constants: weights computed from constants become initializers, so their families prune."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.ops.folding import fold_constant_weights
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.runtime import inference_session

from .test_cli import run_cli


def _weights(rng, *shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def computed_weights_cnn() -> onnx.ModelProto:
    """Conv weights stored as fp16 and Cast, as a flat vector and Reshaped; a Gemm weight Transposed;
    a bias made by ConstantOfShape; a quantized weight behind DequantizeLinear (left alone)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Cast", ["w1_fp16"], ["w1"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("ConstantOfShape", ["b1_shape"], ["b1"],
                              value=numpy_helper.from_array(np.array([0.1], np.float32))),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Reshape", ["w2_flat", "w2_shape"], ["w2"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("DequantizeLinear", ["w3_q", "w3_scale"], ["w3"], axis=0),
             helper.make_node("Conv", ["r2", "w3"], ["c3"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Transpose", ["fc_t"], ["fc"], perm=[1, 0]),
             helper.make_node("Gemm", ["f", "fc"], ["y"])]
    inits = [numpy_helper.from_array(_weights(rng, 8, 3, 3, 3).astype(np.float16), "w1_fp16"),
             numpy_helper.from_array(np.array([8], np.int64), "b1_shape"),
             numpy_helper.from_array(_weights(rng, 8 * 8 * 9), "w2_flat"),
             numpy_helper.from_array(np.array([8, 8, 3, 3], np.int64), "w2_shape"),
             numpy_helper.from_array(rng.integers(-100, 100, (6, 8, 1, 1)).astype(np.int8), "w3_q"),
             numpy_helper.from_array(np.full(6, 0.01, np.float32), "w3_scale"),
             numpy_helper.from_array(_weights(rng, 4, 6), "fc_t")]
    graph = helper.make_graph(nodes, "computed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _prunable_sizes(graph) -> list[int]:
    return sorted(f.size for f in AnalysisManager(graph).get("prune-space").prunable)


def test_folding_turns_computed_weights_into_initializers_exactly():
    graph = onnxprune.load(computed_weights_cnn())
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    before = inference_session(graph).run(None, feeds)[0]
    frozen = _prunable_sizes(graph)
    folded = fold_constant_weights(graph)
    assert folded == ["b1", "w2"]  # ConstantOfShape's bias, the Reshape of a flat weight; Cast, Transpose stay
    assert {op.op_type for op in graph.ops()} == {"Cast", "Conv", "Relu", "DequantizeLinear", "GlobalAveragePool",
                                                  "Flatten", "Transpose", "Gemm"}
    assert graph.get_value("b1_shape") is None and graph.get_value("w2_flat") is None  # only folded ops read them
    np.testing.assert_array_equal(inference_session(graph).run(None, feeds)[0], before)
    # conv 1's channels join (its ConstantOfShape bias froze them); conv 2 and the quantized conv 3
    # prune either way (Reshape of a constant and DequantizeLinear have rules)
    assert frozen == [6, 8] and _prunable_sizes(graph) == [6, 8, 8]


def test_folded_model_prunes_and_compact_matches_masked(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(computed_weights_cnn(), path)
    code, out, _ = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "out.onnx")
    assert code == 0, out
    assert "folded 2 values computed from constants" in out and "in 3 of 3 prunable families" in out
    assert "verify     compact vs masked" in out


def test_large_results_and_overridable_inputs_stay_computed():
    nodes = [helper.make_node("Expand", ["one", "big_shape"], ["big"]),
             helper.make_node("Cast", ["default"], ["d"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["big", "d"], ["y"])]
    inits = [numpy_helper.from_array(np.ones(1, np.float32), "one"),
             numpy_helper.from_array(np.array([512, 512], np.int64), "big_shape"),
             numpy_helper.from_array(np.ones(1, np.float16), "default")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("default", TensorProto.FLOAT16, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [512, 512])], inits)
    graph = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    assert fold_constant_weights(graph) == []  # 1 MiB out of 24 bytes; an input's initializer is a default


def test_fold_constants_pass_in_a_pipeline(tmp_path):
    graph = onnxprune.load(computed_weights_cnn())
    report = PassManager("fold-constants,cleanup,check").run(graph)
    assert report.modified and not any(op.op_type in ("ConstantOfShape", "Reshape") for op in graph.ops())


@pytest.mark.parametrize("name", ["vgg", "transformer", "llama"])
def test_zoo_spaces_do_not_change_when_folded(name):
    from .conftest import ZOO

    graph = onnxprune.load(ZOO / f"{name}.onnx")
    before = _prunable_sizes(graph)
    fold_constant_weights(graph)
    assert _prunable_sizes(graph) == before


def test_a_constant_an_if_body_still_reads_is_kept():
    """silero-vad's pattern: one Constant feeds a foldable Unsqueeze and, by name, an If branch."""
    then = helper.make_graph([helper.make_node("Add", ["x", "k"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "else", [],
                              [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
             helper.make_node("Unsqueeze", ["k", "axes"], ["k1"]),
             helper.make_node("If", ["cond"], ["b"], then_branch=then, else_branch=other),
             helper.make_node("Add", ["b", "k1"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                                           helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([0], np.int64), "axes")])
    graph = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    feeds = {"x": np.arange(3, dtype=np.float32), "cond": np.array(True)}
    before = inference_session(graph).run(None, feeds)[0]
    assert fold_constant_weights(graph) == ["k1"]
    assert graph.get_value("k") is not None  # the If body still reads it by name
    np.testing.assert_array_equal(inference_session(graph).run(None, feeds)[0], before)

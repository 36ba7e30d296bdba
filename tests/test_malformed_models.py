"""A generated corpus of malformed models: every command answers one line and exit 2, never an
internal error, a crash or a result computed for a model that cannot run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from .test_cli import run_cli


def _conv_model(weight: TensorProto | None = None, input_channels: int = 3, output_channels: int = 4
                ) -> onnx.ModelProto:
    weight = weight if weight is not None else numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], name="conv"),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", input_channels, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", output_channels, 6, 6])],
                              [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _raw(dims, nbytes: int, data_type: int = TensorProto.FLOAT) -> TensorProto:
    tensor = TensorProto(name="w", data_type=data_type, dims=dims)
    tensor.raw_data = b"\0" * nbytes
    return tensor


def _typed_short() -> onnx.ModelProto:
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3])
    tensor.float_data.extend([1.0] * 10)
    return _conv_model(tensor)


def _recursive_function() -> onnx.ModelProto:
    call = helper.make_node("Again", ["a"], ["b"], domain="local")
    function = helper.make_function("local", "Again", ["a"], ["b"], [call],
                                    [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    graph = helper.make_graph([helper.make_node("Again", ["x"], ["y"], domain="local")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                             functions=[function], ir_version=8)


def _no_outputs() -> onnx.ModelProto:
    model = _conv_model()
    del model.graph.output[:]
    return model


def _contradicting_value_info() -> onnx.ModelProto:
    model = _conv_model()
    model.graph.value_info.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 7, 2, 2]))
    return model


def _gemm_k_mismatch() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              [numpy_helper.from_array(np.ones((3, 4), np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _nested_ifs(depth: int = 30) -> onnx.ModelProto:
    out = [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2])]
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["r"])], "leaf", [], out)
    for level in range(depth):
        plain = helper.make_graph([helper.make_node("Identity", ["x"], ["r"])], f"plain{level}", [], out)
        body = helper.make_graph([helper.make_node("If", ["c"], ["r"], then_branch=body, else_branch=plain)],
                                 f"level{level}", [], out)
    graph = helper.make_graph(list(body.node), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                                     helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


CASES = {
    "raw data too short": (lambda: _conv_model(_raw([4, 3, 3, 3], 100)), "holds 100 bytes"),
    "raw data too long": (lambda: _conv_model(_raw([4, 3, 3, 3], 440)), "holds 440 bytes"),
    "typed data too short": (_typed_short, "does not match its dims"),
    "negative dims": (lambda: _conv_model(_raw([-4, 3, 3, 3], 0)), "negative dimension"),
    "10^12 elements": (lambda: _conv_model(_raw([1000000, 1000000, 1, 1], 16)), "need 4000000000000"),
    "element type 99": (lambda: _conv_model(_raw([4, 3, 3, 3], 432, 99)), "element type 99"),
    "int4 conv weight": (lambda: _conv_model(_raw([4, 3, 3, 3], 54, TensorProto.INT4)), "unsupported type"),
    "recursive function": (_recursive_function, "calls itself"),
    "no outputs": (_no_outputs, "no graph outputs"),
    "contradicting value_info": (_contradicting_value_info, "existing shape differ"),
    "conv channels disagree": (lambda: _conv_model(input_channels=5), "contracts 5 against 3"),
    "gemm K disagrees": (_gemm_k_mismatch, "contracts 5 against 3"),
    "30 nested Ifs": (_nested_ifs, "nests If/Loop/Scan bodies 30 deep"),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("command", ["analyze", "prune", "opt"])
def test_malformed_model_is_one_line_exit_2(tmp_path, capsys, name, command):
    build, message = CASES[name]
    path = tmp_path / "m.onnx"
    path.write_bytes(build().SerializeToString())
    out = tmp_path / "out.onnx"
    args = {"analyze": ["analyze", path], "prune": ["prune", path, "--ratio", "0.5", "-o", out],
            "opt": ["opt", path, "--passes", "cleanup,check", "-o", out]}[command]
    code, _, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_zero_sized_weights_are_analysed_not_crashed_on(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(_conv_model(_raw([0, 3, 3, 3], 0), output_channels=0).SerializeToString())
    code, out, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "o.onnx")
    assert code == 0 and "internal error" not in err and "nothing written" in out + err

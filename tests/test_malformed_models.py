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


def _typed_long() -> onnx.ModelProto:
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3])
    tensor.float_data.extend([1.0] * 200)
    return _conv_model(tensor)


def _garbled(*replacements: tuple[bytes, bytes]):
    """A model whose string fields are replaced by bytes that are not UTF-8 (protobuf hands such
    fields back as bytes: the JSON report crashed on a node name)."""
    def build() -> onnx.ModelProto:
        data = _conv_model().SerializeToString()
        for text, replacement in replacements:
            data = data.replace(text, replacement)
        return onnx.ModelProto.FromString(data)
    return build


CASES = {
    "raw data too short": (lambda: _conv_model(_raw([4, 3, 3, 3], 100)), "holds 100 bytes"),
    "raw data too long": (lambda: _conv_model(_raw([4, 3, 3, 3], 440)), "holds 440 bytes"),
    "typed data too short": (_typed_short, "does not match its dims"),
    "typed data too long": (_typed_long, "does not match its dims"),
    "non-UTF-8 node name": (_garbled((b"conv", b"c\xffnv")), "holds a node name b'c\\xffnv' that is not valid UTF-8"),
    "non-UTF-8 value name": (_garbled((b"\x12\x01c", b"\x12\x01\xfe"), (b"\x0a\x01c", b"\x0a\x01\xfe")), "holds a value name b'\\xfe' that is not valid UTF-8"),
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
@pytest.mark.parametrize("command", ["analyze", "prune", "opt", "run"])
def test_malformed_model_is_one_line_exit_2(tmp_path, capsys, name, command):
    build, message = CASES[name]
    path = tmp_path / "m.onnx"
    path.write_bytes(build().SerializeToString())
    out = tmp_path / "out.onnx"
    args = {"analyze": ["analyze", path, "--json", tmp_path / "a.json"], "prune": ["prune", path, "--ratio", "0.5", "-o", out],
            "opt": ["opt", path, "--passes", "cleanup,check", "-o", out],
            "run": ["run", path, "--synthetic", "8", "--round-to", "4", "-o", out]}[command]
    code, _, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


@pytest.mark.parametrize("weight, cin, cout", [([0, 3, 3, 3], 3, 0), ([4, 0, 3, 3], 0, 4)], ids=["no outputs", "no inputs"])
def test_zero_sized_weights_are_analysed_not_crashed_on(tmp_path, capsys, weight, cin, cout):
    """Convolutions with zero output (or input) channels: analysed, nothing to prune, nothing written
    (they raised IndexError); onnxruntime's refusal to load one is one line from `check`."""
    path = tmp_path / "m.onnx"
    path.write_bytes(_conv_model(_raw(weight, 0), input_channels=cin, output_channels=cout).SerializeToString())
    code, out, err = run_cli(capsys, "analyze", path, "--json", tmp_path / "a.json")
    assert code == 0 and "internal error" not in err and (tmp_path / "a.json").exists(), err
    code, out, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "o.onnx")
    assert code == 0 and "internal error" not in err and "nothing written" in out + err
    code, out, err = run_cli(capsys, "opt", path, "--passes", "cleanup,check", "-o", tmp_path / "o.onnx")
    assert code in (0, 2) and len(err.strip().splitlines()) <= 1 and "internal error" not in err, err


def _double_convs() -> onnx.ModelProto:
    """Two float64 convolutions: valid ONNX that onnxprune prunes, but onnxruntime's CPU build has no
    float64 Conv kernel, so it refuses to load the model (and the masked reference made from it)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s), n) for n, s in (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[3, 3], name="conv1"),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Conv", ["r", "w2"], ["y"], kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 4, 6, 6])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("command", [["prune", "--ratio", "0.5", "--round-to", "1"],
                                     ["opt", "--passes", "select{ratio=0.5},compact,verify"],
                                     ["run", "--synthetic", "32", "--steps", "2", "--batch-size", "8", "--round-to", "4"]])
def test_a_model_onnxruntime_refuses_is_one_line_exit_2(tmp_path, capsys, command):
    """onnxprune accepts the model (it is valid ONNX); onnxruntime refusing to load it surfaced from
    verify and from distillation's teacher as internal errors (exit 1): it is the input's problem."""
    path = tmp_path / "m.onnx"
    path.write_bytes(_double_convs().SerializeToString())
    out = tmp_path / "o.onnx"
    code, _, err = run_cli(capsys, command[0], path, *command[1:], "-o", out, "--no-progress" if command[0] == "run" else
                           "--no-latency" if command[0] == "prune" else "--time-passes")
    lines = err.strip().splitlines()
    assert code == 2 and "onnxruntime cannot load the model" in lines[-1] and "Conv" in lines[-1], err
    assert all(not line.startswith("onnxprune: error") for line in lines[:-1])  # only notes before it
    assert not out.exists()


def test_onnxruntime_log_lines_never_reach_stderr(tmp_path):
    """onnxruntime writes its own log to the process's stderr, past Python: the only line a refused
    model leaves there is ours."""
    import subprocess
    import sys

    path = tmp_path / "m.onnx"
    path.write_bytes(_double_convs().SerializeToString())
    for args in (["prune", path, "--ratio", "0.5", "--round-to", "1", "--no-latency"],
                 ["opt", path, "--passes", "cleanup,check"]):
        done = subprocess.run([sys.executable, "-m", "onnxprune", *map(str, args), "-o", str(tmp_path / "o.onnx")],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "onnxruntime cannot load the model" in done.stderr

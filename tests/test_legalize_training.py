"""legalize-training: every rewrite computes what the op it replaces computes, keeps initializer names,
and the result builds gradients in onnxruntime-training."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.errors import UserError
from onnxprune.passmanager import PassManager
from onnxprune.runtime import inference_session as session

from .builders import Builder


def legalized(model: onnx.ModelProto, device: str = "cpu") -> onnxprune.Graph:
    graph = onnxprune.load(model)
    PassManager(f"legalize-training{{device={device}}}").run(graph)
    graph.verify()
    onnx.checker.check_model(graph.to_onnx(), full_check=True)
    return graph


def outputs(graph: onnxprune.Graph, feeds: dict) -> list[np.ndarray]:
    return session(graph).run(None, feeds)


def single_op(op_type: str, shape=(2, 3, 4, 4), extra_inputs=(), opset: int = 17, **attrs) -> onnx.ModelProto:
    b = Builder(seed=1)
    y = b.op(op_type, ["x", *extra_inputs(b)] if callable(extra_inputs) else ["x", *extra_inputs], **attrs)
    return b.model({"x": list(shape)}, [y], opset=opset)


def shaped_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """Declare the output's shape as the input's (onnx's shape inference leaves function ops' outputs
    without one, which the checker rejects)."""
    model.graph.output[0].type.CopyFrom(model.graph.input[0].type)
    return model


CASES = {
    "HardSigmoid": lambda: single_op("HardSigmoid", alpha=0.3, beta=0.4),
    "HardSwish": lambda: single_op("HardSwish"),
    "PRelu": lambda: single_op("PRelu", extra_inputs=lambda b: [b.weight((3, 1, 1))]),
    "Elu": lambda: single_op("Elu", alpha=0.7),
    "Selu": lambda: single_op("Selu"),
    "Celu": lambda: single_op("Celu", alpha=1.3),
    "Softplus": lambda: single_op("Softplus"),
    "Mish": lambda: single_op("Mish", opset=18),
    "Softsign": lambda: single_op("Softsign"),
    "Sum": lambda: single_op("Sum", extra_inputs=lambda b: [b.weight((3, 1, 1)), b.weight((4,))]),
    "Mean": lambda: single_op("Mean", extra_inputs=lambda b: [b.weight((3, 1, 1))]),
    "GlobalMaxPool": lambda: single_op("GlobalMaxPool"),
    "AveragePool": lambda: single_op("AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
    "AveragePool-pads": lambda: single_op("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
    "InstanceNormalization": lambda: single_op("InstanceNormalization",
                                               extra_inputs=lambda b: [b.weight((3,)), b.weight((3,))], epsilon=1e-3),
    "GroupNormalization": lambda: shaped_output(single_op(
        "GroupNormalization", shape=(2, 6, 3, 3), opset=18, num_groups=3, epsilon=1e-3,
        extra_inputs=lambda b: [b.weight((3,)), b.weight((3,))])),
    "GroupNormalization-21": lambda: shaped_output(single_op(
        "GroupNormalization", shape=(2, 6, 3, 3), opset=21, num_groups=2,
        extra_inputs=lambda b: [b.weight((6,)), b.weight((6,))])),
    "ReduceSumSquare": lambda: single_op("ReduceSumSquare", axes=[1, 3], keepdims=0),
    "Resize": lambda: resize_model(),
    "ConvTranspose": lambda: single_op("ConvTranspose", extra_inputs=lambda b: [b.weight((3, 2, 3, 3)), b.weight((2,))],
                                       kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    "ConvTranspose-grouped": lambda: single_op("ConvTranspose", extra_inputs=lambda b: [b.weight((3, 2, 2, 2))],
                                               kernel_shape=[2, 2], strides=[2, 1], group=3, dilations=[1, 2]),
    "LayerNormalization": lambda: single_op("LayerNormalization",
                                            extra_inputs=lambda b: [b.weight((4,)), b.weight((4,))], axis=-1),
}


def resize_model() -> onnx.ModelProto:
    b = Builder()
    y = b.op("Resize", ["x", "", b.const(np.array([1, 1, 2, 3], np.float32))], mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return b.model({"x": [2, 3, 4, 4]}, [y])


@pytest.mark.parametrize("case", sorted(CASES))
def test_rewrite_computes_the_same(case):
    model = CASES[case]()
    original = onnxprune.load(model)
    graph = legalized(model)
    op_type = case.split("-")[0]
    remaining = [op.op_type for op in graph.ops()]
    if op_type != "LayerNormalization":
        assert op_type not in remaining, f"{op_type} was not rewritten"
    else:
        (norm,) = [op for op in graph.ops() if op.op_type == "LayerNormalization"]
        assert len([v for v in graph.outputs_of(norm) if v is not None]) == 3
    assert {v.name for v in original.initializers} <= {v.name for v in graph.initializers}
    rng = np.random.default_rng(0)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"x": (rng.standard_normal(shape) * 3 + 1).astype(np.float32)}
    for a, b in zip(outputs(original, feeds), outputs(graph, feeds)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_constant_weights_become_initializers_with_their_names():
    b = Builder()
    b.nodes.append(helper.make_node("Constant", [], ["cw"], value=numpy_helper.from_array(
        np.ones((3, 3, 1, 1), np.float32), "cw")))
    y = b.op("Conv", ["x", "cw"], kernel_shape=[1, 1])
    graph = legalized(b.model({"x": [1, 3, 2, 2]}, [y]))
    assert "cw" in {v.name for v in graph.initializers}
    assert not [op for op in graph.ops() if op.op_type == "Constant"]


def test_op_without_gradient_on_a_weight_path_is_named():
    b = Builder()
    y = b.op("ReduceMax", [b.conv("x", 3, 4)], axes=[2, 3], keepdims=1)
    with pytest.raises(UserError, match=r"ReduceMax.*cannot differentiate|cannot differentiate.*ReduceMax"):
        legalized(b.model({"x": [1, 3, 4, 4]}, [y]))


@pytest.mark.parametrize("op_type", ["Tan", "Cosh", "ReduceProd", "CumSum"])
def test_the_training_check_is_an_allow_list(op_type):
    """Ops onnxruntime-training has no gradient for, recorded (Tan, Cosh, ReduceProd) or not (CumSum), are
    refused on a weight path up front; a deny-list let the first three through to fail inside
    onnxruntime's artifact generation."""
    b = Builder()
    h = b.conv("x", 3, 4)
    inputs = [h, b.const(np.array(1, np.int64))] if op_type == "CumSum" else [h]
    y = b.op(op_type, inputs, **({"axes": [2, 3], "keepdims": 1} if op_type == "ReduceProd" else {}))
    with pytest.raises(UserError, match=f"cannot differentiate.*{op_type}"):
        legalized(b.model({"x": [1, 3, 4, 4]}, [y]))


def test_path_ending_ops_on_a_weight_path_are_fine():
    """Shape and comparisons read a trained tensor but carry no gradient: nothing to refuse."""
    b = Builder()
    h = b.conv("x", 3, 4)
    size = b.op("Cast", [b.op("Shape", [h])], to=TensorProto.FLOAT)
    mask = b.op("Cast", [b.op("Greater", [h, b.const(np.array(0.0, np.float32))])], to=TensorProto.FLOAT)
    y = b.op("Mul", [h, mask])
    legalized(b.model({"x": [1, 3, 4, 4]}, [y, size]))


def test_op_without_gradient_off_the_weight_path_is_fine():
    b = Builder()
    shape = b.op("Shape", ["x"])
    b.op("Floor", [b.op("Cast", [shape], to=TensorProto.FLOAT)])  # dead, and not on a weight path
    y = b.conv("x", 3, 4)
    legalized(b.model({"x": [1, 3, 4, 4]}, [y]))


def test_unsupported_conv_transpose_is_refused_on_cpu_but_kept_for_cuda():
    b = Builder()
    y = b.op("ConvTranspose", ["x", b.weight((3, 2, 2, 2))], kernel_shape=[2, 2], strides=[2, 2], pads=[2, 2, 2, 2])
    model = b.model({"x": [1, 3, 4, 4]}, [y])
    with pytest.raises(UserError, match="ConvTranspose"):
        legalized(model, "cpu")
    assert "ConvTranspose" in [op.op_type for op in legalized(model, "cuda").ops()]


def test_unsupported_resize_is_refused_with_the_reason():
    b = Builder()
    y = b.op("Resize", ["x", "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="linear")
    with pytest.raises(UserError, match="nearest upsampling"):
        legalized(b.model({"x": [1, 3, 4, 4]}, [y]))


@pytest.mark.slow
def test_legalized_graph_builds_gradients(tmp_path):
    """The rewritten graph really trains: onnxruntime-training builds its gradient graph."""
    from onnxruntime.training import artifacts

    from onnxprune.train.artifacts import trainable_parameters
    b = Builder(seed=2)
    x = b.op("HardSwish", [b.conv("x", 3, 8, k=3)])
    x = b.op("PRelu", [x, b.weight((8, 1, 1))])
    x = b.op("Sum", [x, b.op("Elu", [x]), b.op("Softplus", [x])])
    x = b.op("InstanceNormalization", [x, b.weight((8,)), b.weight((8,))])
    x = b.op("ConvTranspose", [x, b.weight((8, 4, 2, 2)), b.weight((4,))], kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Resize", [x, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    x = b.op("GlobalMaxPool", [x])
    # last: onnx's shape inference gives a function op's output no shape, and ConvTranspose needs one
    x = b.op("GroupNormalization", [x, gn_scale := b.weight((2,), base="gn_scale"), b.weight((2,))], num_groups=2)
    y = b.op("Flatten", [x])
    model = b.model({"x": [2, 3, 6, 6]}, [y], opset=18)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(y, TensorProto.FLOAT, [2, 4]))
    graph = legalized(model)
    trainable, frozen = trainable_parameters(graph, "cpu")
    assert gn_scale in trainable
    artifacts.generate_artifacts(graph.to_onnx(), requires_grad=trainable, frozen_params=frozen,
                                 loss=artifacts.LossType.MSELoss, artifact_directory=str(tmp_path))
    assert (tmp_path / "training_model.onnx").exists()

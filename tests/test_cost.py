"""FLOPs and MACs from `cost` match hand counts."""

from __future__ import annotations

import onnxprune
from onnxprune.passmanager import AnalysisManager

from .conftest import ZOO


def _cost(name: str):
    return AnalysisManager(onnxprune.load(ZOO / name)).get("cost")


def test_mlp_hand_count():
    # Gemm 64->128, Relu, Gemm 128->64, Relu, Gemm 64->10, per sample.
    macs = 64 * 128 + 128 * 64 + 64 * 10
    flops = 2 * macs + (128 + 64 + 10) + (128 + 64)  # biases, then the two Relus
    cost = _cost("mlp.onnx")
    assert (cost.macs, cost.flops) == (macs, flops)
    assert cost.parameters == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_vgg_hand_count():
    # Three stages of two 3x3 Conv(no bias)-BN-Relu at 32, 16 and 8 pixels, each followed by a 2x2
    # MaxPool; then Flatten and Gemm 1024 -> 10.
    stages = [(3, 16, 32), (16, 32, 16), (32, 64, 8)]  # (in channels, width, side)
    macs = flops = 0
    for cin, width, side in stages:
        pixels = side * side
        for conv_in in (cin, width):
            conv = pixels * width * conv_in * 9
            macs += conv
            flops += 2 * conv + 2 * pixels * width + pixels * width  # conv, BN (scale+shift), Relu
        flops += (pixels // 4) * width * 4  # MaxPool 2x2: four reads per output
    macs += 1024 * 10
    flops += 2 * 1024 * 10 + 10
    cost = _cost("vgg.onnx")
    assert (cost.macs, cost.flops) == (macs, flops)
    assert cost.macs == 9_889_792


def test_unknown_ops_are_listed_not_guessed():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="acme")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    cost = AnalysisManager(onnxprune.load(model)).get("cost")
    assert [o.op_type for o in cost.unknown] == ["Mystery"]
    assert (cost.macs, cost.flops) == (0, 0)


def test_constant_node_weights_count_and_minus_one_dims_count_as_one():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), np.float32))
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["w"], value=weight), helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 4])],  # "-1" as some exporters write it
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cost = AnalysisManager(onnxprune.load(model)).get("cost")
    assert cost.parameters == 12
    assert (cost.macs, cost.flops) == (12, 24)


def test_binding_input_shapes_scales_the_count():
    am = AnalysisManager(onnxprune.load(ZOO / "vgg.onnx"))
    assert am.get("cost", input_shapes=("input=4x3x32x32",)).macs == 4 * am.get("cost").macs

"""Every torch kernel (ops/torch_kernels.py) against onnxruntime: one-op models on seeded random inputs.

Each case is a single ONNX node: float inputs are graph inputs drawn at random, shape-like inputs
(axes, pads, sizes) are initializers. The torch program must give onnxruntime's outputs (shape and
values within 1e-5 of the largest magnitude), and every op type in the kernel table has a case.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import onnxprune
from onnxprune.errors import UserError
from onnxprune.ops.torch_kernels import KERNELS
from onnxprune.train.torch_program import TorchProgram

from .conftest import run_ort

F32 = np.float32
rng = np.random.default_rng(0)


def r(*shape, low=None):
    """Random float32 data (positive with `low`)."""
    data = rng.standard_normal(shape).astype(F32)
    return np.abs(data) + low if low is not None else data


def i64(*values):
    return np.array(values, dtype=np.int64)


class C:
    """A constant input (an initializer), as opposed to a random graph input."""

    def __init__(self, array):
        self.array = np.asarray(array)


# (op_type, inputs, attributes, opset, outputs); inputs: arrays (graph inputs), C(...) (initializers), None
CASES = [
    *[(op, [r(3, 4)], {}, 17, 1) for op in ("Relu", "Tanh", "Sigmoid", "Exp", "Abs", "Neg", "Erf", "Sin", "Cos",
                                            "Tan", "Atan", "Sinh", "Cosh", "Asinh", "Softsign", "HardSwish",
                                            "Identity", "Sign", "Floor", "Ceil", "Round", "Softplus", "Selu",
                                            "IsNaN", "IsInf")],
    *[(op, [r(3, 4, low=0.1)], {}, 17, 1) for op in ("Log", "Sqrt", "Reciprocal", "Acosh")],
    *[(op, [np.tanh(r(3, 4)) * 0.9], {}, 17, 1) for op in ("Asin", "Acos", "Atanh")],
    ("Mish", [r(3, 4)], {}, 18, 1),
    ("LeakyRelu", [r(3, 4)], {"alpha": 0.2}, 17, 1),
    ("Elu", [r(3, 4)], {"alpha": 0.7}, 17, 1),
    ("Celu", [r(3, 4)], {"alpha": 1.3}, 17, 1),
    ("HardSigmoid", [r(3, 4)], {"alpha": 0.3, "beta": 0.4}, 17, 1),
    ("ThresholdedRelu", [r(3, 4)], {"alpha": 0.5}, 17, 1),
    ("Shrink", [r(3, 4)], {"lambd": 0.3, "bias": 0.1}, 17, 1),
    ("Gelu", [r(3, 4)], {"approximate": "tanh"}, 20, 1),
    ("Gelu", [r(3, 4)], {}, 20, 1),
    ("PRelu", [r(2, 3, 4), r(3, 1)], {}, 17, 1),
    ("Clip", [r(3, 4), C(np.array(-0.5, F32)), C(np.array(0.6, F32))], {}, 17, 1),
    ("Clip", [r(3, 4)], {"min": -0.3, "max": 0.2}, 6, 1),
    *[(op, [r(2, 3, 4), r(3, 1)], {}, 17, 1) for op in ("Add", "Sub", "Mul", "Div")],
    ("Div", [C(i64(7, -7, 9)), C(i64(2, 2, -4))], {}, 17, 1),
    ("Pow", [r(3, 4, low=0.1), r(3, 4)], {}, 17, 1),
    ("Mod", [C(i64(7, -7, 9)), C(i64(3, 3, -4))], {}, 17, 1),
    ("Mod", [r(3, 4), r(3, 4, low=0.5)], {"fmod": 1}, 17, 1),
    *[(op, [r(3, 4), r(4), r(1, 4)], {}, 17, 1) for op in ("Max", "Min", "Sum", "Mean")],
    *[(op, [r(3, 4), r(4)], {}, 17, 1) for op in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")],
    *[(op, [C(np.array([True, False, True])), C(np.array([True, True, False]))], {}, 17, 1)
      for op in ("And", "Or", "Xor")],
    ("Not", [C(np.array([True, False]))], {}, 17, 1),
    ("Where", [C(np.array([[True], [False], [True]])), r(3, 4), r(4)], {}, 17, 1),
    ("Cast", [r(3, 4) * 5], {"to": TensorProto.INT64}, 17, 1),
    ("CastLike", [C(i64(1, 2, 3)), r(2)], {}, 17, 1),
    ("Dropout", [r(3, 4)], {}, 17, 1),
    *[(op, [r(2, 3, 4, low=0.1), C(i64(1, -1))], {"keepdims": k}, 18, 1)
      for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                 "ReduceLogSum", "ReduceLogSumExp") for k in (0, 1)],
    ("ReduceSum", [r(2, 3, 4), C(i64(2))], {}, 13, 1),
    ("ReduceSum", [r(2, 3, 4)], {"keepdims": 0}, 13, 1),
    ("ReduceMean", [r(2, 3, 4)], {"axes": [0, 2]}, 17, 1),
    ("ReduceMax", [r(2, 3, 4)], {"axes": [1], "keepdims": 0}, 17, 1),
    ("ArgMax", [r(3, 5)], {"axis": 1}, 17, 1),
    ("ArgMin", [r(3, 5)], {"axis": 0, "keepdims": 0}, 17, 1),
    ("ArgMax", [C(np.array([[1, 3, 3], [2, 2, 0]], F32))], {"axis": 1, "select_last_index": 1}, 17, 1),
    ("Softmax", [r(2, 3, 4)], {"axis": 1}, 17, 1),
    ("Softmax", [r(2, 3, 4)], {}, 11, 1),
    ("LogSoftmax", [r(2, 3, 4)], {}, 17, 1),
    ("Hardmax", [r(2, 3, 4)], {"axis": -1}, 17, 1),
    ("CumSum", [r(3, 4), C(i64(1))], {}, 17, 1),
    ("CumSum", [r(3, 4), C(i64(0))], {"exclusive": 1, "reverse": 1}, 17, 1),
    ("TopK", [r(3, 6), C(i64(2))], {"axis": 1}, 17, 2),
    ("TopK", [r(3, 6), C(i64(3))], {"axis": 1, "largest": 0}, 17, 2),
    ("MatMul", [r(2, 3, 4), r(4, 5)], {}, 17, 1),
    ("MatMul", [r(4), r(2, 4, 3)], {}, 17, 1),
    ("Gemm", [r(3, 4), r(5, 4), r(5)], {"transB": 1}, 17, 1),
    ("Gemm", [r(4, 3), r(4, 5), r(3, 5)], {"transA": 1, "alpha": 0.5, "beta": 2.0}, 17, 1),
    ("Gemm", [r(3, 4), r(4, 5)], {}, 17, 1),
    ("Einsum", [r(2, 3, 4), r(2, 4, 5)], {"equation": "bij,bjk->bik"}, 17, 1),
    ("Conv", [r(2, 3, 7, 7), r(4, 3, 3, 3), r(4)], {"pads": [1, 1, 1, 1]}, 17, 1),
    ("Conv", [r(2, 4, 8, 8), r(4, 1, 3, 3)], {"group": 4, "strides": [2, 2], "pads": [0, 1, 1, 0]}, 17, 1),
    ("Conv", [r(1, 2, 9, 9), r(3, 2, 3, 3)], {"dilations": [2, 2], "auto_pad": "SAME_UPPER"}, 17, 1),
    ("Conv", [r(1, 2, 8, 8), r(3, 2, 2, 2)], {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, 17, 1),
    ("Conv", [r(2, 3, 10), r(4, 3, 3)], {"pads": [2, 0]}, 17, 1),
    ("Conv", [r(1, 2, 4, 5, 5), r(3, 2, 3, 3, 3)], {"pads": [1] * 6}, 17, 1),
    ("ConvTranspose", [r(2, 3, 5, 5), r(3, 4, 2, 2), r(4)], {"strides": [2, 2]}, 17, 1),
    ("ConvTranspose", [r(1, 4, 5, 5), r(4, 2, 3, 3)], {"strides": [2, 2], "pads": [1, 0, 0, 1], "group": 2,
                                                       "output_padding": [1, 1]}, 17, 1),
    ("BatchNormalization", [r(2, 3, 4, 4), r(3), r(3), r(3), r(3, low=0.5)], {"epsilon": 1e-3}, 17, 1),
    ("BatchNormalization", [r(4, 3, 4, 4), r(3), r(3), r(3), r(3, low=0.5)], {"training_mode": 1, "momentum": 0.8},
     15, 3),
    ("LayerNormalization", [r(2, 3, 8), r(8), r(8)], {}, 17, 1),
    ("LayerNormalization", [r(2, 3, 8), r(3, 8), r(3, 8)], {"axis": 1, "epsilon": 1e-3}, 17, 3),
    ("InstanceNormalization", [r(2, 3, 5, 5), r(3), r(3)], {}, 17, 1),
    ("GroupNormalization", [r(2, 6, 4, 4), r(2), r(2)], {"num_groups": 2}, 18, 1),
    ("GroupNormalization", [r(2, 6, 4, 4), r(6), r(6)], {"num_groups": 3}, 21, 1),
    ("LpNormalization", [r(3, 4)], {"axis": 1}, 17, 1),
    ("LpNormalization", [r(3, 4)], {"axis": 0, "p": 1}, 17, 1),
    ("MaxPool", [r(2, 3, 8, 8)], {"kernel_shape": [2, 2], "strides": [2, 2]}, 17, 1),
    ("MaxPool", [r(2, 3, 7, 7)], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
     17, 1),
    ("MaxPool", [r(1, 2, 7, 7)], {"kernel_shape": [3, 3], "pads": [0, 2, 1, 0], "dilations": [2, 1]}, 17, 1),
    ("MaxPool", [r(1, 2, 9)], {"kernel_shape": [3], "auto_pad": "SAME_UPPER", "strides": [2]}, 17, 1),
    ("AveragePool", [r(2, 3, 8, 8)], {"kernel_shape": [2, 2], "strides": [2, 2]}, 17, 1),
    ("AveragePool", [r(2, 3, 7, 7)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 17, 1),
    ("AveragePool", [r(2, 3, 7, 7)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}, 17, 1),
    ("AveragePool", [r(1, 2, 6, 6)], {"kernel_shape": [3, 3], "pads": [0, 2, 1, 0]}, 17, 1),
    ("GlobalAveragePool", [r(2, 3, 5, 6)], {}, 17, 1),
    ("GlobalMaxPool", [r(2, 3, 5, 6)], {}, 17, 1),
    ("DequantizeLinear", [C(np.array([[0, 5, 255], [3, 128, 7]], np.uint8)), C(np.array([0.1, 0.2], F32)),
                          C(np.array([1, 128], np.uint8))], {"axis": 0}, 17, 1),
    ("QuantizeLinear", [r(3, 4) * 10, C(np.array(0.1, F32)), C(np.array(3, np.int8))], {}, 17, 1),
    ("Shape", [r(2, 3, 4)], {}, 17, 1),
    ("Shape", [r(2, 3, 4)], {"start": 1, "end": -1}, 17, 1),
    ("Size", [r(2, 3, 4)], {}, 17, 1),
    ("Reshape", [r(2, 3, 4), C(i64(0, -1, 2))], {}, 17, 1),
    ("Flatten", [r(2, 3, 4)], {"axis": 2}, 17, 1),
    ("Flatten", [r(2, 3, 4)], {"axis": 0}, 17, 1),
    ("Squeeze", [r(2, 1, 4, 1), C(i64(-1))], {}, 17, 1),
    ("Squeeze", [r(2, 1, 4, 1)], {}, 17, 1),
    ("Squeeze", [r(2, 1, 4)], {"axes": [1]}, 11, 1),
    ("Unsqueeze", [r(2, 4), C(i64(0, -1))], {}, 17, 1),
    ("Unsqueeze", [r(2, 4)], {"axes": [1]}, 11, 1),
    ("Transpose", [r(2, 3, 4)], {"perm": [2, 0, 1]}, 17, 1),
    ("Transpose", [r(2, 3, 4)], {}, 17, 1),
    ("Concat", [r(2, 3), r(2, 5)], {"axis": -1}, 17, 1),
    ("Split", [r(6, 4), C(i64(2, 4))], {"axis": 0}, 17, 2),
    ("Split", [r(7, 4)], {"axis": 0, "num_outputs": 3}, 18, 3),
    ("Split", [r(6, 4)], {"axis": 1, "split": [1, 3]}, 11, 2),
    ("Split", [r(6, 4)], {}, 17, 3),
    ("Slice", [r(5, 6), C(i64(1, -4)), C(i64(4, 100)), C(i64(0, 1)), C(i64(2, 1))], {}, 17, 1),
    ("Slice", [r(5, 6), C(i64(-1)), C(i64(-100)), C(i64(1)), C(i64(-2))], {}, 17, 1),
    ("Slice", [r(5, 6)], {"starts": [1], "ends": [3], "axes": [1]}, 9, 1),
    ("Gather", [r(5, 3), C(i64(0, 4, -1))], {}, 17, 1),
    ("Gather", [r(2, 5, 3), C(np.array([[1, 0], [4, -2]], np.int64))], {"axis": 1}, 17, 1),
    ("Gather", [C(i64(2, 3, 4)), C(np.array(1, np.int64))], {}, 17, 1),
    ("GatherElements", [r(3, 4), C(np.array([[0, 1], [2, -1], [3, 0]], np.int64))], {"axis": 1}, 17, 1),
    ("GatherND", [r(3, 4, 2), C(np.array([[0, 1], [2, -1]], np.int64))], {}, 17, 1),
    ("ScatterElements", [r(3, 4), C(np.array([[0, 1], [2, 3], [1, 0]], np.int64)), r(3, 2)], {"axis": 1}, 17, 1),
    ("ScatterElements", [r(3, 4), C(np.array([[0, 0], [2, 3], [1, 1]], np.int64)), r(3, 2)],
     {"axis": 1, "reduction": "add"}, 17, 1),
    ("ScatterND", [r(4, 3), C(np.array([[1], [3]], np.int64)), r(2, 3)], {}, 17, 1),
    ("ScatterND", [r(4, 3), C(np.array([[1, 0], [1, 0]], np.int64)), r(2)], {"reduction": "add"}, 17, 1),
    ("Expand", [r(3, 1), C(i64(2, 3, 4))], {}, 17, 1),
    ("Tile", [r(2, 3), C(i64(2, 1))], {}, 17, 1),
    ("Pad", [r(2, 3, 4), C(i64(0, 1, 2, 0, 0, 1)), C(np.array(0.5, F32))], {}, 17, 1),
    ("Pad", [r(1, 2, 4, 4), C(i64(0, 0, 1, 2, 0, 0, 2, 1))], {"mode": "reflect"}, 17, 1),
    ("Pad", [r(1, 2, 4, 4), C(i64(0, 0, 1, 2, 0, 0, 2, 1))], {"mode": "edge"}, 17, 1),
    ("Pad", [r(2, 3, 4), C(i64(1, -1)), None, C(i64(2))], {}, 18, 1),
    ("Pad", [r(2, 3)], {"pads": [0, 1, 1, 0], "value": 2.0}, 10, 1),
    ("Constant", [], {"value": helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, -2.0])}, 17, 1),
    ("Constant", [], {"value_ints": [3, 4]}, 17, 1),
    ("ConstantOfShape", [C(i64(2, 3))], {"value": helper.make_tensor("v", TensorProto.INT64, [1], [7])}, 17, 1),
    ("ConstantOfShape", [C(i64(2, 3))], {}, 17, 1),
    ("Range", [C(np.array(1, np.int64)), C(np.array(10, np.int64)), C(np.array(3, np.int64))], {}, 17, 1),
    ("Range", [C(np.array(0.5, F32)), C(np.array(-2.0, F32)), C(np.array(-0.7, F32))], {}, 17, 1),
    ("EyeLike", [r(3, 4)], {"k": 1}, 17, 1),
    ("Trilu", [r(2, 4, 4), C(np.array(1, np.int64))], {}, 17, 1),
    ("Trilu", [r(4, 5)], {"upper": 0}, 17, 1),
    ("OneHot", [C(i64(0, 2, -1)), C(np.array(4, np.int64)), C(np.array([0.0, 3.0], F32))], {"axis": 0}, 17, 1),
    ("NonZero", [C(np.array([[1, 0], [0, 3]], F32))], {}, 17, 1),
    ("DepthToSpace", [r(1, 8, 2, 3)], {"blocksize": 2}, 17, 1),
    ("DepthToSpace", [r(1, 8, 2, 3)], {"blocksize": 2, "mode": "CRD"}, 17, 1),
    ("SpaceToDepth", [r(1, 2, 4, 6)], {"blocksize": 2}, 17, 1),
    ("Resize", [r(1, 2, 3, 4), None, C(np.array([1, 1, 2, 2], F32))],
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, 17, 1),
    ("Resize", [r(1, 2, 3, 4), None, C(np.array([1, 1, 2.5, 1.5], F32))], {"mode": "nearest"}, 17, 1),
    ("Resize", [r(1, 2, 4, 6), None, C(np.array([1, 1, 0.5, 0.75], F32))], {"mode": "linear"}, 17, 1),
    ("Resize", [r(1, 2, 3, 4), None, None, C(i64(1, 2, 7, 5))],
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, 17, 1),
    ("Resize", [r(1, 2, 3, 4), None, None, C(i64(1, 2, 6, 9))],
     {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, 17, 1),
    ("Upsample", [r(1, 2, 3, 4), C(np.array([1, 1, 2, 3], F32))], {"mode": "nearest"}, 9, 1),
]


def _rnn_case(op: str, gates: int, direction: str, layout: int = 0, extra: dict | None = None, full: bool = True):
    dirs = 2 if direction == "bidirectional" else 1
    hidden, features, seq, batch = 5, 3, 4, 2
    x = r(batch, seq, features) if layout else r(seq, batch, features)
    inputs = [x, r(dirs, gates * hidden, features) * 0.5, r(dirs, gates * hidden, hidden) * 0.5]
    if full:
        state = (lambda: r(batch, dirs, hidden)) if layout else (lambda: r(dirs, batch, hidden))
        inputs += [r(dirs, 2 * gates * hidden) * 0.2, C(np.full(batch, seq, np.int32)), state()]
        if op == "LSTM":
            inputs += [state(), r(dirs, 3 * hidden) * 0.3]
    outputs = 3 if op == "LSTM" else 2
    return (op, inputs, {"hidden_size": hidden, "direction": direction, "layout": layout, **(extra or {})}, 17,
            outputs)


CASES += [
    _rnn_case("LSTM", 4, "forward"), _rnn_case("LSTM", 4, "bidirectional"),
    _rnn_case("LSTM", 4, "reverse", full=False),
    _rnn_case("GRU", 3, "forward"), _rnn_case("GRU", 3, "bidirectional", extra={"linear_before_reset": 1}),
    _rnn_case("GRU", 3, "reverse", full=False),
    _rnn_case("RNN", 1, "forward"), _rnn_case("RNN", 1, "bidirectional", full=False),
]


def _model(op_type: str, inputs: list, attributes: dict, opset: int, outputs: int):
    """A one-node model: arrays become graph inputs, C(...) initializers; and its feeds."""
    graph_inputs, initializers, names, feeds = [], [], [], {}
    for index, item in enumerate(inputs):
        name = f"in{index}"
        if item is None:
            names.append("")
            continue
        names.append(name)
        if isinstance(item, C):
            initializers.append(onnx.numpy_helper.from_array(item.array, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(item.dtype),
                                                              item.shape))
            feeds[name] = item
    out_names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op_type, names, out_names, **attributes)
    graph = helper.make_graph([node], "case", graph_inputs,
                              [helper.make_value_info(n, onnx.TypeProto()) for n in out_names], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model, feeds


def _id(case) -> str:
    op, _, attributes, opset, _ = case
    return f"{op}-{opset}-" + "-".join(f"{k}={v}" for k, v in attributes.items() if k != "value")[:60]


def _onnxruntime_lacks(op_type: str, attributes: dict) -> bool:
    """Attribute combinations onnxruntime's CPU kernels reject: onnx's reference evaluator is the
    reference there (dilated SAME padding)."""
    return op_type == "Conv" and "dilations" in attributes and str(attributes.get("auto_pad", "")).startswith("SAME")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_kernel_matches_onnxruntime(case):
    model, feeds = _model(*case)
    if _onnxruntime_lacks(case[0], case[2]):
        from onnx.reference import ReferenceEvaluator

        expected = ReferenceEvaluator(model).run(None, feeds)
    else:
        expected = run_ort(model, feeds)
    program = TorchProgram(onnxprune.load(model))
    with torch.no_grad():
        found = list(program({k: torch.from_numpy(v) for k, v in feeds.items()}).values())
    assert len(found) == len(expected)
    for want, got in zip(expected, found):
        got = got.numpy()
        assert got.shape == want.shape, (got.shape, want.shape)
        if want.dtype == np.bool_ or want.dtype.kind in "iu":
            assert got.dtype == want.dtype and np.array_equal(got, want)
        else:
            scale = float(np.abs(want).max()) if want.size else 0.0
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(scale, 1e-6))


@pytest.mark.parametrize("op,gates", [("LSTM", 4), ("GRU", 3), ("RNN", 1)])
def test_batch_major_recurrent_layout_is_the_sequence_major_one_transposed(op, gates):
    """layout=1 (onnxruntime rejects it, so the layout-0 kernel checked above is the reference)."""
    case = _rnn_case(op, gates, "bidirectional")
    outputs = case[4]
    inputs = list(case[1])
    major = [np.ascontiguousarray(inputs[0].transpose(1, 0, 2))] + inputs[1:5] + \
        [np.ascontiguousarray(a.transpose(1, 0, 2)) for a in inputs[5:7 if op == "LSTM" else 6]] + inputs[7:]
    results = []
    for layout, given in ((0, inputs), (1, major)):
        model, feeds = _model(op, given, {**case[2], "layout": layout}, 17, outputs)
        with torch.no_grad():
            results.append([t.numpy() for t in TorchProgram(onnxprune.load(model))(
                {k: torch.from_numpy(v) for k, v in feeds.items()}).values()])
    sequence, batch = results
    np.testing.assert_allclose(batch[0], sequence[0].transpose(2, 0, 1, 3), rtol=1e-6, atol=1e-6)
    for state_seq, state_batch in zip(sequence[1:], batch[1:]):
        np.testing.assert_allclose(state_batch, state_seq.transpose(1, 0, 2), rtol=1e-6, atol=1e-6)


def test_every_kernel_has_a_case():
    tested = {case[0] for case in CASES}
    missing = {op for kernel in KERNELS for op in kernel.op_types} - tested - {"Scatter"}  # Scatter: opset < 11
    assert not missing, sorted(missing)


@pytest.mark.parametrize("op_type,attributes,reason,outputs", [
    ("LSTM", {"hidden_size": 5, "clip": 2.0}, "clip", ["y"]),
    ("Resize", {"mode": "cubic"}, "cubic", ["y"]),
    ("ConvTranspose", {"output_shape": [10, 10]}, "output_shape", ["y"]),
    ("MaxPool", {"kernel_shape": [2, 2]}, "Indices", ["y", "indices"]),
])
def test_what_a_kernel_does_not_implement_is_refused(op_type, attributes, reason, outputs):
    inputs = {"LSTM": ["x", "w", "r"], "MaxPool": ["x"]}.get(op_type, ["x", "w"])
    node = helper.make_node(op_type, inputs, outputs, **attributes)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UserError, match=reason):
        TorchProgram(onnxprune.load(model))


def test_ops_without_a_kernel_are_refused_by_name():
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)
    custom = helper.make_node("FusedThing", ["y"], ["z"], domain="com.example")
    graph = helper.make_graph([node, custom], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                                    helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UserError, match=r"If .*subgraphs.*FusedThing.*com.example"):
        TorchProgram(onnxprune.load(model))

"""Conformance over the op registry: every op with a coupling rule, at each opset variant, in context.

For each op type whose record has a coupling rule there is one entry here: a builder that puts the op
between a producer of channels (a Conv or a MatMul, whose output channels form a family) and a
consumer, at a given opset. For every opset at which the op's ONNX definition changed (clamped to what
onnxruntime 1.19 runs), the test builds the graph, analyses it, draws random selections of every
prunable family and checks compact ≡ masked on random inputs (the invariant of DESIGN §7), plus the
op's declared behaviour: whether channels prune through it (`prunes`), so a rule that silently starts
freezing, or starts letting through what it should not, fails here.

Adding an op = one record in `onnxprune/ops/records.py` + one entry in `ENTRIES`;
`test_every_coupling_record_has_an_entry` fails until both exist. The newest opset of every op runs by
default; the older variants are marked slow (CI runs them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxprune
from onnxprune.ops.registry import all_records
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .builders import Builder
from .test_compact import check_compact_matches_masked, random_selection

C = 6  # channels the producer makes
MIN_OPSET, MAX_OPSET = 11, 21  # onnxruntime 1.19 runs opsets up to 21


@dataclass(frozen=True)
class Entry:
    """How to place one op in context: `build(b, h, opset)` gets the producer's output `h`
    ([1, C, 6, 6], or [1, 5, C] with `layout="seq"`) and returns (output, its channel count), which a
    consumer then reads. `prunes`: some family through the op stays prunable. `opsets`: the variants,
    when they are not the op's ONNX schema versions (an op removed from newer opsets)."""

    build: Callable
    prunes: bool = True
    layout: str = "nchw"
    opsets: tuple[int, ...] | None = None
    min_opset: int = MIN_OPSET
    tail: bool = True  # a Conv consumes the op's output (False: the entry ends in its own consumer)
    full_check: bool = True  # onnx's full checker accepts the model


def _attr_or_input(b: Builder, opset: int, since: int, name: str, values) -> tuple[list[str], dict]:
    """An int list given as an input from opset `since` on, before as attribute `name`."""
    if opset >= since:
        return [b.const(np.array(values, np.int64))], {}
    return [], {name: list(values)}


def _unary(op_type: str, before: str | None = None, **attrs) -> Entry:
    def build(b, h, opset):
        x = b.op(before, [h]) if before else h
        return b.op(op_type, [x], **attrs), C
    return Entry(build)


def _unary_frozen(op_type: str, before: str | None = None) -> Entry:
    return Entry(_unary(op_type, before).build, prunes=False)


def _through_bool(op_type: str, cast_first: bool) -> Entry:
    """Ops with boolean outputs (IsNaN, IsInf, Not): Cast back to float for the consumer."""
    def build(b, h, opset):
        x = b.op("Cast", [h], to=TensorProto.BOOL) if cast_first else h
        return b.op("Cast", [b.op(op_type, [x])], to=TensorProto.FLOAT), C
    return Entry(build, prunes=False)


def _binary(op_type: str, prunes: bool = True) -> Entry:
    """op(h, h2): h2 is a second Conv of the model input, so both producers join one family."""
    def build(b, h, opset):
        return b.op(op_type, [h, b.conv("x", 3, C, 3)]), C
    return Entry(build, prunes)


def _with_param(op_type: str, shape=(C, 1, 1), positive: bool = False, prunes: bool = True) -> Entry:
    def build(b, h, opset):
        return b.op(op_type, [h, b.weight(shape, positive=positive)]), C
    return Entry(build, prunes)


def _reduce(op_type: str, since: int) -> Entry:
    """Reduce over the spatial axes, keeping them (the channel family passes through)."""
    def build(b, h, opset):
        extra, attrs = _attr_or_input(b, opset, since, "axes", [2, 3])
        x = b.op("Relu", [h]) if op_type in ("ReduceLogSum", "ReduceProd") else h
        return b.op(op_type, [x, *extra], keepdims=1, **attrs), C
    return Entry(build, prunes=op_type not in ("ReduceLogSum", "ReduceLogSumExp"))


def _squeeze_unsqueeze(b, h, opset):
    extra, attrs = _attr_or_input(b, opset, 13, "axes", [0])
    up = b.op("Unsqueeze", [h, *extra], **attrs)
    extra, attrs = _attr_or_input(b, opset, 13, "axes", [0])
    return b.op("Squeeze", [up, *extra], **attrs), C


def _split(b, h, opset):
    outs = [b.name("split"), b.name("split")]
    extra, attrs = _attr_or_input(b, opset, 13, "split", [2, C - 2])
    b.nodes.append(helper.make_node("Split", [h, *extra], outs, axis=1, **attrs))
    return b.op("Concat", [outs[1], outs[0]], axis=1), C


def _slice(b, h, opset):
    bounds = [b.const(np.array(v, np.int64)) for v in ([1], [5], [1], [1])]
    return b.op("Slice", [h, *bounds]), 4


def _gather(b, h, opset):
    return b.op("Gather", [h, b.const(np.array([0, 2, 3, 5], np.int64))], axis=1), 4


def _pad(b, h, opset):
    return b.op("Pad", [h, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]), C


def _expand(b, h, opset):
    pooled = b.op("GlobalAveragePool", [h])
    return b.op("Expand", [pooled, b.const(np.array([1, C, 6, 6], np.int64))]), C


def _tile(b, h, opset):
    return b.op("Tile", [h, b.const(np.array([1, 1, 2, 2], np.int64))]), C


def _resize(b, h, opset):
    roi = b.const(np.zeros(0, np.float32)) if opset < 13 else ""
    return b.op("Resize", [h, roi, b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest"), C


def _upsample(b, h, opset):
    return b.op("Upsample", [h, b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest"), C


def _transpose(b, h, opset):
    return b.op("Transpose", [h], perm=[0, 1, 3, 2]), C


def _flatten(b, h, opset):
    """Flatten into a Linear layer: a channel is a block of H*W inputs of the Gemm."""
    flat = b.op("Flatten", [h], axis=1)
    return b.op("Gemm", [flat, b.weight((3, C * 36)), b.weight((3,))], transB=1), 3


def _reshape(b, h, opset):
    merged = b.op("Reshape", [h, b.const(np.array([1, C, 36], np.int64))])
    return b.op("Reshape", [merged, b.const(np.array([1, C, 6, 6], np.int64))]), C


def _concat(b, h, opset):
    return b.op("Concat", [h, b.conv("x", 3, 4, 1)], axis=1), C + 4


def _shape(b, h, opset):
    """Shape read into a Reshape target (as attention exports do): the dimension adapts by itself."""
    merged = b.op("Reshape", [h, b.const(np.array([1, C, 36], np.int64))])
    return b.op("Reshape", [merged, b.op("Shape", [h])]), C


def _size(b, h, opset):
    size = b.op("Cast", [b.op("Size", [h])], to=TensorProto.FLOAT)
    return b.op("Mul", [h, size]), C


def _constant(b, h, opset):
    name = b.name("constant")
    value = helper.make_tensor("v", TensorProto.FLOAT, [1, C, 1, 1], np.linspace(1, 2, C).tolist())
    b.nodes.append(helper.make_node("Constant", [], [name], value=value))
    return b.op("Mul", [h, name]), C


def _constant_of_shape(b, h, opset):
    ones = helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0])
    filled = b.name("filled")
    b.nodes.append(helper.make_node("ConstantOfShape", [b.const(np.array([1, C, 1, 1], np.int64))], [filled],
                                    value=ones))
    return b.op("Mul", [h, filled]), C


def _range(b, h, opset):
    ramp = b.op("Range", [b.const(np.array(1.0, np.float32)), b.const(np.array(7.0, np.float32)),
                          b.const(np.array(1.0, np.float32))])
    return b.op("Mul", [h, ramp]), C  # a ramp along the last axis (W = 6)


def _eye_like(b, h, opset):
    return b.op("Mul", [h, b.op("EyeLike", [b.const(np.zeros((6, 6), np.float32))])]), C


def _depth_to_space(b, h, opset):
    wide = b.conv(h, C, 8, 1)
    return b.op("DepthToSpace", [wide], blocksize=2), 2


def _space_to_depth(b, h, opset):
    return b.op("SpaceToDepth", [h], blocksize=2), 4 * C


def _qdq(b, h, opset):
    scale, zero = b.const(np.array(0.05, np.float32)), b.const(np.array(0, np.int8))
    q = b.op("QuantizeLinear", [h, scale, zero])
    return b.op("DequantizeLinear", [q, scale, zero]), C


def _dq_weight(b, h, opset):
    """A per-channel int8 weight: its scale and zero point are sliced with the channels it makes."""
    w = b.const(np.random.default_rng(0).integers(-100, 100, (4, C, 1, 1)).astype(np.int8))
    scale, zero = b.const(np.linspace(0.01, 0.02, 4).astype(np.float32)), b.const(np.zeros(4, np.int8))
    weight = b.op("DequantizeLinear", [w, scale, zero], axis=0)
    return b.op("Relu", [b.op("Conv", [h, weight], kernel_shape=[1, 1])]), 4


def _where(b, h, opset):
    cond = b.const(np.array([True, False, True, True, False, True]).reshape(C, 1, 1))
    return b.op("Where", [cond, h, b.conv("x", 3, C, 3)]), C


def _clip(b, h, opset):
    return b.op("Clip", [h, b.const(np.array(-0.5, np.float32)), b.const(np.array(0.5, np.float32))]), C


def _pow(b, h, opset):
    return b.op("Pow", [h, b.const(np.array(2.0, np.float32))]), C


def _div(b, h, opset):
    return b.op("Div", [h, b.weight((C, 1, 1), positive=True)]), C


def _dropout(b, h, opset):
    return b.op("Dropout", [h]), C


def _batchnorm(b, h, opset):
    return b.bn(h, C), C


def _instancenorm(b, h, opset):
    return b.op("InstanceNormalization", [h, b.weight((C,)), b.weight((C,))]), C


def _layernorm_over_width(b, h, opset):
    """LayerNorm over the last axis (W) only, without bias: channel slices stay zero."""
    return b.op("LayerNormalization", [h, b.weight((6,))], axis=-1), C


def _layernorm_over_hidden(b, h, opset):
    """LayerNorm over the hidden size (the family's own axis): frozen."""
    return b.op("LayerNormalization", [h, b.weight((C,)), b.weight((C,))], axis=-1), C


def _groupnorm(b, h, opset):
    shape = (C,) if opset >= 21 else (2,)
    return b.op("GroupNormalization", [h, b.weight(shape), b.weight(shape)], num_groups=2), C


def _pool(op_type: str, **attrs) -> Entry:
    def build(b, h, opset):
        return b.op(op_type, [h], **attrs), C
    return Entry(build)


def _conv_grouped(b, h, opset):
    return b.op("Relu", [b.conv(h, C, C, 3, group=C)]), C


def _conv_transpose(b, h, opset):
    return b.op("ConvTranspose", [h, b.weight((C, 4, 2, 2)), b.weight((4,))], kernel_shape=[2, 2],
                strides=[2, 2]), 4


def _gemm(b, h, opset):
    flat = b.op("Flatten", [h])
    hidden = b.op("Relu", [b.op("Gemm", [flat, b.weight((5, C * 36)), b.weight((5,))], transB=1)])
    return b.op("Gemm", [hidden, b.weight((5, 3))]), 3


def _matmul(b, h, opset):
    return b.op("Relu", [b.op("MatMul", [h, b.weight((C, 7))])]), 7


def _einsum(b, h, opset):
    return b.op("Relu", [b.op("Einsum", [h, b.weight((C, 7))], equation="bsi,io->bso")]), 7


def _softmax_frozen(op_type: str) -> Entry:
    def build(b, h, opset):
        return b.op(op_type, [h], axis=1), C
    return Entry(build, prunes=False)


def _variadic(op_type: str) -> Entry:
    def build(b, h, opset):
        return b.op(op_type, [h, b.conv("x", 3, C, 3), b.conv("x", 3, C, 1)]), C
    return Entry(build)


ENTRIES: dict[str, Entry] = {
    "Conv": Entry(_conv_grouped),
    "ConvTranspose": Entry(_conv_transpose),
    "Gemm": Entry(_gemm, tail=False),
    "MatMul": Entry(_matmul, layout="seq"),
    "Einsum": Entry(_einsum, layout="seq"),
    **{t: _unary(t) for t in ("Relu", "LeakyRelu", "Tanh", "Erf", "Neg", "Abs", "Sin", "Elu", "Selu", "Celu",
                              "Mish", "Softsign", "HardSwish", "Sign", "Floor", "Ceil", "Round", "Tan", "Atan",
                              "Sinh", "Asinh", "Identity")},
    "ThresholdedRelu": _unary("ThresholdedRelu", alpha=0.1),
    "Gelu": Entry(_unary("Gelu").build, min_opset=20),
    "Sqrt": _unary("Sqrt", before="Relu"),
    "Asin": _unary("Asin", before="Tanh"),
    "Atanh": _unary("Atanh", before="Tanh"),
    "Cast": _unary("Cast", to=TensorProto.FLOAT),
    **{t: _unary_frozen(t) for t in ("Sigmoid", "Exp", "Cos", "HardSigmoid", "Softplus", "Cosh")},
    "Acos": _unary_frozen("Acos", before="Tanh"),
    "Log": _unary_frozen("Log", before="Relu"),
    "Reciprocal": _unary_frozen("Reciprocal"),
    "IsNaN": _through_bool("IsNaN", cast_first=False),
    "IsInf": _through_bool("IsInf", cast_first=False),
    "Not": _through_bool("Not", cast_first=True),
    "Dropout": Entry(_dropout),
    "Clip": Entry(_clip),
    "PRelu": _with_param("PRelu"),
    **{t: _binary(t) for t in ("Add", "Sub", "Max", "Min", "Mul")},
    "Sum": _variadic("Sum"),
    "Mean": _variadic("Mean"),
    "Div": Entry(_div),
    "Pow": Entry(_pow),
    "Where": Entry(_where),
    "BatchNormalization": Entry(_batchnorm),
    "InstanceNormalization": Entry(_instancenorm),
    "LayerNormalization": Entry(_layernorm_over_width, min_opset=17),
    # onnx 1.17's full check rejects GroupNormalization models (its function body's shape inference)
    "GroupNormalization": Entry(_groupnorm, prunes=False, min_opset=18, full_check=False),
    "Softmax": _softmax_frozen("Softmax"),
    "LogSoftmax": _softmax_frozen("LogSoftmax"),
    "Hardmax": _softmax_frozen("Hardmax"),
    "MaxPool": _pool("MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
    "AveragePool": _pool("AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
    "LpPool": _pool("LpPool", kernel_shape=[2, 2], strides=[2, 2]),
    "GlobalAveragePool": _pool("GlobalAveragePool"),
    "GlobalMaxPool": _pool("GlobalMaxPool"),
    "GlobalLpPool": _pool("GlobalLpPool"),
    "ReduceSum": _reduce("ReduceSum", 13),
    **{t: _reduce(t, 18) for t in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                   "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")},
    "Transpose": Entry(_transpose),
    "Flatten": Entry(_flatten, tail=False),
    "Reshape": Entry(_reshape),
    "Squeeze": Entry(_squeeze_unsqueeze),
    "Unsqueeze": Entry(_squeeze_unsqueeze),
    "Concat": Entry(_concat),
    "Split": Entry(_split),
    "Slice": Entry(_slice),
    "Gather": Entry(_gather),
    "Pad": Entry(_pad),
    "Expand": Entry(_expand),
    "Tile": Entry(_tile),
    "Resize": Entry(_resize),
    "Upsample": Entry(_upsample, opsets=(9,)),
    "Shape": Entry(_shape),
    "Size": Entry(_size, prunes=False),
    "Constant": Entry(_constant),
    "ConstantOfShape": Entry(_constant_of_shape, prunes=False),  # a computed shape: its channel axis freezes
    "Range": Entry(_range, prunes=False),  # its tensors carry no channel axis: the family around it prunes
    "EyeLike": Entry(_eye_like, prunes=False),  # likewise
    "DepthToSpace": Entry(_depth_to_space, prunes=False),  # mixes channels and space: frozen
    "SpaceToDepth": Entry(_space_to_depth, prunes=False),
    "QuantizeLinear": Entry(_qdq),
    "DequantizeLinear": Entry(_dq_weight, min_opset=13),  # per-axis scales from opset 13
}


def _schema_versions(op_type: str) -> set[int]:
    return {s.since_version for s in onnx.defs.get_all_schemas_with_history()
            if s.name == op_type and s.domain in ("", "ai.onnx")}


def opset_variants(op_type: str, entry: Entry) -> list[int]:
    """The opsets at which the op's definition changed, clamped to what onnxruntime runs (newest last)."""
    if entry.opsets is not None:
        return list(entry.opsets)
    lowest = max(MIN_OPSET, entry.min_opset)
    return sorted({max(lowest, v) for v in _schema_versions(op_type) if v <= MAX_OPSET} | {MAX_OPSET})


def build_model(op_type: str, opset: int) -> onnx.ModelProto:
    """The op in context: producer -> op -> consumer, at `opset`."""
    entry = ENTRIES[op_type]
    b = Builder(seed=sum(map(ord, op_type)))
    if entry.layout == "seq":
        h = b.op("Relu", [b.op("Add", [b.op("MatMul", ["x", b.weight((8, C))]), b.weight((C,))])])
        out, width = entry.build(b, h, opset)
        return b.model({"x": [1, 5, 8]}, [b.op("MatMul", [out, b.weight((width, 4))])], opset=opset)
    h = b.op("Relu", [b.conv("x", 3, C, 3)])
    out, width = entry.build(b, h, opset)
    tail = b.conv(out, width, 3, 1) if entry.tail else out
    model = b.model({"x": [1, 3, 6, 6]}, [tail], opset=opset)
    output = model.graph.output[0].type
    if not output.tensor_type.HasField("shape"):  # where onnx infers nothing (GroupNormalization): state it
        output.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 3, 6, 6]))
    return model


def _cases(newest: bool) -> list:
    cases = []
    for op_type, entry in ENTRIES.items():
        variants = opset_variants(op_type, entry)
        for opset in (variants[-1:] if newest else variants[:-1]):
            marks = () if newest else (pytest.mark.slow,)
            cases.append(pytest.param(op_type, opset, id=f"{op_type}-{opset}", marks=marks))
    return cases


def _touches(family, graph, op_type: str) -> bool:
    """True if a member of `family` is a tensor of an op of `op_type`."""
    names = {v.name for op in graph.ops() if op.op_type == op_type
             for v in (*graph.inputs_of(op), *graph.outputs_of(op)) if v is not None}
    return any(member.value in names for member in family.members)


def check_conformance(op_type: str, opset: int) -> None:
    """compact ≡ masked for random selections, and the op's declared prunability."""
    entry = ENTRIES[op_type]
    graph = onnxprune.load(build_model(op_type, opset))
    space = AnalysisManager(graph).get("prune-space")
    through = [f for f in space.prunable if _touches(f, graph, op_type)]
    assert bool(through) == entry.prunes, (op_type, opset, [(f.id, f.reasons[:1]) for f in space.families])
    for seed in (0, 1, "leave-one"):
        rng = np.random.default_rng(5 if seed == "leave-one" else seed)
        selection = random_selection(space, rng, leave_one=seed == "leave-one")
        check_compact_matches_masked(graph, selection, space, full_check=entry.full_check)


@pytest.mark.parametrize(("op_type", "opset"), _cases(newest=True))
def test_conformance_newest_opset(op_type, opset):
    check_conformance(op_type, opset)


@pytest.mark.parametrize(("op_type", "opset"), _cases(newest=False))
def test_conformance_older_opsets(op_type, opset):
    check_conformance(op_type, opset)


def test_every_coupling_record_has_an_entry():
    coupling = {r.op_type for r in all_records() if r.coupling is not None and r.domain == ""}
    assert coupling - set(ENTRIES) == set(), "add a conformance entry for each op with a coupling rule"
    assert set(ENTRIES) - coupling == set(), "an entry for an op without a coupling rule tests nothing"


def test_expand_to_its_own_shape_prunes_and_compacts():
    """Expand(x, Shape(x)): the target reads the channel count at run time, so it adapts by itself when
    the family shrinks (compact used to raise: it tried to write a constant behind the Shape op)."""
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, C, 3)])
    out = b.op("Expand", [b.op("Relu", [h]), b.op("Shape", [h])])
    graph = onnxprune.load(b.model({"x": [1, 3, 6, 6]}, [b.conv(out, C, 3, 1)]))
    space = AnalysisManager(graph).get("prune-space")
    family = next(f for f in space.families if any(m.value == h for m in f.members))
    assert family.prunable
    check_compact_matches_masked(graph, Selection({family.id: (0, 3)}), space)

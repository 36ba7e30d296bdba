"""How to make each op trainable in onnxruntime-training 1.19: exact rewrites, one per op family.

onnxruntime-training builds gradients per op; some ops have no gradient builder or no CPU gradient
kernel (ORT_TRAINING_NOTES.md). Each rule below replaces such an op by ops that have both and that
compute the same function (up to floating-point rounding), keeping the op's output names so the rest
of the graph, and the trained initializers, are untouched. `NO_GRADIENT` lists ops with neither a
gradient nor a rule: on a path from a trained parameter to the loss they are an error, elsewhere
(shape arithmetic) they are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from ..errors import UserError
from ..ir import Graph, Op, Value
from .rule import constant_value, partial_value

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})


class Emitter:
    """Adds the ops of one rewrite, named after the op it replaces."""

    def __init__(self, graph: Graph, op: Op, types: dict, constants: set[str] | None = None):
        self.graph, self.types = graph, types
        self.constants = constants if constants is not None else set()  # names of the constants it adds
        self.base = op.name or op.op_type
        self.opset = graph.opset
        self.count = 0

    def __call__(self, op_type: str, inputs: list, out: Value | None = None, **attributes) -> Value:
        """Add `op_type(inputs)`; its one output is `out` (an existing value without producer) or new."""
        target = out if out is not None else self.graph.fresh_name(f"{self.base}/{op_type}")
        op = self.graph.add_op(op_type, inputs, [target], name=self.graph_op_name(op_type), attributes=attributes)
        return self.graph.outputs_of(op)[0]

    def graph_op_name(self, op_type: str) -> str:
        self.count += 1
        return f"{self.base}/legalized/{op_type}_{self.count}"

    def const(self, array, dtype=np.float32) -> Value:
        """A new initializer; recorded in `constants`, so training keeps it frozen."""
        value = self.graph.add_initializer(self.graph.fresh_name(f"{self.base}/const"), np.asarray(array, dtype=dtype))
        self.constants.add(value.name)
        return value

    def reduce(self, op_type: str, x: Value, axes: list[int], keepdims: int = 1) -> Value:
        """A Reduce* op with `axes`, as an input or an attribute depending on the opset."""
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            return self(op_type, [x, self.const(axes, np.int64)], keepdims=keepdims)
        return self(op_type, [x], axes=axes, keepdims=keepdims)

    def shape_of(self, value: Value) -> tuple | None:
        found = self.types.get(value.name)
        return None if found is None or found.shape is None else tuple(found.shape)


Rewrite = Callable[[Graph, Op, Emitter], None]


@dataclass(frozen=True)
class TrainingRule:
    """Rewrite `op_types` when training on one of `devices` (exact: same outputs, same names)."""

    op_types: tuple[str, ...]
    rewrite: Rewrite
    devices: tuple[str, ...] = ("cpu", "cuda")
    why: str = "no gradient builder in onnxruntime-training 1.19"


def _detach(graph: Graph, op: Op) -> tuple[list[Value | None], list[Value | None]]:
    """Remove `op`, keeping its outputs as values for the rewrite to produce."""
    inputs, outputs = graph.inputs_of(op), graph.outputs_of(op)
    graph.remove_op(op, remove_outputs=False)
    return inputs, outputs


def _refuse(op: Op, why: str) -> UserError:
    return UserError(f"{op.label} cannot be trained: {why}")


# ---------------------------------------------------------------- rewrites
def _layer_norm_outputs(graph: Graph, op: Op, emit: Emitter) -> None:
    """LayerNormalization builds its gradient only with its Mean and InvStdDev outputs present."""
    outputs = graph.outputs_of(op)
    if len(outputs) == 3 and all(v is not None for v in outputs):
        return
    inputs, outputs = _detach(graph, op)
    extra = [graph.fresh_name(f"{emit.base}/{n}") for n in ("Mean", "InvStdDev")]
    targets = [outputs[0]] + [outputs[i] if i < len(outputs) and outputs[i] is not None else extra[i - 1]
                              for i in (1, 2)]
    graph.add_op(op.op_type, inputs, targets, domain=op.domain, name=op.name, attributes=dict(op.attributes))


def _hard_sigmoid(graph: Graph, op: Op, emit: Emitter) -> None:
    """HardSigmoid(x) = Clip(alpha·x + beta, 0, 1); HardSwish(x) = x · HardSigmoid(x; 1/6, 1/2)."""
    (x, *_), (y, *_) = _detach(graph, op)
    alpha, beta = (op.attr("alpha", 0.2), op.attr("beta", 0.5)) if op.op_type == "HardSigmoid" else (1 / 6, 0.5)
    gate = emit("Clip", [emit("Add", [emit("Mul", [x, emit.const(alpha)]), emit.const(beta)]), emit.const(0.0),
                         emit.const(1.0)], out=y if op.op_type == "HardSigmoid" else None)
    if op.op_type == "HardSwish":
        emit("Mul", [x, gate], out=y)


def _prelu(graph: Graph, op: Op, emit: Emitter) -> None:
    """PRelu(x, s) = Relu(x) - s·Relu(-x): exact for both signs, and s gets its gradient."""
    (x, slope), (y, *_) = _detach(graph, op)
    emit("Sub", [emit("Relu", [x]), emit("Mul", [slope, emit("Relu", [emit("Neg", [x])])])], out=y)


def _exp_linear(graph: Graph, op: Op, emit: Emitter) -> None:
    """Elu/Selu/Celu as Where(x > 0, x, alpha·(exp(min(x, 0)) - 1)) (min keeps the unused branch finite,
    so its zero gradient stays zero instead of 0·inf)."""
    (x, *_), (y, *_) = _detach(graph, op)
    kind = op.op_type
    alpha = op.attr("alpha", {"Elu": 1.0, "Celu": 1.0, "Selu": 1.67326319217681884765625}[kind])
    gamma = op.attr("gamma", 1.05070102214813232421875) if kind == "Selu" else 1.0
    zero = emit.const(0.0)
    inner = emit("Min", [x, zero])
    if kind == "Celu":
        inner = emit("Div", [inner, emit.const(alpha)])
    negative = emit("Mul", [emit.const(alpha), emit("Sub", [emit("Exp", [inner]), emit.const(1.0)])])
    picked = emit("Where", [emit("Greater", [x, zero]), x, negative], out=y if gamma == 1.0 else None)
    if gamma != 1.0:
        emit("Mul", [picked, emit.const(gamma)], out=y)


def _softplus(emit: Emitter, x: Value, out: Value | None = None) -> Value:
    """log(1 + exp(x)) computed stably as relu(x) + log(1 + exp(-|x|))."""
    tail = emit("Log", [emit("Add", [emit.const(1.0), emit("Exp", [emit("Neg", [emit("Abs", [x])])])])])
    return emit("Add", [emit("Relu", [x]), tail], out=out)


def _softplus_family(graph: Graph, op: Op, emit: Emitter) -> None:
    """Softplus, Mish = x·tanh(softplus(x)), Softsign = x / (1 + |x|)."""
    (x, *_), (y, *_) = _detach(graph, op)
    if op.op_type == "Softplus":
        _softplus(emit, x, out=y)
    elif op.op_type == "Mish":
        emit("Mul", [x, emit("Tanh", [_softplus(emit, x)])], out=y)
    else:
        emit("Div", [x, emit("Add", [emit.const(1.0), emit("Abs", [x])])], out=y)


def _variadic_sum(graph: Graph, op: Op, emit: Emitter) -> None:
    """Sum/Mean of n inputs as a chain of Adds (then a division by n)."""
    inputs, (y, *_) = _detach(graph, op)
    inputs = [v for v in inputs if v is not None]
    mean = op.op_type == "Mean" and len(inputs) > 1
    if len(inputs) == 1:
        emit("Identity", inputs, out=y)
        return
    total = inputs[0]
    for i, v in enumerate(inputs[1:], start=2):
        total = emit("Add", [total, v], out=y if i == len(inputs) and not mean else None)
    if mean:
        emit("Div", [total, emit.const(float(len(inputs)))], out=y)


def _global_max_pool(graph: Graph, op: Op, emit: Emitter) -> None:
    """GlobalMaxPool = MaxPool over the whole (static) spatial extent."""
    x = graph.inputs_of(op)[0]
    shape = emit.shape_of(x)
    if shape is None or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
        raise _refuse(op, f"its input's spatial size is not static ({shape}); pass --input-shape")
    (x, *_), (y, *_) = _detach(graph, op)
    emit("MaxPool", [x], out=y, kernel_shape=list(shape[2:]))


def _average_pool(graph: Graph, op: Op, emit: Emitter) -> None:
    """AveragePool = depthwise Conv with a constant 1/k kernel (onnxruntime-training's AveragePool can
    crash on a dynamic batch axis). Only where the two agree: no padding counted out, floor mode."""
    x = graph.inputs_of(op)[0]
    shape = emit.shape_of(x)
    pads = op.attr("pads", [0] * (2 * len(op.attr("kernel_shape", []))))
    if shape is None or not isinstance(shape[1], int) or op.attr("ceil_mode", 0) or \
            op.attr("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID") or \
            (any(pads) and not op.attr("count_include_pad", 0)):
        return  # left as it is: with static shapes onnxruntime trains it
    kernel = list(op.attr("kernel_shape"))
    channels = shape[1]
    (x, *_), (y, *_) = _detach(graph, op)
    weight = emit.const(np.full([channels, 1, *kernel], 1.0 / int(np.prod(kernel))))
    attributes = {"kernel_shape": kernel, "group": channels, "pads": list(pads),
                  "strides": list(op.attr("strides", [1] * len(kernel)))}
    if op.attr("dilations") is not None:
        attributes["dilations"] = list(op.attr("dilations"))
    emit("Conv", [x, weight], out=y, **attributes)


def _instance_norm(graph: Graph, op: Op, emit: Emitter) -> None:
    """InstanceNormalization = per-sample, per-channel standardisation, then scale and shift."""
    x = graph.inputs_of(op)[0]
    shape = emit.shape_of(x)
    if shape is None:
        raise _refuse(op, "its input's rank is unknown")
    (x, scale, bias), (y, *_) = _detach(graph, op)
    axes = list(range(2, len(shape)))
    centered = emit("Sub", [x, emit.reduce("ReduceMean", x, axes)])
    variance = emit.reduce("ReduceMean", emit("Mul", [centered, centered]), axes)
    normed = emit("Div", [centered, emit("Sqrt", [emit("Add", [variance, emit.const(op.attr("epsilon", 1e-5))])])])
    per_channel = emit.const([-1] + [1] * len(axes), np.int64)
    emit("Add", [emit("Mul", [normed, emit("Reshape", [scale, per_channel])]), emit("Reshape", [bias, per_channel])],
         out=y)


def _group_norm(graph: Graph, op: Op, emit: Emitter) -> None:
    """GroupNormalization = standardise each sample's channel groups (viewed as (N, groups, -1)), then
    scale and shift: per group in opset 18, per channel from opset 21 (the op's two versions)."""
    x = graph.inputs_of(op)[0]
    found = emit.types.get(x.name)
    if found is None or found.shape is None:
        raise _refuse(op, "its input's rank is unknown")
    if found.elem_type != TensorProto.FLOAT:  # opset 21 computes in float32 (stash_type): only exact there
        raise _refuse(op, "its input is not float32")
    (x, scale, bias), (y, *_) = _detach(graph, op)
    grouped = emit("Reshape", [x, emit.const([0, op.attr("num_groups"), -1], np.int64)])
    centered = emit("Sub", [grouped, emit.reduce("ReduceMean", grouped, [2])])
    variance = emit.reduce("ReduceMean", emit("Mul", [centered, centered]), [2])
    normed = emit("Div", [centered, emit("Sqrt", [emit("Add", [variance, emit.const(op.attr("epsilon", 1e-5))])])])
    if emit.opset < 21:
        per_group = emit.const([-1, 1], np.int64)
        shifted = emit("Add", [emit("Mul", [normed, emit("Reshape", [scale, per_group])]),
                               emit("Reshape", [bias, per_group])])
        emit("Reshape", [shifted, emit("Shape", [x])], out=y)
    else:
        restored = emit("Reshape", [normed, emit("Shape", [x])])
        per_channel = emit.const([-1] + [1] * (len(found.shape) - 2), np.int64)
        emit("Add", [emit("Mul", [restored, emit("Reshape", [scale, per_channel])]), emit("Reshape", [bias, per_channel])],
             out=y)


def _reduce_sum_square(graph: Graph, op: Op, emit: Emitter) -> None:
    """ReduceSumSquare(x) = ReduceSum(x·x)."""
    inputs, (y, *_) = _detach(graph, op)
    x = inputs[0]
    squared = emit("Mul", [x, x])
    attributes = {k: op.attr(k) for k in ("keepdims", "noop_with_empty_axes") if op.attr(k) is not None}
    axes = op.attr("axes")
    if axes is not None and emit.opset >= 13:  # attribute in the old op, input in ReduceSum-13
        inputs = [x, emit.const(list(axes), np.int64)]
    elif axes is not None:
        attributes["axes"] = list(axes)
    emit("ReduceSum", [squared, *inputs[1:]], out=y, **attributes)


def _cast_like(graph: Graph, op: Op, emit: Emitter) -> None:
    """CastLike(x, like) = Cast(x, to=type of like)."""
    (x, like, *_), (y, *_) = _detach(graph, op)
    found = emit.types.get(like.name)
    if found is None or found.elem_type is None:
        raise _refuse(op, "the type of its second input is unknown")
    emit("Cast", [x], out=y, to=found.elem_type)


def _resize_nearest(graph: Graph, op: Op, emit: Emitter) -> None:
    """Nearest upsampling by integer factors (as torch exports it: asymmetric, floor) = Reshape,
    Expand, Reshape (onnxruntime-training has no CPU gradient kernel for Resize/Upsample)."""
    inputs = graph.inputs_of(op)
    x = inputs[0]
    shape = emit.shape_of(x)
    out_shape = emit.shape_of(graph.outputs_of(op)[0])
    if out_shape is None or not all(isinstance(d, int) for d in out_shape[1:]):
        out_shape = _resized_shape(graph, op, shape, emit.types)
    mode = op.attr("mode", b"nearest")
    transform = op.attr("coordinate_transformation_mode", b"half_pixel" if op.op_type == "Resize" else b"asymmetric")
    nearest = op.attr("nearest_mode", b"round_prefer_floor" if op.op_type == "Resize" else b"floor")
    static = shape is not None and out_shape is not None and len(shape) == len(out_shape) and \
        all(isinstance(d, int) and d > 0 for d in (*shape[1:], *out_shape[1:]))
    factors = [o // i if static and o % i == 0 else 0 for i, o in zip((shape or ())[1:], (out_shape or ())[1:])]
    if _text(mode) != "nearest" or not static or not all(factors) or factors[0] != 1 or \
            (any(f > 1 for f in factors) and not (_text(transform) == "asymmetric" and _text(nearest) == "floor")):
        raise _refuse(op, "onnxruntime-training has no CPU gradient for Resize, and onnxprune rewrites only "
                          "nearest upsampling by integer factors (asymmetric, floor)")
    _, (y, *_) = _detach(graph, op)
    spread = [0]  # keep the batch dimension as it is
    for d, f in zip(shape[1:], factors):
        spread += [d, 1]
    broadcast = [1]
    for f in factors:
        broadcast += [1, f]
    expanded = emit("Expand", [emit("Reshape", [x, emit.const(spread, np.int64)]), emit.const(broadcast, np.int64)])
    emit("Reshape", [expanded, emit.const([0, *out_shape[1:]], np.int64)], out=y)


def _conv_transpose(graph: Graph, op: Op, emit: Emitter) -> None:
    """2-D ConvTranspose = Conv over the input with (stride - 1) zeros between elements, with the kernel
    flipped and its in/out axes swapped (per group), padded by dilation·(k - 1) - pad (+ output_padding
    at the end). The weight transform is in the graph (Gather flips, Reshape/Transpose), so the original
    kernel stays the trained tensor. onnxruntime-training has no CPU gradient kernel for ConvTranspose."""
    x, weight = graph.inputs_of(op)[:2]
    shape, kernel_shape = emit.shape_of(x), emit.shape_of(weight)
    rank = len(kernel_shape) - 2 if kernel_shape is not None else 0
    kernel = list(op.attr("kernel_shape", kernel_shape[2:] if kernel_shape else []))
    strides = list(op.attr("strides", [1] * rank))
    dilations = list(op.attr("dilations", [1] * rank))
    pads = list(op.attr("pads", [0] * 2 * rank))
    extra = list(op.attr("output_padding", [0] * rank))
    group = op.attr("group", 1)
    begin = [d * (k - 1) - p for d, k, p in zip(dilations, kernel, pads[:rank])]
    end = [d * (k - 1) - p + o for d, k, p, o in zip(dilations, kernel, pads[rank:], extra)]
    static = shape is not None and kernel_shape is not None and all(isinstance(v, int) for v in (*shape[1:], *kernel_shape))
    if rank != 2 or not static or op.attr("output_shape") is not None or \
            _text(op.attr("auto_pad", b"NOTSET")) != "NOTSET" or min(begin + end) < 0:
        raise _refuse(op, "onnxruntime-training has no CPU gradient for ConvTranspose, and onnxprune rewrites only "
                          "2-D ones with static shapes, explicit pads no larger than dilation·(kernel - 1), and no "
                          "output_shape (train with --device cuda, or re-export)")
    inputs, (y, *_) = _detach(graph, op)
    channels, height, width = shape[1:]
    c_in, c_out_g = kernel_shape[:2]
    flipped = weight
    for axis, k in ((2, kernel[0]), (3, kernel[1])):
        flipped = emit("Gather", [flipped, emit.const(np.arange(k - 1, -1, -1), np.int64)], axis=axis)
    grouped = emit("Reshape", [flipped, emit.const([group, c_in // group, c_out_g, *kernel], np.int64)])
    swapped = emit("Transpose", [grouped], perm=[0, 2, 1, 3, 4])
    conv_weight = emit("Reshape", [swapped, emit.const([group * c_out_g, c_in // group, *kernel], np.int64)])
    spread = x
    if strides != [1, 1]:
        sh, sw = strides
        spread = emit("Reshape", [x, emit.const([0, channels, height, 1, width, 1], np.int64)])
        spread = emit("Pad", [spread, emit.const([0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1], np.int64)])
        spread = emit("Reshape", [spread, emit.const([0, channels, height * sh, width * sw], np.int64)])
        spread = emit("Slice", [spread, emit.const([0, 0], np.int64),
                                emit.const([(height - 1) * sh + 1, (width - 1) * sw + 1], np.int64),
                                emit.const([2, 3], np.int64)])
    emit("Conv", [spread, conv_weight, *inputs[2:3]], out=y, kernel_shape=kernel, dilations=dilations,
         group=group, pads=begin + end)


def _resized_shape(graph: Graph, op: Op, shape: tuple | None, types: dict) -> tuple | None:
    """The output shape of a Resize from its constant scales or (partly static) sizes input."""
    inputs = graph.inputs_of(op)
    if shape is None:
        return None
    if len(inputs) > 3 and inputs[3] is not None:
        sizes = partial_value(graph, inputs[3], types)
        return None if sizes is None or len(sizes) != len(shape) else (shape[0], *sizes[1:])
    scales_at = 2 if op.op_type == "Resize" else 1
    scales = constant_value(graph, inputs[scales_at]) if len(inputs) > scales_at else None
    if scales is None or len(scales) != len(shape) or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return (shape[0], *[int(d * float(s)) for d, s in zip(shape[1:], np.asarray(scales)[1:])])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def constant_weights(graph: Graph) -> list[str]:
    """Turn floating-point Constant ops into initializers of the same name (so they can be trained and
    map back by name); return their names."""
    names = []
    for op in [op for op in graph.ops() if op.op_type == "Constant" and op.domain in ("", "ai.onnx")]:
        value = graph.outputs_of(op)[0]
        array = constant_value(graph, value)
        if array is None or np.asarray(array).dtype.kind != "f" or np.ndim(array) == 0 or graph.is_output(value):
            continue
        graph.remove_op(op, remove_outputs=False)
        graph.make_initializer(value, np.asarray(array))
        names.append(value.name)
    return names


RULES: tuple[TrainingRule, ...] = (
    TrainingRule(("LayerNormalization",), _layer_norm_outputs, why="its gradient needs the Mean and InvStdDev outputs"),
    TrainingRule(("HardSigmoid", "HardSwish"), _hard_sigmoid),
    TrainingRule(("PRelu",), _prelu),
    TrainingRule(("Elu", "Selu", "Celu"), _exp_linear),
    TrainingRule(("Softplus", "Mish", "Softsign"), _softplus_family),
    TrainingRule(("Sum", "Mean"), _variadic_sum),
    TrainingRule(("GlobalMaxPool",), _global_max_pool),
    TrainingRule(("AveragePool",), _average_pool, why="its training kernel can crash on a dynamic batch axis"),
    TrainingRule(("InstanceNormalization",), _instance_norm),
    TrainingRule(("GroupNormalization",), _group_norm),
    TrainingRule(("ReduceSumSquare",), _reduce_sum_square),
    TrainingRule(("CastLike",), _cast_like),
    TrainingRule(("Resize", "Upsample"), _resize_nearest, devices=("cpu",), why="no CPU gradient kernel"),
    TrainingRule(("ConvTranspose",), _conv_transpose, devices=("cpu",), why="no CPU gradient kernel"),
)

_BY_TYPE = {t: rule for rule in RULES for t in rule.op_types}

#: Ops with no gradient in onnxruntime-training 1.19 and no rewrite here (on any device; the ops whose
#: gradient kernel exists on CUDA only have CPU rewrites above, which refuse what they cannot rewrite).
NO_GRADIENT = frozenset({"ReduceMax", "ReduceMin", "CumSum", "Einsum", "LpNormalization",
                         "DepthToSpace", "SpaceToDepth", "Sign", "Floor", "Round", "Ceil", "ThresholdedRelu",
                         "Shrink", "Hardmax", "ArgMax", "ArgMin", "LSTM", "GRU", "RNN", "Loop", "Scan", "If"})


#: Input slots that carry shapes, indices, bounds or statistics, never a trainable tensor.
NON_DIFFERENTIABLE_SLOTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}), "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}), "Slice": frozenset({1, 2, 3, 4}), "Split": frozenset({1}), "Pad": frozenset({1, 2, 3}),
    "Gather": frozenset({1}), "GatherElements": frozenset({1}), "GatherND": frozenset({1}), "Clip": frozenset({1, 2}),
    "Where": frozenset({0}), "TopK": frozenset({1}), "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}),
    "ReduceMean": frozenset({1}), "ReduceSum": frozenset({1}), "ReduceL2": frozenset({1}),
    "ReduceLogSumExp": frozenset({1}), "Dropout": frozenset({1, 2}), "Pow": frozenset({1}),
    "BatchNormalization": frozenset({3, 4}), "ScatterElements": frozenset({1}), "ScatterND": frozenset({1}),
    "Trilu": frozenset({1}), "ConstantOfShape": frozenset({0}), "Range": frozenset({0, 1, 2}),
    "OneHot": frozenset({0, 1, 2}), "Shape": frozenset({0}), "Size": frozenset({0}), "Equal": frozenset({0, 1}),
    "Less": frozenset({0, 1}), "Greater": frozenset({0, 1}), "LessOrEqual": frozenset({0, 1}),
    "GreaterOrEqual": frozenset({0, 1}), "Not": frozenset({0}), "NonZero": frozenset({0}),
}


def differentiable_slot(op: Op, slot: int, device: str) -> bool:
    """True if a tensor read by `op` at input `slot` can be trained (gets a gradient)."""
    if op.domain not in ("", "ai.onnx") or lacks_gradient(op, device):
        return False
    if op.op_type == "Cast" and op.attr("to") not in FLOAT_TYPES:
        return False  # a cast to integers ends every gradient path
    return slot not in NON_DIFFERENTIABLE_SLOTS.get(op.op_type, frozenset())


def gradient_reachable(graph: Graph, device: str, outputs: list[Value],
                       differentiable: Callable[[Op, int], bool] | None = None) -> set[Value]:
    """Values from which a gradient flows to `outputs`: walking back from them through differentiable
    input slots only (so constants feeding shape arithmetic or dead branches are not among them).
    `differentiable(op, slot)` says which slots pass a gradient (default: onnxruntime-training's)."""
    differentiable = differentiable or (lambda op, slot: differentiable_slot(op, slot, device))
    reached = set(outputs)
    for op in reversed(graph.topological_order()):
        if not any(v in reached for v in graph.outputs_of(op) if v is not None):
            continue
        for slot, value in enumerate(graph.inputs_of(op)):
            if value is not None and differentiable(op, slot):
                reached.add(value)
    return reached


def training_rule(op: Op, device: str) -> TrainingRule | None:
    """The rewrite `op` needs before training on `device`, if any."""
    if op.domain not in ("", "ai.onnx"):
        return None
    rule = _BY_TYPE.get(op.op_type)
    return rule if rule is not None and device in rule.devices else None


def lacks_gradient(op: Op, device: str) -> bool:
    """True if onnxruntime-training cannot differentiate `op` (on `device`) and no rule rewrites it."""
    return op.domain in ("", "ai.onnx") and op.op_type in NO_GRADIENT


def legalize(graph: Graph, types: dict, device: str = "cpu") -> set[str]:
    """Apply every training rule to `graph` in place: Constant weights become initializers, each op
    with a rule is rewritten, and ops without a gradient on a weight path are refused. Returns the
    names of the constants the rewrites added (fixed kernels and shapes: never trained)."""
    constant_weights(graph)
    added: set[str] = set()
    for op in graph.topological_order():
        rule = training_rule(op, device)
        if rule is not None:
            rule.rewrite(graph, op, Emitter(graph, op, types, added))
    check_differentiable(graph, device, exclude=added)
    return added


def check_differentiable(graph: Graph, device: str, exclude: set[str] = frozenset()) -> None:
    """Refuse ops without a gradient that lie downstream of a floating-point parameter (other than the
    `exclude`d constants)."""
    reached = {v for v in graph.initializers
               if v.tensor.data_type in FLOAT_TYPES and len(v.tensor.shape) >= 1 and v.name not in exclude}
    blocked = []
    for op in graph.topological_order():
        if not any(v in reached for v in graph.inputs_of(op) if v is not None):
            continue
        if lacks_gradient(op, device):
            blocked.append(op)
            continue
        reached.update(v for v in graph.outputs_of(op) if v is not None)
    if blocked:
        names = ", ".join(op.label for op in blocked[:5])
        more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
        raise UserError(f"onnxruntime-training on {device.upper()} cannot differentiate {names}{more}, and onnxprune "
                        "has no exact rewrite for it yet; these ops lie between trainable weights and the outputs")

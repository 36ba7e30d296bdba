"""The torch kernels: one record per ONNX op family, saying how torch computes it (DESIGN §8, the torch engine).

A `TorchKernel` names its op types, the function that computes them with torch ops (so autograd
differentiates them), and optionally a check that refuses attribute combinations the function does
not implement (fail closed: the engine names the op and the reason instead of computing something
else). The functions live in `torch_math.py` (elementwise, reductions, matrix products, convolutions),
`torch_layers.py` (normalisations, pools, quantization),
`torch_tensors.py` (shapes, data movement, constants) and `torch_rnn.py` (LSTM, GRU, RNN); each one is
tested against onnxruntime on random inputs (tests/test_torch_kernels.py).

A kernel is called as `run(node, inputs)`: `node` is a `KernelNode` (attributes decoded, the opset,
how many outputs are wanted), `inputs` the input tensors in slot order (None for an omitted optional
input). It returns one tensor or a tuple in output order. Kernels never modify their inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..ir import FLOAT_TYPES, Op
from . import torch_layers as lay
from . import torch_math as m
from . import torch_rnn as r
from . import torch_tensors as t
from .training_rules import training_of


@dataclass(frozen=True)
class KernelNode:
    """What a kernel reads of its op: decoded attributes, the default-domain opset, wanted outputs."""

    op_type: str
    attributes: dict[str, Any]
    opset: int
    outputs: int  # declared outputs (trailing optional ones the model omits are not counted)
    wanted: tuple[bool, ...] = ()  # which outputs the graph uses (optional outputs cost work)
    name: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        """The attribute's value, or `default`."""
        return self.attributes.get(key, default)

    @classmethod
    def of(cls, op: Op, opset: int, wanted: tuple[bool, ...] = ()) -> KernelNode:
        """The view of a graph op (attribute protos decoded once, here, not per call)."""
        return cls(op.op_type, {k: op.attr(k) for k in op.attributes}, opset, op.num_outputs or len(wanted),
                   wanted, op.name)


Kernel = Callable[[KernelNode, list], Any]


@dataclass(frozen=True)
class TorchKernel:
    """How torch computes `op_types`: `run`, and `refuse(node) -> reason | None` for what it does not
    implement. `no_gradient`: the outputs carry no gradient (integer results, argmax, comparisons)."""

    op_types: tuple[str, ...]
    run: Kernel
    refuse: Callable[[KernelNode], str | None] | None = None
    no_gradient: bool = False
    slots: frozenset[int] = field(default_factory=frozenset)  # input slots that get no gradient


KERNELS: tuple[TorchKernel, ...] = (
    # elementwise
    TorchKernel(("Relu", "Tanh", "Sigmoid", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Erf", "Sin", "Cos",
                 "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Softsign", "Mish",
                 "HardSwish", "Identity"), m.unary),
    TorchKernel(("Sign", "Floor", "Ceil", "Round"), m.unary, no_gradient=True),
    TorchKernel(("LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "Softplus", "ThresholdedRelu", "Shrink", "Gelu"),
                m.activation, m.refuse_activation),
    TorchKernel(("PRelu",), m.prelu),
    TorchKernel(("Clip",), m.clip),
    TorchKernel(("Add", "Sub", "Mul", "Div", "Pow", "Mod"), m.binary, m.refuse_legacy_broadcast),
    TorchKernel(("Max", "Min", "Sum", "Mean"), m.variadic),
    TorchKernel(("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"), m.compare,
                m.refuse_legacy_broadcast, no_gradient=True),
    TorchKernel(("Not", "IsNaN", "IsInf"), m.logical_unary, no_gradient=True),
    TorchKernel(("Where",), m.where),
    TorchKernel(("Cast", "CastLike"), m.cast),
    TorchKernel(("Dropout",), m.dropout),
    # reductions and normalisations along an axis
    TorchKernel(("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                 "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"), m.reduce),
    TorchKernel(("ArgMax", "ArgMin"), m.arg_reduce, no_gradient=True),
    TorchKernel(("Softmax", "LogSoftmax"), m.softmax),
    TorchKernel(("Hardmax",), m.hardmax, no_gradient=True),
    TorchKernel(("CumSum",), m.cumsum),
    TorchKernel(("TopK",), m.topk),
    # matrix products
    TorchKernel(("MatMul",), m.matmul),
    TorchKernel(("Gemm",), m.gemm),
    TorchKernel(("Einsum",), m.einsum),
    TorchKernel(("Conv",), m.conv, m.refuse_conv),
    TorchKernel(("ConvTranspose",), m.conv_transpose, m.refuse_conv_transpose),
    # normalisations
    TorchKernel(("BatchNormalization",), lay.batch_norm, lay.refuse_batch_norm),
    TorchKernel(("LayerNormalization",), lay.layer_norm),
    TorchKernel(("InstanceNormalization",), lay.instance_norm),
    TorchKernel(("GroupNormalization",), lay.group_norm),
    TorchKernel(("LpNormalization",), lay.lp_norm),
    # pools
    TorchKernel(("MaxPool",), lay.max_pool, lay.refuse_pool),
    TorchKernel(("AveragePool",), lay.average_pool, lay.refuse_pool),
    TorchKernel(("GlobalAveragePool", "GlobalMaxPool"), lay.global_pool),
    # quantization
    TorchKernel(("DequantizeLinear",), lay.dequantize),
    TorchKernel(("QuantizeLinear",), lay.quantize, no_gradient=True),
    # shapes, data movement, constants
    TorchKernel(("Shape",), t.shape, no_gradient=True),
    TorchKernel(("Size",), t.size, no_gradient=True),
    TorchKernel(("Reshape",), t.reshape),
    TorchKernel(("Flatten",), t.flatten),
    TorchKernel(("Squeeze",), t.squeeze),
    TorchKernel(("Unsqueeze",), t.unsqueeze),
    TorchKernel(("Transpose",), t.transpose),
    TorchKernel(("Concat",), t.concat),
    TorchKernel(("Split",), t.split),
    TorchKernel(("Slice",), t.slice_),
    TorchKernel(("Gather",), t.gather),
    TorchKernel(("GatherElements",), t.gather_elements),
    TorchKernel(("GatherND",), t.gather_nd, t.refuse_gather_nd),
    TorchKernel(("ScatterElements", "Scatter"), t.scatter_elements),
    TorchKernel(("ScatterND",), t.scatter_nd),
    TorchKernel(("Expand",), t.expand),
    TorchKernel(("Tile",), t.tile),
    TorchKernel(("Pad",), t.pad, t.refuse_pad),
    TorchKernel(("Constant",), t.constant, t.refuse_constant),
    TorchKernel(("ConstantOfShape",), t.constant_of_shape),
    TorchKernel(("Range",), t.range_),
    TorchKernel(("EyeLike",), t.eye_like),
    TorchKernel(("Trilu",), t.trilu),
    TorchKernel(("OneHot",), t.one_hot),
    TorchKernel(("NonZero",), t.nonzero, no_gradient=True),
    TorchKernel(("DepthToSpace", "SpaceToDepth"), t.depth_space),
    TorchKernel(("Resize", "Upsample"), t.resize, t.refuse_resize),
    # recurrent
    TorchKernel(("LSTM",), r.lstm, r.refuse_rnn, slots=frozenset({4})),
    TorchKernel(("GRU",), r.gru, r.refuse_rnn, slots=frozenset({4})),
    TorchKernel(("RNN",), r.rnn, r.refuse_rnn, slots=frozenset({4})),
)

_BY_TYPE = {op_type: kernel for kernel in KERNELS for op_type in kernel.op_types}


def torch_kernel(op_type: str, domain: str = "") -> TorchKernel | None:
    """The kernel of a default-domain op type, or None (other domains, control flow, unknown ops)."""
    return _BY_TYPE.get(op_type) if domain in ("", "ai.onnx") else None


def why_not_executable(op: Op, opset: int, wanted: tuple[bool, ...] = ()) -> str | None:
    """Why the torch engine cannot compute `op` (None if it can): no kernel, or attributes (or, per
    `wanted`, optional outputs the graph reads) it refuses."""
    kernel = torch_kernel(op.op_type, op.domain)
    if kernel is None:
        if op.subgraphs:
            return "ops with subgraphs (If, Loop, Scan) are not executed by the torch engine"
        where = f"domain {op.domain!r}" if op.domain not in ("", "ai.onnx") else "the torch engine"
        return f"{op.op_type} has no torch kernel in {where}"
    return kernel.refuse(KernelNode.of(op, opset, wanted)) if kernel.refuse is not None else None


def torch_differentiable_slot(op: Op, slot: int) -> bool:
    """True if a tensor read by `op` at input `slot` gets a gradient when torch runs the op."""
    kernel = torch_kernel(op.op_type, op.domain)
    if kernel is None or kernel.no_gradient or slot in kernel.slots:
        return False
    if op.op_type == "Cast" and op.attr("to") not in FLOAT_TYPES:
        return False  # a cast to integers ends every gradient path
    training = training_of(op)  # shapes, indices, bounds: the slots the op record says carry no gradient
    return training is None or slot not in training.constant_slots

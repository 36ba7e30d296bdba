"""The view of an op that the registry's rules read (`OpView`), cost conventions, and static shape values.

Conventions for cost (used by `analyze` and reports):
- MACs count multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum; their FLOPs are
  2 x MACs, plus one per output element for a bias or a Gemm `C` input.
- Elementwise ops cost one FLOP per output element (none when the output is integer or boolean: shape
  arithmetic and masks are not floating-point work); BatchNormalization (inference) two per element
  (scale and shift); LayerNormalization, GroupNormalization and InstanceNormalization five per element;
  Softmax/LogSoftmax three per element; Reduce* and global pools one per input element; windowed pools
  one per window element per output element.
- Ops that only move or reshape data (Reshape, Transpose, Concat, Gather, Slice, ...) cost nothing.
- Symbolic dimensions (the batch axis `N`, say) count as 1, so figures are per sample; bind dynamic
  spatial dims with the `shapes` analysis's `input-shapes` option (CLI: `--input-shape`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Op, TensorType
from .registry import evaluates


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates and floating-point operations of one op execution."""

    macs: int = 0
    flops: int = 0


@dataclass(frozen=True)
class OpView:
    """An op together with its input and output types (None where unknown), as rules see it."""

    op: Op
    inputs: tuple[TensorType | None, ...]
    outputs: tuple[TensorType | None, ...]
    present: tuple[bool, ...] = ()  # which input slots are given (optional inputs may be omitted)
    graph: Graph | None = None
    types: dict | None = None  # the shapes analysis, for rules that look past the op's own tensors

    @classmethod
    def of(cls, graph: Graph, op: Op, types: dict[str, TensorType]) -> OpView:
        """Look the op's values up in `types` (the `shapes` analysis)."""
        def typ(value):
            return None if value is None else types.get(value.name)
        inputs = graph.inputs_of(op)
        return cls(op, tuple(typ(v) for v in inputs), tuple(typ(v) for v in graph.outputs_of(op)),
                   tuple(v is not None for v in inputs), graph, types)

    def input_shape(self, index: int) -> tuple[int, ...] | None:
        """Input `index`'s shape with symbolic dims as 1, or None if unknown."""
        return _concrete(self.inputs[index] if index < len(self.inputs) else None)

    def output_shape(self, index: int = 0) -> tuple[int, ...] | None:
        """Output `index`'s shape with symbolic dims as 1, or None if unknown."""
        return _concrete(self.outputs[index] if index < len(self.outputs) else None)

    def constant(self, index: int) -> np.ndarray | None:
        """Input `index` as an array if it is always the same: an initializer, a Constant op's output,
        or small integer shape arithmetic over static dimensions; else None."""
        if self.graph is None or not self.has_input(index):
            return None
        value = self.graph.inputs_of(self.op)[index]
        found = constant_value(self.graph, value)
        return found if found is not None else static_value(self.graph, value, self.types)

    def has_input(self, index: int) -> bool:
        """True if optional input `index` is given."""
        return index < len(self.present) and self.present[index]


def constant_value(graph: Graph, value) -> np.ndarray | None:
    """The array a value always holds: an initializer, or the output of a Constant op (value attribute)."""
    if value is None:
        return None
    if value.tensor is not None:
        return value.tensor.array
    producer = graph.producer(value)
    if producer is None or producer.domain not in ("", "ai.onnx"):
        return None
    if producer.op_type == "Constant":
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in producer.attributes:
                return np.asarray(producer.attr(key))
    if producer.op_type == "Concat" and producer.attr("axis", 0) in (0, -1):
        pieces = [constant_value(graph, v) for v in graph.inputs_of(producer)]  # exporters build 1-D vectors so
        if pieces and all(p is not None and np.ndim(p) == 1 for p in pieces):
            return np.concatenate(pieces)
    return None


def is_quantized_weight(graph: Graph, value) -> bool:
    """An integer initializer that only DequantizeLinear reads as its data: a weight stored quantized."""
    uses = graph.uses(value)
    return value.tensor is not None and bool(uses) and \
        all(op.op_type == "DequantizeLinear" and op.domain in ("", "ai.onnx") and slot == 0 for op, slot in uses)


#: Prime stand-ins that prune-space gives symbolic input dimensions before shape inference: a
#: dimension holding one of these is dynamic, never a constant to fold.
STAND_INS = (1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049, 1051, 1061, 1063, 1069)


def static_value(graph: Graph, value, types: dict | None) -> np.ndarray | None:
    """Evaluate small integer shape arithmetic (Shape of static dims, Gather, Slice, Concat, Unsqueeze,
    Cast, Add/Sub/Mul/Div) that exporters emit; None if the result depends on a dynamic dimension
    (picking the static elements of a Shape is fine)."""
    found = _evaluate(graph, value, types, 0)
    if found is None or (found.dtype == object and any(v is None for v in found.reshape(-1))):
        return None
    return found.astype(np.int64) if found.dtype == object else found


def partial_value(graph: Graph, value, types: dict | None) -> list[int | None] | None:
    """Like `static_value` for a 1-D integer vector, but keeps what is static: dynamic entries are None
    (the sizes input of a Resize whose batch is dynamic, say)."""
    found = _evaluate(graph, value, types, 0)
    if found is None or found.ndim != 1:
        return None
    return [None if v is None else int(v) for v in found.tolist()]


def _evaluate(graph: Graph, value, types: dict | None, depth: int) -> np.ndarray | None:
    """static_value's recursion: dynamic dims are None entries of object arrays."""
    if value is None or depth > 12:
        return None
    found = constant_value(graph, value)
    if found is not None:
        return np.asarray(found)
    producer = graph.producer(value)
    if producer is None or not evaluates(producer):  # the records whose `evaluate` is set
        return None
    inputs = graph.inputs_of(producer)
    kind = producer.op_type
    if kind == "Shape":
        source = types.get(inputs[0].name) if types is not None and inputs[0] is not None else None
        if source is None or source.shape is None:
            return None
        dims = list(source.shape)
        start, end = producer.attr("start", 0), producer.attr("end", len(dims))
        known = [d if isinstance(d, int) and d > 0 and d not in STAND_INS else None for d in dims[start:end]]
        return np.array(known, dtype=object) if None in known else np.array(known, dtype=np.int64)
    args = [_evaluate(graph, v, types, depth + 1) if v is not None else None for v in inputs]
    if any(a is None for a, v in zip(args, inputs) if v is not None) or args[0] is None:
        return None
    try:
        result = _fold(producer, kind, args)
    except (ValueError, IndexError, TypeError):  # includes numpy's AxisError
        return None
    return None if result is None else np.asarray(result)


#: Ops that only move elements: `move_elements` applies them to integer or partly known (object) arrays.
MOVES = frozenset({"Cast", "Identity", "Unsqueeze", "Squeeze", "Gather", "Concat"})


def move_elements(op, kind: str, args: list) -> np.ndarray:
    """One element-moving op (`MOVES`) on evaluated arguments; shared by the partial evaluator here and
    the exact one in `shape_refine`."""
    if kind in ("Cast", "Identity"):
        return args[0]
    if kind == "Unsqueeze":
        axes = op.attr("axes")
        axes = axes if axes is not None else [int(a) for a in np.reshape(args[1], -1)]
        out = args[0]
        for axis in sorted(a % (out.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, axis)
        return out
    if kind == "Squeeze":
        axes = op.attr("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = [int(a) for a in np.reshape(args[1], -1)]
        return np.squeeze(args[0], axis=tuple(axes) if axes else None)
    if kind == "Gather":
        return np.take(args[0], args[1], axis=op.attr("axis", 0))
    return np.concatenate([np.atleast_1d(a) for a in args], axis=op.attr("axis", 0))  # Concat


def _fold(producer, kind: str, args: list) -> object:
    """One shape-arithmetic op on already evaluated arguments (None: not foldable)."""
    if kind in MOVES:
        return move_elements(producer, kind, args)
    if kind == "Slice":
        starts, ends = np.reshape(args[1], -1), np.reshape(args[2], -1)
        steps = np.reshape(args[4], -1) if len(args) > 4 and args[4] is not None else [1]
        if args[0].ndim != 1 or len(starts) != 1:
            return None
        return args[0][int(starts[0]):int(ends[0]):int(steps[0])]
    a, b = args[0], args[1]
    if kind == "Reshape":  # TorchScript's unflatten reshapes its computed split point to [1]
        target = [int(t) for t in np.reshape(b, -1)]
        return np.reshape(a, [a.shape[i] if t == 0 and i < a.ndim else t for i, t in enumerate(target)])
    if kind == "Mod" and np.asarray(a).dtype.kind in "iu" and np.asarray(b).dtype.kind in "iu" and np.all(b != 0):
        return np.fmod(a, b) if producer.attr("fmod", 0) else np.mod(a, b)
    if kind == "Add":
        return a + b
    if kind == "Sub":
        return a - b
    if kind == "Mul":
        return a * b
    if kind == "Div" and np.asarray(a).dtype.kind in "iuO":
        return a // b
    return None


def _concrete(tensor_type: TensorType | None) -> tuple[int, ...] | None:
    if tensor_type is None or tensor_type.shape is None:
        return None
    if any(d is None for d in tensor_type.shape):
        return None
    # Symbolic dims, and the -1 some exporters write for "dynamic", count as 1.
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in tensor_type.shape)


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements of a shape."""
    return int(np.prod(shape, dtype=np.int64))


CostFn = Callable[[OpView], "Cost | None"]

"""`OpRule`: what onnxprune knows about one family of ops, and the view of an op that rules read.

Conventions for cost (used by `analyze` and reports):
- MACs count multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum; their FLOPs are
  2 x MACs, plus one per output element for a bias or a Gemm `C` input.
- Elementwise ops cost one FLOP per output element; BatchNormalization (inference) two per element
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
        """Input `index` as an array if it is an initializer or a Constant op's output, else None."""
        if self.graph is None or not self.has_input(index):
            return None
        return constant_value(self.graph, self.graph.inputs_of(self.op)[index])

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


@dataclass(frozen=True)
class OpRule:
    """Knowledge of one op family: which op types it covers, what one execution costs (`cost`
    returns None when the shapes it needs are unknown), and how it couples axes (`coupling`, a
    CouplingRule; None freezes every axis the op touches)."""

    op_types: tuple[str, ...]
    cost: CostFn
    coupling: object = None
    domain: str = ""

"""`cost`: parameters, MACs and FLOPs of the model, per op and per op type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto

from onnxprune.ir import Graph
from onnxprune.ops import Cost, OpView, rule_for
from onnxprune.ops.rule import is_quantized_weight
from onnxprune.passmanager import AnalysisPass

from .shapes import ShapesAnalysis

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})


@dataclass(frozen=True)
class OpCost:
    """The cost of one op; `cost` is None when its shapes or its op type are unknown."""

    name: str
    op_type: str
    cost: Cost | None


@dataclass(frozen=True)
class CostReport:
    """Model size and compute. MACs and FLOPs are per execution with symbolic dims counted as 1."""

    parameters: int  # elements of floating-point initializers, Constant-node tensors and quantized weights
    parameter_bytes: int
    constants: int  # elements of other initializers (shape tensors, indices)
    ops: tuple[OpCost, ...]
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates over ops whose cost is known."""
        return sum(o.cost.macs for o in self.ops if o.cost is not None)

    @property
    def flops(self) -> int:
        """Total floating-point operations over ops whose cost is known."""
        return sum(o.cost.flops for o in self.ops if o.cost is not None)

    @property
    def unknown(self) -> list[OpCost]:
        """Ops whose cost could not be computed."""
        return [o for o in self.ops if o.cost is None]

    def by_type(self) -> dict[str, Cost]:
        """MACs and FLOPs summed per op type, most expensive first."""
        totals: dict[str, list[int]] = {}
        for o in self.ops:
            entry = totals.setdefault(o.op_type, [0, 0])
            if o.cost is not None:
                entry[0] += o.cost.macs
                entry[1] += o.cost.flops
        ranked = sorted(totals.items(), key=lambda item: (-item[1][1], item[0]))
        return {k: Cost(m, f) for k, (m, f) in ranked}


@dataclass(frozen=True)
class CostOptions:
    """Options of `cost`."""

    input_shapes: tuple[str, ...] = ()  # passed to `shapes`: bind dynamic input dims first


class CostAnalysis(AnalysisPass):
    """Count parameters, and MACs/FLOPs per op from inferred shapes (symbolic dims = 1, so per sample).

    Parameters are the floating-point initializers and Constant-node tensors (some exporters store
    weights as Constant ops)."""

    name = "cost"
    Options = CostOptions

    def run(self, graph: Graph, am) -> CostReport:
        types = am.get(ShapesAnalysis, input_shapes=self.options.input_shapes)
        parameters = parameter_bytes = constants = 0
        tensors = [(TensorProto.FLOAT if is_quantized_weight(graph, v) else v.tensor.data_type, v.tensor.size, v.tensor.nbytes)
                   for v in graph.initializers]  # a quantized weight counts as a parameter
        for op in graph.ops():
            value = op.attributes.get("value")
            if op.op_type == "Constant" and op.domain in ("", "ai.onnx") and value is not None and value.HasField("t"):
                size = int(np.prod(value.t.dims, dtype=np.int64))
                itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.t.data_type)).itemsize
                tensors.append((value.t.data_type, size, size * itemsize))
        for data_type, size, nbytes in tensors:
            if data_type in FLOAT_TYPES:
                parameters += size
                parameter_bytes += nbytes
            else:
                constants += size
        ops = []
        for op in graph.topological_order():
            rule = rule_for(op)
            try:
                cost = rule.cost(OpView.of(graph, op, types)) if rule is not None else None
            except (IndexError, ValueError, TypeError):  # shapes that contradict the op's spec
                cost = None
            ops.append(OpCost(op.name, op.op_type, cost))
        counts = Counter(op.op_type for op in ops)
        return CostReport(parameters, parameter_bytes, constants, tuple(ops), dict(counts.most_common()))

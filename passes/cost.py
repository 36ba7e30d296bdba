"""`cost`: parameters, MACs and FLOPs of the model, per op and per op type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from onnx import TensorProto

from onnxprune.ir import Graph
from onnxprune.ops import Cost, OpView, rule_for
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

    parameters: int  # elements of floating-point initializers
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


class CostAnalysis(AnalysisPass):
    """Count parameters, and MACs/FLOPs per op from inferred shapes (symbolic dims = 1, so per sample)."""

    name = "cost"

    def run(self, graph: Graph, am) -> CostReport:
        types = am.get(ShapesAnalysis)
        parameters = parameter_bytes = constants = 0
        for value in graph.initializers:
            if value.tensor.data_type in FLOAT_TYPES:
                parameters += value.tensor.size
                parameter_bytes += value.tensor.nbytes
            else:
                constants += value.tensor.size
        ops = []
        for op in graph.topological_order():
            rule = rule_for(op)
            cost = rule.cost(OpView.of(graph, op, types)) if rule is not None else None
            ops.append(OpCost(op.name, op.op_type, cost))
        counts = Counter(op.op_type for op in ops)
        return CostReport(parameters, parameter_bytes, constants, tuple(ops), dict(counts.most_common()))

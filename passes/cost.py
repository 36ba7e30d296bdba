"""`cost`: parameters, MACs and FLOPs of the model, per op and per op type."""

from __future__ import annotations

from collections import ChainMap, Counter
from dataclasses import dataclass, field, replace

import numpy as np
import onnx
from onnx import TensorProto

from onnxprune.ir import FLOAT_TYPES, Graph
from onnxprune.ops import Cost, OpView, rule_for
from onnxprune.ops.rule import is_quantized_weight
from onnxprune.passmanager import AnalysisPass

from .shapes import ShapesAnalysis


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
                cost = rule.cost(OpView.of(graph, op, types)) if rule is not None and rule.cost is not None else None
            except (IndexError, ValueError, TypeError):  # shapes that contradict the op's spec
                cost = None
            ops.append(OpCost(op.name, op.op_type, cost))
        counts = Counter(op.op_type for op in ops)
        return CostReport(parameters, parameter_bytes, constants, tuple(ops), dict(counts.most_common()))


@dataclass(frozen=True)
class Measured:
    """Parameters and FLOPs of a model (per run, symbolic dims as 1), as `cost` counts them."""

    parameters: int
    flops: int


class SelectionCost:
    """The exact parameters and FLOPs of the model that `compact` then `cleanup` write for a selection,
    computed without compacting.

    Every op's cost depends only on its tensors' shapes, and compacting a selection only shortens the
    member axes of its families (by the number of indices removed there) and drops erased regions and
    what is dead; so the compact model's cost is the original's with the ops that touch a shortened
    value re-costed on the shortened shapes. Summing each group's own estimate instead counts a weight
    slice that two families remove (a Conv's input and output channel) twice, which made `--by flops`
    stop short of its target."""

    def __init__(self, graph: Graph, types: dict, cost: CostReport, space, erasing=None) -> None:
        from .cleanup import live_nodes

        self.graph, self.types, self.space, self.erasing = graph, types, space, erasing
        self._order = graph.topological_order()
        self._costs = [o.cost for o in cost.ops]  # cost.ops follows the same topological order
        self._keep = graph.names_used_outside()
        self._live = live_nodes(graph)
        # Per family, per member axis: the indices each group removes there. Where no index of an axis is
        # in two rows (of one table or of two families) a selection removes the sum of its rows' counts
        # (fast); elsewhere the distinct indices are counted, as `Selection.removed` does.
        entries: dict[tuple[str, int], list[np.ndarray]] = {}
        for family in space.families:
            for member in family.members:
                entries.setdefault((member.value, member.axis), []).append(member.table[member.table >= 0])
        self._overlapping = {key for key, parts in entries.items()
                             if len(np.unique(np.concatenate(parts))) < sum(len(p) for p in parts)}
        self._rows = {family.id: [((m.value, m.axis), (m.table >= 0).sum(axis=1), m) for m in family.members]
                      for family in space.families}
        self._touching: dict[str, list[int]] = {}  # value name -> indices of the ops reading or writing it
        for index, op in enumerate(self._order):
            for value in (*graph.inputs_of(op), *graph.outputs_of(op)):
                if value is not None:
                    self._touching.setdefault(value.name, []).append(index)
        # Parameters as `cost` counts them: floating-point initializers and `value` tensors of Constant ops
        self._params: dict[str, tuple[tuple[int, ...], object]] = {}  # name -> (shape, the node whose life counts)
        for value in graph.initializers:
            if value.tensor.data_type in FLOAT_TYPES:
                self._params[value.name] = (tuple(value.tensor.shape), value)
        for op in graph.ops():
            tensor = op.attributes.get("value")
            if op.op_type == "Constant" and op.domain in ("", "ai.onnx") and tensor is not None \
                    and tensor.HasField("t") and tensor.t.data_type in FLOAT_TYPES:
                (output,) = graph.outputs_of(op)
                if output is not None:
                    self._params[output.name] = (tuple(tensor.t.dims), op)

    def _alive(self, live: set) -> set[str]:
        """Names of the parameters that cleanup keeps given the live nodes (unused graph inputs and names
        read from outside the nodes stay)."""
        kept = set()
        for name, (_, node) in self._params.items():
            if node in live or name in self._keep or (not hasattr(node, "op_type") and self.graph.is_input(node)):
                kept.add(name)
        return kept

    def _live_without(self, erased: tuple[int, ...]) -> tuple[set, set[str]]:
        """Live nodes once the regions `erased` are gone (their ops, and their exits' edges into the merges),
        and the names of the merges that lose inputs."""
        regions = [self.erasing.regions[r] for r in erased]
        gone_ops = {name for region in regions for name in region.ops}
        exits = {region.exit for region in regions}
        merges = {region.merge for region in regions}
        graph = self.graph
        live: set = set()
        stack: list = list(graph.outputs)
        while stack:
            node = stack.pop()
            if node in live:
                continue
            if hasattr(node, "op_type"):
                if node.name in gone_ops:
                    continue
                live.add(node)
                for value in graph.inputs_of(node):
                    if value is not None and not (node.name in merges and value.name in exits):
                        stack.append(value)
                stack.extend(v for v in graph.nx.predecessors(node) if not hasattr(v, "op_type")
                             and v not in graph.inputs_of(node))  # values a subgraph reads by name
            else:
                live.add(node)
                stack.extend(graph.nx.predecessors(node))
        return live, merges

    def measure(self, selection) -> Measured:
        """Parameters and FLOPs of the compact model for `selection` (a Selection of this space)."""
        live, merges = (self._live_without(selection.erased) if selection.erased else (self._live, set()))
        cut: dict[str, dict[int, int]] = {}  # value name -> {axis: indices removed there}
        shared: dict[tuple[str, int], list[np.ndarray]] = {}
        for family_id, groups in selection.pruned.items():
            if not groups:
                continue
            rows = np.asarray(groups, dtype=np.int64)
            for key, counts, member in self._rows[family_id]:
                if key in self._overlapping:
                    shared.setdefault(key, []).append(member.indices(rows))
                else:
                    axes = cut.setdefault(key[0], {})
                    axes[key[1]] = axes.get(key[1], 0) + int(counts[rows].sum())
        for (name, axis), parts in shared.items():
            cut.setdefault(name, {})[axis] = len(np.unique(np.concatenate(parts)))
        # Parameters: each kept tensor's shape with the removed indices taken off its member axes
        parameters = 0
        for name in self._alive(live):
            shape, _ = self._params[name]
            axes = cut.get(name)
            if axes:
                shape = tuple(d - axes.get(i, 0) for i, d in enumerate(shape))
            parameters += int(np.prod(shape, dtype=np.int64))
        # FLOPs: the ops touching a shortened value are re-costed on the shortened shapes
        overlay = {}
        for name, axes in cut.items():
            found = self.types.get(name)
            if found is None or found.shape is None:
                continue
            overlay[name] = replace(found, shape=tuple(
                d - axes[i] if i in axes and isinstance(d, int) else d for i, d in enumerate(found.shape)))
        types = ChainMap(overlay, self.types)
        recost = {index for name in overlay for index in self._touching.get(name, ())}
        flops = 0
        for index, op in enumerate(self._order):
            if op not in live:
                continue
            if op.name in merges and op.op_type == "Add":
                continue  # it became an Identity, which cleanup removes
            found = self._costs[index]
            if index in recost:
                rule = rule_for(op)
                try:
                    found = rule.cost(OpView.of(self.graph, op, types)) if rule is not None and rule.cost is not None else None
                except (IndexError, ValueError, TypeError):  # as in CostAnalysis
                    found = None
            flops += found.flops if found is not None else 0
        return Measured(parameters, flops)

"""`erase-space`: find the operators and blocks that can be erased whole (DESIGN §6, OTOv3).

A region is a subgraph whose exit feeds an Add or Sum that another path from its entry also reaches:
residual branches x + F(x) (identity or projection shortcuts), transformer attention and MLP
sub-blocks, parallel summed branches. On the data-flow graph of ops (ops that depend on no graph input
are constants), the entry of the branch ending in merge input `a` is the nearest common ancestor value of
`a` and the merge's other input(s), the value where the two paths fork; the region is every op on a path
from the entry to `a`. It must have a single exit: nothing outside reads its values but the merge
(through `a`). It may read side inputs that do not depend on its entry (an attention mask, rotary
tables); they are left in place. A region must hold parameters, the group that training drives to zero.
What does not fit is not a region.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

import networkx as nx

from onnxprune.ir import FLOAT_TYPES, Graph, Op, Value
from onnxprune.ops.zeroing import zeroing_parameters
from onnxprune.passmanager import AnalysisPass
from onnxprune.space import ErasingSpace, Region

from .cost import CostAnalysis
from .shapes import ShapesAnalysis

MERGES = {"Add", "Sum"}
#: A merge of more inputs offers no regions: each branch's fork search walks back from all the others,
#: so the cost grows with the square of the input count (a Sum of 2,000 branches took 9 s), and no
#: network people erase blocks from sums that many.
MAX_MERGE_INPUTS = 64
_ROOT = "<inputs>"


@dataclass(frozen=True)
class EraseSpaceOptions:
    """Options of `erase-space`."""

    input_shapes: tuple[str, ...] = ()  # NAME=DIMS bindings for the cost figures


class EraseSpaceAnalysis(AnalysisPass):
    """Find erasable regions (residual branches, attention/MLP sub-blocks, summed branches) and which of
    them may not be erased together."""

    name = "erase-space"
    Options = EraseSpaceOptions

    def run(self, graph: Graph, am) -> ErasingSpace:
        return find_regions(graph, am.get(CostAnalysis, input_shapes=self.options.input_shapes),
                            am.get(ShapesAnalysis, input_shapes=self.options.input_shapes))


def _dataflow(graph: Graph) -> tuple[nx.DiGraph, list[Op]]:
    """Ops that depend on a graph input, with edges along the values they pass; a virtual root feeds the
    ops that read graph inputs."""
    order = graph.topological_order()
    live: set[Value] = {v for v in graph.inputs if not v.is_initializer}
    flow = nx.DiGraph()
    flow.add_node(_ROOT)
    ops = []
    for op in order:
        reads = [v for v in graph.inputs_of(op) + graph.captures_of(op) if v is not None and v in live]
        if not reads:
            continue  # constant: depends on no input
        ops.append(op)
        flow.add_node(op)
        for value in reads:
            producer = graph.producer(value)
            flow.add_edge(producer if producer is not None else _ROOT, op)
        live.update(v for v in graph.outputs_of(op) if v is not None)
    return flow, ops


def find_regions(graph: Graph, cost=None, types: dict | None = None) -> ErasingSpace:
    """The ErasingSpace of `graph` (see module docstring). With `types` (the shapes analysis), a branch
    is a region only where the merge keeps its output shape without it (no broadcasting across the
    region, DESIGN §6): one remaining input has the output's shape."""
    flow, ops = _dataflow(graph)
    if len(ops) == 0:
        return ErasingSpace(())
    position = {op: i for i, op in enumerate(ops)}
    op_cost = {c.name: c.cost for c in cost.ops} if cost is not None else {}
    found: list[Region] = []
    by_merge: dict[str, list[int]] = {}
    for merge in ops:
        if merge.op_type not in MERGES or merge.domain not in ("", "ai.onnx"):
            continue
        inputs = graph.inputs_of(merge)
        if not 2 <= len(inputs) <= MAX_MERGE_INPUTS or any(v is None for v in inputs) or \
                len({v.name for v in inputs}) != len(inputs):
            continue
        for slot, branch in enumerate(inputs):
            others = [v for i, v in enumerate(inputs) if i != slot]
            if types is not None and not _keeps_shape(types, others, graph.outputs_of(merge)[0]):
                continue  # without the branch the merge would broadcast to another shape
            region = _region(graph, flow, position, merge, slot, branch, others)
            if region is None:
                continue
            members = sorted(region[1], key=position.__getitem__)
            parameters = _parameters(graph, flow, members)
            group = zeroing_parameters(graph, branch, region[1])
            if not parameters or not group or not set(group) <= set(parameters):
                continue  # nothing zeroes the exit (rotary or GELU arithmetic), or it is shared with others
            made = [v.name for op in members for v in graph.outputs_of(op) if v is not None]
            found.append(Region(
                len(found), region[0].name, branch.name, merge.name or merge.label, slot,
                tuple(op.name or op.label for op in members), tuple(parameters), tuple(group),
                sum(graph.value(p).tensor.size for p in parameters),
                sum((op_cost.get(op.name).flops if op_cost.get(op.name) else 0) for op in members),
                values=tuple(made + list(parameters))))
            by_merge.setdefault(merge, []).append(found[-1].id)
    found = _with_parents(found)
    exclusive = tuple(tuple(ids) for merge, ids in by_merge.items() if len(ids) == len(graph.inputs_of(merge)))
    return ErasingSpace(tuple(found), exclusive)


def _keeps_shape(types: dict, others: list[Value], output: Value | None) -> bool:
    """True if one of the merge's remaining inputs already has the output's shape: same rank, and no
    axis where it is 1 (or unknown) and the output is not. Symbolic dims pass (shape inference names
    one batch N and unk__1 on two sides of a block)."""
    out = types.get(output.name) if output is not None else None
    if out is None or out.shape is None:
        return False

    def same(d, o) -> bool:
        if isinstance(d, int) and isinstance(o, int):
            return d == o
        if isinstance(d, int):
            return d != 1  # a fixed size against a symbolic output: equal unless d broadcasts
        return d is not None and o is not None and (isinstance(o, str) or o != 1)

    for value in others:
        found = types.get(value.name)
        if found is not None and found.shape is not None and len(found.shape) == len(out.shape) and \
                all(same(d, o) for d, o in zip(found.shape, out.shape)):
            return True
    return False


def _region(graph: Graph, flow: nx.DiGraph, position: dict[Op, int], merge: Op, slot: int, branch: Value,
            others: list[Value]) -> tuple[Value, set[Op]] | None:
    """(entry, ops) of the branch that ends in `branch` (input `slot` of `merge`), or None."""
    exit_op = graph.producer(branch)
    if exit_op is None or exit_op not in flow or graph.is_output(branch):
        return None
    if graph.uses(branch) != [(merge, slot)]:
        return None  # the exit feeds something besides the merge
    found = _fork(graph, flow, position, exit_op, others)
    if found is None:
        return None
    fork, above = found
    entries = [fork] if isinstance(fork, Value) else [v for v in graph.outputs_of(fork) if v is not None]
    for entry in entries:
        starts = [op for op in graph.consumers(entry) if op in above]
        if not starts or (len(entries) > 1 and not _reaches(graph, entry, others, flow)):
            continue  # (a single-output fork reaches the other inputs: that is what made it the fork)
        inside, stack = set(starts), list(starts)
        while stack:  # forward from the entry, staying among the exit's ancestors
            for successor in flow.successors(stack.pop()):
                if successor in above and successor not in inside:
                    inside.add(successor)
                    stack.append(successor)
        return (entry, inside) if _closed(graph, inside, branch) else None
    return None


def _fork(graph: Graph, flow: nx.DiGraph, position: dict[Op, int], exit_op: Op, others: list[Value]):
    """The latest op (or graph input) that is an ancestor of both `exit_op` and the other merge inputs,
    and the exit's ancestors after it. Walks back from both sides at once, latest first, so the cost is
    the size of the block, not of the model."""
    inputs = {v: -1 - i for i, v in enumerate(graph.inputs)}

    def key(node) -> int:
        return inputs[node] if isinstance(node, Value) else position[node]

    def parents(node):
        if isinstance(node, Value):
            return []
        found = [p for p in flow.predecessors(node) if p != _ROOT]
        return found + [v for v in graph.inputs_of(node) if v is not None and v in inputs]

    seen: dict = {exit_op: 1}
    heap = [(-key(exit_op), 0, exit_op)]
    counter = 1
    for value in others:
        start = graph.producer(value) if graph.producer(value) in flow else (value if value in inputs else None)
        if start is None:
            return None
        seen[start] = seen.get(start, 0) | 2
        heap.append((-key(start), counter, start))
        counter += 1
    heapq.heapify(heap)
    above = set()
    while heap:
        _, _, node = heapq.heappop(heap)
        if seen[node] == 3:
            return node, above
        if seen[node] & 1 and not isinstance(node, Value):
            above.add(node)
        for parent in parents(node):
            if parent not in seen:
                seen[parent] = seen[node]
                heapq.heappush(heap, (-key(parent), counter, parent))
                counter += 1
            elif seen[parent] | seen[node] != seen[parent]:
                seen[parent] |= seen[node]
    return None


def _reaches(graph: Graph, entry: Value, others: list[Value], flow: nx.DiGraph) -> bool:
    """True if some other merge input is `entry` or is computed from it."""
    readers = [op for op in graph.consumers(entry) if op in flow]
    below = set(readers).union(*(nx.descendants(flow, op) for op in readers)) if readers else set()
    return any(v is entry or graph.producer(v) in below for v in others)


def _closed(graph: Graph, inside: set[Op], exit_value: Value) -> bool:
    """Single exit: values made inside are read only inside, the exit only by the merge."""
    for op in inside:
        for value in graph.outputs_of(op):
            if value is None or value is exit_value:
                continue
            if graph.is_output(value) or any(reader not in inside for reader in graph.consumers(value)):
                return False
    return True


def _parameters(graph: Graph, flow: nx.DiGraph, members: list[Op]) -> list[str]:
    """Floating-point initializers (rank >= 1) that only the region reads, directly or through constant
    ops (those outside the data flow, a Transpose of a weight, say) that only the region reads."""
    inside = set(members)
    work = list(members)
    while work:  # take in constant producers whose every reader is inside
        for value in graph.inputs_of(work.pop()):
            producer = graph.producer(value) if value is not None else None
            if producer is not None and producer not in inside and producer not in flow and \
                    all(reader in inside for v in graph.outputs_of(producer) if v is not None
                        for reader in graph.consumers(v)):
                inside.add(producer)
                work.append(producer)
    found = []
    for op in inside:
        for value in graph.inputs_of(op):
            if value is None or not value.is_initializer or value.name in found:
                continue
            tensor = value.tensor
            if tensor.data_type in FLOAT_TYPES and len(tensor.shape) >= 1 and \
                    all(consumer in inside for consumer in graph.consumers(value)):
                found.append(value.name)
    return sorted(found)


def _with_parents(regions: list[Region]) -> list[Region]:
    """Each region's parent: the smallest other region whose ops strictly contain its ops."""
    sets = [set(r.ops) for r in regions]
    out = []
    for r, ops in zip(regions, sets):
        containing = [o for o, other in zip(regions, sets) if o.id != r.id and ops < other]
        parent = min(containing, key=lambda o: len(o.ops)).id if containing else None
        out.append(replace(r, parent=parent))
    return out

"""`cleanup`: remove what does not contribute to the outputs and put ops in topological order."""

from __future__ import annotations

from dataclasses import dataclass

from onnxprune.facts import FUNCTION_FACTS
from onnxprune.ir import Graph, Op
from onnxprune.passmanager import PassResult, TransformPass


@dataclass(frozen=True)
class CleanupOptions:
    """Options of `cleanup`."""

    keep_identity: bool = False  # leave Identity ops in place


class Cleanup(TransformPass):
    """Remove Identity ops, dead ops, unused initializers and values; sort ops topologically.

    Graph inputs and outputs never change (an Identity feeding a graph output is folded by renaming
    its input, when that is safe).
    """

    name = "cleanup"
    Options = CleanupOptions
    keeps = FUNCTION_FACTS  # computes the same function

    def run(self, graph: Graph, am) -> PassResult:
        version = graph.version
        keep = graph.names_used_outside()
        if not self.options.keep_identity:
            for op in [op for op in graph.ops() if op.op_type == "Identity" and op.domain in ("", "ai.onnx")]:
                remove_identity(graph, op, keep)
        remove_dead_ops(graph)
        remove_unused_values(graph, keep)
        graph.renumber(graph.topological_order())
        return PassResult.changed() if graph.version != version else PassResult.unchanged()


def remove_identity(graph: Graph, op: Op, keep: set[str] = frozenset()) -> bool:
    """Bypass and delete an Identity op; return False where that would change the model's interface
    or touch a name that a subgraph, training info or annotation (`keep`) refers to."""
    (source,) = graph.inputs_of(op)
    (target,) = graph.outputs_of(op)
    if source is None or target is None or graph.captures_of(op) or {source.name, target.name} & keep:
        return False
    if any(not isinstance(k, int) for _, _, k in graph.nx.out_edges(target, keys=True)):
        return False  # a subgraph reads the output by name
    if not graph.is_output(target):
        graph.replace_uses(target, source)
        graph.remove_op(op)
        return True
    # The output's name is part of the interface: give it to the source, if the source is an
    # ordinary intermediate value (not an input, initializer, output, or read by name in a subgraph).
    if graph.producer(source) is None or graph.is_output(source) or \
            any(not isinstance(k, int) for _, _, k in graph.nx.out_edges(source, keys=True)):
        return False
    name, declared = target.name, target.info
    graph.replace_uses(target, source)
    graph.remove_op(op)
    graph.rename_value(source, name)
    source.info = declared
    return True


def live_nodes(graph: Graph) -> set:
    """Every op and value that some graph output depends on (one backward sweep)."""
    live: set = set()
    stack: list = list(graph.outputs)
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend(graph.nx.predecessors(node))
    return live


def remove_dead_ops(graph: Graph, among: set | None = None) -> None:
    """Delete ops whose results reach no graph output; with `among`, only those of its ops (a rewrite
    that made some ops dead deletes those and leaves dead code it did not create to the caller)."""
    live = live_nodes(graph)
    for op in [op for op in graph.ops() if op not in live and (among is None or op in among)]:
        for value in graph.outputs_of(op):
            if value is not None:
                for consumer, slot in graph.uses(value):  # readers are dead too; detach them first
                    graph.set_input(consumer, slot, None)
        graph.remove_op(op, remove_outputs=False)  # its outputs go with remove_unused_values


def remove_unused_values(graph: Graph, keep: set[str] = frozenset()) -> None:
    """Delete initializers and other values nothing reads (graph inputs are part of the interface, and
    names in `keep` are read from outside the graph's nodes)."""
    for value in list(graph.values()):
        if not graph.nx.degree(value) and not graph.is_input(value) and not graph.is_output(value) \
                and value.name not in keep:
            graph.remove_value(value)


__all__ = ["Cleanup", "live_nodes", "remove_dead_ops", "remove_identity", "remove_unused_values"]

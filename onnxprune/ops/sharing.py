"""Initializers that several roles share, and giving each role its own copy ("untie").

torch's TorchScript exporter de-duplicates initializers of equal value and feeds the duplicates
through `Identity` ops. On an untrained model that ties a BatchNorm's scale (all ones) to its running
variance, its shift (all zeros) to its running mean, both to the next BatchNorm of the same width, and
zero conv biases across unrelated layers. Analysis then couples layers that have nothing in common,
and training trains one tensor for several roles while the running-statistics write-back overwrites
it. Those ties are export artifacts, not the model: each role gets its own initializer (the same
immutable bytes, nothing copied until a role changes them).

True weight tying (one tensor read directly by two ops as the same parameter, such as a tied
embedding and LM head) is kept unless `everything=True`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import FLOAT_TYPES, Graph, Op, Value

#: BatchNormalization input slots: 1 scale, 2 shift (parameters), 3 mean, 4 variance (statistics).
BATCH_NORM_STATISTICS = (3, 4)
_ROLE = {1: "scale", 2: "bias", 3: "mean", 4: "var"}


@dataclass(frozen=True)
class Untied:
    """One initializer that several roles read, and the new initializers its roles now read."""

    source: str
    copies: tuple[str, ...]
    why: str  # "identity": fed through Identity ops; "statistics": a BatchNorm buffer; "shared": everything=True


def untie(graph: Graph, *, everything: bool = False) -> list[Untied]:
    """Give every role of a shared initializer its own initializer (in place); return what was split.

    - An `Identity` reading an initializer becomes an initializer of its output's name (the exporter's
      de-duplication signature; always exact: Identity computes nothing).
    - A BatchNorm running mean or variance read anywhere else gets its own copy: statistics are
      buffers that training writes back, never parameters.
    - With `everything`, every float initializer read by several op slots gets one copy per slot.
    """
    found: dict[str, list[str]] = {}
    why: dict[str, str] = {}

    def record(source: Value, copy: str, reason: str) -> None:
        found.setdefault(source.name, []).append(copy)
        why.setdefault(source.name, reason)

    for op in graph.topological_order():  # chains of Identities resolve front to back
        if _is_identity_of_initializer(graph, op):
            (source,) = graph.inputs_of(op)
            (target,) = graph.outputs_of(op)
            graph.remove_op(op, remove_outputs=False)
            graph.make_initializer(target, source.tensor)
            root = _root_of(source, found)
            record(graph.value(root), target.name, "identity")
    for op in graph.ops():
        if op.op_type == "BatchNormalization" and op.domain in ("", "ai.onnx"):
            for slot in BATCH_NORM_STATISTICS:
                value = graph.inputs_of(op)[slot] if slot < op.num_inputs else None
                if value is not None and value.tensor is not None and len(graph.uses(value)) > 1:
                    record(value, _own_copy(graph, op, slot, value), "statistics")
    if everything:
        for value in list(graph.initializers):
            if _is_float_weight(value):
                for op, slot in graph.uses(value)[1:]:
                    record(value, _own_copy(graph, op, slot, value), "shared")
    for source in list(found):
        value = graph.get_value(source)
        if value is not None and not graph.uses(value) and not graph.is_output(value) and \
                source not in graph.names_used_outside():
            graph.remove_value(value)  # only Identities read it: each role has its own copy now
    return [Untied(source, tuple(copies), why[source]) for source, copies in found.items()
            if len(copies) + bool(graph.get_value(source) is not None) > 1]


def describe_untied(untied: list[Untied], limit: int = 3) -> str:
    """One line for the user: how many shared tensors were split, into how many, the first few, and why."""
    reasons = {"identity": "shared by the exporter through Identity ops",
               "statistics": "BatchNorm statistics read elsewhere", "shared": "true tying, split by --untie-all"}
    why = sorted({reasons[u.why] for u in untied})
    shown = ", ".join(f"{u.source} (+{len(u.copies)})" for u in untied[:limit])
    more = f", +{len(untied) - limit} more" if len(untied) > limit else ""
    return (f"untied {len(untied)} initializers that several roles read into {sum(len(u.copies) for u in untied)} "
            f"copies ({'; '.join(why)}): {shown}{more}")


def shared_roles(graph: Graph) -> dict[str, list[str]]:
    """Initializers that `untie` (without `everything`) would split, with the roles reading each:
    empty for a model whose every trained tensor has one role."""
    shared: dict[str, list[str]] = {}
    for value in graph.initializers:
        uses = graph.uses(value)
        via_identity = any(_is_identity_of_initializer(graph, op) for op, _ in uses)
        statistic = any(op.op_type == "BatchNormalization" and slot in BATCH_NORM_STATISTICS for op, slot in uses)
        if len(uses) > 1 and (via_identity or statistic):
            shared[value.name] = [f"{op.label}:{slot}" for op, slot in uses]
    return shared


def _is_identity_of_initializer(graph: Graph, op: Op) -> bool:
    if op.op_type != "Identity" or op.domain not in ("", "ai.onnx") or op.num_inputs != 1:
        return False
    (source,) = graph.inputs_of(op)
    (target,) = graph.outputs_of(op)
    return source is not None and source.tensor is not None and target is not None \
        and not graph.is_output(target) and not graph.captures_of(op)


def _root_of(source: Value, found: dict[str, list[str]]) -> str:
    """The initializer an Identity chain started from (a copy made earlier in this run maps back)."""
    for root, copies in found.items():
        if source.name in copies:
            return root
    return source.name


def _own_copy(graph: Graph, op: Op, slot: int, value: Value) -> str:
    base = f"{op.name}.{_ROLE[slot]}" if op.op_type == "BatchNormalization" and op.name else f"{value.name}.{slot}"
    copy = graph.add_initializer(graph.fresh_name(base), value.tensor)
    graph.set_input(op, slot, copy)
    return copy.name


def _is_float_weight(value: Value) -> bool:
    tensor = value.tensor
    return tensor is not None and tensor.data_type in FLOAT_TYPES and len(tensor.shape) >= 1

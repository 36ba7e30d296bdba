"""Which parameters make an op's whole output exactly zero (for erasing regions, DESIGN §6).

A region can be erased exactly when zeroing a set of its parameters makes its exit tensor zero: then
the merge it feeds adds nothing, and removing the region changes no output (compact ≡ masked). Each op's
registry record says how its output can be all zero (`OpRecord.zero`):

* `PRODUCERS`: zero when the listed input slots (weights, biases, norm scale and shift) are zero;
* `ANY`: zero when any input is zero (Mul); `ALL`: zero when every input is zero (Add, Sum, Concat);
* `FIRST`: zero when input 0 is zero, the op maps 0 to 0 (activations, layout ops, pooling).

`zeroing_parameters` walks back from the exit through these rules; an op whose record states none
stops the walk (fail closed: the region is not erasable).
"""

from __future__ import annotations

from ..ir import Graph, Op, Value
from .registry import ALL, ANY, FIRST, PRODUCERS, is_transparent, record_of


def parameter_source(graph: Graph, value: Value | None) -> str | None:
    """The initializer that `value` is, or is a zero-preserving relayout of (Transpose(W), say)."""
    for _ in range(8):
        if value is None:
            return None
        if value.is_initializer:
            return value.name
        producer = graph.producer(value)
        if producer is None or not is_transparent(producer):
            return None
        value = graph.inputs_of(producer)[0]
    return None


def zeroing_parameters(graph: Graph, value: Value, inside: set[Op], depth: int = 0) -> list[str] | None:
    """Initializers whose zeroing makes `value` (computed by ops in `inside`) exactly zero, or None."""
    op = graph.producer(value)
    if op is None or op not in inside or depth > 32:
        return None
    record = record_of(op)
    zero = record.zero if record is not None else None
    if zero is None:
        return None
    inputs = graph.inputs_of(op)
    kind = zero.kind
    if kind == PRODUCERS:
        slots = [s for s in zero.slots if s < len(inputs) and inputs[s] is not None]
        found = [parameter_source(graph, inputs[s]) for s in slots]
        if op.op_type == "Gemm" and (op.attr("alpha", 1.0) == 0):
            return None
        return found if found and all(found) else None
    if kind == ANY:
        for v in inputs:
            source = parameter_source(graph, v)
            if source is not None:
                return [source]
        for v in inputs:
            found = zeroing_parameters(graph, v, inside, depth + 1) if v is not None else None
            if found is not None:
                return found
        return None
    if kind == ALL:
        total: list[str] = []
        for v in inputs:
            if v is None:
                continue
            source = parameter_source(graph, v)
            found = [source] if source else zeroing_parameters(graph, v, inside, depth + 1)
            if found is None:
                return None
            total += [f for f in found if f not in total]
        return total or None
    if kind == FIRST and inputs and inputs[0] is not None:
        if op.op_type == "Pad" and len(inputs) > 2 and inputs[2] is not None:
            return None  # a constant pad value may be nonzero
        source = parameter_source(graph, inputs[0])
        return [source] if source is not None else zeroing_parameters(graph, inputs[0], inside, depth + 1)
    return None

"""Reading and rewriting the constant integers that ops use to state sizes (Reshape shapes, Split sizes,
Slice bounds, Gather indices). Rewrites are copy-on-write: a constant another op shares is never
edited; the op gets a fresh constant (or a fresh Concat of shape pieces) instead."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, Value
from .rule import constant_value, static_value


def shape_elements(graph: Graph, value: Value | None, types: dict | None = None) -> list[int | None] | None:
    """The elements of a 1-D int shape tensor: an int where it is a constant, None where it is computed
    at run time; None altogether if the tensor's length is unknown. Follows Concat of pieces and
    Unsqueeze/Cast of scalars, as exporters build shapes."""
    if value is None:
        return None
    constant = constant_value(graph, value)
    if constant is None:
        constant = static_value(graph, value, types)  # computed, but always the same
    if constant is not None:
        return [int(v) for v in np.asarray(constant).reshape(-1)]
    producer = graph.producer(value)
    if producer is None or producer.domain not in ("", "ai.onnx"):
        return None
    if producer.op_type == "Concat":
        elements: list[int | None] = []
        for piece in graph.inputs_of(producer):
            found = shape_elements(graph, piece, types)
            if found is None:
                length = _static_length(graph, piece, types)
                if length is None:
                    return None
                found = [None] * length
            elements.extend(found)
        return elements
    if producer.op_type in ("Unsqueeze", "Cast", "Identity"):
        inner = graph.inputs_of(producer)[0]
        found = shape_elements(graph, inner, types)
        if found is not None and len(found) == 1:
            return found
        return [None] if _is_scalar_like(graph, inner) else None
    return None


def _static_length(graph: Graph, value: Value | None, types: dict | None = None) -> int | None:
    """Length of a 1-D value if its declared or inferred shape says so (pieces computed at run time)."""
    producer = graph.producer(value) if value is not None else None
    if producer is not None and producer.op_type == "Unsqueeze":
        return 1  # exporters unsqueeze scalars into one-element pieces
    shape = value.shape if value is not None else None
    if shape is None and value is not None and types is not None and value.name in types:
        shape = types[value.name].shape
    if shape is not None and len(shape) == 1 and isinstance(shape[0], int):
        return shape[0]
    return None


def _is_scalar_like(graph: Graph, value: Value | None) -> bool:
    producer = graph.producer(value) if value is not None else None
    return producer is not None and producer.op_type in ("Gather", "Squeeze", "ReduceProd", "Div", "Mul", "Cast")


def replace_input_constant(graph: Graph, op: Op, slot: int, array: np.ndarray) -> None:
    """Give `op` a fresh initializer holding `array` at input `slot`."""
    old = graph.inputs_of(op)[slot]
    name = graph.fresh_name(f"{old.name if old is not None else op.op_type}_pruned")
    graph.set_input(op, slot, graph.add_initializer(name, array))


def rewrite_shape_elements(graph: Graph, op: Op, slot: int, changes: dict[int, int], types: dict | None = None
                           ) -> None:
    """Change elements `changes` (position -> new int) of the shape tensor at input `slot` of `op`,
    which `shape_elements` must have traced; other users of the old shape keep it."""
    if not changes:
        return
    value = graph.inputs_of(op)[slot]
    constant = constant_value(graph, value)
    if constant is None:
        constant = static_value(graph, value, types)
    if constant is not None:
        array = np.array(constant, copy=True).reshape(-1)
        for position, new in changes.items():
            array[position] = new
        replace_input_constant(graph, op, slot, array.astype(constant.dtype).reshape(np.shape(constant)))
        return
    concat = graph.producer(value)
    assert concat is not None and concat.op_type == "Concat", "rewrite_shape_elements needs a traced shape"
    pieces = graph.inputs_of(concat)
    new_pieces: list[Value | str] = []
    position = 0
    for piece in pieces:
        length = len(shape_elements(graph, piece, types) or [None] * (_static_length(graph, piece, types) or 1))
        touched = {p - position: v for p, v in changes.items() if position <= p < position + length}
        if touched:
            found = shape_elements(graph, piece, types)
            array = np.array([touched.get(i, found[i]) for i in range(length)], dtype=np.int64)
            new_pieces.append(graph.add_initializer(graph.fresh_name(f"{piece.name}_pruned"), array))
        else:
            new_pieces.append(piece)
        position += length
    out = graph.fresh_name(f"{value.name}_pruned")
    graph.add_op("Concat", new_pieces, [out], name=graph_unique_op_name(graph, concat.name),
                 attributes={"axis": 0})
    graph.set_input(op, slot, out)


def graph_unique_op_name(graph: Graph, base: str) -> str:
    """An op name derived from `base` that no op has yet."""
    names = {op.name for op in graph.ops()}
    if not base:
        return ""
    candidate, i = f"{base}_pruned", 1
    while candidate in names:
        candidate, i = f"{base}_pruned_{i}", i + 1
    return candidate

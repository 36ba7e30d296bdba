"""Reading and rewriting the constant integers that ops use to state sizes (Reshape shapes, Split sizes,
Slice bounds, Gather indices). Rewrites are copy-on-write: a constant another op shares is never
edited; the op gets a fresh constant (or a fresh Concat of shape pieces) instead."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ir import Graph, Op, Value
from .rule import STAND_INS, constant_value, static_value
from .shape_refine import evaluate


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
        return concat_elements(graph, graph.inputs_of(producer), types,
                               lambda piece: shape_elements(graph, piece, types))
    if producer.op_type in ("Unsqueeze", "Cast", "Identity"):
        inner = graph.inputs_of(producer)[0]
        found = shape_elements(graph, inner, types)
        if found is not None and len(found) == 1:
            return found
        return [None] if _is_scalar_like(graph, inner) else None
    return None


def concat_elements(graph: Graph, pieces, types: dict | None, elements_of) -> list | None:
    """The elements of a Concat of 1-D pieces: each piece's own (`elements_of`), or unknowns as many as
    its static length; None when a piece has neither."""
    joined: list = []
    for piece in pieces:
        found = elements_of(piece)
        if found is None:
            length = _static_length(graph, piece, types)
            if length is None:
                return None
            found = [None] * length
        joined.extend(found)
    return joined


def _static_length(graph: Graph, value: Value | None, types: dict | None = None) -> int | None:
    """Length of a 1-D value if its declared or inferred shape says so (pieces computed at run time)."""
    producer = graph.producer(value) if value is not None else None
    if producer is not None and producer.op_type == "Unsqueeze":
        return 1  # exporters unsqueeze scalars into one-element pieces
    if producer is not None and producer.op_type == "Reshape" and _is_vector_reshape(graph, producer):
        return 1  # the dynamo exporter reshapes scalars to [-1]
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
    """Change elements `changes` (position -> new int) of the shape tensor at input `slot` of `op`;
    other users of the old shape keep it. Only literals are folded: an element computed from a Shape
    at run time stays computed (a dimension the user bound for the analysis stays dynamic in the
    model), so a piece mixing rewritten and computed elements is rebuilt element by element."""
    if not changes:
        return
    value = graph.inputs_of(op)[slot]
    constant = constant_value(graph, value)
    if constant is None:
        constant = fixed_value(graph, value)  # arithmetic on literals only: never a size read at run time
    if constant is not None:
        array = np.array(constant, copy=True).reshape(-1)
        for position, new in changes.items():
            array[position] = new
        replace_input_constant(graph, op, slot, array.astype(constant.dtype).reshape(np.shape(constant)))
        return
    concat = graph.producer(value)
    pieces = flat_pieces(graph, value)
    new_pieces: list[Value | str] = []
    position = 0
    for piece in pieces:
        traced = trace_elements(graph, piece, types)
        length = len(traced) if traced is not None else _static_length(graph, piece, types)
        assert length is not None, f"rewrite_shape_elements: the length of {piece.name} is unknown"
        touched = {p - position: v for p, v in changes.items() if position <= p < position + length}
        fixed = fixed_value(graph, piece) if touched else None
        if not touched:
            new_pieces.append(piece)
        elif fixed is not None or length == 1:
            array = np.array([touched.get(i, fixed.reshape(-1)[i] if fixed is not None else 0) for i in range(length)],
                             dtype=np.int64)
            new_pieces.append(graph.add_initializer(graph.fresh_name(f"{piece.name}_pruned"), array))
        else:  # keep the untouched elements computed at run time (sizes of dynamic or bound dims)
            for i in range(length):
                if i in touched:
                    new_pieces.append(graph.add_initializer(graph.fresh_name(f"{piece.name}_pruned"),
                                                            np.array([touched[i]], dtype=np.int64)))
                    continue
                bounds = [graph.add_initializer(graph.fresh_name(f"{piece.name}_{what}"), np.array([v], np.int64))
                          for what, v in (("start", i), ("end", i + 1), ("axis", 0))]
                element = graph.fresh_name(f"{piece.name}_{i}")
                graph.add_op("Slice", [piece, *bounds], [element],
                             name=graph_unique_op_name(graph, f"{concat.name if concat is not None else op.name}_keep"))
                new_pieces.append(element)
        position += length
    out = graph.fresh_name(f"{value.name}_pruned")
    graph.add_op("Concat", new_pieces, [out],
                 name=graph_unique_op_name(graph, concat.name if concat is not None and concat.op_type == "Concat" else ""),
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


# ---------------------------------------------------------------------- run-time shape elements
class Element(NamedTuple):
    """One element of a shape vector as exporters compute it: `coef` times a product of dynamic
    dimensions (`dynamic`), and, when the element is exactly one dimension read by a Shape op
    (through Gather/Slice/Concat/Unsqueeze/Cast), that dimension as (value name, axis) in `read`
    (`scaled` when a static read is multiplied by a constant)."""

    coef: int
    dynamic: bool
    read: tuple[str, int] | None = None
    scaled: bool = False  # a static `read` times a constant (GQA's key/value heads x repeats)
    shaped: bool = False  # computed from a Shape op's output (a bound dimension may vary at run time)


def trace_elements(graph: Graph, value: Value | None, types: dict | None, depth: int = 0
                   ) -> list[Element | None] | None:
    """The elements of a 1-D integer shape vector (None where one is not a monomial of dimensions), or
    None if its length is unknown. Dimensions that are symbolic, unknown or one of prune-space's prime
    stand-ins count as dynamic."""
    if value is None or depth > 16:
        return None
    constant = constant_value(graph, value)
    if constant is not None:
        array = np.asarray(constant)
        return [Element(int(v), False) for v in array.reshape(-1)] if array.dtype.kind in "iu" else None
    producer = graph.producer(value)
    if producer is None or producer.domain not in ("", "ai.onnx"):
        return None
    kind, inputs = producer.op_type, graph.inputs_of(producer)
    if kind == "Shape":
        found = types.get(inputs[0].name) if types is not None and inputs[0] is not None else None
        if found is None or found.shape is None:
            return None
        rank = len(found.shape)
        start, end = producer.attr("start", 0), producer.attr("end", rank)
        start, end = (start + rank if start < 0 else start), (end + rank if end < 0 else min(end, rank))
        return [_dimension(d, inputs[0].name, a) for a, d in enumerate(found.shape[start:end], start)]
    if kind in ("Cast", "Identity", "Unsqueeze", "Squeeze") or (kind == "Reshape" and _is_vector_reshape(graph, producer)):
        return trace_elements(graph, inputs[0], types, depth + 1)
    if kind == "Concat":
        return concat_elements(graph, inputs, types, lambda piece: trace_elements(graph, piece, types, depth + 1))
    if kind in ("Gather", "Slice"):
        data = trace_elements(graph, inputs[0], types, depth + 1)
        bounds = [fixed_value(graph, v) if v is not None else None for v in inputs[1:]]
        if data is None or any(b is None for b, v in zip(bounds, inputs[1:]) if v is not None):
            return None
        if kind == "Gather":
            indices = [int(i) for i in np.reshape(bounds[0], -1)]
            if producer.attr("axis", 0) != 0 or any(not -len(data) <= i < len(data) for i in indices):
                return None
            return [data[i] for i in indices]
        axes = bounds[2] if len(bounds) > 2 and bounds[2] is not None else [0]
        steps = bounds[3] if len(bounds) > 3 and bounds[3] is not None else [1]
        if list(np.reshape(axes, -1)) not in ([0], [-1]) or list(np.reshape(steps, -1)) != [1]:
            return None
        length = len(data)
        first, last = (int(np.reshape(b, -1)[0]) for b in bounds[:2])
        first = min(max(first + length if first < 0 else first, 0), length)
        last = min(max(last + length if last < 0 else last, 0), length)
        return data[first:last]
    if kind in ("Mul", "Div"):
        a, b = (trace_elements(graph, v, types, depth + 1) for v in inputs[:2])
        if a is None or b is None or len(a) != 1 or len(b) != 1 or a[0] is None or b[0] is None:
            return None if a is None or b is None or len(a) != 1 or len(b) != 1 else [None]
        if kind == "Mul":
            read = [x for x in (a[0], b[0]) if x.read is not None and not x.dynamic and not x.scaled]
            constant = [x for x in (a[0], b[0]) if x.read is None and not x.dynamic]
            shaped = a[0].shaped or b[0].shaped
            if len(read) == 1 and len(constant) == 1:
                return [Element(a[0].coef * b[0].coef, False, read[0].read, True, shaped)]
            return [Element(a[0].coef * b[0].coef, a[0].dynamic or b[0].dynamic, shaped=shaped)]
        if b[0].dynamic or b[0].coef == 0 or a[0].coef % b[0].coef:
            return [None]
        return [Element(a[0].coef // b[0].coef, a[0].dynamic, shaped=a[0].shaped or b[0].shaped)]
    if kind == "Where" and _never_minus_one(graph, producer, types):  # torch's expand: Where(shape == -1, 1, shape)
        return trace_elements(graph, inputs[2], types, depth + 1)
    return None


def _never_minus_one(graph: Graph, where: Op, types: dict | None) -> bool:
    """True for the Where(Equal(s, -1), ones, s) that torch's expand writes when no element of s is -1
    (dimensions never are): the Where then returns s."""
    condition, _, chosen = graph.inputs_of(where)
    test = graph.producer(condition) if condition is not None else None
    if test is None or test.op_type != "Equal" or chosen not in graph.inputs_of(test):
        return False
    other = next(v for v in graph.inputs_of(test) if v is not chosen)
    elements = trace_elements(graph, chosen, types)
    return _all_minus_one(graph, other, types) and elements is not None and \
        all(e is not None and (e.dynamic or e.coef > 0) for e in elements)


def _all_minus_one(graph: Graph, value: Value, types: dict | None) -> bool:
    """True if every element of `value` is -1: evaluated, or torch's Mul(ConstantOfShape(..., 1), -1),
    whose length needs no types."""
    found = evaluate(graph, value, types or {})
    if found is not None:
        return bool(np.all(np.asarray(found) == -1))
    producer = graph.producer(value)
    if producer is None or producer.op_type != "Mul":
        return False
    factors = [fixed_value(graph, v) for v in graph.inputs_of(producer)]
    sources = [graph.producer(v) for v in graph.inputs_of(producer)]
    for factor, source in ((factors[0], sources[1]), (factors[1], sources[0])):
        if factor is not None and np.size(factor) == 1 and int(np.reshape(factor, -1)[0]) == -1 and \
                source is not None and source.op_type == "ConstantOfShape" and source.attr("value") is not None \
                and np.asarray(source.attr("value")).reshape(-1).tolist() == [1]:
            return True
    return False


def _dimension(d, name: str, axis: int) -> Element | None:
    """The element a Shape op reads for dimension `d`: static, or dynamic (a symbol, or exactly one of
    prune-space's prime stand-ins or a product of them); None when unknown, or a stand-in times a
    static factor (a merged axis), whose factor the compact rewrite could not see again."""
    if isinstance(d, str):
        return Element(1, True, (name, axis), shaped=True)
    if not isinstance(d, int) or d <= 0:
        return None
    rest = strip_stand_ins(d)
    if rest == d:
        return Element(d, False, (name, axis), shaped=True)
    return Element(1, True, (name, axis), shaped=True) if rest == 1 else None


def strip_stand_ins(size: int) -> int:
    """`size` with every factor that is one of prune-space's prime stand-ins for dynamic dims divided out."""
    for prime in STAND_INS:
        while size and size % prime == 0:
            size //= prime
    return size


def flat_pieces(graph: Graph, value: Value) -> list[Value]:
    """The pieces a shape vector is concatenated from, nested Concats flattened (TorchScript's unflatten
    builds [..., Concat([3], E), ...]); a vector that is not a Concat is its own single piece."""
    producer = graph.producer(value)
    if producer is None or producer.op_type != "Concat" or producer.domain not in ("", "ai.onnx") or \
            constant_value(graph, value) is not None:
        return [value]
    return [piece for part in graph.inputs_of(producer) for piece in flat_pieces(graph, part)]


def fixed_value(graph: Graph, value: Value | None) -> np.ndarray | None:
    """A value that is the same for every input: a constant, or integer arithmetic on constants only
    (TorchScript computes split points with Mod and Reshape of literals)."""
    found = constant_value(graph, value)
    return found if found is not None else static_value(graph, value, None)


def _is_vector_reshape(graph: Graph, op: Op) -> bool:
    """A Reshape of a scalar or 1-element vector to [1] or [-1] (how the dynamo exporter makes pieces)."""
    target = constant_value(graph, graph.inputs_of(op)[1])
    return target is not None and np.asarray(target).reshape(-1).tolist() in ([1], [-1])


def read_only_into_shapes(graph: Graph, value: Value, position: int, length: int, read: tuple[str, int],
                          types: dict | None, depth: int = 0, scaled: bool = False) -> bool:
    """True if element `position` of the 1-D shape vector `value` (of `length` elements), which holds the
    dimension `read` (value name, axis), ends up only as a whole element of Reshape or Expand targets,
    possibly once multiplied by a constant, through Gather/Slice with constant bounds, Concat, Unsqueeze,
    Squeeze, Cast, Identity, vector Reshapes and torch's Where(shape == -1, 1, shape); and if each
    target's element traces back to that dimension (so the Reshape or Expand ties its axis to it).
    Such a dimension may shrink; anything else that reads it (arithmetic, a scale) freezes it."""
    if depth > 16 or graph.is_output(value) or graph.captures_of_value(value):
        return False

    def onward(out: Value, new_position: int, new_length: int, times: bool = scaled) -> bool:
        return read_only_into_shapes(graph, out, new_position, new_length, read, types, depth + 1, times)

    for op, slot in graph.uses(value):
        kind = op.op_type if op.domain in ("", "ai.onnx") else ""
        out = graph.outputs_of(op)[0] if graph.outputs_of(op) else None
        if kind in ("Reshape", "Expand") and slot == 1:  # a target: its element must be this dimension
            elements = trace_elements(graph, value, types)
            element = elements[position] if elements is not None and position < len(elements) else None
            if element is None or element.read != read or element.scaled != scaled:
                return False
            continue
        if kind == "Shape" and slot == 0:
            continue  # only the vector's length is read
        if kind == "Equal" and all(c.op_type == "Where" and s == 0 and _never_minus_one(graph, c, types)
                                   for c, s in graph.uses(out)):
            continue  # torch's expand compares the target with -1 to pick it (see trace_elements)
        if kind == "Where" and slot == 2 and _never_minus_one(graph, op, types):
            if not onward(out, position, length):
                return False
            continue
        if kind == "Mul" and length == 1 and not scaled:  # a dimension times a constant (heads x repeats)
            factor = fixed_value(graph, graph.inputs_of(op)[1 - slot])
            if factor is None or np.size(factor) != 1 or not onward(out, 0, 1, True):
                return False
            continue
        if (slot != 0 and kind != "Concat") or out is None:
            return False
        if kind in ("Cast", "Identity", "Unsqueeze", "Squeeze") or (kind == "Reshape" and _is_vector_reshape(graph, op)):
            if not onward(out, position, length):
                return False
        elif kind == "Concat":
            offset = 0
            for piece in graph.inputs_of(op)[:slot]:
                found = _static_length(graph, piece, types)
                if found is None:
                    traced = trace_elements(graph, piece, types)
                    if traced is None:
                        return False
                    found = len(traced)
                offset += found
            rest = [_static_length(graph, p, types) for p in graph.inputs_of(op)[slot + 1:]]
            total = offset + length + sum(r or 0 for r in rest)
            if not onward(out, offset + position, total):
                return False
        elif kind in ("Gather", "Slice"):
            bounds = [fixed_value(graph, v) if v is not None else None for v in graph.inputs_of(op)[1:]]
            if any(b is None for b, v in zip(bounds, graph.inputs_of(op)[1:]) if v is not None):
                return False
            if kind == "Gather":
                if op.attr("axis", 0) != 0:
                    return False
                picked = [int(i) % length for i in np.reshape(bounds[0], -1)]
                for new_position, i in enumerate(picked):
                    if i != position:
                        continue
                    if not (onward(out, 0, 1) if np.ndim(bounds[0]) == 0 else onward(out, new_position, len(picked))):
                        return False
                continue
            steps = bounds[3] if len(bounds) > 3 and bounds[3] is not None else [1]
            axes = bounds[2] if len(bounds) > 2 and bounds[2] is not None else [0]
            if list(np.reshape(axes, -1)) not in ([0], [-1]) or list(np.reshape(steps, -1)) != [1]:
                return False
            first, last = (int(np.reshape(b, -1)[0]) for b in bounds[:2])
            first = min(max(first + length if first < 0 else first, 0), length)
            last = min(max(last + length if last < 0 else last, 0), length)
            if first <= position < last and not onward(out, position - first, last - first):
                return False
        else:
            return False
    return True


def rewrite_scaled_element(graph: Graph, op: Op, slot: int, position: int, numerator: int, denominator: int,
                           types: dict | None = None) -> None:
    """Multiply element `position` of the shape at input `slot` of `op` by numerator / denominator at run
    time (Mul then exact integer Div), for an element computed from dynamic dimensions; the element must
    be a one-element piece of a Concat (as exporters build targets). Other users keep the old shape."""
    value = graph.inputs_of(op)[slot]
    concat = graph.producer(value)
    assert concat is not None and concat.op_type == "Concat", "rewrite_scaled_element needs a Concat of pieces"
    pieces, offset, new_pieces = flat_pieces(graph, value), 0, []
    for piece in pieces:
        length = len(trace_elements(graph, piece, types) or [None] * (_static_length(graph, piece, types) or 1))
        if offset == position and length == 1:
            dtype = np.int64
            scaled = graph.fresh_name(f"{piece.name}_scaled")
            graph.add_op("Mul", [piece, graph.add_initializer(graph.fresh_name(f"{piece.name}_num"),
                                                              np.array([numerator], dtype=dtype))], [scaled],
                         name=graph_unique_op_name(graph, f"{concat.name}_scale") if concat.name else "")
            divided = graph.fresh_name(f"{piece.name}_pruned")
            graph.add_op("Div", [scaled, graph.add_initializer(graph.fresh_name(f"{piece.name}_den"),
                                                               np.array([denominator], dtype=dtype))], [divided],
                         name=graph_unique_op_name(graph, f"{concat.name}_unscale") if concat.name else "")
            new_pieces.append(divided)
        else:
            assert not offset <= position < offset + length, "a scaled element must be a one-element piece"
            new_pieces.append(piece)
        offset += length
    out = graph.fresh_name(f"{value.name}_pruned")
    graph.add_op("Concat", new_pieces, [out], name=graph_unique_op_name(graph, concat.name), attributes={"axis": 0})
    graph.set_input(op, slot, out)


class Chunk(NamedTuple):
    """A Slice whose bounds cut chunks `first` to `last` (exclusive) of `parts` equal chunks of its
    data's axis `axis`: each bound k x ceil(size / parts) (or k x size // parts), the size read by
    Shape from the sliced tensor itself, as torch.chunk exports under TorchScript (Phi-3's fused
    gate_up projection). Where the size is static the bounds evaluate to constants, the Slice's rule
    maps its indices as for any constant Slice and compact writes the new bounds as constants, so the
    Shape that reads the size need not freeze it (`read_only_into_chunks`); where it is not, the
    Slice's rule freezes the axis."""

    parts: int
    first: int
    last: int
    axis: int


_WRAPPERS = ("Unsqueeze", "Squeeze", "Cast", "Identity")


def slice_chunk(graph: Graph, op: Op, rank: int) -> Chunk | None:
    """The `Chunk` a Slice (opset >= 10) takes, or None where its bounds are not of that form."""
    inputs = graph.inputs_of(op)
    if graph.opset < 10 or len(inputs) < 4 or inputs[0] is None or inputs[3] is None:
        return None
    axes = fixed_value(graph, inputs[3])
    if axes is None or np.size(axes) != 1:
        return None
    if len(inputs) > 4 and inputs[4] is not None:
        steps = fixed_value(graph, inputs[4])
        if steps is None or np.reshape(steps, -1).tolist() != [1]:
            return None
    axis = int(np.reshape(axes, -1)[0])
    axis = axis + rank if axis < 0 else axis
    read = (inputs[0].name, axis)
    first, last = (_chunk_multiple(graph, inputs[slot], read, rank) for slot in (1, 2))
    if first is None or last is None:
        return None
    parts = {p for _, p in (first, last) if p is not None}
    if len(parts) != 1 or not 0 <= first[0] < last[0] <= next(iter(parts)):
        return None
    return Chunk(parts.pop(), first[0], last[0], axis)


def _unwrapped(graph: Graph, value: Value | None) -> tuple[Value | None, Op | None]:
    """`value` and its producer, past Unsqueeze/Squeeze/Cast/Identity (exporters wrap scalars in them)."""
    producer = graph.producer(value) if value is not None else None
    while producer is not None and producer.domain in ("", "ai.onnx") and producer.op_type in _WRAPPERS:
        value = graph.inputs_of(producer)[0]
        producer = graph.producer(value) if value is not None else None
    return value, producer


def _scalar(graph: Graph, value: Value | None) -> int | None:
    found = fixed_value(graph, value)
    if found is None or np.size(found) != 1 or not np.issubdtype(np.asarray(found).dtype, np.integer):
        return None
    return int(np.reshape(found, -1)[0])


def _chunk_multiple(graph: Graph, value: Value | None, read: tuple[str, int], rank: int
                    ) -> tuple[int, int | None] | None:
    """(k, parts) where `value` is k x the chunk size of the dimension `read` in `parts` chunks; (0, None)
    for a constant 0."""
    if fixed_value(graph, value) is not None:
        return (0, None) if _scalar(graph, value) == 0 else None
    value, producer = _unwrapped(graph, value)
    if producer is not None and producer.op_type == "Mul":
        inputs = graph.inputs_of(producer)
        for slot in (0, 1):
            factor = _scalar(graph, inputs[slot])
            parts = _chunk_size(graph, inputs[1 - slot], read, rank) if factor is not None else None
            if parts is not None:
                return factor, parts
        return None
    parts = _chunk_size(graph, value, read, rank)
    return (1, parts) if parts is not None else None


def _chunk_size(graph: Graph, value: Value | None, read: tuple[str, int], rank: int) -> int | None:
    """`parts` where `value` is ceil(size / parts) or size // parts of the dimension `read`."""
    _, divide = _unwrapped(graph, value)
    if divide is None or divide.op_type != "Div":
        return None
    numerator, denominator = graph.inputs_of(divide)
    parts = _scalar(graph, denominator)
    if parts is None or parts < 1:
        return None
    numerator, add = _unwrapped(graph, numerator)
    if add is not None and add.op_type == "Add":  # ceil: (size + parts - 1) // parts
        inputs = graph.inputs_of(add)
        offsets = [_scalar(graph, v) for v in inputs]
        if parts - 1 not in offsets:
            return None
        numerator = inputs[1 - offsets.index(parts - 1)]
    return parts if _reads_dimension(graph, numerator, read, rank) else None


def _reads_dimension(graph: Graph, value: Value | None, read: tuple[str, int], rank: int) -> bool:
    """Whether `value` is Gather(Shape(tensor), axis): the run-time size of the dimension `read`."""
    _, gather = _unwrapped(graph, value)
    if gather is None or gather.op_type != "Gather" or gather.attr("axis", 0) != 0:
        return False
    shape_vector, index = graph.inputs_of(gather)
    shape = graph.producer(shape_vector) if shape_vector is not None else None
    position = _scalar(graph, index)
    if shape is None or shape.op_type != "Shape" or position is None or graph.inputs_of(shape)[0] is None \
            or shape.attr("start", 0) or shape.attr("end") is not None:  # the whole shape, as TorchScript reads it
        return False
    axis = position + rank if position < 0 else position
    return graph.inputs_of(shape)[0].name == read[0] and axis == read[1]


def read_only_into_chunks(graph: Graph, value: Value, position: int, read: tuple[str, int], rank: int) -> bool:
    """True if element `position` of the shape vector `value`, the dimension `read`, is used only to
    compute the bounds of Slices that cut that same axis of that same tensor into equal chunks
    (`slice_chunk`): Gather picks it, arithmetic with constants makes the bounds. Such a dimension may
    shrink: the Slices' own rule governs their bounds (see `Chunk`)."""
    if graph.is_output(value) or graph.captures_of_value(value):
        return False
    uses = graph.uses(value)
    if not uses:
        return False
    frontier = []
    for op, slot in uses:
        index = _scalar(graph, graph.inputs_of(op)[1]) if op.op_type == "Gather" and slot == 0 else None
        if index is None or op.attr("axis", 0) != 0 or index % rank != position:
            return False
        frontier.append(graph.outputs_of(op)[0])
    seen = set()
    while frontier:
        current = frontier.pop()
        if current is None or current.name in seen:
            continue
        seen.add(current.name)
        if graph.is_output(current) or graph.captures_of_value(current):
            return False
        for op, slot in graph.uses(current):
            if op.domain not in ("", "ai.onnx"):
                return False
            if op.op_type == "Slice":
                chunk = slice_chunk(graph, op, rank) if slot in (1, 2) else None
                if chunk is None or graph.inputs_of(op)[0].name != read[0] or chunk.axis != read[1]:
                    return False
            elif op.op_type in ("Add", "Div", "Mul", *_WRAPPERS):
                frontier.extend(graph.outputs_of(op))
            else:
                return False
    return True

"""Complete the shapes that ONNX shape inference leaves unknown, for the coupling analysis.

Exported attention computes its reshape targets at run time (Shape -> Gather -> Mul -> Unsqueeze ->
Concat, and TorchScript's `unflatten` even goes through Mod and Slice): ONNX's data propagation gives
up on some of these, and everything downstream of the Reshape loses its shape; the dynamo exporter's
`value_info` names dynamic sizes with its own symbols ("4*batch"), which do not meet the distinct
primes that prune-space gives symbolic input dimensions. Here the graph is inferred afresh without its
`value_info`, every integer shape input that inference could not read is evaluated exactly (the
prime stand-ins are plain numbers here: the arithmetic on them is exact), written into the copy as a
constant, and inference runs again until nothing more is learnt. Only the types change; the graph is
never edited.
"""

from __future__ import annotations

import weakref

import numpy as np
import onnx

from ..ir import Graph, TensorType, infer_shapes
from ..ir.graph import shape_of_type
from ..ir.shapes import parse_input_shape
from .rule import MOVES, STAND_INS, OpView, constant_value, move_elements

#: Op type -> input slots that hold integer shapes, sizes or bounds that inference needs as data.
_SHAPE_INPUTS = {"Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Slice": (1, 2, 3, 4),
                 "Range": (0, 1, 2), "Unsqueeze": (1,), "Squeeze": (1,), "Split": (1,), "Pad": (1,)}
_ROUNDS = 6


def symbolic_bindings(graph: Graph, already: tuple[str, ...]) -> tuple[str, ...]:
    """`name=dims` bindings giving every symbolic or unknown dim of the graph inputs a distinct prime
    (the same symbol gets the same prime), for inputs the user did not bind."""
    named = {text.rpartition("=")[0] for text in already}
    primes: dict[object, int] = {}
    bindings = []
    for value in graph.inputs:
        if value.is_initializer or value.name in named or value.shape is None:
            continue
        if all(isinstance(d, int) and d > 0 for d in value.shape):
            continue
        dims = []
        for position, d in enumerate(value.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
                continue
            key = d if isinstance(d, str) else (value.name, position)
            if key not in primes:
                if len(primes) >= len(STAND_INS):
                    return tuple(bindings)
                primes[key] = STAND_INS[len(primes)]
            dims.append(primes[key])
        bindings.append(f"{value.name}={'x'.join(map(str, dims))}")
    return tuple(bindings)


def analysis_types(graph: Graph, types: dict[str, TensorType]) -> dict[str, TensorType]:
    """The types prune-space's rules saw, for rewrites that compact runs with the plain shapes analysis:
    inputs static in `types` (bound by the user) keep their sizes, symbolic dims get the same prime
    stand-ins, and the shapes are completed the same way. Rewrites must decide as the rules did (a
    dimension static or dynamic, a read tied or not); the result is kept for the `types` object given,
    and graph, which one compact shares among all its rewrites, so it is computed once, before any
    rewrite changes the graph."""
    if _CACHE.get("types") is types and _CACHE.get("graph") is not None and _CACHE["graph"]() is graph:
        return _CACHE["value"]
    bound = tuple(f"{v.name}={'x'.join(map(str, types[v.name].shape))}" for v in graph.inputs
                  if not v.is_initializer and v.name in types and types[v.name].is_static and types[v.name].shape)
    bindings = bound + symbolic_bindings(graph, bound)
    found = infer_shapes(graph, dict(parse_input_shape(text) for text in bindings))
    if needs_refining(graph, found):
        found = refine_types(graph, found)
    # the types (names and shapes only) are held, so no other dict takes their place; the graph, which
    # holds the weights, only weakly
    _CACHE.update(types=types, graph=weakref.ref(graph), value=found)
    return found


_CACHE: dict = {}


def needs_refining(graph: Graph, types: dict[str, TensorType]) -> bool:
    """True if some op output has no static shape (an unknown rank, an unknown or symbolic dim)."""
    for op in graph.ops():
        for value in graph.outputs_of(op):
            if value is None or not graph.nx.degree(value):
                continue
            found = types.get(value.name)
            if found is None or not found.is_static:
                return True
    return False


def refine_types(graph: Graph, types: dict[str, TensorType]) -> dict[str, TensorType]:
    """`types` (the shapes analysis with every graph input bound to a static shape) completed where
    exact evaluation of the shape computations can tell more; values it cannot type keep their entry."""
    proto = graph.to_onnx(weights=False)
    del proto.graph.value_info[:]
    for info in proto.graph.input:
        found = types.get(info.name)
        if found is not None and found.is_static:
            shape = info.type.tensor_type.shape
            shape.ClearField("dim")
            for d in found.shape:
                shape.dim.add().dim_value = d
    for info in proto.graph.output:
        info.type.tensor_type.ClearField("shape")  # declared symbols would only conflict with the bound sizes
    injected: set[tuple[int, int]] = set()
    current = dict(types)
    for _ in range(_ROUNDS):
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
            return types
        current = dict(types)
        for info in (*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info):
            if info.type.HasField("tensor_type"):
                found = TensorType(info.type.tensor_type.elem_type, shape_of_type(info.type))
                previous = types.get(info.name)
                if found.shape is not None and (previous is None or not previous.is_static or found.is_static):
                    current[info.name] = found
        added = False
        for index, node in enumerate(proto.graph.node):
            slots = _SHAPE_INPUTS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if not slots or all(_static(current.get(o)) for o in node.output if o):
                continue
            for slot in slots:
                if slot >= len(node.input) or not node.input[slot] or (index, slot) in injected:
                    continue
                value = graph.get_value(node.input[slot])
                if value is None or constant_value(graph, value) is not None:
                    continue
                found = evaluate(graph, value, current)
                if found is None:
                    continue
                name = f"{node.input[slot]}__refined_{index}_{slot}"
                proto.graph.initializer.append(onnx.numpy_helper.from_array(found.astype(np.int64), name))
                node.input[slot] = name
                injected.add((index, slot))
                added = True
        if not added:
            break
    return current


def _static(found: TensorType | None) -> bool:
    return found is not None and found.is_static


def evaluate(graph: Graph, value, types: dict[str, TensorType], depth: int = 0) -> np.ndarray | None:
    """The integer array `value` holds at the bound input sizes, or None if it is not small integer
    arithmetic over shapes and constants."""
    if value is None or depth > 24:
        return None
    found = constant_value(graph, value)
    if found is not None:
        array = np.asarray(found)
        return array if array.dtype.kind in "iub" else None
    producer = graph.producer(value)
    if producer is None or producer.domain not in ("", "ai.onnx"):
        return None
    kind, inputs = producer.op_type, graph.inputs_of(producer)
    if kind == "Shape":
        source = types.get(inputs[0].name)
        if source is None or not source.is_static:
            return None
        dims = np.array(source.shape, dtype=np.int64)
        rank = len(dims)
        start, end = producer.attr("start", 0), producer.attr("end", rank)
        start, end = (start + rank if start < 0 else start), (end + rank if end < 0 else min(end, rank))
        return dims[start:end]
    if kind == "Size":
        source = types.get(inputs[0].name)
        return np.array(int(np.prod(source.shape)), dtype=np.int64) if _static(source) else None
    args = [evaluate(graph, v, types, depth + 1) if v is not None else None for v in inputs]
    if any(a is None for a, v in zip(args, inputs) if v is not None):
        return None
    try:
        return _apply(producer, kind, args)
    except (ValueError, IndexError, TypeError, ZeroDivisionError):
        return None


def _apply(op, kind: str, args: list) -> np.ndarray | None:
    """One integer op on evaluated arguments (None: not one this evaluator knows)."""
    a = args[0]
    if kind in MOVES:
        return move_elements(op, kind, args)
    if kind == "Reshape":
        target = [int(x) for x in np.reshape(args[1], -1)]
        target = [a.shape[i] if t == 0 and i < a.ndim else t for i, t in enumerate(target)]
        return np.reshape(a, target)
    if kind == "Slice":
        starts, ends = np.reshape(args[1], -1), np.reshape(args[2], -1)
        axes = np.reshape(args[3], -1) if len(args) > 3 and args[3] is not None else np.arange(len(starts))
        steps = np.reshape(args[4], -1) if len(args) > 4 and args[4] is not None else np.ones(len(starts), np.int64)
        index = [slice(None)] * a.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[int(axis) % a.ndim] = slice(*_slice_bounds(int(start), int(end), int(step), a.shape[int(axis) % a.ndim]))
        return a[tuple(index)]
    if kind == "Transpose":
        return np.transpose(a, op.attr("perm"))
    if kind == "Range":
        return np.arange(int(a), int(args[1]), int(args[2]), dtype=np.int64)
    if kind == "ConstantOfShape":
        fill = op.attr("value")
        fill = 0 if fill is None else np.asarray(fill).reshape(-1)[0]
        return np.full([int(x) for x in np.reshape(a, -1)], fill) if np.asarray(fill).dtype.kind in "iub" else None
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum,
              "Equal": np.equal, "Less": np.less, "Greater": np.greater}
    if kind in binary:
        return binary[kind](a, args[1])
    if kind in ("Div", "Mod"):
        if np.any(np.asarray(args[1]) == 0):
            return None
        return a // args[1] if kind == "Div" else np.fmod(a, args[1]) if op.attr("fmod", 0) else np.mod(a, args[1])
    if kind == "Where":
        return np.where(a, args[1], args[2])
    if kind == "Neg":
        return -a
    if kind in ("ReduceProd", "ReduceSum") and op.attr("keepdims", 1) == 0 and len(args) == 1:
        return np.asarray(np.prod(a) if kind == "ReduceProd" else np.sum(a))
    return None


def _slice_bounds(start: int, end: int, step: int, size: int) -> tuple[int, int | None, int]:
    """ONNX Slice bounds (clamped, with the int64 extremes exporters write for "to the end") as a Python
    slice of an axis of `size`."""
    if step > 0:
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        return start, end, step
    start = min(max(start + size if start < 0 else start, -1), size - 1)
    end = min(max(end + size if end < 0 else end, -1), size - 1)
    return start, (None if end < 0 else end), step


def sees_analysis_types(rewrite):
    """Make a rewrite take the analysis types (`analysis_types`) before it changes anything: compact runs
    rewrites one after another, and Reshape/Expand rewrites later on must decide from the graph as the
    analysis saw it, not from one whose Split sizes or Slice bounds already shrank."""
    def run(graph, op, view: OpView, kept: dict) -> None:
        if view.types is not None:
            analysis_types(graph, view.types)
        rewrite(graph, op, view, kept)
    run.__name__, run.__doc__ = rewrite.__name__, rewrite.__doc__
    return run

"""Which parameters make an op's whole output exactly zero (for erasing regions, DESIGN §6).

A region can be erased exactly when zeroing a set of its parameters makes its exit tensor zero: then
the merge it feeds adds nothing, and removing the region changes no output (compact ≡ masked). The
table says, per op type, how its output can be all zero:

* `PRODUCERS`: zero when the listed input slots (weights, biases, norm scale and shift) are zero;
* `ANY`: zero when any input is zero (Mul); `ALL`: zero when every input is zero (Add, Sum, Concat);
* `FIRST`: zero when input 0 is zero, the op maps 0 to 0 (activations, layout ops, pooling).

`zeroing_parameters` walks back from the exit through these rules; an op not in the table stops the
walk (fail closed: the region is not erasable).
"""

from __future__ import annotations

from ..ir import Graph, Op, Value

PRODUCERS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "MatMul": (1,), "Gemm": (1, 2),
    "BatchNormalization": (1, 2), "LayerNormalization": (1, 2), "InstanceNormalization": (1, 2),
    "GroupNormalization": (1, 2),
}
ANY = frozenset({"Mul"})
ALL = frozenset({"Add", "Sum", "Concat"})
FIRST = frozenset({"Relu", "LeakyRelu", "PRelu", "Tanh", "Erf", "Gelu", "HardSwish", "Mish", "Neg", "Abs", "Identity",
                   "Dropout", "Cast", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Slice",
                   "Gather", "Pad", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Tile",
                   "DepthToSpace", "SpaceToDepth", "Resize", "Upsample", "ReduceSum", "ReduceMean", "Split"})
_THROUGH = frozenset({"Transpose", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze", "Flatten"})


def parameter_source(graph: Graph, value: Value | None) -> str | None:
    """The initializer that `value` is, or is a zero-preserving relayout of (Transpose(W), say)."""
    for _ in range(8):
        if value is None:
            return None
        if value.is_initializer:
            return value.name
        producer = graph.producer(value)
        if producer is None or producer.op_type not in _THROUGH or producer.domain not in ("", "ai.onnx"):
            return None
        value = graph.inputs_of(producer)[0]
    return None


def zeroing_parameters(graph: Graph, value: Value, inside: set[Op], depth: int = 0) -> list[str] | None:
    """Initializers whose zeroing makes `value` (computed by ops in `inside`) exactly zero, or None."""
    op = graph.producer(value)
    if op is None or op not in inside or depth > 32 or op.domain not in ("", "ai.onnx"):
        return None
    inputs = graph.inputs_of(op)
    kind = op.op_type
    if kind in PRODUCERS:
        slots = [s for s in PRODUCERS[kind] if s < len(inputs) and inputs[s] is not None]
        found = [parameter_source(graph, inputs[s]) for s in slots]
        if kind == "Gemm" and (op.attr("alpha", 1.0) == 0):
            return None
        return found if found and all(found) else None
    if kind in ANY:
        for v in inputs:
            source = parameter_source(graph, v)
            if source is not None:
                return [source]
        for v in inputs:
            found = zeroing_parameters(graph, v, inside, depth + 1) if v is not None else None
            if found is not None:
                return found
        return None
    if kind in ALL:
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
    if kind in FIRST and inputs and inputs[0] is not None:
        if kind == "Pad" and len(inputs) > 2 and inputs[2] is not None:
            return None  # a constant pad value may be nonzero
        source = parameter_source(graph, inputs[0])
        return [source] if source is not None else zeroing_parameters(graph, inputs[0], inside, depth + 1)
    return None

"""Shape inference: the element type and shape of every value, as far as ONNX can tell."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import onnx

from ..errors import UserError
from .graph import Graph, shape_of_type

Dim = int | str | None


@dataclass(frozen=True)
class TensorType:
    """A value's element type (TensorProto enum, 0 if unknown) and shape (None if the rank is unknown;
    dims are ints, symbolic names, or None)."""

    elem_type: int
    shape: tuple[Dim, ...] | None

    @property
    def rank(self) -> int | None:
        """Number of dimensions, if known."""
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when every dimension is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def __str__(self) -> str:
        dtype = onnx.helper.tensor_dtype_to_string(self.elem_type).removeprefix("TensorProto.") \
            if self.elem_type else "?"
        dims = "?" if self.shape is None else "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{dtype}[{dims}]"


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse 'name=1x3x224x224' (or with commas) into (name, dims)."""
    name, sep, dims = text.rpartition("=")
    try:
        parsed = tuple(int(d) for d in dims.replace(",", "x").split("x"))
    except ValueError:
        parsed = ()
    if not sep or not name or not parsed or any(d <= 0 for d in parsed):
        raise UserError(f"bad input shape '{text}': write NAME=DIMS, for example input=1x3x224x224")
    return name, parsed


def infer_shapes(graph: Graph, input_shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, TensorType]:
    """Run ONNX shape inference (with data propagation, so shapes computed by Shape/Gather/Concat
    chains resolve) and return the type of every value it could type. Weights are not copied.

    `input_shapes` binds graph inputs to concrete shapes first (for models with dynamic dims)."""
    proto = graph.to_onnx(weights=False)
    for name, dims in (input_shapes or {}).items():
        info = next((i for i in proto.graph.input if i.name == name), None)
        if info is None:
            known = ", ".join(v.name for v in graph.inputs if not v.is_initializer)
            raise UserError(f"input shape given for '{name}', but the model's inputs are: {known}")
        declared = shape_of_type(info.type)
        if declared is not None and len(declared) != len(dims):
            raise UserError(f"input '{name}' has rank {len(declared)}, but the shape given has {len(dims)} dims")
        shape = info.type.tensor_type.shape
        shape.ClearField("dim")
        for dim in dims:
            shape.dim.add().dim_value = dim
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
        inferred = proto  # keep what the model itself declares
    types: dict[str, TensorType] = {}
    body = inferred.graph
    for info in itertools.chain(body.input, body.output, body.value_info):
        if info.type.HasField("tensor_type"):
            types[info.name] = TensorType(info.type.tensor_type.elem_type, shape_of_type(info.type))
    for value in graph.initializers:
        types[value.name] = TensorType(value.tensor.data_type, value.tensor.shape)
    return types

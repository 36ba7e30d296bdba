"""The model's inputs as onnxprune feeds them: their sizes, and sample values drawn by what each is.

Sizes come from the user (`--input-shape name=1x3x224x224`), from a sample file
(`--sample-inputs FILE.npz`), or from what the model itself says (metadata such as YOLO's `imgsz` for
an image input with symbolic height and width); symbolic dims left over are named, never silently
counted at a made-up size. Values are drawn by what an input is: token ids below the vocabulary of the
embedding they index, masks of ones, a scalar control input at the value the model compares it with,
floats standard-normal; or read from the sample file.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .errors import UserError
from .files import input_file
from .ir import Graph, Value
from .ir.shapes import parse_input_shape

#: Metadata keys under which exporters record an image model's input size (Ultralytics writes imgsz).
SIZE_KEYS = ("imgsz", "image_size", "img_size", "input_size", "imagesize", "resolution")
#: Ops that pass an integer input's values on unchanged (ids can be cast or reshaped before a Gather).
_VALUE_PRESERVING = frozenset({"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand",
                               "Transpose"})


@dataclass(frozen=True)
class Bindings:
    """The sizes inputs are fed at: `shapes` as 'name=dims' texts, and notes saying where sizes came from
    and which symbolic dims are still unbound (costs count those as 1)."""

    shapes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def data_inputs(graph: Graph) -> list[Value]:
    """The graph inputs a caller feeds (not initializers listed as inputs)."""
    return [v for v in graph.inputs if not v.is_initializer]


def resolve_bindings(graph: Graph, given: tuple[str, ...] = (), samples: dict[str, np.ndarray] | None = None
                     ) -> Bindings:
    """Bindings for every input: what the user `given`, then the sample file's sizes, then the sizes the
    model's metadata states for an image input; notes name each metadata size used and each symbolic
    dim (but the batch) still unbound."""
    bound = dict(parse_input_shape(text) for text in given)
    for name, array in (samples or {}).items():
        bound.setdefault(name, tuple(array.shape))
    notes = []
    for name, (dims, key) in metadata_sizes(graph).items():
        if name not in bound:
            bound[name] = dims
            notes.append(f"input {name!r} sized {'x'.join(map(str, dims))} from the model's metadata {key!r} "
                         f"(--input-shape {name}=... overrides)")
    notes += _bind_shared_symbols(graph, bound)
    for value in data_inputs(graph):
        if value.name in bound:
            continue
        symbolic = [str(d) for d in (value.shape or ())[1:] if not (isinstance(d, int) and d > 0)]
        if symbolic:
            notes.append(f"input {value.name!r} has symbolic dims {', '.join(symbolic)} that costs count as 1 and "
                         f"sample inputs fill in arbitrarily: give --input-shape {value.name}=DIMS "
                         "(or --sample-inputs FILE.npz) for figures at real sizes")
    shapes = tuple(f"{name}={'x'.join(map(str, dims))}" for name, dims in bound.items())
    return Bindings(shapes, tuple(notes))


def _bind_shared_symbols(graph: Graph, bound: dict[str, tuple[int, ...]]) -> list[str]:
    """Bind (in place) each unbound input whose symbolic dims all appear, by name, in a bound input:
    exporters name one size once (`batch`, `past_sequence`), so a KV-cache model's past keys and values
    must all get the size given for one of them, or onnxruntime's Concat of past and present fails."""
    sizes: dict[str, int] = {}
    for value in data_inputs(graph):
        dims = bound.get(value.name)
        if dims is not None and value.shape is not None and len(dims) == len(value.shape):
            for declared, size in zip(value.shape, dims):
                if isinstance(declared, str) and declared:
                    sizes.setdefault(declared, size)
    notes = []
    for value in data_inputs(graph):
        if value.name in bound or value.shape is None:
            continue
        symbols = [d for d in value.shape if not (isinstance(d, int) and d > 0)]
        if symbols and all(isinstance(d, str) and d in sizes for d in symbols):
            bound[value.name] = tuple(sizes[d] if isinstance(d, str) else d for d in value.shape)
            notes.append(f"input {value.name!r} sized {'x'.join(map(str, bound[value.name]))}: its dims "
                         f"{', '.join(dict.fromkeys(symbols))} have those sizes in inputs given")
    return notes


def metadata_sizes(graph: Graph) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (dims, metadata key) for each image input ([N, C, H, W] with a fixed channel count and
    symbolic H, W) whose size the model's metadata states."""
    stated = None
    for prop in graph.model.metadata_props:
        if prop.key.lower() in SIZE_KEYS:
            numbers = [int(n) for n in re.findall(r"\d+", prop.value)]
            if len(numbers) in (1, 2) and all(0 < n <= 16384 for n in numbers):
                stated = ((numbers[0], numbers[-1]), prop.key)
                break
    if stated is None:
        return {}
    (height, width), key = stated
    sizes = {}
    for value in data_inputs(graph):
        shape = value.shape or ()
        if len(shape) == 4 and isinstance(shape[1], int) and shape[1] in (1, 3, 4) and \
                not any(isinstance(d, int) and d > 0 for d in shape[2:]):
            batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1
            sizes[value.name] = ((batch, shape[1], height, width), key)
    return sizes


def draw(graph: Graph, value: Value, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A sample for input `value` of `shape`, drawn by what the input is (see the module doc)."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.dtype) if value.dtype else np.dtype(np.float32)
    if _is_mask(value):
        return np.ones(shape, dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    compared = _compared_constant(graph, value)
    if compared is not None:
        return np.full(shape, compared, dtype)
    return rng.integers(0, index_bound(graph, value, default=4), shape).astype(dtype)


def index_bound(graph: Graph, value: Value, default: int = 2) -> int:
    """The smallest table an integer input indexes through Gather (following casts and reshapes), or
    `default` when it indexes none."""
    bounds, frontier, seen = [], [value], set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        for op, slot in graph.uses(current):
            data = graph.inputs_of(op)[0]
            if op.op_type == "Gather" and slot == 1 and data is not None and data.tensor is not None:
                axis = op.attr("axis", 0)
                bounds.append(data.tensor.shape[axis if axis >= 0 else axis + len(data.tensor.shape)])
            elif op.op_type in _VALUE_PRESERVING and slot == 0:
                frontier.extend(v for v in graph.outputs_of(op) if v is not None)
    return min(bounds) if bounds else default


def read_samples(path: str | Path, graph: Graph) -> dict[str, np.ndarray]:
    """Sample inputs from an .npz file with arrays named after the model's inputs (inputs it lacks are
    drawn as usual). Wrong names, ranks or types are one clear error."""
    path = input_file(path, "sample-inputs file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{path}: not a readable .npz file of sample inputs ({error})") from None
    inputs = {v.name: v for v in data_inputs(graph)}
    for name, array in arrays.items():
        value = inputs.get(name)
        if value is None:
            raise UserError(f"{path}: array {name!r} names no model input (inputs: {', '.join(inputs)})")
        declared = value.shape
        if declared is not None and len(declared) != array.ndim:
            raise UserError(f"{path}: array {name!r} has rank {array.ndim}, the input has rank {len(declared)}")
        if declared is not None and any(isinstance(d, int) and d > 0 and d != n for d, n in zip(declared, array.shape)):
            raise UserError(f"{path}: array {name!r} has shape {array.shape}, the input is declared "
                            f"{tuple(d if isinstance(d, int) else '?' for d in declared)}")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.dtype)
        if not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise UserError(f"{path}: array {name!r} is {array.dtype}, the input is {dtype}")
        arrays[name] = array.astype(dtype, copy=False)
    return arrays


def _is_mask(value: Value) -> bool:
    return "mask" in value.name.lower()


def _compared_constant(graph: Graph, value: Value):
    """The constant a scalar integer input is compared with (Equal), such as a sample rate: fed at that
    value, the model takes the branch it was built for."""
    if value.shape is None or len(value.shape) > 1 or (value.shape and value.shape[0] != 1):
        return None
    for op, _ in graph.uses(value):
        if op.op_type != "Equal":
            continue
        for other in graph.inputs_of(op):
            if other is not None and other is not value and other.tensor is not None and other.tensor.size == 1:
                return other.tensor.array.reshape(-1)[0]
            producer = graph.producer(other) if other is not None else None
            if producer is not None and producer.op_type == "Constant":
                array = onnx.numpy_helper.to_array(producer.attributes["value"].t) \
                    if "value" in producer.attributes else None
                if array is not None and array.size == 1:
                    return array.reshape(-1)[0]
    return None

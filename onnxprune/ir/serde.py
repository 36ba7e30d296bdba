"""ONNX <-> Graph: `load`, `save`, `to_onnx`.

Loading from a file memory-maps it and hands initializers out as views of the file (see `wire`), so
loading costs almost no memory and saving streams tensor bytes from wherever they live. External data
is memory-mapped the same way; a location that leaves the model's folder is refused.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import GraphProto, ModelProto, NodeProto, TensorProto

from ..errors import ModelError
from ..files import atomic_write
from . import wire
from .graph import CAPTURE, Graph, Op
from .tensor import RAW_NUMPY_DTYPES, Tensor

#: The newest IR version onnxruntime(-training) 1.19 loads; models onnxprune creates get this one.
MAX_ORT_IR_VERSION = 10
#: Above this many bytes of weights a model cannot be one protobuf (2 GiB limit): save uses external data.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
#: Tensors smaller than this stay inside the model file when saving with external data.
EXTERNAL_MIN_BYTES = 1024


# ====================================================================== loading
def load(source: str | os.PathLike | ModelProto) -> Graph:
    """Read a model (a path or a ModelProto) into a Graph. Raises ModelError for unreadable input.

    This only parses; `onnxprune.ir.validate` checks the model against the ONNX spec.
    """
    if isinstance(source, ModelProto):
        if any(t.data_location == TensorProto.EXTERNAL for t in source.graph.initializer):
            raise ModelError("<ModelProto>", "refers to external data that is not loaded",
                             "load the model from its file path instead")
        tensors = [(t.name, Tensor.from_proto(t)) for t in source.graph.initializer]
        return _graph_from_parts(source, source.graph, tensors, origin="<ModelProto>")
    path = Path(source)
    if not path.exists():
        raise ModelError(path, "no such file")
    if path.is_dir():
        raise ModelError(path, "is a directory, not an ONNX model file")
    if path.stat().st_size == 0:
        raise ModelError(path, "is empty, not an ONNX model")
    try:
        with open(path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelError(path, f"cannot be read: {exc.strerror}") from None
    return _load_mapped(mapped, path)


def _load_mapped(buf: mmap.mmap, path: Path) -> Graph:
    view = memoryview(buf)
    try:
        model_fields = list(wire.iter_fields(buf))
        graph_fields = [f for f in model_fields if f.number == wire.MODEL_GRAPH]
        if len(graph_fields) != 1 or graph_fields[0].wire_type != wire.LENGTH_DELIMITED:
            return _load_plain(bytes(buf), path)
        graph_field = graph_fields[0]
        skeleton = b"".join(buf[f.start:f.end] for f in model_fields if f.number != wire.MODEL_GRAPH)
        graph_parts, initializers = [], []
        for f in wire.iter_fields(buf, graph_field.value_start, graph_field.end):
            if f.number == wire.GRAPH_INITIALIZER and f.wire_type == wire.LENGTH_DELIMITED:
                initializers.append(f)
            else:
                graph_parts.append(buf[f.start:f.end])
        tensor_spans = []
        for f in initializers:
            header_parts, raw = [], None
            for tf in wire.iter_fields(buf, f.value_start, f.end):
                if tf.number == wire.TENSOR_RAW_DATA and tf.wire_type == wire.LENGTH_DELIMITED:
                    raw = (tf.value_start, tf.end)
                else:
                    header_parts.append(buf[tf.start:tf.end])
            tensor_spans.append((b"".join(header_parts), raw))
    except wire.WireError as exc:
        raise _undecodable(path, str(exc)) from None
    try:
        model = ModelProto.FromString(skeleton)
        graph = GraphProto.FromString(b"".join(graph_parts))
        tensors, maps = [], {}
        for header_bytes, raw in tensor_spans:
            header = TensorProto.FromString(header_bytes)
            name = header.name
            if raw is None:
                tensors.append((name, _tensor_without_raw(header, path, maps)))
            else:
                header.ClearField("name")
                tensors.append((name, Tensor.from_raw(header, view[raw[0]:raw[1]])))
    except DecodeError:
        raise _undecodable(path, "protobuf decoding failed") from None
    return _graph_from_parts(model, graph, tensors, origin=str(path), external_data=bool(maps))


def _load_plain(data: bytes, path: Path) -> Graph:
    """Fallback for unusual layouts (several graph fields to merge): let protobuf parse everything."""
    try:
        model = ModelProto.FromString(data)
    except DecodeError:
        raise _undecodable(path, "protobuf decoding failed") from None
    maps: dict = {}
    tensors = [(t.name, Tensor.from_proto(t) if t.HasField("raw_data") else _tensor_without_raw(t, path, maps))
               for t in model.graph.initializer]
    return _graph_from_parts(model, model.graph, tensors, origin=str(path), external_data=bool(maps))


def _undecodable(path: Path, detail: str) -> ModelError:
    if "past the end" in detail or "truncated" in detail:
        return ModelError(path, "is truncated: the protobuf data ends in the middle of a field",
                          "the file was cut short; copy or export it again")
    return ModelError(path, f"is not an ONNX model: not a valid protobuf message ({detail})")


def _tensor_without_raw(proto: TensorProto, path: Path, maps: dict[Path, mmap.mmap]) -> Tensor:
    """A tensor stored in typed fields, or in external data next to the model (mapped files go in `maps`)."""
    if proto.data_location != TensorProto.EXTERNAL:
        return Tensor.from_proto(proto)
    info = {e.key: e.value for e in proto.external_data}
    location = info.get("location", "")
    base = path.parent.resolve()
    target = (base / location).resolve()
    if not location or os.path.isabs(location) or base not in target.parents:
        raise ModelError(path, f"tensor {proto.name!r} points at external data {location!r} outside the model's folder",
                         "onnxprune only follows external data locations inside the model's own folder")
    if not target.is_file():
        raise ModelError(path, f"external data file {location!r} of tensor {proto.name!r} is missing")
    offset = int(info.get("offset", 0))
    if target not in maps:
        with open(target, "rb") as handle:
            maps[target] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if target.stat().st_size else b""
    mapped = maps[target]
    length = int(info.get("length", len(mapped) - offset))
    if offset < 0 or length < 0 or offset + length > len(mapped):
        raise ModelError(path, f"tensor {proto.name!r} reads past the end of external data file {location!r}")
    header = TensorProto()
    header.CopyFrom(proto)
    header.ClearField("external_data")
    header.ClearField("data_location")
    header.ClearField("name")
    return Tensor.from_raw(header, memoryview(mapped)[offset:offset + length])


def _graph_from_parts(model: ModelProto, graph_proto: GraphProto, tensors: list[tuple[str, Tensor]],
                      origin: str, external_data: bool = False) -> Graph:
    """Build the Graph. `model`/`graph_proto` may still hold their repeated fields; they are read, and
    the skeletons kept on the Graph have them cleared."""
    if not model.HasField("graph") and not graph_proto.node and not graph_proto.output:
        raise ModelError(origin, "is not an ONNX model: it has no graph")
    model_skeleton = ModelProto()
    model_skeleton.CopyFrom(model)
    model_skeleton.ClearField("graph")
    skeleton = GraphProto()
    skeleton.CopyFrom(graph_proto)
    for name in ("node", "initializer", "sparse_initializer", "input", "output", "value_info"):
        skeleton.ClearField(name)
    graph = Graph(model_skeleton, skeleton)
    graph.external_data = external_data

    def duplicate(kind: str, name: str) -> ModelError:
        return ModelError(origin, f"defines {kind} {name!r} twice", "every value name in an ONNX graph must be unique")

    for name, tensor in tensors:
        if name in graph:
            raise duplicate("initializer", name)
        graph.add_value(name, tensor=tensor)
    for sparse in graph_proto.sparse_initializer:
        name = sparse.values.name
        if name in graph:
            raise duplicate("initializer", name)
        value = graph.add_value(name)
        value.sparse = sparse
        graph._sparse_initializers[value] = None
    for info in graph_proto.input:
        value = graph.get_value(info.name)
        if value is None:
            value = graph.add_value(info.name, info=info)
        elif graph.is_input(value):
            raise duplicate("graph input", info.name)
        else:
            value.info = info
        graph.inputs.append(value)

    ops: list[tuple[Op, NodeProto]] = []
    for node in graph_proto.node:
        extra = NodeProto()
        extra.CopyFrom(node)
        for name in ("input", "output", "attribute"):
            extra.ClearField(name)
        op = Op(node.op_type, node.domain, node.name, {a.name: a for a in node.attribute}, extra,
                num_inputs=len(node.input), num_outputs=len(node.output), order=next(graph._order))
        graph.nx.add_node(op)
        for slot, name in enumerate(node.output):
            if not name:
                continue
            if name in graph:
                raise duplicate("value", name)
            graph.nx.add_edge(op, graph.add_value(name), key=slot)
        ops.append((op, node))
    for op, node in ops:
        for slot, name in enumerate(node.input):
            if not name:
                continue
            value = graph.get_value(name)
            if value is None:
                raise ModelError(origin, f"node {op.label} reads {name!r}, which no node, input or initializer defines")
            graph.nx.add_edge(value, op, key=slot)
        if op.subgraphs:
            for name in sorted(outer_scope_names(op.subgraphs)):
                value = graph.get_value(name)
                if value is not None:
                    graph.nx.add_edge(value, op, key=(CAPTURE, name))

    for info in graph_proto.output:
        value = graph.get_value(info.name)
        if value is None:
            raise ModelError(origin, f"graph output {info.name!r} is not computed by any node")
        if not graph.is_input(value):  # a pass-through output keeps its input declaration
            value.info = info
        graph.outputs.append(value)
    for info in graph_proto.value_info:
        value = graph.get_value(info.name) or graph.add_value(info.name)
        graph._value_info[value] = info
        if value.info is None:
            value.info = info
    graph.version = 0
    return graph


def outer_scope_names(subgraphs: Iterable[GraphProto]) -> set[str]:
    """Names that the subgraphs read but do not define: values they capture from the enclosing scope."""
    free: set[str] = set()
    for sub in subgraphs:
        defined = {v.name for v in sub.input} | {t.name for t in sub.initializer} | \
                  {t.values.name for t in sub.sparse_initializer}
        for node in sub.node:
            defined.update(n for n in node.output if n)
        for node in sub.node:
            free.update(n for n in node.input if n and n not in defined)
            nested = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
            nested += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
            free.update(n for n in outer_scope_names(nested) if n not in defined)
        free.update(o.name for o in sub.output if o.name not in defined)
    return free


# ====================================================================== writing
def _node_proto(graph: Graph, op: Op) -> NodeProto:
    node = NodeProto()
    node.CopyFrom(op.extra)
    if node.op_type != op.op_type:
        node.op_type = op.op_type
    if node.domain != op.domain:
        node.domain = op.domain
    if node.name != op.name:
        node.name = op.name
    node.input.extend(v.name if v is not None else "" for v in graph.inputs_of(op))
    node.output.extend(v.name if v is not None else "" for v in graph.outputs_of(op))
    node.attribute.extend(op.attributes.values())
    return node


def _value_info(value) -> onnx.ValueInfoProto:
    return value.info if value.info is not None else onnx.ValueInfoProto(name=value.name)


def _skeletons(graph: Graph, placeholder_inputs: list | None = None) -> tuple[ModelProto, GraphProto]:
    """The model and graph protos with everything but the dense initializers."""
    model = ModelProto()
    model.CopyFrom(graph.model)
    if not model.ir_version:
        model.ir_version = MAX_ORT_IR_VERSION
    body = GraphProto()
    body.CopyFrom(graph.graph_proto)
    body.node.extend(_node_proto(graph, op) for op in graph.topological_order())
    body.input.extend(_value_info(v) for v in graph.inputs)
    if placeholder_inputs:
        body.input.extend(placeholder_inputs)
    body.output.extend(_value_info(v) for v in graph.outputs)
    body.value_info.extend(graph._value_info.values())
    body.sparse_initializer.extend(v.sparse for v in graph._sparse_initializers)
    return model, body


def to_onnx(graph: Graph, *, weights: bool = True) -> ModelProto:
    """The Graph as a ModelProto. With `weights=False`, initializers above 1 KiB are declared as graph
    inputs of the same type and shape instead of being copied: enough for the checker and shape
    inference, at a fraction of the memory."""
    placeholders = []
    initializers = []
    declared_inputs = {v.name for v in graph.inputs}
    for value in graph._initializers:
        tensor = value.tensor
        if not weights and tensor.nbytes > EXTERNAL_MIN_BYTES and tensor.data_type in RAW_NUMPY_DTYPES:
            if value.name not in declared_inputs:
                placeholders.append(onnx.helper.make_tensor_value_info(value.name, tensor.data_type, tensor.shape))
            continue
        initializers.append(tensor.to_proto(value.name))
    model, body = _skeletons(graph, placeholders)
    body.initializer.extend(initializers)
    model.graph.CopyFrom(body)
    return model


def save(graph: Graph, path: str | os.PathLike, *, external_data: bool | None = None) -> None:
    """Write the model to `path` atomically, streaming initializer bytes without copying them.

    `external_data`: True writes tensors of 1 KiB and more to `<file name>.data` beside the model;
    None (default) does so when the model was read that way or its weights approach protobuf's
    2 GiB limit.
    """
    path = Path(path)
    total = sum(v.tensor.nbytes for v in graph._initializers)
    if external_data is None:
        external_data = graph.external_data or total > EXTERNAL_DATA_THRESHOLD
    model, body = _skeletons(graph)
    data_name = path.name + ".data"
    inline, external = [], []
    for value in graph._initializers:
        raw = value.tensor.raw_bytes()
        if raw is None:
            inline.append((value.tensor.to_proto(value.name).SerializeToString(), None))
        elif external_data and memoryview(raw).nbytes >= EXTERNAL_MIN_BYTES:
            external.append((value, raw))
        else:
            header = value.tensor.header_proto(value.name).SerializeToString()
            inline.append((header, raw))
    if external:
        offset = 0
        with atomic_write(path.with_name(data_name)) as data:
            for value, raw in external:
                pad = -offset % 64  # aligned tensors can be memory-mapped as arrays
                data.write(b"\0" * pad)
                offset += pad
                nbytes = memoryview(raw).nbytes
                data.write(raw)
                header = value.tensor.header_proto(value.name)
                header.data_location = TensorProto.EXTERNAL
                for key, val in (("location", data_name), ("offset", str(offset)), ("length", str(nbytes))):
                    entry = header.external_data.add()
                    entry.key, entry.value = key, val
                inline.append((header.SerializeToString(), None))
                offset += nbytes
    if sum(len(h) + (memoryview(r).nbytes if r is not None else 0) for h, r in inline) > 2**31 - 1:
        raise ModelError(path, "is too large for one protobuf file (2 GiB)", "save it with external_data=True")
    model_bytes = model.SerializeToString()
    body_bytes = body.SerializeToString()
    entries = []
    for header, raw in inline:
        parts = [header]
        if raw is not None:
            parts.append(wire.length_delimited_header(wire.TENSOR_RAW_DATA, memoryview(raw).nbytes))
            parts.append(raw)
        entries.append(parts)
    with atomic_write(path) as out:
        out.write(model_bytes)
        graph_length = len(body_bytes) + sum(
            len(wire.length_delimited_header(wire.GRAPH_INITIALIZER, _length(p))) + _length(p) for p in entries)
        out.write(wire.length_delimited_header(wire.MODEL_GRAPH, graph_length))
        out.write(body_bytes)
        for parts in entries:
            wire.write_length_delimited(out, wire.GRAPH_INITIALIZER, parts)


def _length(parts: list) -> int:
    return sum(memoryview(p).nbytes for p in parts)

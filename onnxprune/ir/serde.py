"""ONNX <-> Graph: `load`, `save`, `to_onnx`.

Loading from a file memory-maps it and hands initializers out as views of the file (see `wire`), so
loading costs almost no memory and saving streams tensor bytes from wherever they live. External data
is memory-mapped the same way; a location that leaves the model's folder is refused.

Over 500 lines on purpose: load and save are the two directions of one format and share its
external-data and mapped-page handling; apart, each half would import the other's internals.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import GraphProto, ModelProto, NodeProto, TensorProto

from ..errors import IRError, ModelError
from ..files import atomic_write, path_problem, paused_gc, same_file
from . import wire
from .graph import CAPTURE, Graph, Op
from .tensor import RAW_NUMPY_DTYPES, Tensor

#: The newest IR version onnxruntime(-training) 1.19 loads; models onnxprune creates get this one.
MAX_ORT_IR_VERSION = 10
#: Above this many bytes of weights a model cannot be one protobuf (2 GiB limit): save uses external data.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
#: Tensors smaller than this stay inside the model file when saving with external data.
EXTERNAL_MIN_BYTES = 1024
#: External tensors of at least PAGE_ALIGN_MIN_BYTES start at a multiple of the page size: onnxruntime
#: memory-maps such tensors on the CPU instead of copying them (others are aligned to 64 bytes).
PAGE_ALIGN, PAGE_ALIGN_MIN_BYTES = 4096, 1 << 20
#: Where `save(placeholders=...)` says the bytes of the tensors it does not write lie (no such file).
PLACEHOLDER_LOCATION = "onnxprune-weights-given-in-memory"
#: While writing, the source files' pages are released after this many bytes (see `release_pages`).
RELEASE_EVERY = 256 * 1024 * 1024


# ====================================================================== loading
def load(source) -> Graph:
    """Read a model (a path, a ModelProto, or an onnx-graphsurgeon Graph) into a Graph. Raises
    ModelError for unreadable input. The caller's object is never edited.

    This only parses; `onnxprune.ir.validate` checks the model against the ONNX spec.
    """
    if is_graphsurgeon(source):
        import onnx_graphsurgeon as gs

        source = gs.export_onnx(source)
    if isinstance(source, ModelProto):
        if not source.HasField("graph"):
            raise ModelError("<ModelProto>", "is not an ONNX model: it has no graph")
        model = ModelProto()
        model.CopyFrom(source)  # the Graph must never edit the caller's message
        if any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
            raise ModelError("<ModelProto>", "refers to external data that is not loaded",
                             "load the model from its file path instead")
        _inline_nested_external_data(model, model.graph, None, {})
        tensors = [(t.name, Tensor.from_proto(t)) for t in model.graph.initializer]
        return _build(model, model.graph, tensors, "<ModelProto>", ())
    path = Path(source)
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ModelError(path, "no such file") from None
    except (OSError, ValueError) as exc:  # a name too long, a symlink loop, a NUL byte
        raise ModelError(path, f"cannot be read: {path_problem(exc)}") from None
    if stat.S_ISDIR(found.st_mode):
        raise ModelError(path, "is a directory, not an ONNX model file")
    if not stat.S_ISREG(found.st_mode):  # reading a FIFO would wait for a writer
        raise ModelError(path, "is not a regular file (a FIFO, socket or device), not an ONNX model file")
    if found.st_size == 0:
        raise ModelError(path, "is empty, not an ONNX model")
    try:
        with open(path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelError(path, f"cannot be read: {exc.strerror}") from None
    with paused_gc():
        return _load_mapped(mapped, path)


def is_graphsurgeon(source) -> bool:
    """True for an onnx-graphsurgeon Graph (checked without importing onnx-graphsurgeon)."""
    return type(source).__module__.startswith("onnx_graphsurgeon") and type(source).__name__ == "Graph"


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
        _inline_nested_external_data(model, graph, path, maps)
        for header_bytes, raw in tensor_spans:
            header = TensorProto.FromString(header_bytes)
            name = header.name
            if header.data_location == TensorProto.EXTERNAL:  # the spec reads external data, not raw_data
                tensors.append((name, _external_tensor(header, path, maps)))
            elif raw is None:
                tensors.append((name, Tensor.from_proto(header)))
            else:
                header.ClearField("name")
                tensors.append((name, Tensor.from_raw(header, view[raw[0]:raw[1]])))
    except DecodeError:
        raise _undecodable(path, "protobuf decoding failed") from None
    return _build(model, graph, tensors, str(path), (path, *maps), (buf, *maps.values()))


def _load_plain(data: bytes, path: Path) -> Graph:
    """Fallback for unusual layouts (several graph fields to merge): let protobuf parse everything."""
    try:
        model = ModelProto.FromString(data)
    except DecodeError:
        raise _undecodable(path, "protobuf decoding failed") from None
    if not model.HasField("graph"):
        raise ModelError(path, "is not an ONNX model: it has no graph")
    maps: dict = {}
    _inline_nested_external_data(model, model.graph, path, maps)
    tensors = [(t.name, _external_tensor(t, path, maps) if t.data_location == TensorProto.EXTERNAL
                else Tensor.from_proto(t)) for t in model.graph.initializer]
    return _build(model, model.graph, tensors, str(path), (path, *maps), tuple(maps.values()))


def _undecodable(path: Path, detail: str) -> ModelError:
    if "past the end" in detail or "truncated" in detail:
        return ModelError(path, "is truncated: the protobuf data ends in the middle of a field",
                          "the file was cut short; copy or export it again")
    return ModelError(path, f"is not an ONNX model: not a valid protobuf message ({detail})")


def _external_tensor(proto: TensorProto, path: Path, maps: dict[Path, mmap.mmap]) -> Tensor:
    """A tensor whose data lie in an external file beside the model (mapped files are kept in `maps`)."""
    header = TensorProto()
    header.CopyFrom(proto)
    header.ClearField("external_data")
    header.ClearField("data_location")
    header.ClearField("name")
    return Tensor.from_raw(header, _external_bytes(proto, path, maps))


def _external_bytes(proto: TensorProto, path: Path, maps: dict[Path, mmap.mmap]) -> memoryview:
    """The bytes an external-data reference names, read from a file inside the model's own folder.

    Every reference, wherever it sits in the model, comes through here: a location that is empty,
    absolute, or leaves the folder (`..`, a symbolic link) is refused, so a crafted model can never make
    onnxprune read another file into its output."""
    info = {e.key: e.value for e in proto.external_data}
    location = info.get("location", "")
    shown = location if len(location) <= 120 else location[:100] + f"... ({len(location)} characters)"
    if "\0" in location:  # no file name holds one; the OS would cut the name there
        raise ModelError(path, f"tensor {proto.name!r} names external data {shown!r}, which holds a NUL byte")
    base = path.parent.resolve()
    try:
        target = (base / location).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ModelError(path, f"external data {shown!r} of tensor {proto.name!r} cannot be resolved: "
                         f"{path_problem(exc)}") from None
    if not location or os.path.isabs(location) or base not in target.parents:
        raise ModelError(path, f"tensor {proto.name!r} points at external data {shown!r} outside the model's folder",
                         "onnxprune only follows external data locations inside the model's own folder")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise ModelError(path, f"tensor {proto.name!r} has a non-numeric external data offset or length") from None
    if target not in maps:
        try:
            if not target.is_file():
                raise ModelError(path, f"external data file {shown!r} of tensor {proto.name!r} is missing")
            with open(target, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                maps[target] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as exc:  # a name too long for the file system, an unreadable file
            raise ModelError(path, f"external data file {shown!r} of tensor {proto.name!r} cannot be read: "
                             f"{path_problem(exc)}") from None
    mapped = maps[target]
    length = len(mapped) - offset if length is None else length
    if offset < 0 or length < 0 or offset + length > len(mapped):
        raise ModelError(path, f"tensor {proto.name!r} reads past the end of external data file {location!r}")
    return memoryview(mapped)[offset:offset + length]


def _inline_nested_external_data(model: ModelProto, graph_proto: GraphProto, path: Path | None, maps: dict) -> None:
    """Copy into the model the external data of every tensor that is not a top-level dense initializer:
    Constant-node values, subgraph (If/Loop/Scan) initializers, sparse initializers, function bodies.

    Those tensors stay protos that onnx's helpers and onnxruntime read later, and both resolve external
    locations against the current directory, not the model's folder. Read here, through the one
    containment check, nothing is left for them to resolve. A ModelProto (`path` None) has no folder:
    such references are refused."""
    for tensor in _nested_tensors(graph_proto, model.functions):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        if path is None:
            raise ModelError("<ModelProto>", f"tensor {tensor.name!r} refers to external data that is not loaded",
                             "load the model from its file path instead")
        data = bytes(_external_bytes(tensor, path, maps))
        tensor.ClearField("external_data")
        tensor.data_location = TensorProto.DEFAULT
        tensor.raw_data = data


def _nested_tensors(graph_proto: GraphProto, functions=()) -> Iterable[TensorProto]:
    """Every TensorProto of the graph but its dense initializers (those `load` maps itself)."""
    for sparse in graph_proto.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    nodes = [*graph_proto.node, *(node for function in functions for node in function.node)]
    for node in nodes:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: NodeProto) -> Iterable[TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
            yield sparse.values
            yield sparse.indices
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            yield from sub.initializer
            yield from _nested_tensors(sub)


def _build(model: ModelProto, graph_proto: GraphProto, tensors: list[tuple[str, Tensor]], origin: str,
           source_files: tuple[Path, ...], mapped=()) -> Graph:
    """Build the Graph; a model whose structure breaks the IR's rules is bad input (ModelError)."""
    try:
        graph = _graph_from_parts(model, graph_proto, tensors, origin)
    except IRError as exc:
        raise ModelError(origin, f"is not a valid ONNX graph: {exc}") from None
    graph.source_files = source_files
    graph.external_data = len(source_files) > 1
    graph.mapped_files = tuple(mapped)
    return graph


def _graph_from_parts(model: ModelProto, graph_proto: GraphProto, tensors: list[tuple[str, Tensor]],
                      origin: str) -> Graph:
    """Build the Graph. `model`/`graph_proto` (owned by the caller, not shared with the user) may still
    hold their repeated fields; they are read, and the skeletons kept on the Graph have them cleared."""
    model_skeleton = ModelProto()
    model_skeleton.CopyFrom(model)
    model_skeleton.ClearField("graph")
    skeleton = GraphProto()
    skeleton.CopyFrom(graph_proto)
    for name in ("node", "initializer", "sparse_initializer", "input", "output", "value_info"):
        skeleton.ClearField(name)
    graph = Graph(model_skeleton, skeleton)

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

    for position, info in enumerate(graph_proto.output):
        value = graph.get_value(info.name)
        if value is None:
            raise ModelError(origin, f"graph output {info.name!r} is not computed by any node")
        if graph.is_input(value) or graph.is_output(value):
            graph._output_overrides[position] = info  # the value's own declaration is taken
        else:
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
    for position, value in enumerate(graph.outputs):
        override = graph._output_overrides.get(position)
        body.output.append(override if override is not None and override.name == value.name else _value_info(value))
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


def save(graph: Graph, path: str | os.PathLike, *, external_data: bool | None = None,
         placeholders: frozenset[str] | set[str] = frozenset()) -> None:
    """Write the model to `path` atomically, streaming initializer bytes without copying them.

    `external_data`: True writes tensors of 1 KiB and more to `<file name>.data` beside the model;
    None (default) does so when the model was read that way or its weights approach protobuf's
    2 GiB limit. Writing over the external data file the graph was read from is refused.
    `placeholders`: initializers whose bytes are not written at all: they are declared external at
    PLACEHOLDER_LOCATION, a file that does not exist, for a caller that hands their data to onnxruntime
    itself (`runtime.inference_session`); such a file is not a complete model.
    """
    path = Path(path)
    data_path = path.with_name(path.name + ".data")
    _refuse_clobbering_sources(graph, path, data_path)
    total = sum(v.tensor.nbytes for v in graph._initializers)
    if external_data is None:
        external_data = graph.external_data or total > EXTERNAL_DATA_THRESHOLD
    # (value, goes to the data file), in the model's initializer order; no tensor's bytes are taken yet:
    # a deferred tensor (a slice compact made) is computed when it is written, then dropped
    plan = [(value, external_data and value.tensor.writes_raw and value.tensor.nbytes >= EXTERNAL_MIN_BYTES
             and value.name not in placeholders) for value in graph._initializers]
    offsets: dict = {}
    if any(external for _, external in plan):
        offset = 0
        with atomic_write(data_path) as data, _releasing_pages(graph) as written:
            for value, external in plan:
                if external:
                    raw = value.tensor.raw_bytes()
                    nbytes = _length([raw])
                    pad = -offset % (PAGE_ALIGN if nbytes >= PAGE_ALIGN_MIN_BYTES else 64)
                    data.write(b"\0" * pad)
                    offset += pad
                    data.write(raw)
                    del raw
                    offsets[value] = (offset, nbytes)
                    offset += nbytes
                    written(nbytes)
    entries = []  # per initializer: its serialised parts, or its value where the raw bytes follow later
    for value, external in plan:
        if value.name in placeholders:
            header = value.tensor.header_proto(value.name)
            header.data_location = TensorProto.EXTERNAL
            for key, val in (("location", PLACEHOLDER_LOCATION), ("offset", "0"), ("length", str(value.tensor.nbytes))):
                entry = header.external_data.add()
                entry.key, entry.value = key, val
            entries.append([header.SerializeToString()])
        elif external:
            header = value.tensor.header_proto(value.name)
            header.ClearField("external_data")
            header.data_location = TensorProto.EXTERNAL
            start, nbytes = offsets[value]
            for key, val in (("location", data_path.name), ("offset", str(start)), ("length", str(nbytes))):
                entry = header.external_data.add()
                entry.key, entry.value = key, val
            entries.append([header.SerializeToString()])
        elif not value.tensor.writes_raw:
            entries.append([value.tensor.to_proto(value.name).SerializeToString()])
        else:
            header = value.tensor.header_proto(value.name).SerializeToString()
            nbytes = value.tensor.nbytes
            entries.append([header, wire.length_delimited_header(wire.TENSOR_RAW_DATA, nbytes), _Later(value, nbytes)])
    model, body = _skeletons(graph)
    model_bytes = model.SerializeToString()
    body_bytes = body.SerializeToString()
    graph_length = len(body_bytes) + sum(
        len(wire.length_delimited_header(wire.GRAPH_INITIALIZER, _length(p))) + _length(p) for p in entries)
    if len(model_bytes) + graph_length > 2**31 - 1:
        raise ModelError(path, "is too large for one protobuf file (2 GiB)", "save it with external_data=True")
    with atomic_write(path) as out, _releasing_pages(graph) as written:
        out.write(model_bytes)
        out.write(wire.length_delimited_header(wire.MODEL_GRAPH, graph_length))
        out.write(body_bytes)
        for parts in entries:
            wire.write_length_delimited(out, wire.GRAPH_INITIALIZER, [_bytes_of(p) for p in parts])
            written(_length(parts))


class _Later:
    """A tensor's raw bytes, taken only when the file is written (its length is known before)."""

    __slots__ = ("nbytes", "value")

    def __init__(self, value, nbytes: int) -> None:
        self.value, self.nbytes = value, nbytes


def _bytes_of(part):
    if isinstance(part, _Later):
        raw = part.value.tensor.raw_bytes()
        if _length([raw]) != part.nbytes:
            raise ValueError(f"tensor {part.value.name!r} changed size while it was written")
        return raw
    return part


@contextlib.contextmanager
def _releasing_pages(graph: Graph):
    """Yield `written(nbytes)`: after every RELEASE_EVERY bytes written (and at the end), the pages of
    the graph's memory-mapped source files are handed back (`release_pages`). Streaming a model out
    reads all of it; without this, those pages would stay in this process's resident set."""
    count = [0]

    def written(nbytes: int) -> None:
        count[0] += nbytes
        if count[0] >= RELEASE_EVERY:
            count[0] = 0
            release_pages(graph)

    try:
        yield written
    finally:
        release_pages(graph)


def release_pages(graph: Graph) -> None:
    """Drop the pages of the files `graph` was read from out of this process's resident set (they stay in
    the page cache; a later read maps them again). Reading a large model's weights once, for importance
    or to write them, would otherwise keep all of it resident until exit."""
    for mapped in graph.mapped_files:
        if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") and not mapped.closed:
            mapped.madvise(mmap.MADV_DONTNEED)


def _refuse_clobbering_sources(graph: Graph, path: Path, data_path: Path) -> None:
    """The files a graph was read from are memory-mapped: replacing its external data under a model
    that still points at it would break that model. (Rewriting the source model itself is safe.)"""
    model_source, data_sources = (graph.source_files[0], graph.source_files[1:]) if graph.source_files else (None, ())
    for source in data_sources:
        if same_file(path, source) or (same_file(data_path, source) and not (model_source and same_file(path, model_source))):
            raise ModelError(path, f"would overwrite {source}, the external data this model was read from",
                             "choose another output path")


def _length(parts: list) -> int:
    return sum(p.nbytes if isinstance(p, _Later) else memoryview(p).nbytes for p in parts)

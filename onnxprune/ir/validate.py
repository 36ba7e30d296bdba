"""Checking a loaded model against the ONNX spec before any pass touches it."""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto

from ..errors import IRError, ModelError
from .graph import Graph
from .tensor import RAW_NUMPY_DTYPES

#: Domains whose operator schemas ship with the onnx package.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})


def custom_domains(graph: Graph) -> dict[str, list[str]]:
    """Domains used by ops that neither the onnx package nor the model's own functions define,
    with the op types used from each."""
    local = {f.domain for f in graph.model.functions}
    found: dict[str, list[str]] = {}
    for op in graph.ops():
        if op.domain not in STANDARD_DOMAINS and op.domain not in local:
            types = found.setdefault(op.domain, [])
            if op.op_type not in types:
                types.append(op.op_type)
    return found


#: Bytes per element of raw data for element types numpy has no plain dtype for.
_PACKED_ITEMSIZE = {TensorProto.BFLOAT16: 1.0 * 2, TensorProto.FLOAT8E4M3FN: 1.0, TensorProto.FLOAT8E4M3FNUZ: 1.0,
                    TensorProto.FLOAT8E5M2: 1.0, TensorProto.FLOAT8E5M2FNUZ: 1.0, TensorProto.INT4: 0.5,
                    TensorProto.UINT4: 0.5}
_KNOWN_TYPES = frozenset(TensorProto.DataType.values()) - {TensorProto.UNDEFINED}


def tensor_problem(tensor) -> str | None:
    """What is wrong with an initializer's header or data (None if nothing): an unknown element type,
    a negative dimension, or data that does not hold exactly the elements its dims say."""
    if tensor.data_type not in _KNOWN_TYPES:
        return f"has element type {tensor.data_type}, which ONNX does not define"
    if any(d < 0 for d in tensor.shape):
        return f"has a negative dimension ({'x'.join(map(str, tensor.shape))})"
    raw = tensor.raw_bytes()
    if raw is not None:
        itemsize = RAW_NUMPY_DTYPES[tensor.data_type].itemsize if tensor.data_type in RAW_NUMPY_DTYPES else \
            _PACKED_ITEMSIZE.get(tensor.data_type)
        if itemsize is not None:
            expected = math.ceil(tensor.size * itemsize)
            have = memoryview(raw).nbytes
            if have != expected:
                return (f"holds {have} bytes of data where its dims ({'x'.join(map(str, tensor.shape))}) of "
                        f"{onnx.helper.tensor_dtype_to_string(tensor.data_type).removeprefix('TensorProto.')} "
                        f"need {expected}")
        return None
    if tensor.data_type == TensorProto.STRING:
        return None
    try:
        found = onnx.numpy_helper.to_array(tensor.to_proto("t")).size
    except (ValueError, TypeError) as error:
        return f"has data that does not match its dims ({str(error).splitlines()[0][:120]})"
    return None if found == tensor.size else f"holds {found} elements where its dims say {tensor.size}"


#: Deepest nesting of subgraphs accepted: 20 nested Ifs took onnxruntime 12.7 s to load, 30 hung.
MAX_NESTING = 12


def _nesting(body: onnx.GraphProto) -> int:
    """How many levels of subgraphs `body` holds, itself included."""
    inner = [a.g for n in body.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    inner += [g for n in body.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
    return 1 + max((_nesting(g) for g in inner), default=0)


def recursive_function(graph: Graph) -> str | None:
    """The name of a model-local function that calls itself, directly or through others (onnx's
    checker and shape inference recurse forever on one and crash the process)."""
    calls = {(f.domain, f.name): {(n.domain, n.op_type) for n in f.node} for f in graph.model.functions}
    for start in calls:
        seen, stack = set(), list(calls[start])
        while stack:
            callee = stack.pop()
            if callee == start:
                return f"{start[0]}.{start[1]}"
            if callee in calls and callee not in seen:
                seen.add(callee)
                stack.extend(calls[callee])
    return None


def validate(graph: Graph, origin: str, *, allow_custom_domains: bool = False, full: bool = False) -> None:
    """Raise ModelError (naming `origin`) if the model is not one onnxprune can work on: an opset
    newer than the installed onnx knows, ops from unknown custom domains (unless allowed), or a
    failure of onnx.checker (`full` adds strict shape inference)."""
    known = onnx.defs.onnx_opset_version()
    versions = onnx.defs.C.schema_version_map()  # domain -> (oldest, newest) opset the onnx package knows
    for domain, version in graph.opset_imports.items():
        if domain in ("", "ai.onnx") and version > known:
            raise ModelError(origin, f"uses ai.onnx opset {version}, newer than the {known} that onnxprune's onnx knows",
                             f"export the model with opset {known} or lower")
        if domain in versions and version > versions[domain][1]:
            raise ModelError(origin, f"uses {domain} opset {version}, newer than the {versions[domain][1]} onnxprune knows")
    if "" not in graph.opset_imports and "ai.onnx" not in graph.opset_imports and any(
            op.domain in ("", "ai.onnx") for op in graph.ops()):
        raise ModelError(origin, "uses ONNX operators but imports no ai.onnx opset")
    custom = custom_domains(graph)
    if custom and not allow_custom_domains:
        listing = "; ".join(f"'{d}' ({', '.join(t[:4])}{', ...' if len(t) > 4 else ''})" for d, t in custom.items())
        raise ModelError(origin, f"uses operators from custom domain {listing} that onnxprune does not know",
                         "pass --allow-custom-ops to keep such ops as opaque, unprunable nodes")
    if not graph.outputs:
        raise ModelError(origin, "has no graph outputs: nothing it computes could be checked or kept")
    for value in graph.initializers:
        problem = tensor_problem(value.tensor)
        if problem:
            raise ModelError(origin, f"initializer {value.name[:80]!r} {problem}")
    depth = max((_nesting(g) for op in graph.ops() for g in op.subgraphs), default=0)
    if depth > MAX_NESTING:
        raise ModelError(origin, f"nests If/Loop/Scan bodies {depth} deep; onnxprune takes at most {MAX_NESTING} "
                         "(onnxruntime's session creation doubles in time with each level)")
    cycle = recursive_function(graph)
    if cycle:
        raise ModelError(origin, f"local function {cycle} calls itself; ONNX functions cannot recurse")
    try:
        graph.topological_order()
    except IRError as exc:
        raise ModelError(origin, f"is not a valid ONNX graph: {exc}") from None
    garbled = undecodable_name(graph)
    if garbled:
        raise ModelError(origin, f"holds {garbled} that is not valid UTF-8; ONNX names are UTF-8 text")
    try:
        onnx.checker.check_model(graph.to_onnx(weights=False), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as exc:
        # ValueError covers UnicodeDecodeError from malformed string fields
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(origin, f"fails the ONNX checker: {first}") from None
    if full:
        mismatch = contraction_mismatch(graph)
        if mismatch:
            raise ModelError(origin, mismatch)


def undecodable_name(graph: Graph) -> str | None:
    """What names a string field that is not valid UTF-8 (protobuf hands those back as bytes, which
    reports, JSON, onnxruntime and writing the model back cannot take), or None. The checker looks at
    op types only, and only after the model is written back."""
    def in_protos(body: onnx.GraphProto) -> str | None:
        for node in body.node:
            found = first_bytes((("a node name", node.name), ("an op type", node.op_type), ("a domain", node.domain),
                                 *(("a value name", name) for name in (*node.input, *node.output))))
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    found = found or in_protos(sub)
            if found:
                return found
        return first_bytes(("a value name", v.name) for v in (*body.input, *body.output, *body.initializer))

    for op in graph.ops():
        found = first_bytes((("a node name", op.name), ("an op type", op.op_type), ("a domain", op.domain)))
        for sub in op.subgraphs:
            found = found or in_protos(sub)
        if found:
            return found
    found = first_bytes(("a value name", v.name) for v in graph.values())
    for function in graph.model.functions:
        found = found or in_protos(onnx.GraphProto(node=function.node))
    return found


def first_bytes(labelled) -> str | None:
    """"LABEL b'...'" for the first (label, text) whose text is bytes, not str."""
    return next((f"{label} {text[:60]!r}" for label, text in labelled if isinstance(text, bytes)), None)


def contraction_mismatch(graph: Graph) -> str | None:
    """A Conv, Gemm or MatMul whose operands disagree on the axis they contract (static sizes only):
    onnx's shape inference lets these through, and costs computed for them would be fiction."""
    from .shapes import infer_shapes

    types = None
    for op in graph.ops():
        if op.op_type not in ("Conv", "Gemm", "MatMul") or op.domain not in ("", "ai.onnx"):
            continue
        types = types if types is not None else infer_shapes(graph)
        a, b = (types.get(v.name) if v is not None else None for v in graph.inputs_of(op)[:2])
        if a is None or b is None or a.shape is None or b.shape is None or len(a.shape) < 2 or len(b.shape) < 2:
            continue
        if op.op_type == "Conv":
            left, right = a.shape[1], b.shape[1] * op.attr("group", 1) if isinstance(b.shape[1], int) else None
        elif op.op_type == "Gemm":
            left = a.shape[0] if op.attr("transA", 0) else a.shape[1]
            right = b.shape[1] if op.attr("transB", 0) else b.shape[0]
        else:
            left, right = a.shape[-1], b.shape[-2]
        if isinstance(left, int) and isinstance(right, int) and left != right:
            return (f"{op.label} contracts {left} against {right} elements (its operands disagree); "
                    "the model cannot run")
    return None

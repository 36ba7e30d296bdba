"""Checking a loaded model against the ONNX spec before any pass touches it."""

from __future__ import annotations

import onnx

from ..errors import IRError, ModelError
from .graph import Graph

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
    try:
        graph.topological_order()
    except IRError as exc:
        raise ModelError(origin, f"is not a valid ONNX graph: {exc}") from None
    try:
        onnx.checker.check_model(graph.to_onnx(weights=False), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as exc:
        # ValueError covers UnicodeDecodeError from malformed string fields
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(origin, f"fails the ONNX checker: {first}") from None

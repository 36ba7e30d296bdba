"""What `analyze` reports, as plain data and as text, and the family graph as Graphviz DOT.

`analyze_command` is the command's body; the CLI only parses its options and hands it where lines go.
Tests and scripts get the same data from `analyze` without the command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import onnx

from ..ir import Graph
from ..passmanager import AnalysisManager
from .command_io import check_output_path, input_bindings, load_model, warn, write_json


def dtype_name(elem_type: int | None) -> str:
    """'float', 'int64', ... for an ONNX element type ('type<n>' for one this onnx does not know)."""
    if not elem_type:
        return "?"
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type{elem_type}"


def shape_text(shape) -> str:
    """'[N, 3, 32, 32]' (or '?' if the rank is unknown)."""
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def analyze(graph: Graph, path: str, input_shapes: Sequence[str] = (), notes: Sequence[str] = ()) -> dict[str, Any]:
    """The `analyze` summary as plain data (`input_shapes`: 'name=1x3x224x224' bindings; `notes`: what
    the caller wants said about them)."""
    am = AnalysisManager(graph)
    cost = am.get("cost", input_shapes=tuple(input_shapes))
    shapes = am.get("shapes", input_shapes=tuple(input_shapes))
    space = am.get("prune-space", input_shapes=tuple(input_shapes))
    erasing = am.get("erase-space", input_shapes=tuple(input_shapes))

    def describe(value):
        found = shapes.get(value.name)
        shape = value.shape if value.shape is not None else (found.shape if found else None)
        return {"name": value.name, "dtype": dtype_name(value.dtype), "shape": list(shape) if shape else shape}

    return {
        "model": path,
        "ir_version": graph.ir_version,
        "opset_imports": graph.opset_imports,
        "producer": f"{graph.model.producer_name} {graph.model.producer_version}".strip(),
        "inputs": [describe(v) for v in graph.inputs if not v.is_initializer],
        "outputs": [describe(v) for v in graph.outputs],
        "ops": len(graph),
        "parameters": cost.parameters,
        "parameter_bytes": cost.parameter_bytes,
        "constants": cost.constants,
        "initializers": len(graph.initializers),
        "macs": cost.macs,
        "flops": cost.flops,
        "op_types": {t: {"count": cost.op_counts[t], "macs": c.macs, "flops": c.flops}
                     for t, c in cost.by_type().items()},
        "unknown_cost_ops": [{"name": o.name, "op_type": o.op_type} for o in cost.unknown],
        "per_op": [{"name": o.name, "op_type": o.op_type, "macs": o.cost.macs if o.cost else None,
                    "flops": o.cost.flops if o.cost else None} for o in cost.ops],
        "input_shapes": list(input_shapes),
        "families": [f.describe() for f in space.families],
        "regions": [r.describe() for r in erasing.regions],
        "exclusive_regions": [list(group) for group in erasing.exclusive],
        **_prunable_totals(graph, space, cost),
        "notes": ["MACs and FLOPs count symbolic dimensions (such as the batch) as 1", *notes],
    }


def _prunable_totals(graph: Graph, space, cost) -> dict[str, int]:
    """Parameters (each tensor once) and FLOPs (each op once) that prunable families touch."""
    values = {m.value for f in space.prunable for m in f.members}
    params = sum(v.tensor.size for v in graph.initializers if v.name in values)
    flops = 0
    for op, op_cost in zip(graph.topological_order(), cost.ops):
        touched = any(v is not None and v.name in values for v in (*graph.inputs_of(op), *graph.outputs_of(op)))
        if touched and op_cost.cost is not None:
            flops += op_cost.cost.flops
    return {"prunable_params": int(params), "prunable_flops": int(flops)}


def format_analysis(data: dict[str, Any]) -> str:
    """The `analyze` summary as text."""
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in data["opset_imports"].items())
    lines = [f"{data['model']}: IR version {data['ir_version']}, opset {opsets}"
             + (f", produced by {data['producer']}" if data["producer"] else "")]
    for title in ("inputs", "outputs"):
        lines.append(title)
        for v in data[title]:
            lines.append(f"  {v['name']}  {v['dtype']} {shape_text(v['shape'])}")
    kib = data["parameter_bytes"] / 1024
    lines.append(f"parameters  {data['parameters']:,} ({kib:,.1f} KiB); {data['constants']:,} elements of "
                 f"non-float constants; {data['initializers']} initializers")
    bound = f"inputs bound to {', '.join(data['input_shapes'])}; " if data["input_shapes"] else ""
    lines.append(f"compute     {data['macs']:,} MACs, {data['flops']:,} FLOPs per run "
                 f"({bound}symbolic dims count as 1)")
    lines.append("")
    lines.append(f"{'op type':<24}{'count':>7}{'MACs':>16}{'FLOPs':>16}{'FLOPs %':>9}")
    total = data["flops"] or 1
    for op_type, entry in data["op_types"].items():
        lines.append(f"{op_type:<24}{entry['count']:>7}{entry['macs']:>16,}{entry['flops']:>16,}"
                     f"{100 * entry['flops'] / total:>9.1f}")
    lines.append(f"{'total':<24}{data['ops']:>7}{data['macs']:>16,}{data['flops']:>16,}{100.0:>9.1f}")
    lines.append("")
    lines.append(f"{len(data['families'])} families, {sum(f['prunable'] for f in data['families'])} prunable; "
                 f"{data['prunable_params']:,} of {data['parameters']:,} parameters and "
                 f"{data['prunable_flops']:,} of {data['flops']:,} FLOPs are in tensors and ops that prunable "
                 f"families touch")
    lines.append(f"{'id':>3}  {'kind':<7}{'groups':>7}{'members':>8}{'params':>10}  {'name':<34}status")
    for f in data["families"]:
        more = f" (+{len(f['reasons']) - 1} more reasons)" if len(f["reasons"]) > 1 else ""
        status = "prunable" if f["prunable"] else "frozen: " + f["reasons"][0] + more
        params = f"{f['params']:,}" if f["params"] is not None else "?"
        lines.append(f"{f['id']:>3}  {f['kind']:<7}{f['size']:>7}{len(f['members']):>8}{params:>10}  "
                     f"{f['name'][:33]:<34}{status}")
    lines.append("")
    lines.append(f"{len(data['regions'])} erasable regions (blocks that can be removed whole)")
    if data["regions"]:
        lines.append(f"{'id':>3}{'ops':>6}{'params':>10}{'FLOPs':>14}  {'merges into':<34}entry")
        for r in data["regions"]:
            nested = f" (inside {r['parent']})" if r["parent"] is not None else ""
            lines.append(f"{r['id']:>3}{r['ops']:>6}{r['params']:>10,}{r['flops']:>14,}  {r['merge'][:33]:<34}"
                         f"{r['entry']}{nested}")
        for group in data["exclusive_regions"]:
            lines.append(f"  not all of regions {', '.join(map(str, group))} together: their merge would lose "
                         "every input")
    if data["unknown_cost_ops"]:
        names = ", ".join(f"{o['op_type']} {o['name']!r}" for o in data["unknown_cost_ops"][:5])
        more = len(data["unknown_cost_ops"]) - 5
        lines.append(f"cost unknown (shapes or op type not known) for {names}" + (f" and {more} more" if more > 0 else ""))
    return "\n".join(lines)


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def family_dot(graph: Graph, space) -> str:
    """Graphviz DOT of the op graph; each value is an edge coloured by the prunable family of its
    channel axis (grey dashed: frozen, black: none), so a reader sees what moves together."""
    colour: dict[str, tuple[str, str]] = {}
    for family in space.families:
        for member in family.members:
            if member.role == "activation" and member.value not in colour:
                label = f"F{family.id}" + ("" if family.prunable else " (frozen)")
                colour[member.value] = (_PALETTE[family.id % len(_PALETTE)] if family.prunable else "gray", label)
    ids = {op: f"op{i}" for i, op in enumerate(graph.topological_order())}
    lines = ["digraph onnxprune {", "  rankdir=TB; node [shape=box, fontsize=10]; edge [fontsize=8];"]
    for op, node in ids.items():
        lines.append(f'  {node} [label="{op.op_type}\n{op.name[:40]}"];')
    for value in graph.inputs + graph.outputs:
        lines.append(f'  "v:{value.name}" [shape=ellipse, label="{value.name}"];')
    for op, node in ids.items():
        for value in graph.outputs_of(op):
            if value is None:
                continue
            targets = [ids[c] for c in graph.consumers(value)] + ([f'"v:{value.name}"'] if graph.is_output(value) else [])
            shade, label = colour.get(value.name, ("black", ""))
            style = "dashed" if shade == "gray" else "solid"
            for target in targets:
                lines.append(f'  {node} -> {target} [color="{shade}", style={style}, label="{label}"];')
    for value in graph.inputs:
        for consumer in graph.consumers(value):
            lines.append(f'  "v:{value.name}" -> {ids[consumer]};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def analyze_command(args: argparse.Namespace, say: Callable[[str], None] = print,
                    warn: Callable[[str], None] = warn) -> dict[str, Any]:
    """`analyze`: load the model, say the summary, write it as JSON (`--json`) and the family graph as
    DOT (`--dot`); return the summary's data. Notes about input sizes go to `warn` (stderr)."""
    from ..files import atomic_write

    for path in (args.json, args.dot):
        if path:
            check_output_path(path, (args.model,))
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all,
                       say=say)
    bindings, _ = input_bindings(args, graph, warn)
    data = analyze(graph, args.model, bindings.shapes, bindings.notes)
    say(format_analysis(data))
    if args.json:
        write_json(args.json, data)
    if args.dot:
        with atomic_write(args.dot, "w") as handle:
            space = AnalysisManager(graph).get("prune-space", input_shapes=bindings.shapes)
            handle.write(family_dot(graph, space))
    return data

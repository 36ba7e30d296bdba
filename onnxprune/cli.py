"""The `onnxprune` command.

Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr saying what and where),
1 for an internal error (a bug: rerun with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from . import __version__
from .errors import UserError
from .files import atomic_write, same_file
from .ir import Graph, load, save, validate
from .passmanager import REGISTRY, AnalysisManager, AnalysisPass, PassManager


# ---------------------------------------------------------------------- shared helpers
def load_model(path: str, *, allow_custom_ops: bool = False) -> Graph:
    """Load and validate a model given on the command line."""
    graph = load(path)
    validate(graph, path, allow_custom_domains=allow_custom_ops)
    return graph


def check_output_path(output: str | Path, sources: Sequence[str | Path] = (), *, folder_made_later: bool = False
                      ) -> None:
    """Refuse, before any work is done, an output that is a folder, sits in a missing folder (unless
    the command makes it), or would overwrite one of `sources` (the input model and its data files)."""
    path = Path(output)
    if path.is_dir():
        raise UserError(f"{output}: is a folder; give a file name for the output")
    if not folder_made_later and not path.parent.is_dir():
        raise UserError(f"{output}: folder {path.parent} does not exist")
    for source in sources:
        if path.exists() and same_file(source, path):
            raise UserError(f"{output}: refusing to overwrite the input model or its data; choose another output path")


def check_folder(folder: str | Path, what: str) -> None:
    """Refuse a path that exists but is not a folder."""
    if Path(folder).exists() and not Path(folder).is_dir():
        raise UserError(f"{folder}: {what} is a file, not a folder")


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


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


# ---------------------------------------------------------------------- commands
def cmd_passes(args: argparse.Namespace) -> int:
    """List every registered pass with its one-line doc and options."""
    rows = []
    for name in REGISTRY.names():
        cls = REGISTRY.get(name)
        kind = "analysis" if issubclass(cls, AnalysisPass) else "transform"
        rows.append({"name": name, "kind": kind, "summary": cls.summary(), "origin": REGISTRY.origin(name),
                     "options": [{"name": n, "type": t, "default": d} for n, t, d in cls.option_specs()]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        origin = "" if row["origin"] == "builtin" else f"  [{row['origin']}]"
        print(f"{row['name']:<{width}}  {row['kind']:<9}  {row['summary']}{origin}")
        for option in row["options"]:
            print(f"{'':<{width}}    {option['name']}={option['type']} (default {option['default']})")
    return 0


def cmd_opt(args: argparse.Namespace) -> int:
    """Run a pipeline over a model and write the result."""
    manager = PassManager(args.passes, verify_each=args.verify_each, dump_after=args.dump_after or (),
                          dump_dir=args.dump_dir)
    check_folder(args.dump_dir, "--dump-dir")
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops)
    sources = graph.source_files or (args.model,)
    for path in (args.output, f"{args.output}.data"):
        check_output_path(path, sources)
    for path in manager.dump_paths():
        check_output_path(path, sources, folder_made_later=True)
    report = manager.run(graph)
    save(graph, args.output, external_data=True if args.external_data else None)
    if args.time_passes:
        print(report.format_timings(), file=sys.stderr)
    changed = "changed" if report.modified else "unchanged"
    print(f"wrote {args.output} ({len(graph)} ops; {changed} by {manager.pipeline})", file=sys.stderr)
    return 0


def analyze(graph: Graph, path: str, input_shapes: Sequence[str] = ()) -> dict[str, Any]:
    """The `analyze` summary as plain data (`input_shapes`: 'name=1x3x224x224' bindings)."""
    am = AnalysisManager(graph)
    cost = am.get("cost", input_shapes=tuple(input_shapes))
    shapes = am.get("shapes", input_shapes=tuple(input_shapes))

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
        "notes": ["MACs and FLOPs count symbolic dimensions (such as the batch) as 1"],
    }


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
    if data["unknown_cost_ops"]:
        names = ", ".join(f"{o['op_type']} {o['name']!r}" for o in data["unknown_cost_ops"][:5])
        more = len(data["unknown_cost_ops"]) - 5
        lines.append(f"cost unknown (shapes or op type not known) for {names}" + (f" and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Summarise a model: interface, ops, parameters, MACs and FLOPs."""
    if args.json:
        check_output_path(args.json, (args.model,))
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops)
    data = analyze(graph, args.model, args.input_shape or ())
    print(format_analysis(data))
    if args.json:
        write_json(args.json, data)
    return 0


# ---------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="onnxprune", description="Structured pruning for ONNX models.")
    parser.add_argument("--version", action="version", version=f"onnxprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    passes = commands.add_parser("passes", help="list the available passes")
    passes.add_argument("--json", action="store_true", help="print the list as JSON")
    passes.set_defaults(func=cmd_passes)

    opt = commands.add_parser("opt", help="run a pass pipeline over a model")
    opt.add_argument("model", help="input .onnx file (never modified)")
    opt.add_argument("--passes", required=True, metavar="PIPELINE",
                     help='passes to run, e.g. "shapes,cleanup{keep-identity=true},check"')
    opt.add_argument("-o", "--output", required=True, help="output .onnx file (written atomically)")
    opt.add_argument("--verify-each", action="store_true", help="check the IR after every pass")
    opt.add_argument("--dump-after", action="append", metavar="PASS", help="save the graph after this pass")
    opt.add_argument("--dump-dir", default=".", help="folder for --dump-after files (default: .)")
    opt.add_argument("--time-passes", action="store_true", help="print per-pass timings")
    opt.add_argument("--external-data", action="store_true", help="store weights in OUTPUT.data beside the model")
    opt.add_argument("--allow-custom-ops", action="store_true", help="accept ops from unknown domains as opaque")
    opt.set_defaults(func=cmd_opt)

    analyze_cmd = commands.add_parser("analyze", help="summarise a model: ops, parameters, FLOPs")
    analyze_cmd.add_argument("model", help="input .onnx file")
    analyze_cmd.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    analyze_cmd.add_argument("--input-shape", action="append", metavar="NAME=DIMS",
                             help="bind a dynamic input's shape, e.g. input=1x3x224x224 (repeatable)")
    analyze_cmd.add_argument("--allow-custom-ops", action="store_true",
                             help="accept ops from unknown domains as opaque")
    analyze_cmd.set_defaults(func=cmd_analyze)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"onnxprune: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"onnxprune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onnxprune: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in onnxprune: say so, keep the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        print(f"onnxprune: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback "
              "and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["analyze", "build_parser", "format_analysis", "load_model", "main"]

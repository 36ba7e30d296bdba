"""`onnxprune opt` and `onnxprune passes`: run a pass pipeline over a model; list the registered passes."""

from __future__ import annotations

import argparse

from ..ir import Graph, save
from ..passmanager import REGISTRY, AnalysisPass, CheckPass, PassManager
from ..passmanager.manager import PipelineReport
from .command_io import check_folder, check_output_path, load_model


def optimize(args: argparse.Namespace) -> tuple[Graph, PipelineReport, PassManager]:
    """`opt`: check the pipeline and every output path before any work, run the pipeline over the model
    and write the result; return the graph, the pipeline's report and the manager that ran it."""
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
    return graph, report, manager


def pass_rows() -> list[dict]:
    """Every registered pass: name, kind (analysis, check, transform), one-line summary, origin (builtin
    or the plugin package) and options with their types and defaults."""
    rows = []
    for name in REGISTRY.names():
        cls = REGISTRY.get(name)
        kind = "analysis" if issubclass(cls, AnalysisPass) else "check" if issubclass(cls, CheckPass) else "transform"
        rows.append({"name": name, "kind": kind, "summary": cls.summary(), "origin": REGISTRY.origin(name),
                     "options": [{"name": n, "type": t, "default": d} for n, t, d in cls.option_specs()]})
    return rows


__all__ = ["optimize", "pass_rows"]

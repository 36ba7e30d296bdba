"""The `onnxprune` command.

Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr saying what and where),
1 for an internal error (a bug: rerun with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from . import __version__
from .app.analyze import analyze, family_dot, format_analysis
from .bounds import check_bounds
from .errors import Interrupted, UserError, VerifyFailed
from .facts import Compaction, Outcome, Rounding, VerifyReport
from .files import atomic_write, check_output_name, input_file, same_file
from .inputs import Bindings, read_samples, resolve_bindings
from .ir import Graph, load, save, validate
from .passmanager import REGISTRY, AnalysisManager, AnalysisPass, CheckPass, PassManager
from .prepare import prepare
from .space import Selection


# ---------------------------------------------------------------------- shared helpers
def load_model(path: str, *, allow_custom_ops: bool = False, prepared: bool = False,
               untie_all: bool = False) -> Graph:
    """Load and validate a model given on the command line. `prepared` (the commands that analyse):
    constant-computed weights are folded and shared initializers untied first (`onnxprune.prepare`),
    and a line says what changed."""
    graph = load(path)
    validate(graph, path, allow_custom_domains=allow_custom_ops, full=True)
    if prepared:
        for line in prepare(graph, untie_all=untie_all):
            print(f"onnxprune: {line}")
    return graph


def input_bindings(args: argparse.Namespace, graph: Graph) -> tuple[Bindings, dict]:
    """The sizes the command feeds inputs at (--input-shape, --sample-inputs, the model's metadata) and
    the sample arrays; each note about them goes to stderr as one line."""
    samples = read_samples(args.sample_inputs, graph) if getattr(args, "sample_inputs", None) else {}
    bindings = resolve_bindings(graph, tuple(args.input_shape or ()), samples)
    for note in bindings.notes:
        print(f"onnxprune: note: {note}", file=sys.stderr)
    return bindings, samples


def check_output_path(output: str | Path, sources: Sequence[str | Path] = (), *, folder_made_later: bool = False
                      ) -> None:
    """Refuse, before any work is done, an output that is a folder, sits in a missing folder (unless
    the command makes it), or would overwrite one of `sources` (the input model and its data files)."""
    path = Path(output)
    check_output_name(path)
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


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def write_page(report: dict, path: str | Path, metrics: Sequence[dict] = ()) -> None:
    """The HTML report (matplotlib is imported here, and only when a page is written)."""
    try:
        from .app.report import write_html
    except ImportError as error:
        raise UserError(f"writing {path} needs matplotlib ({error}); pip install matplotlib, or pass --no-report"
                        ) from None
    write_html(report, path, metrics)


# ---------------------------------------------------------------------- commands
def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML page of a report JSON (and the training metrics beside it)."""
    from .app.report import beside_report, read_metrics, read_report

    report = read_report(args.report)
    output = args.output or beside_report(args.report, ".report.html")
    check_output_path(output, (args.report,))
    metrics = read_metrics(args.metrics or beside_report(args.report, ".metrics.jsonl"))
    write_page(report, output, metrics)
    print(f"wrote {output}" + (f" ({len(metrics)} metric rows)" if metrics else ""))
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    """List every registered pass with its one-line doc and options (or, with --ops, every ONNX op
    with what onnxprune knows of it)."""
    if args.ops:
        from .ops.coverage import coverage, coverage_json, format_coverage

        rows = coverage()
        print(json.dumps(coverage_json(rows), indent=2) if args.json else format_coverage(rows))
        return 0
    rows = []
    for name in REGISTRY.names():
        cls = REGISTRY.get(name)
        kind = "analysis" if issubclass(cls, AnalysisPass) else "check" if issubclass(cls, CheckPass) else "transform"
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


def cmd_analyze(args: argparse.Namespace) -> int:
    """Summarise a model: interface, ops, parameters, MACs and FLOPs."""
    for path in (args.json, args.dot):
        if path:
            check_output_path(path, (args.model,))
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all)
    bindings, _ = input_bindings(args, graph)
    data = analyze(graph, args.model, bindings.shapes, bindings.notes)
    print(format_analysis(data))
    if args.json:
        write_json(args.json, data)
    if args.dot:
        with atomic_write(args.dot, "w") as handle:
            space = AnalysisManager(graph).get("prune-space", input_shapes=bindings.shapes)
            handle.write(family_dot(graph, space))
    return 0


def _prune_pipeline(args: argparse.Namespace, graph: Graph, select=None, selection_file: str | None = None,
                    round_to: int | None = 1) -> int:
    """Choose (`select(round_to)` makes the `select` pass) or read (`selection_file`) a selection, compact,
    verify, write the model and the selection, print the outcome and the latency. `round_to` None
    chooses the rounding from measured widths (`widths`). A selection that removes nothing writes
    nothing and says why."""
    check_bounds(args)  # the options prune and compact share with run (--tolerance, --latency-threads)
    from .app.report import report_paths

    report_json, report_html, _ = report_paths(args.output)
    for path in (args.output, f"{args.output}.data", args.selection_out,
                 *(() if args.no_report else (report_json, report_html))):
        if path:
            check_output_path(path, graph.source_files or (args.model,))
    bindings, samples = input_bindings(args, graph)
    shapes = bindings.shapes
    am = AnalysisManager(graph, input_shapes=shapes, sample_inputs=samples)
    space = am.get("prune-space")
    if select is not None and not space.prunable and not getattr(args, "erase", 0):
        # nothing can be chosen: stop before the erasing analysis, compact, verify and the write
        return _nothing_removed(args, space, f"no family of the model is prunable ({len(space.families)} found)")
    if getattr(args, "target_latency", None) is not None:
        from .app.widths_choice import ratio_for_latency

        args.ratio = ratio_for_latency(args, graph, am, space, shapes)
    erasing = am.get("erase-space")
    before = am.get("cost")
    nodes_before = len(graph)
    compact = REGISTRY.get("compact")
    # the selection first (a file is read by compact itself), so an empty one stops before the rest
    if select is not None and round_to is None and getattr(args, "rank_choice", None) == "auto":
        from .app.widths_choice import select_measured

        select_measured(args, graph, am, space, select, shapes)
    elif select is not None and round_to is None:
        from .app.widths_choice import select_auto

        select_auto(args, graph, am, space, select)
    else:
        PassManager([select(round_to)] if select is not None else [compact(selection=selection_file)]).run(graph, am)
    selection = am.fact(Selection) if select is not None else am.fact(Compaction).selection
    outcome = am.fact(Outcome, None)  # read now: compact drops what described the graph before it
    rounded = am.fact(Rounding, Rounding(round_to or 1)).multiple
    if not selection.group_count and not selection.erased:
        why = ("the selection file removes nothing" if select is None else
               f"--ratio {args.ratio:g} selects no group" if space.prunable else
               "no family is prunable and no block could be erased")
        return _nothing_removed(args, space, why)
    passes = [compact()] if select is not None else []
    if not args.no_verify:
        passes.append(REGISTRY.get("verify")(tolerance=args.tolerance))
    PassManager(passes + [REGISTRY.get("cleanup")()]).run(graph, am)
    am.discard(Compaction)  # its masked copy of the model: verified, no longer needed
    after = AnalysisManager(graph, input_shapes=shapes).get("cost")
    save(graph, args.output)
    if args.selection_out:
        write_json(args.selection_out, selection.to_json(space, erasing))
    families = sum(1 for groups in selection.pruned.values() if groups)

    def change(a: int, b: int) -> str:
        return f"{a:,} -> {b:,} ({100 * (b - a) / a:+.1f}%)" if a else f"{a:,} -> {b:,}"

    print(f"pruned {selection.group_count} groups in {families} of {len(space.prunable)} prunable families"
          + (f"; erased {len(selection.erased)} regions" if selection.erased else ""))
    print(f"parameters {change(before.parameters, after.parameters)}")
    print(f"FLOPs      {change(before.flops, after.flops)} per run")
    if outcome is not None:
        short = outcome.target - outcome.removed
        if outcome.by == "latency":
            print(f"estimate   Conv/Gemm/MatMul time at batch 1 (width table): {outcome.total:.4g} -> "
                  f"{outcome.total - outcome.removed:.4g} ms")
        print(f"target     {100 * outcome.target / outcome.total if outcome.total else 0:.1f}% of the {outcome.by}"
              f"{' (estimated)' if outcome.by == 'latency' else ''}, "
              f"reached {100 * outcome.share:.2f}%"
              f"{' (width table)' if outcome.by == 'latency' else ' (measured on the compact model)'}"
              + ((f"; kept counts move in steps of {rounded} (--round-to)" if rounded > 1 else
                  "; the prunable families (within --max-family-ratio) hold no more")
                 if outcome.total and short > 0.01 * outcome.target else ""))
    verify = am.fact(VerifyReport, None)
    if verify is not None:
        print(f"verify     {verify}")
    calibration = _calibration_effect(args, graph)
    print(f"wrote {args.output}" + (f" and {args.selection_out}" if args.selection_out else ""))
    loads = None
    latency = None
    if not args.no_latency:
        latency = report_latency(load_model(args.model, allow_custom_ops=args.allow_custom_ops), graph, shapes,
                                 args.latency_threads)
        if latency is not None:
            loads = latency["levels"]["compact"] == "all"  # the timing session already tried every optimisation
            from .app.widths_choice import latency_floor, short_of_flops

            flops_cut = 1 - after.flops / before.flops if before.flops else 0.0
            short = short_of_flops(latency, flops_cut)
            if select is not None and short:
                latency["floor"] = latency_floor(args, shapes, flops_cut, rounded, graph, short)
    if not args.no_report:
        from .app.report import prune_report

        report = prune_report(args.command, args.model, args.output, space, erasing, selection, before, after,
                              nodes=(nodes_before, len(graph)), outcome=outcome, verify=verify, latency=latency,
                              input_shapes=shapes)
        if calibration is not None:
            report["calibration"] = calibration
        write_json(report_json, report)
        write_page(report, report_html)
        print(f"wrote {report_json} and {report_html}")
    if loads is None:
        loads = _loads_at_default_settings(args.output)
    if not loads:
        sys.stdout.flush()
        print("onnxprune: warning: onnxruntime 1.19 cannot load the result with all graph optimisations (its NCHWc "
              "layout transform rejects some channel counts after a Concat); it loads with them at 'extended'. "
              "--round-to 8 usually avoids it.", file=sys.stderr)
    return 0


def _calibration_effect(args: argparse.Namespace, compact: Graph) -> dict | None:
    """With --calibration: say how blocks were ranked and, for a causal LM, its loss on the held-out
    calibration rows before and after (the report's `calibration` entry)."""
    if not getattr(args, "calibration", None):
        return None
    from .calibration import causal_lm_loss, read_calibration

    original = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all)
    data = read_calibration(args.calibration, original)
    held = len(next(iter(data.held_out.values())))
    entry = {"source": data.source, "rows": data.rows, "held_out_rows": held,
             "erase_criterion": "block influence (1 - cos of the stream before and after, ShortGPT)"
             if getattr(args, "erase", 0) else None}
    if entry["erase_criterion"]:
        print(f"erase by   block influence on {data.rows} calibration rows (the regions that least change "
              f"their input go first), not weight size")
    dense = causal_lm_loss(original, data.held_out) if held else None
    if dense is not None:
        pruned = causal_lm_loss(compact, data.held_out)
        entry["lm_loss"] = {"dense": dense, "compact": pruned}
        print(f"LM loss    {dense:.4f} -> {pruned:.4f} nats per token (perplexity {math.exp(dense):.4g} -> "
              f"{math.exp(pruned):.4g}) on {held} held-out calibration rows")
    elif held == 0:
        print("LM loss    not measured: the calibration data has a single row, none held out")
    return entry


def _nothing_removed(args: argparse.Namespace, space, why: str) -> int:
    """Say that nothing is removed, why families are frozen and what would change that, and that no
    model is written (it would be the input unchanged)."""
    from .frozen import describe_frozen

    print(f"pruned 0 groups: {why}")
    for line in describe_frozen(space):
        print(line)
    print(f"nothing written: {args.output} would be {args.model} unchanged"
          + (f" (nor {args.selection_out}, an empty selection)" if getattr(args, "selection_out", None) else ""))
    return 0


def report_latency(original: Graph, compact: Graph, input_shapes: Sequence[str], threads: int) -> dict | None:
    """Measure the compact model against the original (onnxruntime, CPU, interleaved), print the
    figures, and warn in one line, with what to try, where the compact model is not faster."""
    from .runtime import compare_latency

    try:
        latency = compare_latency(original, compact, threads=threads, input_shapes=tuple(input_shapes))
    except UserError as error:  # the model is written and verified by now: a timing failure is only said
        print(f"latency    not measured: {error}")
        return None
    print(f"latency    {latency.describe('original', 'compact')}")
    for note in latency.notes:
        print(f"latency    {note}")
    _warn_not_faster(latency.not_faster("compact", "original"))
    return {**latency.to_json(), "not_faster_at": latency.not_faster("compact", "original"),
            "summary": latency.describe("original", "compact")}


def _warn_not_faster(batches: Sequence[int]) -> None:
    """One line, after the figures, where the compact model is not faster, with what to try."""
    from .runtime import SLOWER_HINT

    if batches:
        sys.stdout.flush()  # the warning follows the figures it is about
        print(f"onnxprune: warning: the compact model is not faster than the original at batch "
              f"{' and '.join(map(str, batches))}; {SLOWER_HINT}", file=sys.stderr)


def _loads_at_default_settings(path: str) -> bool:
    """Whether onnxruntime loads the model onnxprune wrote at `path` with its default (all) graph
    optimisations. From the file: serialising the graph again cost as much as the load itself."""
    try:
        from .runtime import inference_session

        inference_session(path, level="all", lean=True)
        return True
    except ImportError:
        return True  # nothing to say without onnxruntime
    except Exception:  # onnxruntime raises its own exception types
        return False


def cmd_prune(args: argparse.Namespace) -> int:
    """Select groups by importance and remove them in one shot."""
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all)
    round_to = parse_round_to(args.round_to)
    if args.target_latency is not None:
        if not (math.isfinite(args.target_latency) and args.target_latency > 0):
            raise UserError(f"--target-latency must be a positive number of milliseconds, got {args.target_latency}")
        args.by, args.ratio = "latency", 0.0  # the ratio follows from a measurement of the model
    elif not 0 <= args.ratio <= 1:
        raise UserError(f"--ratio must be between 0 and 1, got {args.ratio}")
    # with auto rounding the width table is there: both rankings are tried and the faster kept
    args.rank_choice = "latency" if args.by == "latency" else args.rank or ("auto" if round_to is None else "importance")
    if args.rank_choice == "auto" and round_to is not None:
        args.rank_choice = "importance"  # with --round-to N nothing is timed: the plain ranking

    def select(round_to: int, round_small: bool = False, rank: str | None = None):
        return REGISTRY.get("select")(ratio=args.ratio, criterion=args.criterion, by=args.by, scope=args.scope,
                                      round_to=round_to, round_small=round_small, threads=args.latency_threads,
                                      rank=rank or ("importance" if args.rank_choice == "auto" else args.rank_choice),
                                      max_family_ratio=args.max_family_ratio, seed=args.seed, erase=args.erase,
                                      calibration=args.calibration or "")

    return _prune_pipeline(args, graph, select=select, round_to=round_to)


def parse_round_to(text: str) -> int | None:
    """`--round-to`: a positive multiple, or None for "auto" (chosen per model from measured widths)."""
    if str(text).strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--round-to must be a positive whole number or auto, got {text!r}")
    return value


def cmd_compact(args: argparse.Namespace) -> int:
    """Apply a selection file."""
    input_file(args.selection, "selection file")
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all)
    args.selection_out = None
    return _prune_pipeline(args, graph, selection_file=args.selection)


def cmd_run(args: argparse.Namespace) -> int:
    """Train with a group-sparse optimizer, cut the zero groups out, verify, report."""
    from .train.run import RunPaths, TrainConfig, run_model

    check_bounds(args)
    graph_sources = (args.model,)
    paths = RunPaths.beside(args.output)
    from .app.report import report_paths

    report_html = report_paths(args.output)[1]
    for path in (args.output, f"{args.output}.data", paths.report, paths.metrics,
                 *(() if args.no_report else (report_html,))):
        check_output_path(path, graph_sources)
    if args.target_erase is None:
        args.target_erase = 0.5 if args.erase else 0.0
    if not 0 <= args.target_erase <= 1:
        raise UserError(f"--target-erase must be between 0 and 1, got {args.target_erase}")
    round_to = parse_round_to(args.round_to)
    if round_to is None:
        from .app.widths_choice import run_round_to

        graph = load(args.model)  # as run_model reads it, which says what preparing changed
        prepare(graph, untie_all=args.untie_all)
        round_to = run_round_to(args, graph, input_bindings(args, graph)[0].shapes)
    args.round_to = round_to
    config = TrainConfig(optimizer=args.optimizer, variant=args.variant, target_sparsity=args.target_sparsity,
                         target_erase=args.target_erase,
                         loss=args.loss, epochs=args.epochs, steps=args.steps or 0, lr=args.lr, schedule=args.schedule,
                         warmup=args.warmup, momentum=args.momentum, weight_decay=args.weight_decay,
                         batch_size=args.batch_size, device=args.device, engine=args.engine, bf16=args.bf16,
                         compile=args.compile, seed=args.seed,
                         pruning_periods=args.pruning_periods, group_divisible=args.round_to, threads=args.threads,
                         checkpoint_every=args.checkpoint_every, cric_cycles=args.cric_cycles,
                         cric_levels=args.cric_levels, cric_tolerance=args.cric_tolerance,
                         cric_loss_weight=args.cric_loss_weight, cric_budget=args.cric_budget,
                         cric_batches=args.cric_batches, cric_cycle_steps=args.cric_cycle_steps,
                         cric_choice=args.cric_choice)
    report = run_model(args.model, args.output, args.data, config, eval_data=args.eval_data,
                       eval_fraction=args.eval_fraction, synthetic=args.synthetic, resume=args.resume,
                       tolerance=args.tolerance, progress=not args.no_progress,
                       input_shapes=tuple(args.input_shape or ()), untie_all=args.untie_all,
                       sample_inputs=args.sample_inputs, latency=not args.no_latency,
                       latency_threads=args.latency_threads)
    if report.get("rank"):  # a data-parallel rank other than 0: rank 0 reports
        return 0

    def change(key: str) -> str:
        a, b = report[key]["dense"], report[key]["compact"]
        return f"{a:,} -> {b:,} ({100 * (b - a) / a:+.1f}%)" if a else f"{a:,} -> {b:,}"

    print(f"trained {report['steps']} steps; group sparsity {report['group_sparsity']:.3f}; "
          f"removed {report['groups_removed']} groups in {len(report['families'])} families"
          + (f"; erased {len(report['regions_erased'])} blocks ({report['nodes']['dense']} -> "
             f"{report['nodes']['compact']} nodes)" if report["regions_erased"] else ""))
    cric = report.get("cric")
    if cric is not None:
        print(f"hesso-cric {cric['evaluations']} loss evaluations ({cric['forward_batches']} batches), "
              f"{len(cric['cycles'])} cycles ({cric['cycle_steps']} steps); rescued {cric['rescued_count']} groups")
    print(f"parameters {change('params')}")
    print(f"FLOPs      {change('flops')} per run")
    lat = report.get("latency_ms")
    if lat is not None:
        print(f"latency    {lat['summary']}")
        for note in lat["notes"]:
            print(f"latency    {note}")
    for name, found in report.get("eval", {}).items():
        shown = ", ".join(f"{k} {_figure(v)}" for k, v in found.items() if k != "samples")
        label = {"dense": "trained (zeroed)"}.get(name, name)
        print(f"eval       {label}: {shown} ({found.get('samples', 0)} held-out samples)")
    if "teacher" in report:
        print(f"teacher    {report['teacher']['note']}")
    verify = report["verify"]
    print(f"verify     compact vs trained: max abs diff {verify['max_abs']:.3g}, max rel diff {verify['max_rel']:.3g}")
    if not args.no_report:
        from .app.report import read_metrics

        write_page(report, report_html, read_metrics(paths.metrics))
    print(f"wrote {args.output}, {paths.report}, {paths.metrics}" + ("" if args.no_report else f", {report_html}"))
    if lat is not None:
        _warn_not_faster(lat["not_faster_at"])
    return 0


def _figure(value: float) -> str:
    """A loss or accuracy with the digits that matter: 4 decimals in the usual range, else 3 significant
    digits in exponent form (a distillation loss of 5.6e-19 is not 0.0000)."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3g}"


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
    passes.add_argument("--ops", action="store_true",
                        help="list every standard ONNX op with what onnxprune knows of it (coverage)")
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
    analyze_cmd.add_argument("--dot", metavar="FILE", help="also draw the graph with families coloured (Graphviz)")
    _input_shape_option(analyze_cmd)
    _untie_option(analyze_cmd)
    analyze_cmd.add_argument("--allow-custom-ops", action="store_true",
                             help="accept ops from unknown domains as opaque")
    analyze_cmd.set_defaults(func=cmd_analyze)

    prune = commands.add_parser("prune", help="remove the least important channel/head groups in one shot")
    prune.add_argument("model", help="input .onnx file (never modified)")
    prune.add_argument("-o", "--output", required=True, help="output .onnx file")
    ratio = prune.add_mutually_exclusive_group(required=True)
    ratio.add_argument("--ratio", type=float, help="share to remove (of groups, params, FLOPs or latency)")
    ratio.add_argument("--target-latency", type=float, metavar="MS",
                       help="remove what brings the model's batch-1 latency (onnxruntime CPU, --latency-threads) "
                            "to about MS milliseconds, by the width table's estimate (implies --by latency)")
    prune.add_argument("--criterion", choices=["l1", "l2", "random"], default="l2", help="importance (default l2)")
    prune.add_argument("--by", choices=["groups", "params", "flops", "latency"], default="groups",
                       help="what --ratio measures (default groups); latency: the time of the model's "
                            "Conv/Gemm/MatMul ops as the measured width table estimates it, and the ranking "
                            "trades importance against the time each group saves")
    prune.add_argument("--rank", choices=["auto", "importance", "latency"],
                       help="order groups by importance, or by importance per millisecond each saves (the width "
                            "table's estimate, HALP); auto (the default with --round-to auto) tries both and "
                            "keeps the one that measures faster; --by latency always ranks by latency")
    prune.add_argument("--scope", choices=["global", "local"], default="global",
                       help="rank all groups together or each family alone (default global)")
    prune.add_argument("--round-to", default="auto", metavar="N|auto",
                       help="keep counts that are multiples of N; auto (default): the multiple that onnxruntime runs "
                            "this model's Conv/Gemm/MatMul shapes fastest at on this machine (measured once, cached "
                            "in $ONNXPRUNE_CACHE or ~/.cache/onnxprune); 1 rounds nothing and measures nothing")
    prune.add_argument("--max-family-ratio", type=float, default=0.9, help="at most this share of one family")
    prune.add_argument("--seed", type=int, default=0, help="seed for --criterion random")
    prune.add_argument("--selection-out", metavar="FILE", help="write the selection as JSON")
    prune.add_argument("--erase", type=int, default=0, metavar="N",
                       help="also erase the N least important whole blocks (see analyze's regions)")
    prune.add_argument("--calibration", metavar="DATA",
                       help=".npz (arrays per input) or .npy (token ids) to run the model on: --erase ranks blocks by "
                            "block influence there; a causal LM's loss on its held-out quarter is reported")
    _verify_options(prune)
    _latency_options(prune)
    _report_option(prune)
    prune.set_defaults(func=cmd_prune)

    compact = commands.add_parser("compact", help="apply a selection JSON to a model")
    compact.add_argument("model", help="input .onnx file (never modified)")
    compact.add_argument("--selection", required=True, metavar="FILE", help="selection JSON (from prune or by hand)")
    compact.add_argument("-o", "--output", required=True, help="output .onnx file")
    _verify_options(compact)
    _latency_options(compact)
    _report_option(compact)
    compact.set_defaults(func=cmd_compact)
    _run_parser(commands)

    report = commands.add_parser("report", help="write the HTML page of a run's or prune's OUT.report.json")
    report.add_argument("report", help="OUT.report.json (OUT.metrics.jsonl beside it adds the training curves)")
    report.add_argument("-o", "--output", help="the page to write (default: OUT.report.html beside the JSON)")
    report.add_argument("--metrics", help="training metrics JSON lines (default: OUT.metrics.jsonl beside the JSON)")
    report.set_defaults(func=cmd_report)
    for command in commands.choices.values():  # --debug after the command too (SUPPRESS keeps the top-level value)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def _run_parser(commands) -> None:
    run = commands.add_parser("run", help="train with a group-sparse optimizer, remove the zero groups, verify")
    run.add_argument("model", help="input .onnx file (never modified)")
    run.add_argument("-o", "--output", required=True, help="compact output .onnx (report, metrics, checkpoints beside it)")
    run.add_argument("--data", help="FILE.npz, a folder of <input>.npy (or <input>/*.npy shards), or module:function")
    run.add_argument("--eval-data", help="held-out data (default: --eval-fraction of --data)")
    run.add_argument("--eval-fraction", type=float, default=0.1, help="share of --data held out (default 0.1)")
    run.add_argument("--synthetic", type=int, default=0, metavar="N",
                     help="no data: distil the original model on N random inputs (says so)")
    _input_shape_option(run)
    _untie_option(run)
    run.add_argument("--target-sparsity", type=float, default=0.5, help="share of groups to zero (default 0.5)")
    run.add_argument("--erase", action="store_true", help="also erase whole blocks (share: --target-erase)")
    run.add_argument("--target-erase", type=float, metavar="F",
                     help="share of the erasable regions to erase (default 0.5 with --erase; implies --erase)")
    run.add_argument("--optimizer", choices=["hesso", "hesso-cric", "dhspg"], default="hesso",
                     help="hesso-cric: HESSO that checks its choice by measured loss first (README, HESSO-CRIC)")
    cric = run.add_argument_group("hesso-cric")
    cric.add_argument("--cric-cycles", type=int, default=3, metavar="N", help="correction cycles at most (default 3)")
    cric.add_argument("--cric-levels", type=int, default=3, metavar="N",
                      help="trial levels per family: 1/(N+1) .. N/(N+1) of its groups zeroed (default 3: 25/50/75 %%)")
    cric.add_argument("--cric-tolerance", type=float, default=0.05, metavar="F",
                      help="stop when a cycle would examine at most this share of K new groups (default 0.05)")
    cric.add_argument("--cric-loss-weight", type=float, default=1.0, metavar="W",
                      help="weight of the measured loss penalty against saliency (default 1)")
    cric.add_argument("--cric-budget", type=int, default=0, metavar="N",
                      help="loss evaluations at most (default 0: 5%% of the training steps' batches)")
    cric.add_argument("--cric-batches", type=int, default=2, metavar="N",
                      help="held-in batches per loss evaluation (default 2)")
    cric.add_argument("--cric-cycle-steps", type=int, default=0, metavar="N",
                      help="training steps per cycle (default 0: 1/50 of the steps)")
    cric.add_argument("--cric-choice", choices=["fixed", "progressive"], default="fixed",
                      help="fixed: HESSO's periods zero CRIC's final set; progressive: each period chooses afresh by "
                           "saliency + loss penalty")
    run.add_argument("--variant", choices=["sgd", "adam", "adamw"], default="sgd", help="base optimizer")
    run.add_argument("--loss", choices=["cross-entropy", "mse", "distill"], default="cross-entropy")
    run.add_argument("--epochs", type=int, default=3)
    run.add_argument("--steps", type=int, help="train this many steps (overrides --epochs)")
    run.add_argument("--lr", type=float, default=0.05)
    run.add_argument("--schedule", choices=["constant", "step", "cosine"], default="cosine")
    run.add_argument("--warmup", type=int, default=0, metavar="STEPS")
    run.add_argument("--momentum", type=float, default=0.9)
    run.add_argument("--weight-decay", type=float, default=0.0)
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--pruning-periods", type=int, default=5)
    run.add_argument("--round-to", default="auto", metavar="N|auto",
                     help="kept groups per family: multiples of N; auto (default) picks the multiple this model's "
                          "Conv/Gemm/MatMul shapes run fastest at, as prune does; 1 rounds nothing")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="where training runs (with --engine ort: where the optimizer step runs)")
    run.add_argument("--engine", choices=["auto", "ort", "torch"], default="auto",
                     help="onnxruntime-training (ort) or torch executing the same graph; auto: torch on CUDA, "
                          "ort on the CPU (says which)")
    run.add_argument("--bf16", action="store_true", help="torch engine on CUDA: bf16 autocast")
    run.add_argument("--compile", action="store_true", help="torch engine: torch.compile the forward")
    run.add_argument("--threads", type=int, default=0, help="the engine's threads (default: all cores)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT's checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--tolerance", type=float, default=1e-4, help="verify's relative tolerance (default 1e-4)")
    _latency_options(run)
    _report_option(run)
    run.set_defaults(func=cmd_run)


def _input_shape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shape", action="append", metavar="NAME=DIMS",
                        help="bind a dynamic input's shape, e.g. input=1x3x224x224 (repeatable): the analysis "
                             "sees these sizes and sample inputs (verify, --synthetic, latency) have them")
    parser.add_argument("--sample-inputs", metavar="FILE.npz",
                        help="real inputs (arrays named after the model's inputs) for verify; their sizes bind "
                             "the analysis, --synthetic and latency like --input-shape")


def _untie_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--untie-all", action="store_true",
                        help="also give each reader of a truly tied weight (a tied embedding and LM head) its own "
                             "copy; exporter-shared initializers are always untied")


def _latency_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-latency", action="store_true",
                        help="skip timing the result against the original (onnxruntime, CPU)")
    parser.add_argument("--latency-threads", type=int, default=1, metavar="N",
                        help="onnxruntime intra-op threads for the latency figures (default 1)")


def _report_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-report", action="store_true",
                        help="write no OUT.report.html (nor, for prune and compact, OUT.report.json)")


def _verify_options(parser: argparse.ArgumentParser) -> None:
    _input_shape_option(parser)
    _untie_option(parser)
    parser.add_argument("--no-verify", action="store_true", help="skip comparing against the masked original")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="verify's relative tolerance (default 1e-4)")
    parser.add_argument("--allow-custom-ops", action="store_true", help="accept ops from unknown domains as opaque")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"onnxprune: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except Interrupted as exc:
        print(f"onnxprune: {exc}", file=sys.stderr)
        return 130
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"onnxprune: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onnxprune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (`| head`) stopped: nothing to report, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except VerifyFailed as exc:
        print(f"onnxprune: internal error: {one_line(exc)}: the compact model does not compute what the masked "
              "original computes, a bug in onnxprune; nothing was written (rerun with --debug for the traceback "
              "and report it with the model)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug in onnxprune: say so, keep the traceback behind --debug
        if isinstance(exc, OSError) and exc.errno in _FILE_SYSTEM_ERRORS:  # a full disk, a read-only folder
            print(f"onnxprune: error: cannot write {exc.filename or 'an output'}: {exc.strerror}", file=sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        print(f"onnxprune: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


#: What a full disk, a read-only or forbidden folder raise: the user's environment, not our bug.
_FILE_SYSTEM_ERRORS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})


def one_line(error: BaseException) -> str:
    """An error's message on one line (paths and onnxruntime's messages may hold newlines)."""
    return " ".join(str(error).split("\n")).strip()


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["analyze", "build_parser", "format_analysis", "load_model", "main"]

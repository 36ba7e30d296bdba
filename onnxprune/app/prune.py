"""`onnxprune prune` and `onnxprune compact`: choose or read a selection, compact, verify, write, measure.

Both end in `prune_pipeline`: the selection first (so an empty one stops before the rest), then
compact, verify and cleanup, the model and selection written, the outcome said, the latency against
the original measured, the report written, and a warning when onnxruntime cannot load the result at
its default optimisations. Lines for the user go to `say` (stdout) and `warn` (stderr).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from ..bounds import check_bounds
from ..errors import UserError
from ..facts import Compaction, Outcome, Rounding, VerifyReport
from ..files import input_file
from ..ir import Graph, save
from ..passmanager import REGISTRY, AnalysisManager, PassManager
from ..space import Selection
from .command_io import check_output_path, input_bindings, load_model, warn, write_json, write_page
from .options import parse_round_to
from .report import report_sections
from .summary import cost_lines, removed_lines

Say = Callable[[str], None]


def prune_command(args: argparse.Namespace, say: Say = print, warn: Say = warn) -> int:
    """`prune`: select groups by importance and remove them in one shot."""
    if args.criterion == "activation" and not args.calibration:
        from ..calibration import NEEDS_CALIBRATION  # said before the model is loaded and analysed

        raise UserError(NEEDS_CALIBRATION)
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all,
                       say=say)
    round_to = parse_round_to(args.round_to)
    if args.target_latency is not None:
        if not (math.isfinite(args.target_latency) and args.target_latency > 0):
            raise UserError(f"--target-latency must be a positive number of milliseconds, got {args.target_latency}")
        args.by, args.ratio = "latency", 0.0  # the ratio follows from a measurement of the model
    elif not 0 <= args.ratio <= 1:
        raise UserError(f"--ratio must be between 0 and 1, got {args.ratio}")
    # with auto rounding the width table is there: both rankings are tried and the faster kept
    args.rank_choice = "latency" if args.by == "latency" else args.rank or ("auto" if round_to is None else "importance")
    if args.rank_choice == "auto" and (round_to is not None or args.erase_mode == "ranked"):
        args.rank_choice = "importance"  # with --round-to N nothing is timed: the plain ranking; blocks have no timing

    def select(round_to: int, round_small: bool = False, rank: str | None = None):
        return REGISTRY.get("select")(ratio=args.ratio, criterion=args.criterion, by=args.by, scope=args.scope,
                                      round_to=round_to, round_small=round_small, threads=args.latency_threads,
                                      rank=rank or ("importance" if args.rank_choice == "auto" else args.rank_choice),
                                      max_family_ratio=args.max_family_ratio, seed=args.seed, erase=args.erase,
                                      erase_mode=args.erase_mode, calibration=args.calibration or "")

    return prune_pipeline(args, graph, select=select, round_to=round_to, say=say, warn=warn)


def compact_command(args: argparse.Namespace, say: Say = print, warn: Say = warn) -> int:
    """`compact`: apply a selection file."""
    input_file(args.selection, "selection file")
    graph = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all,
                       say=say)
    args.selection_out = None
    return prune_pipeline(args, graph, selection_file=args.selection, say=say, warn=warn)


def prune_pipeline(args: argparse.Namespace, graph: Graph, select=None, selection_file: str | None = None,
                   round_to: int | None = 1, *, say: Say = print, warn: Say = warn) -> int:
    """Choose (`select(round_to)` makes the `select` pass) or read (`selection_file`) a selection, compact,
    verify, write the model and the selection, say the outcome and the latency. `round_to` None
    chooses the rounding from measured widths (`widths`). A selection that removes nothing writes
    nothing and says why."""
    check_bounds(args)  # the options prune and compact share with run (--tolerance, --latency-threads)
    from .report import report_paths

    report_json, report_html, _ = report_paths(args.output)
    for path in (args.output, f"{args.output}.data", args.selection_out,
                 *(() if args.no_report else (report_json, report_html))):
        if path:
            check_output_path(path, graph.source_files or (args.model,))
    bindings, samples = input_bindings(args, graph, warn)
    shapes = bindings.shapes
    am = AnalysisManager(graph, input_shapes=shapes, sample_inputs=samples)
    space = am.get("prune-space")
    if select is not None and not space.prunable and not getattr(args, "erase", 0):
        # nothing can be chosen: stop before the erasing analysis, compact, verify and the write
        return nothing_removed(args, space, f"no family of the model is prunable ({len(space.families)} found)", say)
    if getattr(args, "target_latency", None) is not None:
        from .widths_choice import ratio_for_latency

        args.ratio = ratio_for_latency(args, graph, am, space, shapes, say=say)
    erasing = am.get("erase-space")
    before = am.get("cost")
    nodes_before = len(graph)
    _choose(args, graph, am, space, select, selection_file, round_to, shapes, say)
    selection = am.fact(Selection) if select is not None else am.fact(Compaction).selection
    outcome = am.fact(Outcome, None)  # read now: compact drops what described the graph before it
    rounded = am.fact(Rounding, Rounding(round_to or 1)).multiple
    if not selection.group_count and not selection.erased:
        why = ("the selection file removes nothing" if select is None else
               f"--ratio {args.ratio:g} selects no group" if space.prunable else
               "no family is prunable and no block could be erased")
        return nothing_removed(args, space, why, say)
    passes = [REGISTRY.get("compact")()] if select is not None else []
    if not args.no_verify:
        passes.append(REGISTRY.get("verify")(tolerance=args.tolerance))
    PassManager(passes + [REGISTRY.get("cleanup")()]).run(graph, am)
    am.discard(Compaction)  # its masked copy of the model: verified, no longer needed
    after = AnalysisManager(graph, input_shapes=shapes).get("cost")
    save(graph, args.output)
    if args.selection_out:
        write_json(args.selection_out, selection.to_json(space, erasing))
    _say_outcome(selection, space, erasing, before, after, outcome, rounded, say)
    verify = am.fact(VerifyReport, None)
    if verify is not None:
        say(f"verify     {verify}")
    calibration = calibration_effect(args, graph, say)
    say(f"wrote {args.output}" + (f" and {args.selection_out}" if args.selection_out else ""))
    loads = None
    latency = None
    if not args.no_latency:
        latency = report_latency(load_model(args.model, allow_custom_ops=args.allow_custom_ops), graph, shapes,
                                 args.latency_threads, say, warn)
        if latency is not None:
            # a timing session at every optimisation shows the output loads so; a basic one (a model past
            # runtime.ALL_LEVEL_COPY_LIMIT is timed there) proves nothing: the file is checked below
            loads = True if latency["levels"]["compact"] == "all" else None
            from .widths_choice import latency_floor, short_of_flops

            flops_cut = 1 - after.flops / before.flops if before.flops else 0.0
            short = short_of_flops(latency, flops_cut)
            if select is not None and short:
                latency["floor"] = latency_floor(args, shapes, flops_cut, rounded, graph, short, say=say)
    if not args.no_report:
        from .report import prune_report

        report = prune_report(args.command, args.model, args.output, space, erasing, selection, before, after,
                              nodes=(nodes_before, len(graph)), outcome=outcome, verify=verify, latency=latency,
                              input_shapes=shapes)
        if calibration is not None:
            report["calibration"] = calibration
        write_json(report_json, report)
        write_page(report, report_html)
        say(f"wrote {report_json} and {report_html}")
    if loads is None:
        loads = _loads_at_default_settings(args.output)
    if not loads:
        warn("onnxprune: warning: onnxruntime 1.19 cannot load the result with all graph optimisations (its NCHWc "
             "layout transform rejects some channel counts after a Concat); it loads with them at 'extended'. "
             "--round-to 8 usually avoids it.")
    return 0


def _choose(args: argparse.Namespace, graph: Graph, am, space, select, selection_file: str | None,
            round_to: int | None, shapes, say: Say) -> None:
    """Make the selection: by the `select` pass (with auto rounding, from measured widths, trying both
    rankings when `args.rank_choice` is auto), or read from `selection_file` by compact itself."""
    if select is not None and round_to is None and getattr(args, "rank_choice", None) == "auto":
        from .widths_choice import select_measured

        select_measured(args, graph, am, space, select, shapes, say=say)
    elif select is not None and round_to is None:
        from .widths_choice import select_auto

        select_auto(args, graph, am, space, select, say=say)
    else:
        passes = [select(round_to)] if select is not None else [REGISTRY.get("compact")(selection=selection_file)]
        PassManager(passes).run(graph, am)


def _say_outcome(selection: Selection, space, erasing, before, after, outcome: Outcome | None, rounded: int,
                 say: Say) -> None:
    """What was removed (in all, then per family and block: `summary.removed_lines`), parameters and
    FLOPs before and after, and the target against what was reached."""
    families = sum(1 for groups in selection.pruned.values() if groups)

    say(f"pruned {selection.group_count} groups in {families} of {len(space.prunable)} prunable families"
        + (f"; erased {len(selection.erased)} regions" if selection.erased else ""))
    for line in removed_lines(report_sections(space, selection, erasing)):
        say(f"  {line}")
    for line in cost_lines((before.parameters, after.parameters), (before.flops, after.flops)):
        say(line)
    if outcome is None:
        return
    short = outcome.target - outcome.removed
    if outcome.by == "latency":
        say(f"estimate   Conv/Gemm/MatMul time at batch 1 (width table): {outcome.total:.4g} -> "
            f"{outcome.total - outcome.removed:.4g} ms")
    say(f"target     {100 * outcome.target / outcome.total if outcome.total else 0:.1f}% of the {outcome.by}"
        f"{' (estimated)' if outcome.by == 'latency' else ''}, "
        f"reached {100 * outcome.share:.2f}%"
        f"{' (width table)' if outcome.by == 'latency' else ' (measured on the compact model)'}"
        + ((f"; kept counts move in steps of {rounded} (--round-to)" if rounded > 1 else
            "; the prunable families (within --max-family-ratio) hold no more")
           if outcome.total and short > 0.01 * outcome.target else ""))


def calibration_effect(args: argparse.Namespace, compact: Graph, say: Say = print) -> dict | None:
    """With --calibration: say how blocks were ranked and, for a causal LM, its loss on the held-out
    calibration rows before and after (the report's `calibration` entry)."""
    if not getattr(args, "calibration", None):
        return None
    from ..calibration import causal_lm_loss, read_calibration

    original = load_model(args.model, allow_custom_ops=args.allow_custom_ops, prepared=True, untie_all=args.untie_all,
                          say=say)
    data = read_calibration(args.calibration, original)
    held = len(next(iter(data.held_out.values())))
    entry = {"source": data.source, "rows": data.rows, "held_out_rows": held,
             "erase_criterion": "block influence (1 - cos of the stream before and after, ShortGPT)"
             if getattr(args, "erase", 0) else None,
             "group_criterion": "activation energy through the consumer weights (structured Wanda)"
             if getattr(args, "criterion", "") == "activation" else None}
    if entry["erase_criterion"]:
        say(f"erase by   block influence on {data.rows} calibration rows (the regions that least change "
            f"their input go first), not weight size")
    if entry["group_criterion"]:
        say(f"rank by    activation energy on {data.rows} calibration rows (sum over a group's channels of the mean "
            f"square of what it feeds a weight times that weight's squared norm), not weight size")
    dense = causal_lm_loss(original, data.held_out) if held else None
    if dense is not None:
        pruned = causal_lm_loss(compact, data.held_out)
        entry["lm_loss"] = {"dense": dense, "compact": pruned}
        say(f"LM loss    {dense:.4f} -> {pruned:.4f} nats per token (perplexity {math.exp(dense):.4g} -> "
            f"{math.exp(pruned):.4g}) on {held} held-out calibration rows")
    elif held == 0:
        say("LM loss    not measured: the calibration data has a single row, none held out")
    return entry


def nothing_removed(args: argparse.Namespace, space, why: str, say: Say = print) -> int:
    """Say that nothing is removed, why families are frozen and what would change that, and that no
    model is written (it would be the input unchanged)."""
    from ..frozen import describe_frozen

    say(f"pruned 0 groups: {why}")
    for line in describe_frozen(space):
        say(line)
    say(f"nothing written: {args.output} would be {args.model} unchanged"
        + (f" (nor {args.selection_out}, an empty selection)" if getattr(args, "selection_out", None) else ""))
    return 0


def report_latency(original: Graph, compact: Graph, input_shapes: Sequence[str], threads: int, say: Say = print,
                   warn: Say = warn) -> dict | None:
    """Measure the compact model against the original (onnxruntime, CPU, interleaved), say the
    figures, and warn in one line, with what to try, where the compact model is not faster."""
    from ..runtime import compare_latency

    try:
        latency = compare_latency(original, compact, threads=threads, input_shapes=tuple(input_shapes))
    except UserError as error:  # the model is written and verified by now: a timing failure is only said
        say(f"latency    not measured: {error}")
        return None
    say(f"latency    {latency.describe('original', 'compact')}")
    for note in latency.notes:
        say(f"latency    {note}")
    warn_not_faster(latency.not_faster("compact", "original"), warn)
    return {**latency.to_json(), "not_faster_at": latency.not_faster("compact", "original"),
            "summary": latency.describe("original", "compact")}


def warn_not_faster(batches: Sequence[int], warn: Say = warn) -> None:
    """One line, after the figures, where the compact model is not faster, with what to try."""
    from ..runtime import SLOWER_HINT

    if batches:
        warn(f"onnxprune: warning: the compact model is not faster than the original at batch "
             f"{' and '.join(map(str, batches))}; {SLOWER_HINT}")


def _loads_at_default_settings(path: str) -> bool:
    """Whether onnxruntime loads the model onnxprune wrote at `path` with its default (all) graph
    optimisations (`runtime.load_failure`, lean: numbers, not speed). From the file: serialising the
    graph again cost as much as the load itself."""
    from ..runtime import load_failure

    try:
        return load_failure(path, lean=True) is None
    except ImportError:
        return True  # nothing to say without onnxruntime


__all__ = ["calibration_effect", "compact_command", "nothing_removed", "prune_command", "prune_pipeline",
           "report_latency", "warn_not_faster"]

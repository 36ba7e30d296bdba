"""The `onnxprune` command: it parses the options, hands each command's body in `onnxprune/app/` where
its lines go (stdout; warnings and notes to stderr), prints, and turns errors into exit statuses.

Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr saying what and where),
1 for an internal error (a bug: rerun with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from . import __version__
from .app.analyze import analyze_command
from .app.command_io import warn
from .errors import Interrupted, UserError, VerifyFailed


# ---------------------------------------------------------------------- commands
def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML page of a report JSON (and the training metrics beside it)."""
    from .app.report import write_report_page

    output, metrics = write_report_page(args.report, args.output, args.metrics)
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
    from .app.pipeline import pass_rows

    rows = pass_rows()
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
    from .app.pipeline import optimize

    graph, report, manager = optimize(args)
    if args.time_passes:
        print(report.format_timings(), file=sys.stderr)
    changed = "changed" if report.modified else "unchanged"
    print(f"wrote {args.output} ({len(graph)} ops; {changed} by {manager.pipeline})", file=sys.stderr)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Summarise a model: interface, ops, parameters, MACs and FLOPs."""
    analyze_command(args, say=print, warn=warn)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Select groups by importance and remove them in one shot."""
    from .app.prune import prune_command

    return prune_command(args, say=print, warn=warn)


def cmd_compact(args: argparse.Namespace) -> int:
    """Apply a selection file."""
    from .app.prune import compact_command

    return compact_command(args, say=print, warn=warn)


def cmd_run(args: argparse.Namespace) -> int:
    """Train with a group-sparse optimizer, cut the zero groups out, verify, report."""
    from .app.run import run_command

    return run_command(args, say=print, warn=warn)


# ---------------------------------------------------------------------- entry point
class _OneLineParser(argparse.ArgumentParser):
    """argparse with errors in one line (its default prints the whole usage block first), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = _OneLineParser(prog="onnxprune", description="Structured pruning for ONNX models.")
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
    prune.add_argument("--criterion", choices=["l1", "l2", "random", "activation"], default="l2",
                       help="importance (default l2); activation: the energy each group sends through the weights "
                            "that read it on --calibration inputs (structured Wanda)")
    prune.add_argument("--by", choices=["groups", "params", "flops", "latency"], default="groups",
                       help="what --ratio measures (default groups); latency: the time of the model's "
                            "Conv/Gemm/MatMul ops as the measured width table estimates it, and the ranking "
                            "trades importance against the time each group saves")
    prune.add_argument("--rank", choices=["auto", "importance", "latency", "widths"],
                       help="order groups by importance, or by importance per millisecond each saves (the width "
                            "table's estimate, HALP); widths: search every family's width for the fastest estimate "
                            "of the compact model, each family's least important groups out; auto (the default "
                            "with --round-to auto) tries importance and latency, adds widths where neither cuts "
                            "latency by 0.8 x the cut asked for, and keeps the one that measures faster; --by "
                            "latency always ranks by latency")
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
    prune.add_argument("--erase-mode", choices=["count", "ranked"], default="count",
                       help="count: erase exactly N blocks; ranked: at most N, ranked with the channels and heads "
                            "on one scale so --ratio decides (needs --by params or flops)")
    prune.add_argument("--calibration", metavar="DATA",
                       help=".npz (arrays per input) or .npy (token ids) to run the model on: --erase ranks blocks by "
                            "block influence there, --criterion activation ranks channels and heads there; a causal "
                            "LM's loss on its held-out quarter is reported")
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
    cric.add_argument("--cric-cycles", type=int, default=0, metavar="N",
                      help="correction cycles at most, with --cric-choice fixed (default 0)")
    cric.add_argument("--cric-levels", type=int, default=3, metavar="N",
                      help="trial levels per family: 1/(N+1) .. N/(N+1) of its groups zeroed (default 3: 25/50/75 %%)")
    cric.add_argument("--cric-tolerance", type=float, default=0.05, metavar="F",
                      help="stop when a cycle would examine at most this share of K new groups (default 0.05)")
    cric.add_argument("--cric-loss-weight", type=float, default=1.0, metavar="W",
                      help="weight of the measured loss penalty against saliency (default 1)")
    cric.add_argument("--cric-collapse", type=float, default=2.0, metavar="F",
                      help="a family cut whose trial loss rises by more than F times what zeroing every prunable group "
                           "adds is a collapse; groups removed that deep are charged the loss each adds there (default 2)")
    cric.add_argument("--cric-budget", type=int, default=0, metavar="N",
                      help="loss evaluations at most (default 0: 5%% of the training steps' batches)")
    cric.add_argument("--cric-batches", type=int, default=2, metavar="N",
                      help="held-in batches per loss evaluation (default 2)")
    cric.add_argument("--cric-cycle-steps", type=int, default=0, metavar="N",
                      help="training steps per cycle (default 0: 1/50 of the steps)")
    cric.add_argument("--cric-choice", choices=["fixed", "progressive"], default="progressive",
                      help="progressive (default): each of HESSO's periods chooses afresh by saliency + loss penalty; "
                           "fixed: cycles, then HESSO's periods zero one final set")
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
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the forward (torch engine) and DHSPG's penalty steps (SGD with momentum; "
                          "with --engine ort, only those)")
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


__all__ = ["build_parser", "main"]

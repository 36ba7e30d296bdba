"""How `prune` and `run` choose widths and rankings from measurements, and say what latency a model can
reach: `--round-to auto` (the width table's fastest multiple that reaches the target), the measured
choice between the importance and the latency-aware ranking, `--target-latency` as a share of the heavy
ops' estimated time, and, where the latency cut falls short of `LATENCY_BAR` x the FLOPs cut, the
narrowest model pruning could make, timed, as the proof of what no selection removes. The CLI parses
and prints (`say`); these functions decide.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from ..errors import UserError
from ..facts import Outcome, Rounding
from ..ir import Graph, load
from ..passmanager import REGISTRY, AnalysisManager, PassManager
from ..prepare import prepare
from ..space import Selection

#: The bar a pruned model's latency is held to: its latency cut at least this share of its FLOPs cut.
LATENCY_BAR = 0.8


def short_of_flops(latency: dict, flops_cut: float) -> list[int]:
    """The batch sizes (of a `report_latency` result) where the latency cut (medians) is below
    `LATENCY_BAR` x the FLOPs cut."""
    return [entry["batch"] for entry in latency["batches"]
            if 1 - entry["compact"]["median_ms"] / entry["original"]["median_ms"] < LATENCY_BAR * flops_cut]


def latency_floor(args: argparse.Namespace, shapes, flops_cut: float, round_to: int, compact: Graph,
                  short: Sequence[int], say: Callable[[str], None] = print) -> dict:
    """Where the latency cut falls short of `LATENCY_BAR` x the FLOPs cut: time the narrowest model
    pruning could make (`select.narrowest`) beside the original and the compact one, and say what share
    of the time no selection removes (per-run and per-op costs, ops that do not shrink). Figures, not
    a guess: the line says whether the bar was reachable at all, for the batch sizes in `short` where
    the figures measured with it still fall short."""
    from ..runtime import measure_latency
    from ..widths import narrowest

    original = load(args.model)
    prepare(original, untie_all=args.untie_all)
    floor = original.copy()
    am = AnalysisManager(floor, input_shapes=shapes)
    am.provide(narrowest(am.get("prune-space"), args.max_family_ratio, round_to))
    PassManager([REGISTRY.get("compact")(), REGISTRY.get("cleanup")()]).run(floor, am)
    found = measure_latency({"original": original, "compact": compact, "narrowest": floor}, threads=args.latency_threads,
                            input_shapes=tuple(shapes), budget_s=0.5).timings
    result = {}
    for batch, times in found.items():
        base = times["original"].median_ms
        cut, best = 1 - times["compact"].median_ms / base, 1 - times["narrowest"].median_ms / base
        result[batch] = {"cut": round(cut, 4), "narrowest_cut": round(best, 4)}
        if cut >= LATENCY_BAR * flops_cut or batch not in short:
            continue
        reachable = best >= LATENCY_BAR * flops_cut
        say(f"latency    batch {batch}: a {100 * cut:.0f}% cut for {100 * flops_cut:.0f}% of the FLOPs, below "
              f"{LATENCY_BAR} x; pruned as far as it can be, the model still takes {times['narrowest'].median_ms:.3g} "
              f"of {base:.3g} ms ({100 * best:.0f}% cut): "
              + ("so more is possible at this batch, but this selection does not get it" if reachable else
                 f"{100 * (1 - best):.0f}% of the time is per-run and per-op cost that no pruning removes"))
    return result


def select_measured(args: argparse.Namespace, graph: Graph, am, space, select, shapes,
                    say: Callable[[str], None] = print) -> None:
    """`prune` by default: select with --round-to auto twice, ranking by importance and by importance
    per millisecond saved (the width table's estimate, HALP), compact both and keep the one that runs
    faster (onnxruntime, --latency-threads, interleaved, batch 1 and a larger batch: the geometric mean
    of the two ratios), said in one line. The estimate alone picked badly where the time is outside the
    heavy ops (MobileNetV3's activations and squeeze-excitation), so it is measured. Where the faster
    of the two does not cut the latency by `LATENCY_BAR` x its FLOPs cut at some batch, the width
    search (`rank=widths`, at the multiples `WIDTHS_MULTIPLES`) adds its candidates and the fastest of
    all is kept (not on a model whose run takes over `WIDTHS_MAX_MS`: it says so)."""
    from functools import partial

    from ..width_search import NoWidths

    if args.ratio <= 0:  # nothing will be removed: nothing to rank
        select_auto(args, graph, am, space, partial(select, rank="importance"), say)
        return
    found, lines = {}, {}
    for rank in ("importance", "latency"):
        lines[rank] = []  # each ranking may land on another multiple: the chosen one's line is said
        select_auto(args, graph, am, space, partial(select, rank=rank), lines[rank].append)
        found[rank] = (am.fact(Selection), am.fact(Outcome), am.fact(Rounding))
    (a, *_), (b, *_) = found["importance"], found["latency"]
    same = a.pruned == b.pruned and a.erased == b.erased
    models = {"original": graph} | {rank: _compacted(graph, shapes, found[rank][0])
                                    for rank in (("importance",) if same else found)}
    timings = _timed(args, models, shapes)
    chosen = _fastest(timings, list(models)[1:])
    said = "both rankings choose the same groups" if same else _said(timings, list(models)[1:])
    flops = _flops(graph, shapes)
    slowest = max((t["original"].median_ms for t in timings.values()), default=0.0)
    short = bool(timings) and _short(timings, chosen, 1 - _flops(models[chosen], shapes) / flops)
    if short and slowest > WIDTHS_MAX_MS:
        said += (f"; the faster did not cut the latency by {LATENCY_BAR} x the FLOPs cut, but at {slowest:.4g} ms a run "
                 f"the model is too slow to time the width search's candidates (over {WIDTHS_MAX_MS:g} ms)")
    elif short:
        for multiple in WIDTHS_MULTIPLES:
            rank = f"widths {multiple}"
            try:
                PassManager([select(multiple, True, rank="widths")]).run(graph, am)
            except NoWidths:
                continue  # no width vector at this multiple lands within a point of the target
            found[rank] = (am.fact(Selection), am.fact(Outcome), Rounding(multiple))
            table = next((line[line.index("(measured"):] for line in lines[chosen] if "(measured" in line), "")
            lines[rank] = [f"round-to   {multiple}, narrow families finer, every family's width searched for the "
                           f"fastest estimate of the compact model {table}".rstrip()]
            models[rank] = _compacted(graph, shapes, found[rank][0])
        if len(models) > 3 - same:
            contenders = [chosen] + [rank for rank in models if rank.startswith("widths")]
            timings = _timed(args, {"original": graph} | {rank: models[rank] for rank in contenders}, shapes)
            chosen = _fastest(timings, contenders)
            said += "; the faster did not cut the latency by " + f"{LATENCY_BAR} x the FLOPs cut, so widths were searched: " + \
                _said(timings, contenders)
    for fact in found[chosen]:
        am.provide(fact)
    for line in lines[chosen]:
        say(line)
    say(f"rank       {chosen} ({said})")


#: The multiples the width search runs at when neither ranking meets the latency bar (narrow families finer).
WIDTHS_MULTIPLES = (16, 8, 4)
#: No width search where the original takes longer than this (ms, its slowest measured batch): each of
#: its candidates is compacted and timed, which on a model this slow costs more than `prune` should.
WIDTHS_MAX_MS = 1000.0


def _compacted(graph: Graph, shapes, selection: Selection) -> Graph:
    """A compact copy of `graph` for `selection` (the original is left as it is)."""
    trial = graph.copy()
    trial_am = AnalysisManager(trial, input_shapes=shapes)
    trial_am.provide(selection)
    PassManager([REGISTRY.get("compact")(), REGISTRY.get("cleanup")()]).run(trial, trial_am)
    return trial


def _flops(graph: Graph, shapes) -> float:
    return float(AnalysisManager(graph, input_shapes=shapes).get("cost").flops)


def _timed(args: argparse.Namespace, models: dict[str, Graph], shapes) -> dict:
    """`measure_latency` timings of `models` (interleaved, batch 1 and a larger one); {} where a model
    could not be timed."""
    from ..runtime import measure_latency

    try:
        return measure_latency(models, threads=args.latency_threads, input_shapes=tuple(shapes), budget_s=0.3,
                               min_runs=3).timings
    except UserError:
        return {}


def _fastest(timings: dict, names: list[str]) -> str:
    """Of `names`, the one with the smallest geometric mean of its median times over the batch sizes
    (the first where nothing was timed)."""
    if not timings:
        return names[0]
    return min(names, key=lambda n: (sum(math.log(t[n].median_ms) for t in timings.values()), names.index(n)))


def _short(timings: dict, name: str, flops_cut: float) -> bool:
    """Whether `name`'s latency cut falls short of `LATENCY_BAR` x `flops_cut` at some batch size."""
    return any(1 - t[name].median_ms / t["original"].median_ms < LATENCY_BAR * flops_cut for t in timings.values())


def _said(timings: dict, names: list[str]) -> str:
    """'measured: batch 1: importance 0.53 ms, latency 0.5 ms; batch 32: ...'."""
    return "measured: " + ("; ".join(f"batch {b}: " + ", ".join(f"{n} {t[n].median_ms:.3g} ms" for n in names)
                                     for b, t in timings.items()) or "not measured")


def select_auto(args: argparse.Namespace, graph: Graph, am, space, select, say: Callable[[str], None] | None = print
                ) -> None:
    """--round-to auto: select with the multiple whose widths this model's heavy ops run fastest at
    (onnxruntime, CPU, --latency-threads threads; the cached timing table, measuring the shapes it
    lacks), said in one line with the figures it was chosen from. Where that multiple's steps are too
    coarse to come within a point of the target (families no wider than the multiple stay whole), it
    is tried with narrow families at a finer step, then the next fastest multiple, down to 1 (which
    always can)."""
    from ..width_search import NoWidths
    from ..widths import PRECISION, choose_for_graph

    if args.ratio <= 0:  # nothing will be removed: no widths change, nothing to measure
        PassManager([select(1)]).run(graph, am)
        am.provide(Rounding(1))
        return
    choice = choose_for_graph(graph, am.get("shapes"), space, args.ratio, args.by, threads=args.latency_threads)
    missed, best = [], None
    # each multiple as it is, then with narrow families at a finer step (`family_multiple`): a 24-wide
    # family rounded to 8 pads to the 16-channel block, so the finer step only where the target needs it
    refused = None
    for multiple, small in ((m, small) for m in choice.order for small in ((False, True) if m > 1 else (False,))):
        try:
            PassManager([select(multiple, small)]).run(graph, am)
        except NoWidths as error:  # --rank widths: nothing within a point at this multiple; the next may
            refused = error
            missed.append(f"{multiple}{' (narrow families finer)' if small else ''} finds no widths")
            continue
        outcome = am.fact(Outcome)
        off = abs(outcome.removed - outcome.target) / outcome.total if outcome.total else 0.0
        if best is None or off < best[0]:
            best = (off, multiple, small, am.fact(Selection), outcome)
        if off <= PRECISION:
            break
        missed.append(f"{multiple}{' (narrow families finer)' if small else ''} reaches {100 * outcome.share:.1f}%")
    if best is None:
        raise refused
    _, multiple, small, selection, outcome = best
    am.provide(selection)
    am.provide(outcome)
    am.provide(Rounding(multiple))
    if say is None:
        return
    shown = choice.describe().split(" ", 1)[1] if choice.estimates else choice.describe()
    say(f"round-to   {multiple}{', narrow families finer' if small else ''}"
          + (f" ({', '.join(missed)} of the {args.by}, over a point from the target)" if missed else "")
          + (f" {shown}" if choice.estimates else ""))


def run_round_to(args: argparse.Namespace, graph: Graph, shapes, say: Callable[[str], None] = print) -> int:
    """`run --round-to auto` for `graph` (prepared as run prepares it; `shapes` the input bindings): the
    multiple whose widths the model's heavy ops run fastest at (as for prune, at the widths
    --target-sparsity leaves), said in one line with its figures; where that multiple cannot remove
    --target-sparsity of the groups (a family keeps at least one multiple, so narrow families cannot
    shrink), the next fastest, down to 1."""
    from ..widths import choose_for_graph, removable_groups

    am = AnalysisManager(graph, input_shapes=shapes)
    space = am.get("prune-space")
    if args.target_sparsity <= 0 or not space.prunable:
        return 1
    choice = choose_for_graph(graph, am.get("shapes"), space, args.target_sparsity, "groups",
                              threads=args.latency_threads)
    wanted = args.target_sparsity * sum(f.size for f in space.prunable if f.size > 1)
    missed = []
    for multiple in choice.order:
        reachable = removable_groups(space, multiple)
        if multiple == 1 or reachable >= wanted:
            break
        missed.append(f"{multiple} can remove {reachable} groups")
    shown = choice.describe().split(" ", 1)[1] if choice.estimates else choice.describe()
    say(f"round-to   {multiple}" + (f" ({', '.join(missed)} of the {wanted:.0f} --target-sparsity asks for)"
                                      if missed else "") + (f" {shown}" if choice.estimates else ""))
    return multiple


def ratio_for_latency(args: argparse.Namespace, graph: Graph, am, space, shapes,
                      say: Callable[[str], None] = print) -> float:
    """--target-latency MS as a share of the heavy ops' estimated time to remove: the model is timed at
    batch 1 (onnxruntime, --latency-threads), its Conv/Gemm/MatMul ops' time read from the width table;
    what the rest takes stays (conservatively: activations and pooling shrink too). Refused in one
    line where pruning cannot get there."""
    from ..latency_model import latency_model
    from ..runtime import measure_latency
    from ..widths import WidthTable

    now = measure_latency({"original": graph}, batches=(1,), threads=args.latency_threads, input_shapes=shapes,
                          budget_s=0.5).timings
    now = next(iter(now.values()))["original"].median_ms
    heavy = min(latency_model(graph, am.get("shapes"), space, 0.5, 1, WidthTable(args.latency_threads)).total_ms, now)
    if args.target_latency >= now:
        raise UserError(f"--target-latency {args.target_latency:g} ms: the model already runs in {now:.4g} ms at batch 1 "
                        f"({args.latency_threads} thread{'s' if args.latency_threads != 1 else ''}); nothing to remove")
    ratio = (now - args.target_latency) / heavy if heavy > 0 else math.inf
    if ratio > args.max_family_ratio:
        raise UserError(f"--target-latency {args.target_latency:g} ms cannot be reached: the model runs in {now:.4g} ms "
                        f"at batch 1, {now - heavy:.4g} ms of it outside its prunable Conv/Gemm/MatMul ops (width "
                        f"table), and at most {100 * args.max_family_ratio:.0f}% of each family may go")
    say(f"target     {args.target_latency:g} ms at batch 1: the model runs in {now:.4g} ms, {heavy:.4g} ms of it in "
          f"its Conv/Gemm/MatMul ops (width table); removing {100 * ratio:.1f}% of that")
    return ratio



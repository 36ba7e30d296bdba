"""`select`: choose groups to prune in one shot, by importance (DESIGN §7).

Scores come from the groups' producer parameters (L1 or L2 over every slice, computed for all groups
of a family at once), normalised per family so families of different scales compare (channels and
heads on one scale, `importance`); the least important groups go first (`choose.greedy_order`, the
choice the optimizers make too) until the target share of groups, parameters or FLOPs is reached.
That share is measured exactly: the parameters and FLOPs the compact model would have (`SelectionCost`),
not a sum of per-group estimates, which counts twice what two families remove together.

Blocks (erasable regions, `erase=N`) go in one of two ways: `erase_mode=count` erases exactly N, the
least important by their own measure, and the groups fill the rest of the target; `erase_mode=ranked`
puts them in the same ranking as the groups, on the same scale (importance share per cost share,
`importance.on_one_scale`), so at most N go and only where a block costs less importance per FLOP
(or parameter) saved than the channels and heads that would otherwise go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from onnxprune.bounds import check_bounds, pass_option
from onnxprune.calibration import NEEDS_CALIBRATION
from onnxprune.choose import (
    Budget,
    GroupTable,
    give_back_order,
    greedy_order,
    group_table,
    nearest_removal,
    pick_admissible,
    ranked,
    round_kept,
)
from onnxprune.errors import UserError
from onnxprune.facts import Outcome
from onnxprune.ir import Graph
from onnxprune.latency_model import LatencyModel, latency_model
from onnxprune.passmanager import ALL, PassResult, TransformPass
from onnxprune.space import ErasingSpace, Family, PruningSpace, Selection
from onnxprune.width_search import NoWidths, WidthEstimate, search_widths
from onnxprune.widths import PRECISION, WidthTable, channels_per_group, group_step, keep_share

from .calibrated import ActivationImportanceAnalysis, BlockInfluenceAnalysis
from .cost import CostAnalysis, SelectionCost
from .erase_space import EraseSpaceAnalysis
from .importance import group_scores, normalize, on_one_scale, per_latency, region_importance, region_scores
from .prune_space import PruneSpaceAnalysis
from .shapes import ShapesAnalysis


@dataclass(frozen=True)
class RankedBlocks:
    """Erasable regions that join the ranking (erase_mode=ranked): each region's score on the groups'
    scale, which sets of them may not all go (`ErasingSpace.exclusive`) and how many may go at most."""

    scores: np.ndarray
    exclusive: tuple[tuple[int, ...], ...]
    limit: int


@dataclass(frozen=True)
class SelectOptions:
    """Options of `select`."""

    ratio: float = 0.5  # share of the target quantity to remove
    criterion: Literal["l1", "l2", "random", "activation"] = "l2"  # activation: the energy a group sends
    # through its consumer weights on the calibration inputs (needs `calibration`; calibration.activation_importance)
    by: Literal["groups", "params", "flops", "latency"] = "groups"  # groups of prunable families, model
    # params/FLOPs, or the heavy ops' time as the measured width table estimates it (`latency_model.LatencyModel`)
    scope: Literal["global", "local"] = "global"  # rank all groups together, or each family on its own (the
    # same share of each; by params/FLOPs, the share that reaches the target)
    normalize: Literal["none", "mean", "max", "l2"] = "mean"  # per-family score normalisation
    round_to: int = 1  # kept groups per family are a multiple of this
    round_small: bool = False  # a family narrower than 2 x round_to rounds to the largest power of two
    # that leaves it two steps, not to round_to (which would keep it whole): prune --round-to auto
    max_family_ratio: float = 0.9  # never remove more than this share of one family
    seed: int = 0  # for criterion=random
    erase: int = 0  # also erase this many whole regions (blocks), the least important first
    erase_mode: Literal["count", "ranked"] = "count"  # count: exactly `erase` blocks, chosen by block importance
    # alone; ranked: at most `erase` blocks, ranked with the channel and head groups on one scale
    # (`importance.on_one_scale`), so the target decides whether a block or channels go
    calibration: str = ""  # .npz/.npy inputs: rank regions by block influence on them, not by weight size
    threads: int = 1  # by latency: the onnxruntime thread count the width table is timed at
    rank: Literal["importance", "latency", "widths"] = "importance"  # latency: importance per millisecond a
    # group saves (HALP; the width table's estimate), whatever `by` measures; by latency always ranks so;
    # widths: every family's kept count searched for the fastest estimate (`width_search`), least important out


def select_groups(graph: Graph, space: PruningSpace, cost, options: SelectOptions,
                  exact: SelectionCost | None = None,
                  finish: Callable[[Selection], Selection] | None = None,
                  timing: LatencyModel | None = None, blocks: RankedBlocks | None = None,
                  measured: dict[int, np.ndarray] | None = None,
                  widths: WidthEstimate | None = None) -> tuple[Selection, Outcome]:
    """Choose the groups to prune (see module docstring) and say what the choice removes.

    The global ranking fixes the order in which groups go (`choose.greedy_order`, the choice the
    optimizers make too); how far down it to go is searched (bisection over the prefix length) so that
    what the compact model loses, measured exactly by `exact` (for `by` params or FLOPs: the
    `SelectionCost` of `graph`), is the closest to the target. Summing each group's own estimate
    instead counted weight slices shared by two families twice. `finish` turns a choice into the final
    selection (adding erased regions, say) and is part of what is measured. `timing` (a
    `latency_model.LatencyModel`) is what `by` latency measures and `rank` latency ranks by. With
    `blocks`, up to `blocks.limit` admissible regions join the order at their score (`finish` then
    drops pruned groups that reach into an erased region). `measured` holds importances computed on
    data (criterion activation) per family; a family without one is ranked by its weights' l2 norm
    (comparable with the measured ones once normalised per family, as `normalize` does by default).
    With `rank` widths, `widths` (a `width_search.WidthEstimate`) picks every family's kept count
    (`search_widths`: the fastest estimate within `PRECISION` of the target) and each family loses its
    least important groups."""
    rng = np.random.default_rng(options.seed)
    finish = finish or (lambda selection: selection)
    families = [f for f in space.prunable if f.size > 1]
    regions = range(len(blocks.scores)) if blocks is not None else ()
    table = group_table(space, families, regions, blocks.exclusive if blocks is not None else ())
    if measured is not None:
        scores = {f.id: measured[f.id] if f.id in measured else group_scores(graph, f, "l2", rng) for f in families}
    else:
        scores = {f.id: group_scores(graph, f, options.criterion, rng) for f in families}
    raw = _flat(families, scores)
    caps = {f.id: min(f.size - 1, int(np.floor(options.max_family_ratio * f.size))) for f in families}
    steps = {f.id: group_step(f.size, channels_per_group(f), options.round_to, options.round_small) for f in families}
    if options.by == "groups":
        total = float(sum(f.size for f in families))
    elif options.by == "latency":
        if timing is None:
            raise ValueError("select by latency needs the model's latency estimate (a LatencyModel)")
        total = timing.total_ms
    else:
        if exact is None:
            raise ValueError(f"select by {options.by} needs the exact cost of the model (a SelectionCost)")
        total = float(cost.parameters if options.by == "params" else cost.flops)
    target = options.ratio * total

    def removed_by(selection: Selection) -> float:
        if options.by == "groups":
            return float(selection.group_count)
        if options.by == "latency":
            return total - timing.estimate(selection)
        found = exact.measure(selection)
        return total - (found.parameters if options.by == "params" else found.flops)

    def make(chosen: dict[int, list[int]], erased: tuple[int, ...] = ()) -> Selection:
        """The selection of per-family picks (global group numbers) and erased region ids."""
        return finish(Selection({fid: tuple(sorted(int(table.local[g]) for g in groups))
                                 for fid, groups in chosen.items() if groups}, erased))

    def erased_in(prefix: list[int]) -> tuple[int, ...]:
        return tuple(sorted(-1 - int(table.family_of[g]) for g in prefix if table.family_of[g] < 0))

    def rounded(prefix: list[int], family_steps: dict[int, int]) -> dict[int, list[int]]:
        """The channel groups of `prefix` per family, kept counts rounded to the nearest multiple of the step."""
        chosen: dict[int, list[int]] = {f.id: [] for f in families}
        prefix = [g for g in prefix if table.family_of[g] >= 0]
        for g in prefix:
            chosen[int(table.family_of[g])].append(g)
        if all(step <= 1 for step in family_steps.values()):
            return chosen
        budget = Budget(table)
        for g in prefix:  # the greedy took these in this order, so they fit again
            budget.take(g)
        return round_kept(table, chosen, raw, family_steps, caps, budget, "nearest")

    if blocks is not None and (options.scope == "local" or options.by not in ("params", "flops")
                               or options.rank == "latency"):
        raise UserError("select: erase_mode=ranked needs by=params or by=flops, scope=global and rank=importance "
                        "(blocks are ranked by the parameters or FLOPs they save)")
    def least_important(removals: dict[int, int]) -> Selection:
        """Each family's `removals[family]` least important groups (those the axis budget allows)."""
        budget = Budget(table)
        chosen: dict[int, list[int]] = {f.id: [] for f in families}
        for f in families:
            mine = table.groups_of(f.id)
            for g in mine[np.lexsort((mine, raw[mine]))][:removals.get(f.id, 0)]:
                if budget.take(int(g)):
                    chosen[f.id].append(int(g))
        return make(chosen)

    if options.rank == "widths":
        if widths is None:
            raise ValueError("select rank=widths needs the width table's estimate (a WidthEstimate)")
        if options.scope == "local" or blocks is not None or options.by == "latency":
            raise UserError("select: rank=widths chooses every family's width itself: it takes scope=global, "
                            "by groups, params or flops, and no erase_mode=ranked")
        if not families or target <= 0:  # nothing to search
            selection = make({})
            return selection, Outcome(options.by, target, removed_by(selection), total)
        def keeping(kept: dict[int, int]) -> Selection:
            return least_important({f: table.family_size[f] - n for f, n in kept.items()})

        kept = search_widths({f.id: f.size for f in families}, steps, caps, lambda k: removed_by(keeping(k)),
                             widths.ms, target, PRECISION * total, seed=options.seed)
        if kept is None:
            raise NoWidths(f"select: rank=widths found no widths within {100 * PRECISION:g}% of the {options.by} "
                           f"target at round_to={options.round_to}")
        selection = keeping(kept)
        return selection, Outcome(options.by, target, removed_by(selection), total)
    if options.scope == "local":
        def local(share: float) -> Selection:
            """The same share of every family's groups, each family's least important first."""
            return least_important({f.id: nearest_removal(f.size, min(caps[f.id], int(np.floor(share * f.size))),
                                                          steps[f.id], caps[f.id]) for f in families})

        if options.by == "groups":
            selection = local(options.ratio)
            return selection, Outcome(options.by, target, removed_by(selection), total)
        # by params/FLOPs: the share of each family's groups whose removal comes closest to the target
        candidates = {}
        low_share, high_share = 0.0, 1.0
        for _ in range(24):  # bisection over the share; a family's count changes in steps of 1/size
            middle = (low_share + high_share) / 2
            selection = local(middle)
            candidates[middle] = (selection, removed_by(selection))
            if candidates[middle][1] >= target:
                high_share = middle
            else:
                low_share = middle
        for share in (low_share, high_share):
            if share not in candidates:
                selection = local(share)
                candidates[share] = (selection, removed_by(selection))
        selection, removed = min(candidates.values(), key=lambda c: abs(c[1] - target))
        return selection, Outcome(options.by, target, removed, total)
    normalized = {f.id: normalize(scores[f.id], options.normalize) for f in families}
    if options.by == "latency" or options.rank == "latency":
        normalized = per_latency(normalized, {f.id: timing.per_group(f.id) for f in families})
    ranking = _flat(families, normalized)
    if blocks is not None:
        ranking = np.concatenate([ranking, blocks.scores])
    order = greedy_order(table, ranking, caps, Budget(table))
    if blocks is not None:  # which blocks may go never depends on the groups: merge them in at their score
        worth = (table.family_of < 0) & np.isfinite(ranking)  # a block that saves nothing never goes
        order += pick_admissible(ranked(ranking, worth), blocks.limit, table.exclusive)
        order.sort(key=lambda g: (ranking[g], g))

    def search(order: list[int]) -> tuple[Selection, float, int | None]:
        """The prefix of `order` closest to the target, refined; and the item whose inclusion crossed it."""
        measured: dict[int, tuple[Selection, float]] = {}

        def at(k: int) -> tuple[Selection, float]:
            if k not in measured:
                selection = make(rounded(order[:k], steps), erased_in(order[:k]))
                measured[k] = (selection, removed_by(selection))
            return measured[k]

        low, high = 0, len(order)  # the smallest prefix that reaches the target (removal grows with the prefix)
        while low < high:
            middle = (low + high) // 2
            if at(middle)[1] >= target:
                high = middle
            else:
                low = middle + 1
        best = min({max(low - 1, 0), low}, key=lambda k: (abs(at(k)[1] - target), k))
        selection, removed = at(best)
        if options.round_to <= 1 and abs(removed - target) > 0.001 * total and low > 0:
            selection, removed = _fill(order, low - 1, target, total, selection, removed,
                                       lambda chosen: make(rounded(chosen, dict.fromkeys(steps, 1)),
                                                           erased_in(chosen)), removed_by)
        elif options.round_to > 1 and abs(removed - target) > 0.001 * total:
            erased = erased_in(order[:best])
            selection, removed = _step(table, raw, caps, rounded(order[:best], steps), steps, target, total,
                                       selection, removed, lambda chosen: make(chosen, erased), removed_by)
        return selection, removed, order[low - 1] if 0 < low <= len(order) else None

    selection, removed, crossing = search(order)
    # a block is a coarse step: where the one that crosses the target leaves it missed, search again
    # without that block (the groups after it fill in) and keep whichever lands closer
    while crossing is not None and table.family_of[crossing] < 0 and abs(removed - target) > 0.001 * total:
        order = [g for g in order if g != crossing]
        found, found_removed, crossing = search(order)
        if abs(found_removed - target) < abs(removed - target):
            selection, removed = found, found_removed
    return selection, Outcome(options.by, target, removed, total)


def _flat(families: list[Family], per_family: dict[int, np.ndarray]) -> np.ndarray:
    """Per-family arrays laid end to end, in the group numbering of `choose.group_table(space, families)`."""
    return np.concatenate([np.asarray(per_family[f.id], dtype=np.float64) for f in families]) if families \
        else np.zeros(0)


def _step(table: GroupTable, scores: np.ndarray, caps: dict[int, int], chosen: dict[int, list[int]],
          steps: dict[int, int], target: float, total: float, best: Selection, best_removed: float, make,
          removed_by, rounds: int = 12) -> tuple[Selection, float]:
    """Rounded kept counts move in steps of `steps[family]` groups, so the prefix closest to the target can miss
    it by several steps' worth (most families round the same way at the same prefix). From `chosen`
    (per family, global groups), move one family at a time by one step (its step's worth of least
    important kept groups more, or of most important chosen ones fewer; a multiple stays a multiple)
    and keep the move that comes closest to the target, until no move helps or `rounds` moves were
    made. Measures at most 2 x families x `rounds` candidates."""
    for _ in range(rounds):
        budget = Budget(table)
        for groups in chosen.values():
            for g in groups:
                budget.take(g)  # a feasible set: every group fits again
        moves = []
        for family_id, mine in chosen.items():
            step, size = steps[family_id], table.family_size[family_id]
            if len(mine) + step <= caps[family_id] and size - len(mine) - step >= 1:  # remove a step more
                taken = set(mine)
                extra, trial = [], budget.copy()
                groups = table.groups_of(family_id)
                for g in groups[np.lexsort((groups, scores[groups]))]:
                    if len(extra) == step:
                        break
                    if int(g) not in taken and trial.take(int(g)):
                        extra.append(int(g))
                if len(extra) == step:
                    moves.append({**chosen, family_id: mine + extra})
            if len(mine) >= step:  # keep a step more: the most important of the chosen go back
                back = set(give_back_order(mine, scores)[:step])
                moves.append({**chosen, family_id: [g for g in mine if g not in back]})
        improved = False
        for move in moves:
            candidate = make(move)
            found = removed_by(candidate)
            if abs(found - target) < abs(best_removed - target):
                best, best_removed, chosen, improved = candidate, found, move, True
        if not improved or abs(best_removed - target) <= 0.001 * total:
            break
    return best, best_removed


def _fill(order: list[int], length: int, target: float, total: float,
          best: Selection, best_removed: float, make, removed_by, tries: int = 64) -> tuple[Selection, float]:
    """Where one group is a coarse step (an attention head, a channel of a small model), the longest
    prefix below the target and the shortest above it can both miss by more than a group's worth:
    starting from the longest prefix under the target (`length` groups), add the next groups of the
    order that still fit under the target, in order, and keep the selection closest to it. Groups
    taken later in the order were feasible with more groups before them, so they are with fewer.
    Measures at most `tries` candidates."""
    chosen = list(order[:length])
    for item in order[length + 1:length + 1 + tries]:  # order[length] is the group that overshoots
        candidate = make(chosen + [item])
        found = removed_by(candidate)
        if found <= target:
            chosen.append(item)
        if abs(found - target) < abs(best_removed - target):
            best, best_removed = candidate, found
        if abs(best_removed - target) <= 0.001 * total:
            break
    return best, best_removed


class Select(TransformPass):
    """Pick the least important channel/head groups (and blocks, with erase) to prune (L1/L2/random, or
    activation energy on calibration inputs; by groups/params/FLOPs/latency).

    The selection goes to a later `compact` in the same pipeline; the graph itself is not changed."""

    name = "select"
    Options = SelectOptions
    provides = (Selection, Outcome)
    keeps = ALL  # never edits the graph

    #: its numeric options' ranges (`onnxprune.bounds`): round-to=0 divided by zero, a negative erase was taken
    BOUNDS = (("ratio", 0, 1, "[0, 1]"), ("round_to", 1, None, ">= 1"), ("max_family_ratio", 0, 1, "[0, 1]"),
              ("erase", 0, None, ">= 0"), ("seed", 0, None, ">= 0"), ("threads", 1, None, ">= 1"))

    def run(self, graph: Graph, am) -> PassResult:
        check_bounds(self.options, self.BOUNDS, pass_option(self.name))
        if self.options.criterion == "activation" and not self.options.calibration:
            raise UserError(NEEDS_CALIBRATION)
        space = am.get(PruneSpaceAnalysis)
        cost = am.get(CostAnalysis)
        erasing = am.get(EraseSpaceAnalysis) if self.options.erase else None
        finish, blocks = None, None
        if erasing is not None and self.options.erase_mode == "ranked":
            blocks = RankedBlocks(self._block_scale(graph, am, erasing), erasing.exclusive, self.options.erase)
            finish = lambda s: s.without_clashes(space, erasing)
        elif erasing is not None:
            # which regions go never depends on the groups, so it is worked out once
            regions = erasable(graph, erasing, self.options.erase, self._region_scores(graph, am, erasing))
            finish = lambda s: Selection(s.pruned, regions).without_clashes(space, erasing)
        timing = None
        if self.options.by == "latency" or self.options.rank == "latency":
            timing = latency_model(graph, am.get(ShapesAnalysis), space, keep_share(self.options.ratio, "flops"),
                                   max(self.options.round_to, 1), WidthTable(self.options.threads))
        exact = SelectionCost(graph, am.get(ShapesAnalysis), cost, space, erasing) \
            if self.options.by in ("params", "flops") else None
        widths = WidthEstimate(graph, am.get(ShapesAnalysis), space, WidthTable(self.options.threads)) \
            if self.options.rank == "widths" else None
        selection, outcome = select_groups(graph, space, cost, self.options, exact, finish, timing, blocks,
                                           self._measured(am), widths)
        am.provide(selection)
        am.provide(outcome)
        return PassResult.unchanged()

    def _measured(self, am) -> dict[int, np.ndarray] | None:
        """With criterion activation: every family's activation importance on the calibration inputs."""
        if self.options.criterion != "activation":
            return None
        return am.get(ActivationImportanceAnalysis, calibration=self.options.calibration)

    def _block_scale(self, graph: Graph, am, erasing: ErasingSpace) -> np.ndarray:
        """Each region's score on the groups' scale (`importance.on_one_scale`): its importance (weight
        norm, or block influence with calibration inputs) share per share of what `by` measures."""
        importance = self._region_scores(graph, am, erasing) if self.options.calibration else \
            region_importance(graph, erasing, self.options.criterion, np.random.default_rng(self.options.seed + 1))
        cost = [r.params if self.options.by == "params" else r.flops for r in erasing.regions]
        return on_one_scale(importance, np.asarray(cost, dtype=np.float64), self.options.normalize)

    def _region_scores(self, graph: Graph, am, erasing: ErasingSpace) -> np.ndarray:
        """Block influence on the calibration inputs when given, else the weights' root mean square."""
        if not self.options.calibration:
            return region_scores(graph, erasing)
        return am.get(BlockInfluenceAnalysis, calibration=self.options.calibration)


def erasable(graph: Graph, erasing: ErasingSpace, count: int, scores: np.ndarray | None = None) -> tuple[int, ...]:
    """The `count` least important regions (by `scores`, default `region_scores`) that may be erased
    together (ids, sorted)."""
    scores = region_scores(graph, erasing) if scores is None else scores
    order = [int(r) for r in np.argsort(scores, kind="stable")]
    return tuple(sorted(pick_admissible(order, count, erasing.exclusive)))

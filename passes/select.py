"""`select`: choose groups to prune in one shot, by importance (DESIGN §7).

Scores come from the groups' producer parameters (L1 or L2 over every slice, computed for all groups
of a family at once), optionally normalised per family so families of different scales compare; the
least important groups go first until the target share of groups, parameters or FLOPs is reached.
That share is measured exactly: the parameters and FLOPs the compact model would have (`SelectionCost`),
not a sum of per-group estimates, which counts twice what two families remove together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from onnxprune.choose import (
    Budget,
    GroupTable,
    give_back_order,
    greedy_order,
    group_table,
    nearest_removal,
    pick_admissible,
    round_kept,
)
from onnxprune.facts import Outcome
from onnxprune.ir import Graph
from onnxprune.latency_model import LatencyModel, latency_model
from onnxprune.ops.rule import constant_value
from onnxprune.passmanager import ALL, PassResult, TransformPass
from onnxprune.space import ErasingSpace, Family, PruningSpace, Selection
from onnxprune.widths import WidthTable, channels_per_group, group_step, keep_share

from .cost import CostAnalysis, SelectionCost
from .erase_space import EraseSpaceAnalysis
from .prune_space import PruneSpaceAnalysis
from .shapes import ShapesAnalysis


@dataclass(frozen=True)
class SelectOptions:
    """Options of `select`."""

    ratio: float = 0.5  # share of the target quantity to remove
    criterion: Literal["l1", "l2", "random"] = "l2"
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
    calibration: str = ""  # .npz/.npy inputs: rank regions by block influence on them, not by weight size
    threads: int = 1  # by latency: the onnxruntime thread count the width table is timed at
    rank: Literal["importance", "latency"] = "importance"  # latency: importance per millisecond a group saves
    # (HALP; the width table's estimate), whatever `by` measures; by latency always ranks so


def _per_index(array: np.ndarray, axis: int, criterion: str) -> np.ndarray:
    # accumulate in float64 without a float64 copy of the tensor: for a VGG classifier (100M weights)
    # the copy took seconds and gigabytes; einsum and sum(dtype=) cast as they stream
    array = np.asarray(array)
    flat = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    if criterion == "l1":
        return np.abs(flat).sum(axis=1, dtype=np.float64)
    return np.einsum("ij,ij->i", flat, flat, dtype=np.float64)


def _row_sums(table: np.ndarray, per_index: np.ndarray) -> np.ndarray:
    valid = table >= 0
    return np.where(valid, per_index[np.where(valid, table, 0)], 0.0).sum(axis=1)


def group_scores(graph: Graph, family: Family, criterion: str, rng: np.random.Generator) -> np.ndarray:
    """Importance of every group of `family` (higher = keep)."""
    if criterion == "random":
        return rng.random(family.size)
    total = np.zeros(family.size)
    for member in family.producers:
        total += _row_sums(member.table, _per_index(_parameter(graph, member.value), member.axis, criterion))
    return total if criterion == "l1" else np.sqrt(total)


def _parameter(graph: Graph, name: str) -> np.ndarray:
    return np.asarray(constant_value(graph, graph.value(name)))


def _normalize(scores: np.ndarray, how: str) -> np.ndarray:
    if how == "none" or not len(scores):
        return scores
    scale = {"mean": np.mean, "max": np.max, "l2": np.linalg.norm}[how](scores)
    return scores / scale if scale > 0 else scores


def per_latency(normalized: dict[int, np.ndarray], saved: dict[int, float]) -> dict[int, np.ndarray]:
    """HALP's trade: each group's (normalised) importance per unit of the latency its removal saves
    (`saved[family]`, ms per group, from the width table, relative to the mean over families), so a
    latency target is met by the groups that cost the least importance per millisecond. A family
    whose groups save nothing measurable goes last."""
    positive = [v for v in saved.values() if v > 0]
    scale = float(np.mean(positive)) if positive else 1.0
    return {f: scores / (saved[f] / scale) if saved.get(f, 0.0) > 0 else scores + 1e9
            for f, scores in normalized.items()}


def select_groups(graph: Graph, space: PruningSpace, cost, options: SelectOptions,
                  exact: SelectionCost | None = None,
                  finish: Callable[[Selection], Selection] | None = None,
                  timing: LatencyModel | None = None) -> tuple[Selection, Outcome]:
    """Choose the groups to prune (see module docstring) and say what the choice removes.

    The global ranking fixes the order in which groups go (`choose.greedy_order`, the choice the
    optimizers make too); how far down it to go is searched (bisection over the prefix length) so that
    what the compact model loses, measured exactly by `exact` (for `by` params or FLOPs: the
    `SelectionCost` of `graph`), is the closest to the target. Summing each group's own estimate
    instead counted weight slices shared by two families twice. `finish` turns a choice into the final
    selection (adding erased regions, say) and is part of what is measured. `timing` (a
    `latency_model.LatencyModel`) is what `by` latency measures and `rank` latency ranks by."""
    rng = np.random.default_rng(options.seed)
    finish = finish or (lambda selection: selection)
    families = [f for f in space.prunable if f.size > 1]
    table = group_table(space, families)
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

    def make(chosen: dict[int, list[int]]) -> Selection:
        """The selection of per-family picks (global group numbers)."""
        return finish(Selection({fid: tuple(sorted(int(table.local[g]) for g in groups))
                                 for fid, groups in chosen.items() if groups}))

    def rounded(prefix: list[int], family_steps: dict[int, int]) -> dict[int, list[int]]:
        """The groups of `prefix` per family, kept counts rounded to the nearest multiple of the step."""
        chosen: dict[int, list[int]] = {f.id: [] for f in families}
        for g in prefix:
            chosen[int(table.family_of[g])].append(g)
        if all(step <= 1 for step in family_steps.values()):
            return chosen
        budget = Budget(table)
        for g in prefix:  # the greedy took these in this order, so they fit again
            budget.take(g)
        return round_kept(table, chosen, raw, family_steps, caps, budget, "nearest")

    if options.scope == "local":
        def local(share: float) -> Selection:
            """The same share of every family's groups, each family's least important first."""
            budget = Budget(table)
            chosen: dict[int, list[int]] = {f.id: [] for f in families}
            for f in families:
                want = nearest_removal(f.size, min(caps[f.id], int(np.floor(share * f.size))), steps[f.id],
                                       caps[f.id])
                mine = table.groups_of(f.id)
                for g in mine[np.lexsort((mine, raw[mine]))][:want]:
                    if budget.take(int(g)):
                        chosen[f.id].append(int(g))
            return make(chosen)

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
    normalized = {f.id: _normalize(scores[f.id], options.normalize) for f in families}
    if options.by == "latency" or options.rank == "latency":
        normalized = per_latency(normalized, {f.id: timing.per_group(f.id) for f in families})
    order = greedy_order(table, _flat(families, normalized), caps, Budget(table))
    measured: dict[int, tuple[Selection, float]] = {}

    def at(k: int) -> tuple[Selection, float]:
        if k not in measured:
            selection = make(rounded(order[:k], steps))
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
                                   lambda chosen: make(rounded(chosen, dict.fromkeys(steps, 1))), removed_by)
    elif options.round_to > 1 and abs(removed - target) > 0.001 * total:
        selection, removed = _step(table, raw, caps, rounded(order[:best], steps), steps, target, total,
                                   selection, removed, make, removed_by)
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
    """Pick the least important channel/head groups to prune (L1/L2/random, by groups/params/FLOPs).

    The selection goes to a later `compact` in the same pipeline; the graph itself is not changed."""

    name = "select"
    Options = SelectOptions
    provides = (Selection, Outcome)
    keeps = ALL  # never edits the graph

    def run(self, graph: Graph, am) -> PassResult:
        if not 0.0 <= self.options.ratio <= 1.0:
            from onnxprune.errors import UserError
            raise UserError(f"select: ratio must be between 0 and 1, got {self.options.ratio}")
        space = am.get(PruneSpaceAnalysis)
        cost = am.get(CostAnalysis)
        erasing = am.get(EraseSpaceAnalysis) if self.options.erase else None
        finish = None
        if erasing is not None:
            # which regions go never depends on the groups, so it is worked out once
            regions = erasable(graph, erasing, self.options.erase, self._region_scores(graph, space, erasing))
            finish = lambda s: Selection(s.pruned, regions).without_clashes(space, erasing)
        timing = None
        if self.options.by == "latency" or self.options.rank == "latency":
            timing = latency_model(graph, am.get(ShapesAnalysis), space, keep_share(self.options.ratio, "flops"),
                                   max(self.options.round_to, 1), WidthTable(self.options.threads))
        exact = SelectionCost(graph, am.get(ShapesAnalysis), cost, space, erasing) \
            if self.options.by in ("params", "flops") else None
        selection, outcome = select_groups(graph, space, cost, self.options, exact, finish, timing)
        am.provide(selection)
        am.provide(outcome)
        return PassResult.unchanged()


    def _region_scores(self, graph: Graph, space: PruningSpace, erasing: ErasingSpace) -> np.ndarray:
        """Block influence on the calibration inputs when given, else the weights' root mean square."""
        if not self.options.calibration:
            return region_scores(graph, erasing)
        from onnxprune.calibration import block_influence, read_calibration

        return block_influence(graph, space, erasing, read_calibration(self.options.calibration, graph).scoring)


def region_scores(graph: Graph, erasing: ErasingSpace) -> np.ndarray:
    """Importance of each region: the root mean square of its group's parameters (what erasing it zeroes)."""
    scores = []
    for region in erasing.regions:
        arrays = [np.asarray(_parameter(graph, name), dtype=np.float64).ravel() for name in region.group]
        values = np.concatenate(arrays) if arrays else np.zeros(1)
        scores.append(float(np.sqrt(np.mean(values * values))))
    return np.asarray(scores)


def erasable(graph: Graph, erasing: ErasingSpace, count: int, scores: np.ndarray | None = None) -> tuple[int, ...]:
    """The `count` least important regions (by `scores`, default `region_scores`) that may be erased
    together (ids, sorted)."""
    scores = region_scores(graph, erasing) if scores is None else scores
    order = [int(r) for r in np.argsort(scores, kind="stable")]
    return tuple(sorted(pick_admissible(order, count, erasing.exclusive)))


def with_regions(graph: Graph, space: PruningSpace, erasing: ErasingSpace, selection: Selection, count: int
                 ) -> Selection:
    """`selection` plus the `count` least important regions that may be erased together; pruned groups of
    families reaching into an erased region are dropped (a region goes whole or not at all)."""
    return Selection(selection.pruned, erasable(graph, erasing, count)).without_clashes(space, erasing)

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

from onnxprune.facts import Outcome
from onnxprune.ir import Graph
from onnxprune.ops.rule import constant_value
from onnxprune.passmanager import ALL, PassResult, TransformPass
from onnxprune.space import AxisBudget, ErasingSpace, Family, PruningSpace, Selection
from onnxprune.widths import family_multiple

from .cost import CostAnalysis, SelectionCost
from .erase_space import EraseSpaceAnalysis
from .prune_space import PruneSpaceAnalysis
from .shapes import ShapesAnalysis


@dataclass(frozen=True)
class SelectOptions:
    """Options of `select`."""

    ratio: float = 0.5  # share of the target quantity to remove
    criterion: Literal["l1", "l2", "random"] = "l2"
    by: Literal["groups", "params", "flops"] = "groups"  # groups of prunable families, or model params/FLOPs
    scope: Literal["global", "local"] = "global"  # rank all groups together, or each family on its own (the
    # same share of each; by params/FLOPs, the share that reaches the target)
    normalize: Literal["none", "mean", "max", "l2"] = "mean"  # per-family score normalisation
    round_to: int = 1  # kept groups per family are a multiple of this
    round_small: bool = False  # a family narrower than 2 x round_to rounds to the largest power of two
    # that leaves it two steps, not to round_to (which would keep it whole): prune --round-to auto
    max_family_ratio: float = 0.9  # never remove more than this share of one family
    seed: int = 0  # for criterion=random
    erase: int = 0  # also erase this many whole regions (blocks), the least important first


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


def _round_kept(size: int, removed: int, round_to: int, cap: int) -> int:
    """Adjust a removal count so the kept count is a multiple of round_to (nearest, within the cap)."""
    if round_to <= 1:
        return removed
    if size <= round_to:
        return 0
    kept = max(round_to, int(round((size - removed) / round_to)) * round_to)
    while size - kept > cap:
        kept += round_to
    return max(0, size - kept)


def _greedy_order(families: list[Family], ranked_scores: dict[int, np.ndarray], caps: dict[int, int],
                  space: PruningSpace) -> list[tuple[int, int]]:
    """Every group that a global greedy would take, least important first, until nothing more may go
    (family caps, no emptied axis). A greedy stopped at any target takes a prefix of this list, since
    what it skips never depends on where it stops."""
    ranked = sorted(((ranked_scores[f.id][g], f.id, g) for f in families for g in range(f.size)),
                    key=lambda item: (item[0], item[1], item[2]))
    by_id = {f.id: f for f in families}
    budget = AxisBudget(space)
    taken = {f.id: 0 for f in families}
    order = []
    for _, family_id, group in ranked:
        if taken[family_id] >= caps[family_id] or not budget.take(by_id[family_id], int(group)):
            continue
        taken[family_id] += 1
        order.append((family_id, int(group)))
    return order


def _rounded(start: AxisBudget, families: list[Family], scores: dict[int, np.ndarray], caps: dict[int, int],
             prefix: list[tuple[int, int]], steps: dict[int, int]) -> dict[int, list[int]]:
    """The groups of `prefix` per family, with kept counts rounded to multiples of `steps[family]` (groups
    added in score order where the axes allow, or the most important chosen ones given back); `start`
    is the budget of the whole space, left as it is."""
    chosen: dict[int, list[int]] = {f.id: [] for f in families}
    for family_id, group in prefix:
        chosen[family_id].append(group)
    if all(step <= 1 for step in steps.values()):
        return chosen
    budget = start.copy()
    by_id = {f.id: f for f in families}
    for family_id, group in prefix:  # the greedy took these in this order, so they fit again
        budget.take(by_id[family_id], group)
    for f in families:  # round kept counts; only ever drop choices, so no axis can empty
        count = _round_kept(f.size, len(chosen[f.id]), steps[f.id], caps[f.id])
        if count == len(chosen[f.id]):
            continue
        order = np.lexsort((np.arange(f.size), scores[f.id]))
        already = set(chosen[f.id])
        extra = [int(g) for g in order if int(g) not in already]
        while len(chosen[f.id]) < count and extra:
            group = extra.pop(0)
            if budget.take(f, group):
                chosen[f.id].append(group)
        if len(chosen[f.id]) > count:
            kept_back = sorted(chosen[f.id], key=lambda g: -scores[f.id][g])[:len(chosen[f.id]) - count]
            for group in kept_back:
                chosen[f.id].remove(group)
                budget.give_back(f, group)
    return chosen


def select_groups(graph: Graph, space: PruningSpace, cost, options: SelectOptions,
                  exact: SelectionCost | None = None,
                  finish: Callable[[Selection], Selection] | None = None) -> tuple[Selection, Outcome]:
    """Choose the groups to prune (see module docstring) and say what the choice removes.

    The global ranking fixes the order in which groups go; how far down it to go is searched (bisection
    over the prefix length) so that what the compact model loses, measured exactly by `exact` (for
    `by` params or FLOPs: the `SelectionCost` of `graph`), is the closest to the target. Summing each
    group's own estimate instead counted weight slices shared by two families twice. `finish` turns a
    choice into the final selection (adding erased regions, say) and is part of what is measured."""
    rng = np.random.default_rng(options.seed)
    finish = finish or (lambda selection: selection)
    families = [f for f in space.prunable if f.size > 1]
    scores = {f.id: group_scores(graph, f, options.criterion, rng) for f in families}
    caps = {f.id: min(f.size - 1, int(np.floor(options.max_family_ratio * f.size))) for f in families}
    steps = {f.id: family_multiple(f.size, options.round_to, options.round_small) for f in families}
    if options.by == "groups":
        total = float(sum(f.size for f in families))
    else:
        if exact is None:
            raise ValueError(f"select by {options.by} needs the exact cost of the model (a SelectionCost)")
        total = float(cost.parameters if options.by == "params" else cost.flops)
    target = options.ratio * total

    def removed_by(selection: Selection) -> float:
        if options.by == "groups":
            return float(selection.group_count)
        found = exact.measure(selection)
        return total - (found.parameters if options.by == "params" else found.flops)

    def make(chosen: dict[int, list[int]]) -> Selection:
        return finish(Selection({fid: tuple(sorted(groups)) for fid, groups in chosen.items() if groups}))

    if options.scope == "local":
        def local(share: float) -> Selection:
            """The same share of every family's groups, each family's least important first."""
            budget = AxisBudget(space)
            chosen: dict[int, list[int]] = {f.id: [] for f in families}
            for f in families:
                want = _round_kept(f.size, min(caps[f.id], int(np.floor(share * f.size))), steps[f.id],
                                   caps[f.id])
                for group in np.lexsort((np.arange(f.size), scores[f.id]))[:want]:
                    if budget.take(f, int(group)):
                        chosen[f.id].append(int(group))
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
    order = _greedy_order(families, normalized, caps, space)
    start = AxisBudget(space)
    measured: dict[int, tuple[Selection, float]] = {}

    def at(k: int) -> tuple[Selection, float]:
        if k not in measured:
            selection = make(_rounded(start, families, scores, caps, order[:k], steps))
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
                                   lambda chosen: make(_rounded(start, families, scores, caps, chosen,
                                                                {f.id: 1 for f in families})), removed_by)
    elif options.round_to > 1 and abs(removed - target) > 0.001 * total:
        chosen = _rounded(start, families, scores, caps, order[:best], steps)
        selection, removed = _step(families, scores, caps, start, chosen, steps, target, total,
                                   selection, removed, make, removed_by)
    return selection, Outcome(options.by, target, removed, total)


def _step(families: list[Family], scores: dict[int, np.ndarray], caps: dict[int, int], start: AxisBudget,
          chosen: dict[int, list[int]], steps: dict[int, int], target: float, total: float, best: Selection,
          best_removed: float, make, removed_by, rounds: int = 12) -> tuple[Selection, float]:
    """Rounded kept counts move in steps of `steps[family]` groups, so the prefix closest to the target can miss
    it by several steps' worth (most families round the same way at the same prefix). From `chosen`,
    move one family at a time by one step (its step's worth of least important kept groups more, or of
    most important chosen ones fewer; a multiple stays a multiple) and keep the move that comes closest
    to the target, until no move helps or `rounds` moves were made. Measures at most
    2 x families x `rounds` candidates."""
    by_id = {f.id: f for f in families}
    for _ in range(rounds):
        budget = start.copy()
        for family_id, groups in chosen.items():
            for group in groups:
                budget.take(by_id[family_id], group)  # a feasible set: every group fits again
        moves = []
        for f in families:
            mine, step = chosen[f.id], steps[f.id]
            if len(mine) + step <= caps[f.id] and f.size - len(mine) - step >= 1:  # remove a step more
                taken = set(mine)
                extra, trial = [], budget.copy()
                for group in np.lexsort((np.arange(f.size), scores[f.id])):
                    if len(extra) == step:
                        break
                    if int(group) not in taken and trial.take(f, int(group)):
                        extra.append(int(group))
                if len(extra) == step:
                    moves.append({**chosen, f.id: mine + extra})
            if len(mine) >= step:  # keep a step more: the most important of the chosen go back
                back = set(sorted(mine, key=lambda g: -scores[f.id][g])[:step])
                moves.append({**chosen, f.id: [g for g in mine if g not in back]})
        improved = False
        for move in moves:
            candidate = make(move)
            found = removed_by(candidate)
            if abs(found - target) < abs(best_removed - target):
                best, best_removed, chosen, improved = candidate, found, move, True
        if not improved or abs(best_removed - target) <= 0.001 * total:
            break
    return best, best_removed


def _fill(order: list[tuple[int, int]], length: int, target: float, total: float,
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
            regions = erasable(graph, erasing, self.options.erase)
            finish = lambda s: Selection(s.pruned, regions).without_clashes(space, erasing)
        exact = SelectionCost(graph, am.get(ShapesAnalysis), cost, space, erasing) if self.options.by != "groups" \
            else None
        selection, outcome = select_groups(graph, space, cost, self.options, exact, finish)
        am.provide(selection)
        am.provide(outcome)
        return PassResult.unchanged()


def region_scores(graph: Graph, erasing: ErasingSpace) -> np.ndarray:
    """Importance of each region: the root mean square of its group's parameters (what erasing it zeroes)."""
    scores = []
    for region in erasing.regions:
        arrays = [np.asarray(_parameter(graph, name), dtype=np.float64).ravel() for name in region.group]
        values = np.concatenate(arrays) if arrays else np.zeros(1)
        scores.append(float(np.sqrt(np.mean(values * values))))
    return np.asarray(scores)


def erasable(graph: Graph, erasing: ErasingSpace, count: int) -> tuple[int, ...]:
    """The `count` least important regions that may be erased together (ids, sorted)."""
    erased: list[int] = []
    for region in np.argsort(region_scores(graph, erasing), kind="stable"):
        if len(erased) >= count:
            break
        if erasing.admissible(erased + [int(region)]):
            erased.append(int(region))
    return tuple(sorted(erased))


def with_regions(graph: Graph, space: PruningSpace, erasing: ErasingSpace, selection: Selection, count: int
                 ) -> Selection:
    """`selection` plus the `count` least important regions that may be erased together; pruned groups of
    families reaching into an erased region are dropped (a region goes whole or not at all)."""
    return Selection(selection.pruned, erasable(graph, erasing, count)).without_clashes(space, erasing)

"""HESSO-CRIC: HESSO whose redundant set is checked by measured loss before any group is zeroed
(the Corrective Redundant Identification Cycle of the HESSO paper, arXiv 2409.09085; our own version).

Saliency alone can choose a group the network cannot do without (a narrow bottleneck whose weights are
small); once HESSO has telescoped it to zero the loss jumps and never comes back. CRIC measures before
it commits. Its loss evaluations run the training engine's forward pass on a few fixed held-in batches
(`probe`: a function of no arguments returning the loss of the current parameters on them); every
evaluation is counted and `budget` bounds them.

The run, in steps of the training budget:

1. steps before `cric_start_step` train plainly (as HESSO before its first period).
2. At `cric_start_step`: cache the parameters and the base optimizer's state, evaluate the reference
   loss L0 and the *dead trial*'s loss Ld (every group zeroed: what the network loses if all that CRIC
   could remove were gone), and make *trial projections*: for each unit (a prunable family; an erasable
   region is one unit with a single trial of its whole group), each level l in `levels` and each count
   k in `keeps`, zero the unit's m = max(1, floor(l·n)) (or n - k) lowest-saliency groups (at most
   n - 1: level 1 keeps one group alive, the deepest cut HESSO could make), evaluate the loss L,
   restore. The measured points (m, max((L - L0)/(Ld - L0), 0)) with (0, 0) are the unit's loss curve
   (a rise of 1: the cut lost as much as the dead trial), and its penalty *by depth* the cost of
   removing a d-th group: 0 unless that cuts the family past its *collapse bound*, where the curve
   rises above `collapse` (default 2: the cut loses twice what the dead trial does, a model that now
   predicts confidently wrong); there the curve's slope at d (the rise one more removed group adds),
   made non-decreasing, past the last trial the last slope, and for the *steep tail* (a segment of
   several groups that ends at the all-but-one trial) its whole rise per group (see
   `collapse_penalties` and `marginal_penalties`). A group is charged the penalty of the
   depth it would be removed at when a choice is made (`combined`). Narrow families run first, so a
   tight budget skips wide ones (listed).
3. choice="progressive" (the default): HESSO's own periods, from `cric_start_step` on, each choosing its
   quota afresh by the current saliency + loss_weight·penalty. Where no trial crossed the bound the
   penalties are all 0 and the run is HESSO's step for step; where one did, the groups that would
   collapse a family rank above the others, and a group the saliency-only choice of some period would
   have taken and that is still alive at the end is *rescued* (named in the report).
4. choice="fixed" (the reference's shape): *cycles* of `cycle_steps` ordinary training steps each.
   Cycle 1's violating set V is the K lowest groups by the combined score (K = HESSO's target, kept
   counts and admissible erasures as HESSO chooses them). During a cycle V is telescoped to zero while
   everything trains; each step's saliency is added to the running mean of every group outside V (a
   group's own trial does not drag its score down), and every group that ranks among the K lowest
   without being in V or an earlier V joins the candidates: the groups the network leans on less once
   V is gone. At the cycle's end (V at zero) the loss is evaluated and recorded, and the cached
   parameters and optimizer state are restored, so a cycle changes nothing but what CRIC knows. The
   next V is the candidates not examined yet (kept admissible). Cycles stop after `max_cycles`, when
   the next V holds at most `tolerance`·K groups, or when the budget has no evaluation left for one.
   A cycle's loss is reported, not scored: charged to V's groups alone it would steer the choice
   toward groups nobody measured (on the digits CNN at 50 % it moved 24 of 40 choices there). The
   final redundant set is then the K lowest by mean saliency + loss_weight·penalty, zeroed by HESSO's
   periods from the step after the last cycle, lowest score first; the groups the saliency-only choice
   would have zeroed are the rescued ones. On Fashion-MNIST this schedule (the set fixed once, the
   cycles' steps discarded, pruning delayed) cost 0.4-2.9 points against HESSO's by itself
   (benchmarks/hesso_cric.md), so it is not the default.

Saliency is HESSO's (the criteria mix, each group relative to its family's mean, so it averages 1 per
family). The penalty is in its own units, the rise one removed group adds (0.1: a tenth of the dead
trial's), not rescaled: with loss_weight 1 such a group ranks as if its saliency were 0.1 above its
family's mean. (Rises were first relative to L0 itself, L/L0 - 1: a reference near 0, a model fit to
its data or distilled into itself, then made nearly every cut read as a collapse.) A unit the budget
left unprobed is charged nothing (HESSO's choice stands there, as where no collapse was measured) and
is listed; a mean of the probed units' penalties, which are 0 below their bounds, would protect it
from its first group on. Non-finite trial losses count as the largest increase (1000).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .base import BaseSettings
from .groups import GroupLayout
from .hesso import Hesso, HessoSettings
from .scores import importance

#: evaluates the loss of the current parameters on fixed held-in batches
LossProbe = Callable[[], float]

_LARGEST_INCREASE = 1000.0  # a trial whose loss is not finite, or grows more than this, counts as this


@dataclass(frozen=True)
class HessoCricSettings(HessoSettings):
    """HESSO's settings (its start_pruning_step is unused: pruning starts when the cycles end) plus CRIC's."""

    cric_start_step: int = 0
    cycle_steps: int = 1
    max_cycles: int = 0
    levels: tuple[float, ...] = (0.25, 0.5, 0.75)
    keeps: tuple[int, ...] = ()  # also trials that keep exactly these many groups of a family (its steep end)
    tolerance: float = 0.05  # stop when a new violating set holds at most this share of K groups
    loss_weight: float = 1.0
    collapse: float = 2.0  # a family cut whose loss rises more than this (in dead-trial units) collapses there
    budget: int = 0  # loss evaluations at most (0: no bound)
    # "progressive": each period chooses its quota afresh by the current saliency + loss_weight·penalty, as
    # HESSO chooses by saliency; "fixed": cycles, then HESSO's periods zero CRIC's final set
    choice: str = "progressive"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cycle_steps < 1 or self.max_cycles < 0 or self.budget < 0:
            raise ValueError(f"CRIC needs cycle_steps >= 1, max_cycles >= 0 and budget >= 0 (got {self.cycle_steps}, "
                             f"{self.max_cycles}, {self.budget})")
        if self.choice not in ("fixed", "progressive"):
            raise ValueError(f"CRIC's choice is fixed or progressive, not {self.choice!r}")
        if any(k < 1 for k in self.keeps):
            raise ValueError(f"CRIC's keeps must be >= 1 (a trial never zeroes a whole family), got {self.keeps}")
        if self.max_cycles and self.choice == "progressive":
            raise ValueError("CRIC's cycles inform the fixed choice only (progressive periods would not use them)")
        if not all(0 < level <= 1 for level in self.levels) or min(self.loss_weight, self.tolerance, self.collapse) < 0:
            raise ValueError("CRIC's trial levels must lie in (0, 1] and its loss weight, tolerance and collapse bound be >= 0")


def loss_increase(loss: float, reference: float, dead: float) -> float:
    """How far `loss` rose from `reference` in units of `dead` - `reference` (the rise of the *dead trial*,
    every prunable group zeroed: the loss all that CRIC could remove carries), at least 0, capped. A
    non-finite loss is the cap (fail closed: it broke the model). Without a scale every finite rise is
    0: a dead loss no higher than the reference (the model does no better than one with nothing
    prunable left, so no cut can collapse it), or one that is not a finite number (zeroing everything
    broke the model, e.g. a division by a norm that became 0; the run says CRIC had no scale). (A rise
    relative to the reference itself made every cut a collapse where the reference is near 0: a model
    fit to its data, or distilled into itself.)"""
    if not math.isfinite(loss):
        return _LARGEST_INCREASE
    span = dead - reference
    if not (math.isfinite(span) and span > 0):
        return 0.0
    return float(min(max((loss - reference) / span, 0.0), _LARGEST_INCREASE))


def trial_removals(size: int, levels: tuple[float, ...], keeps: tuple[int, ...] = ()) -> list[tuple[float, int]]:
    """(level, groups zeroed) of a family of `size` groups, fewest first: max(1, floor(level·size)) for each
    level, at most size - 1 (level 1: all but one), and size - k for each k in `keeps` (trials that keep
    exactly k groups, level (size - k)/size); counts that repeat or remove nothing are skipped."""
    counts = {min(max(1, int(math.floor(level * size))), size - 1): level for level in sorted(levels, reverse=True)}
    counts.update({size - k: (size - k) / size for k in keeps if 0 < size - k and size - k not in counts})
    return [(counts[m], m) for m in sorted(counts)]


def marginal_penalties(size: int, removed: list[int], rises: list[float]) -> np.ndarray:
    """Per saliency rank 0..size-1 of a family: the loss increase one more removed group adds there, read
    off the measured curve (0, 0), (removed[i], rises[i]) as its segment's slope, made non-decreasing
    (removing more never costs less per group) and, past the last trial, the last slope. The *steep tail*,
    a last segment that ends at the all-but-one trial (size - 1 removed) and spans several groups, is
    charged its whole rise per group instead: the curve is known there only at the two ends, the jump may
    lie at any of its groups, so each is charged the most it can cost (fail closed). Its slope would make
    every tail group cost the same, and a choice that enters the tail would run the family down to its
    last group, a new collapse: on the bottleneck MLP built with two torch threads, rescuing the
    bottleneck cut the 64-wide layer after it to one channel (21 % accuracy)."""
    points_m, points_r = [0, *removed], [0.0, *rises]
    # (a curve measured only at all-but-one has no tail: from (0, 0) on it is its one segment)
    tail = len(removed) - 1 if len(removed) > 1 and removed[-1] == size - 1 and points_m[-1] - points_m[-2] > 1 \
        else None
    slopes = np.maximum.accumulate([max(points_r[i + 1] - points_r[i], 0.0) /
                                    (1 if i == tail else points_m[i + 1] - points_m[i])
                                    for i in range(len(removed))])
    segment = np.searchsorted(np.asarray(removed), np.arange(size), side="right")
    return slopes[np.minimum(segment, len(slopes) - 1)]


def collapse_penalties(size: int, removed: list[int], rises: list[float], collapse: float) -> np.ndarray:
    """`marginal_penalties` where cutting the family that deep (rank + 1 groups removed) collapses it, 0
    elsewhere. Its loss increase there is read off the measured curve made non-decreasing (removing more
    never helps), between two trials the deeper trial's (fail closed: the jump may lie at any group in
    between), past the last trial the last; a collapse is an increase above `collapse`. Below the bound a
    family's loss curve is redundancy's ordinary cost and saliency alone decides, as in HESSO (the
    penalties of a smooth curve moved fashion_cnn's choices off HESSO's and cost it 0.1-1.5 points);
    past it, each group is charged what one more removed group adds there, so that where several
    families are past their bounds the choice trades their measured slopes (charging the whole
    increase per group instead ran the family with the lowest curve down to its last group)."""
    depths = np.asarray(removed)
    curve = np.maximum.accumulate(np.asarray(rises, dtype=np.float64))
    at = curve[np.minimum(np.searchsorted(depths, np.arange(1, size + 1), side="left"), len(curve) - 1)]
    return np.where(at > collapse, marginal_penalties(size, removed, rises), 0.0)


class HessoCric(Hesso):
    """HESSO-CRIC over the groups of `layout` (see module docstring)."""

    masks = ("active", "violating", "candidates", "examined", "chosen", "rescued")

    def __init__(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], layout: GroupLayout,
                 probe: LossProbe, base: BaseSettings | None = None, settings: HessoCricSettings | None = None):
        settings = settings or HessoCricSettings()
        super().__init__(params, grads, layout, base, settings)
        self.probe = probe
        empty = torch.zeros_like(self.zero)
        self.violating, self.candidates, self.examined = empty.clone(), empty.clone(), empty.clone()
        self.chosen, self.rescued = empty.clone(), empty.clone()
        floats = torch.zeros(layout.n_groups, dtype=torch.float64, device=self.device)
        self.penalty, self.saliency_sum, self.saliency_count = floats.clone(), floats.clone(), floats.clone()
        # the units' groups by id, unit after unit; `penalty` holds a unit's penalty by depth in them: its
        # i-th group holds what removing an (i+1)-th group of the unit costs
        units = [g for _, g in self.trial_units()]
        sizes = [len(g) for g in units]
        self._members = torch.as_tensor(np.concatenate(units) if units else np.zeros(0, np.int64), device=self.device)
        self._unit_size = torch.as_tensor(sizes, dtype=torch.long, device=self.device)
        self._unit_start = torch.cumsum(self._unit_size, 0) - self._unit_size
        self._unit_of = torch.full((layout.n_groups,), -1, dtype=torch.long, device=self.device)  # -1: no unit
        self._unit_of[self._members] = torch.repeat_interleave(torch.arange(len(units), device=self.device),
                                                               self._unit_size)
        self.phase = "train"  # train -> cycle -> prune
        self.order = torch.zeros(0, dtype=torch.long, device=self.device)  # the chosen groups, lowest score first
        self.taken = 0  # groups of `order` activated so far
        self.cache: dict[str, torch.Tensor] | None = None
        self.cache_base: dict | None = None
        self.reference_loss = self.dead_loss = math.nan
        self.cycle, self.cycle_start, self.pruning_start = 0, -1, -1
        self.evaluations = 0
        self.trials: list[dict] = []  # {"unit", "level", "removed", "loss", "increase"}
        self.cycles: list[dict] = []  # {"violating", "loss", "increase", "candidates"}
        self.unprobed: list[int] = []  # units the budget left out

    # ------------------------------------------------------------------ the step
    def step(self, lr: float) -> None:
        """One HESSO-CRIC step."""
        if self.phase == "train" and self.steps >= self.settings.cric_start_step:
            self._start()
        saliency = self._saliency() if self.phase == "cycle" else None
        if saliency is not None:
            self._observe(saliency)
        prune_factor = self._prune_schedule() if self.phase == "prune" else None
        directions = self.base.compute(self.params, self.grads, lr)
        for name, x in self.params.items():
            x.sub_(directions[name], alpha=lr)
        if self.phase == "cycle":
            S, t = self.settings.cycle_steps, self.steps - self.cycle_start
            factor = torch.where(self.violating, (S - t - 1) / (S - t), 1.0).to(torch.float64)
            self.segments.scale_(self.params, factor)
            if t == S - 1:
                self._end_cycle()
        elif prune_factor is not None:
            self.segments.scale_(self.params, prune_factor)
            self._close_period()
        self.steps += 1

    def _prune_schedule(self) -> torch.Tensor | None:
        """At a period's first step, activate its quota of `order`; the factor of this step's groups."""
        s, T = self.settings, self.period_length
        period, t = divmod(self.steps - self.pruning_start, T)
        pruning = 0 <= period < s.pruning_periods
        if pruning and t == 0 and s.choice == "progressive":
            self.zero |= self.active
            self.active = self._progressive_quota(period)
        elif pruning and t == 0:
            self.zero |= self.active
            total = len(self.order)
            due = total if period == s.pruning_periods - 1 else (total // s.pruning_periods) * (period + 1)
            self.active = torch.zeros_like(self.zero)
            self.active[self.order[self.taken:due]] = True
            self.taken = due
        if not bool(self.zero.any()) and not (pruning and bool(self.active.any())):
            return None
        factor = torch.ones(self.layout.n_groups, dtype=torch.float64, device=self.device)
        if pruning:
            factor[self.active] = (T - t - 1) / (T - t)
        factor[self.zero] = 0.0
        return factor

    def _progressive_quota(self, period: int) -> torch.Tensor:
        """HESSO's choice for `period` with the penalty added to the current saliency; the groups the
        saliency-only choice would have taken instead join `rescued`."""
        saliency = self._saliency()
        regions = self.region_mask
        channel_quota = self._quota(period, self.target, int((self.zero & ~regions).sum()))
        region_quota = self._quota(period, self.region_target, int((self.zero & regions).sum()))

        def pick(scores: torch.Tensor) -> torch.Tensor:
            return self.choose(scores, channel_quota, self.zero | regions, self.settings.group_divisible) | \
                self.choose_regions(scores, region_quota, self.zero)
        chosen = pick(self.combined(saliency))
        self.rescued |= pick(saliency) & ~chosen
        return chosen

    def _close_period(self) -> None:
        period, t = divmod(self.steps - self.pruning_start, self.period_length)
        if 0 <= period < self.settings.pruning_periods and t == self.period_length - 1:
            self.zero |= self.active
            self.active = torch.zeros_like(self.zero)

    # ------------------------------------------------------------------ scores
    def _saliency(self) -> torch.Tensor:
        """HESSO's score of every group now (relative to its family's mean with per_family)."""
        scores = importance(self.stats(), self.settings.criteria)
        return self.relative_to_family(scores) if self.settings.per_family else scores

    def combined(self, saliency: torch.Tensor) -> torch.Tensor:
        """saliency + loss_weight·penalty (lower: more redundant). A live group's penalty is its unit's at
        the depth the group would be removed at: the unit's groups already zero, plus its rank among the
        live ones by saliency. (The penalty follows the depth, not the group: which groups are least
        salient changes as training goes on, and a group that ranked last at the trials would otherwise
        carry the tail's charge wherever it ranks later.)"""
        out = saliency.clone()
        if not bool(self.penalty.any()):
            return out
        live = torch.nonzero((self._unit_of >= 0) & ~self.zero).flatten()  # by id
        by_saliency = live[torch.argsort(saliency[live], stable=True)]  # ties by group id, as `choose` ranks
        ranked = by_saliency[torch.argsort(self._unit_of[by_saliency], stable=True)]  # unit by unit, in that order
        unit = self._unit_of[ranked]
        live_count = torch.bincount(unit, minlength=len(self._unit_size))
        rank = torch.arange(len(ranked), device=self.device) - (torch.cumsum(live_count, 0) - live_count)[unit]
        depth = (self._unit_size - live_count)[unit] + rank  # the unit's zeroed groups, then its live ones
        out[ranked] += self.settings.loss_weight * self.penalty[self._members[self._unit_start[unit] + depth]]
        return out

    def lowest(self, scores: torch.Tensor, among: torch.Tensor | None = None) -> torch.Tensor:
        """The K lowest-scored groups (and the target's regions) as HESSO chooses them: no family or axis
        emptied, kept counts multiples of group_divisible, only admissible erasures. With `among`, only
        groups flagged there (the others rank last and are dropped)."""
        if among is not None:
            scores = torch.where(among, scores, torch.full_like(scores, math.inf))
        regions = self.region_mask
        divisible = self.settings.group_divisible if among is None else 1  # a trial set need not round
        channels = self.choose(scores, self.target, regions.clone(), divisible)
        chosen = channels | self.choose_regions(scores, self.region_target, torch.zeros_like(self.zero))
        return chosen & among if among is not None else chosen

    def _bottom(self, scores: torch.Tensor) -> torch.Tensor:
        """The K lowest channel groups and the region target's lowest regions, by rank alone (vectorised)."""
        out = torch.zeros_like(self.zero)
        for mask, count in ((~self.region_mask, self.target), (self.region_mask, self.region_target)):
            index = torch.nonzero(mask).flatten()
            if count and len(index):
                # stable order: by score, then by group id (as `choose` ranks)
                ranked = index[torch.argsort(scores[index], stable=True)]
                out[ranked[:count]] = True
        return out

    # ------------------------------------------------------------------ CRIC
    def _can_evaluate(self, count: int = 1) -> bool:
        return not self.settings.budget or self.evaluations + count <= self.settings.budget

    def _evaluate(self) -> float:
        self.evaluations += 1
        return float(self.probe())

    def _restore(self, tensors=None) -> None:
        for name in tensors if tensors is not None else self.params:
            self.params[name].copy_(self.cache[name])

    def _start(self) -> None:
        """Cache, reference loss, trial projections and the first violating set (at cric_start_step)."""
        self.cache = {k: v.detach().clone() for k, v in self.params.items()}
        self.cache_base = _clone(self.base.state_dict())
        saliency = self._saliency()
        self.saliency_sum += saliency
        self.saliency_count += 1
        if not (self.target or self.region_target) or not self._can_evaluate(2):
            if self.target or self.region_target:  # a budget below the reference and the dead trial
                self.unprobed = [unit for unit, _ in self.trial_units()]
            self._finish(self.steps)
            return
        self.reference_loss = self._evaluate()
        self.dead_loss = self._dead_trial()
        self._trials(saliency)
        if self.settings.max_cycles and self._can_evaluate(1):
            self._begin_cycle(self.lowest(self.combined(saliency)), self.steps)
        else:
            self._finish(self.steps)

    def _dead_trial(self) -> float:
        """The loss with every group zeroed (the scale of `loss_increase`), parameters restored."""
        self.segments.scale_(self.params, torch.zeros(self.layout.n_groups, dtype=torch.float64, device=self.device))
        loss = self._evaluate()
        self._restore()
        return loss

    def trial_units(self) -> list[tuple[int, np.ndarray]]:
        """(unit, its global groups): families with at least two groups, narrowest first, then regions
        (unit -1 - region id)."""
        family_of = self.layout.family_of_group
        units = [(int(f), np.flatnonzero(family_of == f)) for f in np.unique(family_of[family_of >= 0])]
        units = sorted((u for u in units if len(u[1]) >= 2), key=lambda u: (len(u[1]), u[0]))
        return units + [(int(family_of[g]), np.array([g])) for g in np.flatnonzero(family_of < 0)]

    def _trials(self, saliency: torch.Tensor) -> None:
        """Zero each unit's lowest-saliency share at each level (and all but each of `keeps`), evaluate,
        restore; the unit's penalty by depth is its loss slope there where that cut passes the collapse
        bound, else 0 (see `collapse_penalties`)."""
        reserve = self.settings.max_cycles  # the cycles' evaluations come first
        values = saliency.detach().cpu().numpy()
        tensors_of = self._tensors_of_groups()
        for unit, groups in self.trial_units():
            removals = trial_removals(len(groups), self.settings.levels, self.settings.keeps) if unit >= 0 else [(1.0, 1)]
            if self.settings.budget and self.evaluations + len(removals) + reserve > self.settings.budget:
                self.unprobed.append(unit)  # charged nothing: HESSO's choice stands there
                continue
            ranked = groups[np.lexsort((groups, values[groups]))]
            rises = []
            for level, removed in removals:
                factor = torch.ones(self.layout.n_groups, dtype=torch.float64, device=self.device)
                factor[torch.as_tensor(ranked[:removed], device=self.device)] = 0.0
                self.segments.scale_(self.params, factor)
                loss = self._evaluate()
                self._restore(sorted({t for g in ranked[:removed] for t in tensors_of[int(g)]}))
                rises.append(loss_increase(loss, self.reference_loss, self.dead_loss))
                self.trials.append({"unit": unit, "level": level, "removed": removed, "loss": loss,
                                    "increase": rises[-1]})
            slopes = collapse_penalties(len(groups), [m for _, m in removals], rises, self.settings.collapse)
            self.penalty[torch.as_tensor(groups, device=self.device)] = torch.as_tensor(slopes, device=self.device)

    def _tensors_of_groups(self) -> dict[int, set[str]]:
        """Per global group: the tensors that hold its slices."""
        out: dict[int, set[str]] = {}
        for entry in self.layout.axes:
            for g in np.unique(entry.group_of_index[entry.group_of_index >= 0]):
                out.setdefault(int(g), set()).add(entry.tensor)
        return out

    def _begin_cycle(self, violating: torch.Tensor, start: int) -> None:
        self.violating = violating
        self.examined |= violating
        self.candidates = torch.zeros_like(self.zero)
        self.cycle += 1
        self.cycle_start = start
        self.phase = "cycle"

    def _observe(self, saliency: torch.Tensor) -> None:
        """A cycle step's saliency: into the running mean outside V; new low-ranked groups into the candidates."""
        outside = ~self.violating
        self.saliency_sum += torch.where(outside, saliency, torch.zeros_like(saliency))
        self.saliency_count += outside.to(torch.float64)
        self.candidates |= self._bottom(self.combined(saliency)) & ~self.examined

    def _end_cycle(self) -> None:
        """V is at zero: measure, charge V, restore the cache, and start the next cycle or finish."""
        loss = self._evaluate()
        size = int(self.violating.sum())
        rise = loss_increase(loss, self.reference_loss, self.dead_loss)
        self.cycles.append({"violating": size, "loss": loss, "increase": rise,
                            "candidates": int((self.candidates & ~self.examined).sum())})
        self._restore()
        self.base.load_state_dict(_clone(self.cache_base))
        after = self.steps + 1
        fresh = self.candidates & ~self.examined
        limit = self.settings.tolerance * (self.target + self.region_target)
        if self.cycle >= self.settings.max_cycles or int(fresh.sum()) <= limit or not self._can_evaluate(1):
            self._finish(after)
            return
        scores = self.combined(self.saliency_sum / self.saliency_count.clamp(min=1))
        self._begin_cycle(self.lowest(scores, among=fresh), after)

    def _finish(self, start: int) -> None:
        """The final redundant set, its zeroing order, the rescued groups; HESSO's periods start at `start`."""
        mean = self.saliency_sum / self.saliency_count.clamp(min=1)
        final = self.combined(mean)
        self.chosen = self.lowest(final) if (self.target or self.region_target) else torch.zeros_like(self.zero)
        by_saliency = self.lowest(mean) if (self.target or self.region_target) else torch.zeros_like(self.zero)
        self.rescued = by_saliency & ~self.chosen if self.settings.choice == "fixed" else torch.zeros_like(self.zero)
        index = torch.nonzero(self.chosen).flatten()
        self.order = index[torch.argsort(final[index], stable=True)]
        self.violating = torch.zeros_like(self.zero)
        self.candidates = torch.zeros_like(self.zero)
        self.phase, self.pruning_start = "prune", start
        self.cache, self.cache_base = None, None  # the trial is over: free the copy

    # ------------------------------------------------------------------ report and state
    def summary(self) -> dict:
        """What CRIC did, as plain data: evaluations, trials, cycles, steps spent in cycles (their training
        is discarded), the groups it rescued (family -> local group indices; regions by id)."""
        rescued = self.layout.selection((self.rescued & ~self.zero).cpu().numpy())  # kept to the end
        return {"evaluations": self.evaluations, "reference_loss": self.reference_loss, "dead_loss": self.dead_loss,
                "trials": list(self.trials), "cycles": list(self.cycles), "unprobed": list(self.unprobed),
                "cycle_steps": self.settings.cycle_steps * len(self.cycles), "pruning_start": self.pruning_start,
                "rescued": {int(f): list(g) for f, g in rescued.pruned.items()},
                "rescued_regions": list(rescued.erased)}

    _SCALARS = ("phase", "taken", "reference_loss", "dead_loss", "cycle", "cycle_start", "pruning_start", "evaluations",
                "trials", "cycles", "unprobed")

    def state_dict(self) -> dict:
        """HESSO's state plus the cycle state (cache included: a resumed run continues mid-cycle)."""
        out = super().state_dict()
        out["cric"] = {**{k: getattr(self, k) for k in self._SCALARS},
                       "order": self.order.cpu(), "penalty": self.penalty.cpu(),
                       "saliency_sum": self.saliency_sum.cpu(), "saliency_count": self.saliency_count.cpu(),
                       "cache": None if self.cache is None else {k: v.cpu() for k, v in self.cache.items()},
                       "cache_base": self.cache_base}
        return out

    def load_state_dict(self, data: dict) -> None:
        """Restore what `state_dict` returned."""
        super().load_state_dict(data)
        cric = data["cric"]
        for key in self._SCALARS:
            setattr(self, key, cric[key])
        self.order = cric["order"].to(self.device)
        for key in ("penalty", "saliency_sum", "saliency_count"):
            getattr(self, key).copy_(cric[key])
        self.cache = None if cric["cache"] is None else {k: v.to(self.device) for k, v in cric["cache"].items()}
        self.cache_base = cric["cache_base"]


def _clone(state):
    """A deep copy of a state dict's tensors (dicts and lists copied, other values shared)."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone(v) for v in state]
    return state

"""HESSO-CRIC: its bookkeeping against a slow per-group reference, resume mid-cycle, the budget, the
collapse it prevents, and `run --optimizer hesso-cric` end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import onnxprune
from onnxprune.facts import Compaction, VerifyReport
from onnxprune.optim import BaseSettings
from onnxprune.optim.hesso_cric import HessoCric, HessoCricSettings, loss_increase
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.train.config import TrainConfig, TrainResult

from .conftest import ZOO
from .test_optim import layout_of, random_grads, reference_scores, set_group, small_space

# cosine similarity dominates so that, with random gradients, the lowest-ranked groups change while V
# shrinks (candidates appear and there is more than one cycle); magnitude keeps V low
CRIC = HessoCricSettings(target_group_sparsity=0.5, pruning_steps=6, pruning_periods=2, per_family=False,
                         cric_start_step=2, cycle_steps=3, max_cycles=3, tolerance=0.0, collapse=0.05, choice="fixed",
                         criteria={"cosine_similarity": 0.8, "magnitude": 0.2})


def fake_loss(params, origin, weights):
    """A deterministic loss of the parameters: 1 + weighted squared distance from `origin`, per tensor."""
    return 1.0 + sum(weights[k] * float(((params[k] - origin[k]) ** 2).sum()) for k in params)


def loss_weights(params):
    return {k: float(i + 1) for i, k in enumerate(sorted(params))}


# ---------------------------------------------------------------- the slow reference (a loop over groups)
def lowest(scores, count, among=None):
    """The `count` lowest by (score, group id), optionally only groups in `among`."""
    order = [int(g) for g in np.lexsort((np.arange(len(scores)), scores)) if among is None or g in among]
    return set(order[:count])


def reference_cric(params, grads_seq, layout, s: HessoCricSettings, lr):
    """HESSO-CRIC as the module docstring states it, group by group, plain SGD (no momentum): returns the
    final parameters, the violating set of every cycle, the final choice and the rescued groups."""
    x = {k: v.clone() for k, v in params.items()}
    origin, weights = {k: v.clone() for k, v in params.items()}, loss_weights(params)
    n_groups = layout.n_groups
    K = int(math.floor(s.target_group_sparsity * n_groups + 1e-9))
    family_of = layout.family_of_group
    total, count = np.zeros(n_groups), np.zeros(n_groups)
    penalty = {f: np.zeros((family_of == f).sum()) for f in set(family_of)}  # per family, by depth - 1

    def combined(sal):  # a family's k-th lowest by (saliency, id) is charged its penalty at depth k
        out = np.array(sal, dtype=np.float64)
        for f in set(family_of):
            order = sorted(np.flatnonzero(family_of == f), key=lambda g: (sal[g], g))
            for depth, g in enumerate(order):
                out[g] += s.loss_weight * penalty[f][depth]
        return out

    phase, cycles, V, examined, candidates = "train", [], set(), set(), set()
    cache, ref, cycle_start, start, order, chosen, rescued = None, None, None, None, [], set(), set()

    def finish(at):
        nonlocal phase, order, chosen, rescued, start
        mean = total / np.maximum(count, 1)
        final = combined(mean)
        chosen = lowest(final, K)
        rescued = lowest(mean, K) - chosen
        order = sorted(chosen, key=lambda g: (final[g], g))
        phase, start = "prune", at

    zero, active, taken = set(), [], 0
    T = s.pruning_steps // s.pruning_periods
    for n, grads in enumerate(grads_seq):
        if phase == "train" and n >= s.cric_start_step:
            cache = {k: v.clone() for k, v in x.items()}
            sal, _ = reference_scores(x, grads, layout, s.criteria)
            total += sal
            count += 1
            ref = fake_loss(x, origin, weights)
            dead = {k: v.clone() for k, v in x.items()}
            for g in range(n_groups):
                set_group(dead, layout, g, 0.0)
            dead = fake_loss(dead, origin, weights)
            for f in sorted(set(family_of), key=lambda f: ((family_of == f).sum(), f)):
                groups = np.flatnonzero(family_of == f)
                ranked = sorted(groups, key=lambda g: (sal[g], g))
                points = [(0, 0.0)]
                for level in s.levels:
                    m = min(max(1, math.floor(level * len(groups))), len(groups) - 1)
                    if m <= points[-1][0]:
                        continue
                    trial = {k: v.clone() for k, v in x.items()}
                    for g in ranked[:m]:
                        set_group(trial, layout, g, 0.0)
                    points.append((m, loss_increase(fake_loss(trial, origin, weights), ref, dead)))
                rises = [max(r for _, r in points[1:i + 1]) for i in range(1, len(points))]  # never falls
                # past the bound: the first trial at least rank + 1 deep (or the last) rose above it
                collapses = [rises[next((i for i, (m, _) in enumerate(points[1:]) if m >= rank + 1), len(rises) - 1)]
                             > s.collapse for rank in range(len(groups))]
                slope = 0.0
                for i in range(1, len(points)):  # ranks of segment i: points[i-1].m .. points[i].m - 1
                    tail = i == len(points) - 1 and points[i][0] == len(groups) - 1  # ends at all but one:
                    width = 1 if tail else points[i][0] - points[i - 1][0]          # its whole rise per group
                    slope = max(slope, max(points[i][1] - points[i - 1][1], 0) / width)
                    last = len(groups) if i == len(points) - 1 else points[i][0]
                    for rank in range(points[i - 1][0], last):
                        penalty[f][rank] = slope if collapses[rank] else 0.0
            V = lowest(combined(sal), K)
            examined, candidates, cycle_start, phase = set(V), set(), n, "cycle"
            cycles.append(sorted(V))
        if phase == "cycle":
            sal, _ = reference_scores(x, grads, layout, s.criteria)
            for g in range(n_groups):
                if g not in V:
                    total[g] += sal[g]
                    count[g] += 1
            candidates |= lowest(combined(sal), K) - examined
        if phase == "prune":
            period, t = divmod(n - start, T)
            if 0 <= period < s.pruning_periods and t == 0:
                zero |= set(active)
                last = period == s.pruning_periods - 1
                due = len(order) if last else (len(order) // s.pruning_periods) * (period + 1)
                active, taken = order[taken:due], due
        for k in x:
            x[k] -= lr * grads[k]
        if phase == "cycle":
            t = n - cycle_start
            for g in V:
                set_group(x, layout, g, (s.cycle_steps - t - 1) / (s.cycle_steps - t))
            if t == s.cycle_steps - 1:
                x = {k: v.clone() for k, v in cache.items()}
                fresh = candidates - examined
                if len(cycles) >= s.max_cycles or len(fresh) <= s.tolerance * K:
                    finish(n + 1)
                else:
                    V = lowest(combined(total / np.maximum(count, 1)), K, among=fresh)
                    examined |= V
                    candidates, cycle_start = set(), n + 1
                    cycles.append(sorted(V))
        elif phase == "prune":
            period, t = divmod(n - start, T)
            for g in range(n_groups):
                if 0 <= period < s.pruning_periods and g in active:
                    set_group(x, layout, g, (T - t - 1) / (T - t))
                if g in zero:
                    set_group(x, layout, g, 0.0)
            if 0 <= period < s.pruning_periods and t == T - 1:
                zero |= set(active)
                active = []
    return x, cycles, chosen, rescued


def drive_recording(optimizer, grads, grads_seq):
    """Step through `grads_seq`; return the violating set of every cycle as it starts."""
    cycles, seen = [], 0
    for step_grads in grads_seq:
        for k, g in step_grads.items():
            grads[k].copy_(g)
        optimizer.step(0.3)
        if optimizer.cycle != seen and optimizer.phase == "cycle":
            cycles.append(sorted(np.flatnonzero(optimizer.violating.numpy()).tolist()))
        seen = optimizer.cycle
    return cycles


def make_cric(params, settings=CRIC, origin=None):
    """HESSO-CRIC on a copy of `params`, its probe `fake_loss` measured from `origin` (default: params)."""
    _, space, _, stats = small_space()
    layout = layout_of(space, params, stats)
    ours = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    origin, weights = {k: v.clone() for k, v in (origin or params).items()}, loss_weights(params)
    optimizer = HessoCric(ours, grads, layout, lambda: fake_loss(ours, origin, weights),
                          BaseSettings("sgd", momentum=0.0), settings)
    return optimizer, ours, grads, layout


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cycle_bookkeeping_matches_the_slow_reference(seed):
    _, _, params, _ = small_space()
    rng = np.random.default_rng(seed)
    grads_seq = [random_grads(params, rng) for _ in range(24)]
    optimizer, ours, grads, layout = make_cric(params)
    cycles = drive_recording(optimizer, grads, grads_seq)
    expected, expected_cycles, chosen, rescued = reference_cric(params, grads_seq, layout, CRIC, 0.3)
    assert cycles == expected_cycles and len(cycles) >= 2  # the same violating sets, more than one cycle
    assert set(np.flatnonzero(optimizer.chosen.numpy())) == chosen
    assert set(np.flatnonzero(optimizer.rescued.numpy())) == rescued
    for k in params:
        np.testing.assert_allclose(ours[k].numpy(), expected[k].numpy(), rtol=1e-12, atol=1e-15)
    zero = optimizer.zero_groups()
    assert set(np.flatnonzero(zero)) == chosen and zero.sum() == 7  # exactly K, exactly the final choice
    assert optimizer.evaluations == 2 + 2 * 3 + len(cycles)  # reference, dead trial, 2 families x 3 levels, cycles


@pytest.mark.parametrize("choice", ["fixed", "progressive"])
def test_the_loss_penalty_moves_the_choice_off_an_expensive_family(choice):
    """Make the family saliency prunes most cost 1000x in the loss: CRIC takes fewer of its groups and
    names exactly those it kept as rescued."""
    _, _, params, _ = small_space()
    rng = np.random.default_rng(7)
    grads_seq = [random_grads(params, rng) for _ in range(24)]

    def run(precious):
        cycles = CRIC.max_cycles if choice == "fixed" else 0  # progressive periods choose without cycles
        optimizer, ours, grads, layout = make_cric(params, replace(CRIC, choice=choice, max_cycles=cycles))
        origin = {k: v.clone() for k, v in params.items()}
        optimizer.probe = lambda: fake_loss(ours, origin, {k: 1000.0 if k in precious else 1.0 for k in ours})
        drive_recording(optimizer, grads, grads_seq)
        return optimizer, layout

    plain, layout = run(set())
    chosen = plain.zero_groups()
    family = max(set(layout.family_of_group), key=lambda f: chosen[layout.family_of_group == f].sum())
    in_family = layout.family_of_group == family
    precious = {e.tensor for e in layout.axes if in_family[e.group_of_index[e.group_of_index >= 0]].all()}
    weighted, _ = run(precious)
    rescued = weighted.rescued.numpy() & ~weighted.zero_groups()
    chosen = plain.zero_groups()
    assert weighted.zero_groups()[in_family].sum() < chosen[in_family].sum()
    assert rescued[in_family].any() and not rescued[~in_family].any()
    assert weighted.zero_groups().sum() == plain.zero_groups().sum() == 7  # still exactly K


@pytest.mark.parametrize("variant", ["sgd", "adam"])
def test_a_cycle_leaves_weights_and_optimizer_state_as_they_were(variant):
    """With momentum (sgd) or moments (adam), the step after a cycle starts from exactly the cached weights
    and optimizer state: the cycle's training is a trial, not progress."""
    _, _, params, _ = small_space()
    rng = np.random.default_rng(11)
    grads_seq = [random_grads(params, rng) for _ in range(12)]
    optimizer, ours, grads, _ = make_cric(params, replace(CRIC, max_cycles=1))
    optimizer.base = type(optimizer.base)(BaseSettings(variant, momentum=0.9), ours)
    drive_recording(optimizer, grads, grads_seq[:CRIC.cric_start_step])
    weights = {k: v.clone() for k, v in ours.items()}
    state = _clone_state(optimizer.base.state_dict())
    drive_recording(optimizer, grads, grads_seq[CRIC.cric_start_step:CRIC.cric_start_step + CRIC.cycle_steps])
    assert optimizer.phase == "prune" and len(optimizer.cycles) == 1
    for k in ours:
        assert torch.equal(ours[k], weights[k]), k
    after = optimizer.base.state_dict()
    assert after["steps"] == state["steps"]
    for key in ("first", "second"):
        for k, v in state.get(key, {}).items():
            assert torch.equal(after[key][k], v), (key, k)


def _clone_state(state):
    return {k: ({n: t.clone() for n, t in v.items()} if isinstance(v, dict) else v) for k, v in state.items()}


@pytest.mark.parametrize("loss", ["flat", "below the collapse bound", "a reference near 0"])
def test_progressive_choice_without_a_collapse_is_hesso(loss):
    """No trial past the collapse bound (a flat loss, or one that rises, but by less than the bound): the
    default HESSO-CRIC makes HESSO's choices step for step (the trials' zeroing is restored exactly), so
    CRIC changes a run only where it measured a collapse. A reference loss near 0 (a model fit to its
    data) is no collapse either: rises are in units of the dead trial, not of the reference."""
    from onnxprune.optim import Hesso, HessoSettings

    _, space, params, stats = small_space()
    rng = np.random.default_rng(9)
    grads_seq = [random_grads(params, rng) for _ in range(16)]
    settings = replace(CRIC, choice="progressive", max_cycles=0, per_family=True, collapse=1.0)
    optimizer, ours, grads, layout = make_cric(params, settings)
    if loss == "flat":
        optimizer.probe = lambda: 1.0
    if loss == "a reference near 0":  # the same losses, shifted so that the reference (the first) is 1e-12
        measured, first = optimizer.probe, []

        def near_zero():
            value = measured()
            first.append(first[0] if first else value)
            return value - first[0] + 1e-12
        optimizer.probe = near_zero
    drive_recording(optimizer, grads, grads_seq)
    if loss == "a reference near 0":
        assert optimizer.reference_loss == 1e-12 and max(t["loss"] for t in optimizer.trials) > 1.0
    if loss != "flat":
        assert max(t["increase"] for t in optimizer.trials) > 0.01  # the trials did measure a rise
    hesso_params = {k: v.clone() for k, v in params.items()}
    hesso_grads = {k: torch.zeros_like(v) for k, v in params.items()}
    hesso = Hesso(hesso_params, hesso_grads, layout, BaseSettings("sgd", momentum=0.0),
                  HessoSettings(0.5, settings.cric_start_step, settings.pruning_steps, settings.pruning_periods,
                                criteria=settings.criteria))
    drive_recording_plain(hesso, hesso_grads, grads_seq)
    for k in params:
        assert torch.equal(ours[k], hesso_params[k]), k
    assert optimizer.zero_groups().sum() == 7 and not optimizer.rescued.any()


def drive_recording_plain(optimizer, grads, grads_seq):
    for step_grads in grads_seq:
        for k, g in step_grads.items():
            grads[k].copy_(g)
        optimizer.step(0.3)


def test_resume_mid_cycle_equals_uninterrupted():
    _, _, params, _ = small_space()
    rng = np.random.default_rng(5)
    grads_seq = [random_grads(params, rng) for _ in range(24)]

    def run(steps, state=None, start=None):
        settings = replace(CRIC, per_family=True)
        optimizer, ours, grads, _ = make_cric(start if start is not None else params, settings, origin=params)
        if state is not None:
            optimizer.load_state_dict(state)
        drive_recording(optimizer, grads, grads_seq[optimizer.steps:steps])
        return optimizer, ours

    full, full_params = run(24)
    half, half_params = run(4)  # cric starts at step 2, cycles of 3 steps: step 4 is the middle of cycle 1
    assert half.phase == "cycle" and half.cycle == 1 and half.cache is not None
    state = torch.load(_saved(half.state_dict()), weights_only=True)  # through a file, as checkpoints are
    resumed, resumed_params = run(24, state, {k: v.clone() for k, v in half_params.items()})
    for k in params:
        assert torch.equal(full_params[k], resumed_params[k]), k
    assert torch.equal(full.chosen, resumed.chosen) and resumed.summary() == full.summary()


def _saved(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_budget_bounds_the_evaluations_and_names_what_it_left_out():
    _, _, params, _ = small_space()
    rng = np.random.default_rng(3)
    grads_seq = [random_grads(params, rng) for _ in range(24)]
    optimizer, _, grads, _ = make_cric(params, replace(CRIC, budget=6))
    drive_recording(optimizer, grads, grads_seq)
    assert optimizer.evaluations <= 6
    assert optimizer.unprobed  # reference, dead trial and 3 reserved for cycles leave no family its 3 levels
    assert optimizer.zero_groups().sum() == 7


def test_a_budget_below_the_reference_and_the_dead_trial_lists_every_unit_unprobed():
    _, _, params, _ = small_space()
    optimizer, _, grads, _ = make_cric(params, replace(CRIC, budget=1))
    drive_recording(optimizer, grads, [random_grads(params, np.random.default_rng(3)) for _ in range(24)])
    assert optimizer.evaluations == 0 and not optimizer.trials
    assert sorted(optimizer.unprobed) == sorted(unit for unit, _ in optimizer.trial_units())
    assert optimizer.zero_groups().sum() == 7  # HESSO's choice, by saliency alone


def test_a_unit_the_budget_left_out_is_charged_nothing():
    """Room for one family's trials: it is charged what it measured, the family left out nothing (HESSO's
    choice stands there; the probed one's mean would protect it from its first group on)."""
    _, _, params, _ = small_space()
    rng = np.random.default_rng(3)
    grads_seq = [random_grads(params, rng) for _ in range(24)]
    optimizer, _, grads, _ = make_cric(params, replace(CRIC, budget=2 + 3 + 3, collapse=0.0))
    drive_recording(optimizer, grads, grads_seq)
    family_of, penalty = optimizer.layout.family_of_group, optimizer.penalty.numpy()
    left_out = np.isin(family_of, optimizer.unprobed)
    assert left_out.any() and not penalty[left_out].any()
    assert penalty[~left_out].any()


def test_trial_removals():
    from onnxprune.optim.hesso_cric import trial_removals

    assert trial_removals(8, (0.25, 0.5, 0.75, 0.9)) == [(0.25, 2), (0.5, 4), (0.75, 6), (0.9, 7)]
    assert trial_removals(2, (0.25, 0.5, 0.75)) == [(0.25, 1)]  # one count once; never the whole family
    assert trial_removals(10, (0.5, 1.0)) == [(0.5, 5), (1.0, 9)]  # level 1: all but one
    # keeps: trials that leave exactly 4 and 2 groups (the steep end), none that repeat a count
    assert trial_removals(32, (0.25, 0.5, 0.75, 1.0), (4, 2)) == [
        (0.25, 8), (0.5, 16), (0.75, 24), (28 / 32, 28), (30 / 32, 30), (1.0, 31)]
    assert trial_removals(4, (0.25, 0.5, 0.75, 1.0), (4, 2)) == [(0.25, 1), (0.5, 2), (0.75, 3)]


def test_marginal_penalties():
    from onnxprune.optim.hesso_cric import marginal_penalties

    # curve (0,0) (2,0.2) (4,0.2) (6,1.4): slopes 0.1, 0 -> 0.1 (never decreasing), 0.6; past 6: 0.6
    np.testing.assert_allclose(marginal_penalties(8, [2, 4, 6], [0.2, 0.2, 1.4]),
                               [0.1, 0.1, 0.1, 0.1, 0.6, 0.6, 0.6, 0.6])
    np.testing.assert_allclose(marginal_penalties(3, [1], [0.5]), [0.5, 0.5, 0.5])


def test_the_steep_tail_is_charged_its_whole_rise_per_group():
    """The segment from the deepest inner trial to the all-but-one trial is known only at its ends: each of
    its groups is charged the whole rise, so a choice cannot run the family down to one group for the
    price of a slope (the two-thread bottleneck MLP lost its 64-wide layer that way)."""
    from onnxprune.optim.hesso_cric import marginal_penalties

    # 8 groups, trials at 2, 4 and 7 (all but one): slopes 0.1, 0.1, then the tail 4 -> 7 rises 3.0
    np.testing.assert_allclose(marginal_penalties(8, [2, 4, 7], [0.2, 0.4, 3.4]),
                               [0.1, 0.1, 0.1, 0.1, 3.0, 3.0, 3.0, 3.0])
    # a tail of one group is its slope already; a flat tail costs nothing
    np.testing.assert_allclose(marginal_penalties(4, [1, 2, 3], [0.0, 1.0, 3.0]), [0.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(marginal_penalties(8, [4, 7], [0.0, 0.0]), np.zeros(8))


def test_collapse_penalties_charge_only_cuts_past_the_bound():
    """Below the bound a family's loss curve is ordinary cost (penalty 0: HESSO's choice stands); a group
    whose removal would cut its family past it (the deeper trial's increase where it lies between two:
    the jump may be at any group in between) is charged its marginal penalty."""
    from onnxprune.optim.hesso_cric import collapse_penalties

    # fashion_resnet's stem at 10 % of the steps: the loss triples only past 28 of 32 channels removed
    stem = collapse_penalties(32, [8, 16, 24, 28, 30, 31], [0.007, 0.066, 0.737, 1.914, 2.571, 3.437], 2.0)
    np.testing.assert_allclose(stem, [0.0] * 28 + [0.3285, 0.3285, 0.866, 0.866])
    # a curve that dips (noise) is made non-decreasing: past the bound from the segment ending at 3.0 on
    np.testing.assert_allclose(collapse_penalties(8, [2, 4, 7], [0.2, 3.0, 2.5], 1.0), [0, 0] + [1.4] * 6)
    # the bottleneck MLP: one dead channel, then 28100 % for the second
    np.testing.assert_allclose(collapse_penalties(4, [1, 2, 3], [0.0, 281.2, 419.0], 2.0), [0] + [281.2] * 3)
    # bound 0 charges every slope; a flat curve charges nothing
    np.testing.assert_allclose(collapse_penalties(4, [2, 3], [0.5, 1.0], 0.0), [0.25, 0.25, 0.5, 0.5])
    np.testing.assert_allclose(collapse_penalties(8, [4, 7], [0.0, 0.0], 0.0), np.zeros(8))


def test_loss_increase_is_in_units_of_the_dead_trial_and_fails_closed():
    assert loss_increase(1.5, 1.0, 3.0) == pytest.approx(0.25)  # a quarter of what zeroing everything adds
    assert loss_increase(0.5, 1.0, 3.0) == 0.0
    assert loss_increase(float("nan"), 1.0, 3.0) == loss_increase(float("inf"), 1.0, 3.0) == 1000.0
    # a reference near 0 (a model fit to its data) no longer makes every rise huge
    assert loss_increase(0.02, 1e-30, 2.3) == pytest.approx(0.02 / 2.3)
    # no scale (the dead model is no worse, or its loss is not finite): no cut reads as a collapse,
    # except one that broke the model
    for dead in (1.0, 0.5, float("inf"), float("nan")):
        assert loss_increase(50.0, 1.0, dead) == 0.0
        assert loss_increase(float("nan"), 1.0, dead) == 1000.0


def test_combined_charges_each_live_group_the_penalty_of_its_depth():
    """A unit's penalty is by depth: with some of its groups zero, the k-th lowest live group by saliency
    (ties by id) is charged what removing the (zeroed + k)-th group costs, whatever group it is."""
    _, _, params, _ = small_space()
    optimizer, _, _, layout = make_cric(params, replace(CRIC, loss_weight=2.0))
    rng = np.random.default_rng(5)
    optimizer.penalty = torch.as_tensor(rng.uniform(0, 1, layout.n_groups), dtype=torch.float64)
    saliency = torch.as_tensor(rng.integers(0, 3, layout.n_groups), dtype=torch.float64)  # with ties
    optimizer.zero = torch.as_tensor(rng.uniform(size=layout.n_groups) < 0.3)
    got = optimizer.combined(saliency).numpy()
    expected = saliency.numpy().copy()
    for _, groups in optimizer.trial_units():  # groups by id; slot i holds the (i+1)-th removal's cost
        live = [g for g in groups if not optimizer.zero[g]]
        for k, g in enumerate(sorted(live, key=lambda g: (saliency[g].item(), g))):
            expected[g] += 2.0 * optimizer.penalty[groups[len(groups) - len(live) + k]].item()
    np.testing.assert_allclose(got, expected)
    assert optimizer.zero.any() and (got != saliency.numpy()).any()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="trial levels"):
        HessoCricSettings(levels=(0.5, 1.5))
    with pytest.raises(ValueError, match="collapse bound"):
        HessoCricSettings(collapse=-1.0)
    with pytest.raises(ValueError, match="keeps must be >= 1"):
        HessoCricSettings(keeps=(2, 0))
    with pytest.raises(ValueError, match="fixed choice only"):
        HessoCricSettings(choice="progressive", max_cycles=3)
    with pytest.raises(ValueError, match="cycle_steps"):
        HessoCricSettings(cycle_steps=0)


# ---------------------------------------------------------------- through the training engine
@pytest.mark.slow
@pytest.mark.parametrize("choice", ["fixed", "progressive"])
def test_sparse_train_resumes_mid_cycle_to_the_uninterrupted_result(tmp_path, choice):
    """Stopped at step 6 (fixed: inside the first cycle, cache and all; progressive, the default: in the
    first pruning period, after the trials) and resumed, the run ends where the uninterrupted one does."""
    from .test_train import FAST, train_digits

    cycles = 3 if choice == "fixed" else 0  # cric at 4; fixed: cycles 4-7, 8-11, ..
    config = replace(FAST, optimizer="hesso-cric", steps=40, cric_cycle_steps=4, cric_cycles=cycles, cric_choice=choice)
    (tmp_path / "a").mkdir()
    full, _, full_result = train_digits(tmp_path / "a", config)

    def stop_at_6(record):
        if record["step"] == 6:
            raise KeyboardInterrupt

    (tmp_path / "b").mkdir()
    with pytest.raises(onnxprune.errors.UserError, match="interrupted at step 6"):
        train_digits(tmp_path / "b", replace(config, log_every=1), checkpoint_dir=tmp_path / "b" / "ckpt",
                     on_metrics=stop_at_6)
    with pytest.raises(onnxprune.errors.UserError, match="cric_loss_weight=1.0, this run has cric_loss_weight=2.0"):
        train_digits(tmp_path / "b", replace(config, cric_loss_weight=2.0), checkpoint_dir=tmp_path / "b" / "ckpt",
                     resume=True)
    resumed, _, result = train_digits(tmp_path / "b", config, checkpoint_dir=tmp_path / "b" / "ckpt", resume=True)
    for value in full.initializers:
        assert np.array_equal(resumed.initializer(value.name), full.initializer(value.name)), value.name
    assert result.cric == full_result.cric and full_result.cric["trials"]
    assert bool(full_result.cric["cycles"]) == (choice == "fixed")


def test_the_probe_leaves_gradients_and_statistics_as_they_were(tmp_path):
    """A probe between a step's backward and its update must not change what the update sees."""
    from onnxprune.train.artifacts import build_artifacts
    from onnxprune.train.engine import TrainingEngine
    from onnxprune.train.probe import loss_probe

    graph = onnxprune.load(ZOO / "digits_cnn.onnx")
    engine = TrainingEngine(build_artifacts(graph, tmp_path / "art", "cross-entropy"), threads=1)
    with np.load(ZOO / "digits.npz") as archive:
        feeds = [archive["input"][:16], archive["labels"][:16].astype(np.int64)]
        other = [archive["input"][16:32], archive["labels"][16:32].astype(np.int64)]
    loss = engine.step(feeds)
    grads = {k: v.clone() for k, v in engine.grads.items()}
    buffers = {k: v.copy() for k, v in engine.buffers().items()}
    probe = loss_probe(engine, [other])
    first = probe()
    assert math.isfinite(first) and first != loss and probe() == first
    for k, g in grads.items():
        assert torch.equal(engine.grads[k], g), k
    for k, b in buffers.items():
        assert np.array_equal(engine.buffers()[k], b), k


@pytest.mark.slow
def test_cric_keeps_an_indispensable_bottleneck_that_hesso_collapses(tmp_path):
    """The 4-wide bottleneck of tests/cric_models.py, weights scaled small: at 80 % HESSO narrows it and the
    model falls toward chance; HESSO-CRIC's trials find it indispensable and keep its live channels."""
    from onnxprune.app.run import run_model

    from .cric_models import bottleneck_mlp, digits_split

    train, test = digits_split()
    np.savez(tmp_path / "train.npz", **train)
    np.savez(tmp_path / "test.npz", **test)
    model = bottleneck_mlp(tmp_path / "b.onnx")
    found = {}
    for optimizer in ("hesso", "hesso-cric"):
        config = TrainConfig(optimizer=optimizer, target_sparsity=0.8, steps=200, batch_size=32, lr=0.005, threads=1)
        report = run_model(str(model), str(tmp_path / f"{optimizer}.onnx"), str(tmp_path / "train.npz"), config,
                           eval_data=str(tmp_path / "test.npz"), progress=False, latency=False, log=lambda s: None)
        found[optimizer] = (report["eval"]["compact"]["accuracy"], {w["family"]: w["after"] for w in report["widths"]},
                            report)
    (plain, plain_widths, _), (cric, cric_widths, report) = found["hesso"], found["hesso-cric"]
    bottleneck = next(name for name, width in cric_widths.items() if name.startswith("3."))
    assert plain_widths[bottleneck] == 1 and cric_widths[bottleneck] >= 3  # (one of the four is dead: ReLU)
    assert plain < 0.35 and cric > 0.75
    assert report["cric"]["rescued"].get(bottleneck)  # the report names what CRIC rescued


@pytest.mark.slow
def test_rescuing_the_bottleneck_does_not_collapse_the_layer_after_it(tmp_path):
    """Seed 6 of the bottleneck MLP: once the bottleneck was rescued, the quota went to the 64-wide layer
    after it, whose all-but-one trial segment was charged a flat slope, and the choice cut it to 4 channels
    (54 % accuracy); charged its whole rise per group, the steep tail is left alone."""
    from onnxprune.app.run import run_model

    from .cric_models import bottleneck_mlp, digits_split

    train, test = digits_split()
    np.savez(tmp_path / "train.npz", **train)
    np.savez(tmp_path / "test.npz", **test)
    model = bottleneck_mlp(tmp_path / "b.onnx", seed=6)
    config = TrainConfig(optimizer="hesso-cric", target_sparsity=0.8, steps=200, batch_size=32, lr=0.005, threads=1)
    report = run_model(str(model), str(tmp_path / "c.onnx"), str(tmp_path / "train.npz"), config,
                       eval_data=str(tmp_path / "test.npz"), progress=False, latency=False, log=lambda s: None)
    widths = {w["family"]: w["after"] for w in report["widths"]}
    bottleneck = next(name for name in widths if name.startswith("3."))
    assert widths[bottleneck] >= 3
    assert min(width for name, width in widths.items() if name != bottleneck) >= 8, widths
    assert report["eval"]["compact"]["accuracy"] > 0.75


def test_cli_run_with_hesso_cric_reports_its_cost_and_rescues(tmp_path, capsys):
    from onnxprune.train.optimizers import cric_caveat

    from .test_cli import run_cli
    from .test_train import DIGITS, digits_subset

    data = digits_subset(tmp_path)
    code, out, _ = run_cli(capsys, "run", DIGITS, "--data", data, "-o", tmp_path / "o.onnx", "--steps", "40",
                           "--batch-size", "32", "--lr", "0.02", "--threads", "1", "--optimizer", "hesso-cric",
                           "--cric-budget", "12", "--no-progress", "--no-latency")
    assert code == 0 and "hesso-cric" in out and "loss evaluations" in out
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert report["cric"]["evaluations"] <= 12 and report["cric"]["budget"] == 12
    assert report["cric"]["forward_batches"] == 2 * report["cric"]["evaluations"]
    assert "rescued" in report["cric"] and report["verify"]["ok"]
    assert report["cric"]["dead_loss"] > report["cric"]["reference_loss"]  # the dead trial ran: a scale
    assert report["cric"]["caveat"] == cric_caveat(report["cric"])  # the summary carries its caveat
    assert "CRIC" in (tmp_path / "o.report.html").read_text()


def test_the_summary_says_when_the_trials_had_no_scale_or_read_most_cuts_as_collapses():
    """The dead trial (every prunable group zeroed) is the unit of a rise. Where it gives no scale (no
    worse than the reference, or a loss that is not a number) or most trials rose past the bound (a
    reference close to it: a model that had learned little by the trials), the run says so in one line."""
    from onnxprune.app.run import cric_lines
    from onnxprune.train.optimizers import cric_caveat

    cric = {"evaluations": 5, "forward_batches": 10, "cycles": [], "cycle_steps": 0, "rescued_count": 0,
            "collapse": 2.0, "reference_loss": 0.5, "dead_loss": 2.3, "trials": [{"increase": 0.0}] * 3,
            "trials_past_bound": 1}
    assert cric_caveat(cric) == ""  # a scale, and most trials below the bound: nothing more to say
    assert cric_lines(cric) == ["hesso-cric 5 loss evaluations (10 batches); rescued 0 groups"]
    no_higher = cric_caveat({**cric, "reference_loss": 2.3, "dead_loss": 2.25})
    assert "every prunable group zeroed (2.25) is no higher than the reference (2.3)" in no_higher
    for dead in (float("nan"), float("inf")):
        assert "not a finite number" in cric_caveat({**cric, "dead_loss": dead})
    most = cric_caveat({**cric, "reference_loss": 2.28, "trials_past_bound": 2})
    assert most.startswith("2 of 3 trials rose past the collapse bound (2)") and "learned little" in most
    assert cric_caveat({**cric, "trials": [], "dead_loss": float("nan")}) == ""  # nothing was tried
    lines = cric_lines({**cric, "caveat": no_higher})
    assert len(lines) == 2 and lines[1] == f"hesso-cric {no_higher}"


def test_cli_refuses_bad_cric_options_in_one_line(tmp_path, capsys):
    from .test_cli import run_cli
    from .test_train import DIGITS

    code, _, err = run_cli(capsys, "run", DIGITS, "--synthetic", "8", "-o", tmp_path / "o.onnx", "--cric-levels", "0")
    assert code == 2 and "--cric-levels must be >= 1" in err and "Traceback" not in err
    for bad, said in ((["--cric-collapse", "-1"], "--cric-collapse must be >= 0"),
                      (["--cric-cycles", "3"], "--cric-cycles needs --cric-choice fixed")):
        code, _, err = run_cli(capsys, "run", DIGITS, "--synthetic", "8", "-o", tmp_path / "o.onnx", "--optimizer",
                               "hesso-cric", "--steps", "4", "--batch-size", "2", *bad)
        assert code == 2 and said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_hesso_cric_erases_regions_through_the_pass():
    """Regions are trial units of their own; the erased ones stay admissible and compact stays exact."""
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    erasing = am.get("erase-space")
    pipeline = ("sparse-train{synthetic=64,steps=30,batch-size=8,lr=0.01,threads=1,target-sparsity=0.3,"
                "target-erase=0.4,optimizer=hesso-cric,cric-cycle-steps=2},compact,cleanup,verify")
    PassManager(pipeline).run(graph, am)
    selection, cric = am.fact(Compaction).selection, am.fact(TrainResult).cric
    assert len(selection.erased) == 2 and erasing.admissible(selection.erased) and am.fact(VerifyReport).ok
    assert any(t["unit"].startswith("region") and t["level"] == 1.0 for t in cric["trials"])

"""Group-sparse optimizers against slow per-group references, torch.optim, and their own promises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import onnxprune
from onnxprune.optim import (
    CRITERIA,
    BaseSettings,
    Dhspg,
    DhspgSettings,
    GroupSegments,
    Hesso,
    HessoSettings,
    criterion,
    group_layout,
    importance,
)
from onnxprune.optim.scores import GroupStats
from onnxprune.passmanager import AnalysisManager

from .builders import Builder


def small_space():
    """conv(3→6)+BN → relu → conv(6→8) → relu → conv(8→4): two prunable families (6 and 8 groups)."""
    b = Builder(seed=3)
    x = b.op("Relu", [b.bn(b.conv("x", 3, 6, k=3), 6)])
    x = b.op("Relu", [b.conv(x, 6, 8)])
    out = b.conv(x, 8, 4)
    graph = onnxprune.load(b.model({"x": [2, 3, 5, 5]}, [out]))
    space = AnalysisManager(graph).get("prune-space")
    params = {v.name: torch.tensor(np.array(v.tensor.array), dtype=torch.float64) for v in graph.initializers
              if v.tensor.data_type == 1 and v.name not in running_stats(graph)}
    return graph, space, params, running_stats(graph)


def running_stats(graph):
    return {graph.inputs_of(op)[i].name for op in graph.ops() if op.op_type == "BatchNormalization" for i in (3, 4)}


def layout_of(space, params, buffers):
    return group_layout(space, {k: tuple(v.shape) for k, v in params.items()}, frozenset(buffers))


def random_grads(params, rng):
    return {k: torch.tensor(rng.standard_normal(tuple(v.shape))) for k, v in params.items()}


def drive(optimizer, grads, grads_seq, lr):
    """One optimizer step per entry of `grads_seq`, its gradients copied into `grads` first."""
    for step_grads in grads_seq:
        for k, g in step_grads.items():
            grads[k].copy_(g)
        optimizer.step(lr)


# ---------------------------------------------------------------- slow references (a loop over groups)
def group_slices(layout, group):
    """[(tensor, axis, index)] of one group."""
    return [(e.tensor, e.axis, int(i)) for e in layout.axes for i in np.flatnonzero(e.group_of_index == group)]


def group_vector(tensors, layout, group):
    return np.concatenate([np.take(tensors[t].numpy(), i, axis=a).ravel() for t, a, i in group_slices(layout, group)])


def set_group(tensors, layout, group, scale):
    for t, a, i in group_slices(layout, group):
        index = [slice(None)] * tensors[t].dim()
        index[a] = i
        tensors[t][tuple(index)] *= scale


def reference_scores(params, grads, layout, weights):
    per = {name: [] for name in CRITERIA}
    for g in range(layout.n_groups):
        x, d = group_vector(params, layout, g), group_vector(grads, layout, g)
        nx, ng = np.linalg.norm(x), np.linalg.norm(d)
        per["magnitude"].append(nx)
        per["avg_magnitude"].append(nx / x.size)
        per["cosine_similarity"].append(1 + (x @ d) / (nx * ng) if nx * ng > 0 else 1.0)
        per["taylor_first_order"].append(abs(x @ d))
        per["taylor_second_order"].append(0.5 * (x @ d) ** 2)
    total = np.zeros(layout.n_groups)
    for name, w in weights.items():
        v = np.array(per[name])
        total += w * (v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v)
    return total, per


# ---------------------------------------------------------------- tests
def test_layout_covers_producers_and_counts_elements():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    assert sorted(space.family(f).size for f in layout.families) == [6, 8]
    assert len(layout_of(space, params, ()).skipped) == 1  # BN's family, if its running stats counted
    counts = layout.element_counts({k: tuple(v.shape) for k, v in params.items()})
    first = [g for g in range(layout.n_groups) if space.family(int(layout.family_of_group[g])).size == 6]
    assert set(counts[first]) == {27 + 1 + 2}  # conv weight and bias, BN scale and shift
    seg = GroupSegments(layout, {k: tuple(v.shape) for k, v in params.items()})
    assert np.array_equal(seg.counts.numpy(), counts)


def test_importance_criteria_match_per_group_loop():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    grads = random_grads(params, np.random.default_rng(0))
    seg = GroupSegments(layout, {k: tuple(v.shape) for k, v in params.items()})
    xx, xg, gg = seg.sum_products([(params, params), (params, grads), (grads, grads)])
    stats = GroupStats(xx, xg, gg, seg.counts)
    weights = {"magnitude": 0.1, "avg_magnitude": 0.2, "cosine_similarity": 0.3, "taylor_first_order": 0.15,
               "taylor_second_order": 0.25}
    expected, per = reference_scores(params, grads, layout, weights)
    for name in CRITERIA:
        np.testing.assert_allclose(criterion(stats, name).numpy(), per[name], rtol=1e-12)
    np.testing.assert_allclose(importance(stats, weights).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("settings, make", [
    (BaseSettings("sgd", momentum=0.9, weight_decay=1e-3), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (BaseSettings("sgd", momentum=0.9, nesterov=True), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    (BaseSettings("sgd", momentum=0.0), lambda p: torch.optim.SGD(p, lr=0.1)),
    (BaseSettings("adam", weight_decay=1e-2), lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=1e-2)),
    (BaseSettings("adamw", weight_decay=1e-2), lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=1e-2)),
])
def test_without_pruning_the_step_is_torch_optim(settings, make):
    _, space, params, stats = small_space()
    ours = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    theirs = {k: v.clone().requires_grad_() for k, v in params.items()}
    reference = make(list(theirs.values()))
    optimizer = Hesso(ours, grads, layout_of(space, params, stats), settings,
                      HessoSettings(target_group_sparsity=0.0, start_pruning_step=10**6))
    rng = np.random.default_rng(1)
    for _ in range(5):
        for k, g in random_grads(params, rng).items():
            grads[k].copy_(g)
            theirs[k].grad = g.clone()
        optimizer.step(0.1)
        reference.step()
    for k in params:
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].detach().numpy(), rtol=1e-10, atol=1e-12)


def reference_hesso(params, grads_seq, layout, space, settings, lr):
    """HESSO with a Python loop over groups and plain SGD (no momentum)."""
    x = {k: v.clone() for k, v in params.items()}
    T = settings.pruning_steps // settings.pruning_periods
    K = int(math.floor(settings.target_group_sparsity * layout.n_groups + 1e-9))
    pruned, active = set(), []
    for n, grads in enumerate(grads_seq):
        period, t = divmod(n - settings.start_pruning_step, T) if n >= settings.start_pruning_step else (-1, 0)
        pruning = 0 <= period < settings.pruning_periods
        if pruning and t == 0:
            pruned |= set(active)
            scores, _ = reference_scores(x, grads, layout, settings.criteria)
            due = K if period == settings.pruning_periods - 1 else (K // settings.pruning_periods) * (period + 1)
            order = [g for g in np.lexsort((np.arange(len(scores)), scores)) if g not in pruned]
            active = [int(g) for g in order[:due - len(pruned)]]
        for k in x:
            x[k] -= lr * grads[k]
        for g in range(layout.n_groups):
            if pruning and g in active:
                set_group(x, layout, g, (T - t - 1) / (T - t))
            if g in pruned:
                set_group(x, layout, g, 0.0)
        if pruning and t == T - 1:
            pruned |= set(active)
            active = []
    return x


def test_hesso_matches_slow_reference_and_hits_exactly_k_zero_groups():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    settings = HessoSettings(target_group_sparsity=0.5, start_pruning_step=2, pruning_steps=6, pruning_periods=3,
                             per_family=False)
    rng = np.random.default_rng(2)
    grads_seq = [random_grads(params, rng) for _ in range(12)]
    expected = reference_hesso(params, grads_seq, layout, space, settings, lr=0.05)
    ours = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Hesso(ours, grads, layout, BaseSettings("sgd", momentum=0.0), settings)
    drive(optimizer, grads, grads_seq, 0.05)
    for k in params:
        np.testing.assert_allclose(ours[k].numpy(), expected[k].numpy(), rtol=1e-12, atol=0)
    zero = optimizer.zero_groups()
    assert zero.sum() == 7 == int(14 * 0.5)  # exactly K groups, exactly zero
    assert optimizer.group_sparsity() == pytest.approx(0.5)
    selection = layout.selection(zero)
    selection.check(space)


def test_hesso_group_divisible_keeps_multiples():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Hesso(params, grads, layout, BaseSettings("sgd", momentum=0.0),
                      HessoSettings(target_group_sparsity=0.6, pruning_steps=2, pruning_periods=1, group_divisible=4))
    rng = np.random.default_rng(3)
    drive(optimizer, grads, [random_grads(params, rng) for _ in range(3)], 0.01)
    pruned = layout.selection(optimizer.zero_groups()).pruned
    for family_id, groups in pruned.items():
        assert (space.family(family_id).size - len(groups)) % 4 == 0
    # K = 8 of 14; keeping multiples of 4 (and at least 4) allows at most 2 + 4: blocks fill up to that
    assert sum(len(g) for g in pruned.values()) == 6


def reference_dhspg(params, grads_seq, layout, settings, lr):
    x = {k: v.clone() for k, v in params.items()}
    K = int(math.floor(settings.target_group_sparsity * layout.n_groups + 1e-9))
    penalized, zero = set(), set()
    for n, grads in enumerate(grads_seq):
        if n == settings.partition_step:
            cos, inv = [], []
            for g in range(layout.n_groups):
                xv, gv = group_vector(x, layout, g), group_vector(grads, layout, g)
                cos.append((xv @ gv) / (np.linalg.norm(xv) * np.linalg.norm(gv)))
                inv.append(1 / (np.linalg.norm(xv) / xv.size))
            cos, inv = np.array(cos), np.array(inv)
            score = 0.5 * cos / np.linalg.norm(cos) + 0.5 * inv / np.linalg.norm(inv)
            count = int(round(K * (1 + settings.tolerance)))
            penalized = {int(g) for g in np.lexsort((np.arange(len(score)), -score))[:count]}
        factors = {}
        if n >= settings.partition_step and penalized - zero:
            for g in sorted(penalized - zero):
                xv, gv = group_vector(x, layout, g), group_vector(grads, layout, g)
                norm = np.linalg.norm(xv)
                lam = settings.lmbda
                if xv @ gv < 0:
                    lower, upper = -(xv @ gv) / norm, -(gv @ gv) * norm / (xv @ gv)
                    lam = min(max(settings.lmbda_amplify * lower, settings.lmbda), settings.hat_lmbda_coeff * settings.lmbda)
                    if lam >= upper:
                        lam = (lower + upper) / 2
                new = xv - lr * gv - lr * lam * xv / norm
                factors[g] = 1 - lr * lam / norm
                if n >= settings.partition_step + settings.half_space_project_steps and new @ xv < settings.epsilon * (xv @ xv):
                    zero.add(g)
                if settings.finish_step is not None and n >= settings.finish_step:
                    zero.add(g)
        for g, f in factors.items():
            set_group(x, layout, g, f)
        for k in x:
            x[k] -= lr * grads[k]
        for g in zero:
            set_group(x, layout, g, 0.0)
    return x, zero


@pytest.mark.parametrize("finish_step", [None, 6])
def test_dhspg_matches_slow_reference(finish_step):
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    settings = DhspgSettings(target_group_sparsity=0.5, tolerance=0.1, lmbda=0.5, epsilon=0.95, partition_step=1,
                             half_space_project_steps=2, finish_step=finish_step)
    rng = np.random.default_rng(4)
    grads_seq = [random_grads(params, rng) for _ in range(15)]
    expected, zero = reference_dhspg(params, grads_seq, layout, settings, lr=0.2)
    ours = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Dhspg(ours, grads, layout, BaseSettings("sgd", momentum=0.0), settings)
    drive(optimizer, grads, grads_seq, 0.2)
    for k in params:
        np.testing.assert_allclose(ours[k].numpy(), expected[k].numpy(), rtol=1e-10, atol=1e-12)
    assert zero, "the reference projected nothing: the test would not exercise the projection"
    assert set(np.flatnonzero(optimizer.zero_groups())) == zero
    if finish_step is not None:  # the deadline leaves exactly G_p zero
        assert zero == set(np.flatnonzero(optimizer.penalized.numpy()))


def test_dhspg_finish_step_reaches_the_target_where_the_penalty_alone_does_not():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    rng = np.random.default_rng(6)
    grads_seq = [random_grads(params, rng) for _ in range(10)]
    zeros = {}
    for finish_step in (None, 5):
        x = {k: v.clone() for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        settings = DhspgSettings(target_group_sparsity=0.5, lmbda=1e-3, partition_step=1, finish_step=finish_step)
        optimizer = Dhspg(x, grads, layout, BaseSettings("sgd", momentum=0.0), settings)
        drive(optimizer, grads, grads_seq, 0.01)
        zeros[finish_step] = int(optimizer.zero_groups().sum())
        for g in np.flatnonzero(optimizer.zero_groups()):
            assert not group_vector(x, layout, int(g)).any()
    target = int(math.floor(0.5 * layout.n_groups))
    assert zeros[None] < target == zeros[5]


@pytest.mark.parametrize("make", [
    lambda p, g, layout: Hesso(p, g, layout, BaseSettings("adamw", weight_decay=1e-2),
                                      HessoSettings(target_group_sparsity=0.4, start_pruning_step=2, pruning_steps=6,
                                                    pruning_periods=2)),
    lambda p, g, layout: Dhspg(p, g, layout, BaseSettings("sgd", momentum=0.9),
                                      DhspgSettings(target_group_sparsity=0.4, lmbda=0.5, partition_step=2)),
])
def test_resume_from_state_dict_equals_uninterrupted(make):
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    rng = np.random.default_rng(5)
    grads_seq = [random_grads(params, rng) for _ in range(12)]

    def run(steps, start=None):
        x = {k: v.clone() for k, v in (start[0] if start else params).items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        optimizer = make(x, grads, layout)
        if start:
            optimizer.load_state_dict(start[1])
        drive(optimizer, grads, grads_seq[optimizer.steps:steps], 0.05)
        return x, optimizer.state_dict()

    full, _ = run(12)
    half = run(5)
    resumed, _ = run(12, start=half)
    for k in params:
        assert torch.equal(full[k], resumed[k])


def test_hesso_per_family_scores_spread_pruning_over_families():
    """Scale one family's weights up 100x: global scores would prune only the other family; scores
    relative to the family mean prune both."""
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    big = next(e.tensor for e in layout.axes if params[e.tensor].dim() == 4 and params[e.tensor].shape[0] == 8)
    params[big] *= 100
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    for per_family, expected in ((False, 1), (True, 2)):
        x = {k: v.clone() for k, v in params.items()}
        optimizer = Hesso(x, grads, layout, BaseSettings("sgd", momentum=0.0),
                          HessoSettings(target_group_sparsity=0.4, pruning_steps=1, per_family=per_family))
        optimizer.step(0.0)
        assert len(layout.selection(optimizer.zero_groups()).pruned) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("make", [
    lambda p, g, layout: Hesso(p, g, layout, BaseSettings("adam"),
                                      HessoSettings(target_group_sparsity=0.5, start_pruning_step=1, pruning_steps=4,
                                                    pruning_periods=2)),
    lambda p, g, layout: Dhspg(p, g, layout, BaseSettings("sgd", momentum=0.9),
                                      DhspgSettings(target_group_sparsity=0.5, lmbda=0.5, partition_step=1)),
])
def test_cuda_step_matches_cpu(make):
    """The optimizer step on CUDA tensors computes what it computes on CPU."""
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    rng = np.random.default_rng(6)
    grads_seq = [random_grads(params, rng) for _ in range(8)]
    results = {}
    for device in ("cpu", "cuda"):
        x = {k: v.clone().to(device) for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in x.items()}
        optimizer = make(x, grads, layout)
        drive(optimizer, grads, grads_seq, 0.05)
        results[device] = ({k: v.cpu() for k, v in x.items()}, optimizer.zero_groups())
    for k in params:
        np.testing.assert_allclose(results["cuda"][0][k].numpy(), results["cpu"][0][k].numpy(), rtol=1e-9, atol=1e-12)
    assert np.array_equal(results["cuda"][1], results["cpu"][1])


def test_choose_gives_back_broken_blocks_and_fills_with_whole_ones():
    _, space, params, stats = small_space()
    layout = layout_of(space, params, stats)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Hesso(params, grads, layout)
    small = layout.family_of_group == layout.family_of_group[0]
    scores = torch.tensor(np.where(small, 1.0, 2.0) + np.arange(layout.n_groups) * 1e-3)
    scores[np.flatnonzero(small)[3:]] = 10.0  # the small family offers three cheap groups, then expensive ones
    chosen = optimizer.choose(scores, 7, torch.zeros(layout.n_groups, dtype=torch.bool), divisible=2).numpy()
    per_family = {f: int(chosen[layout.family_of_group == f].sum()) for f in layout.families}
    sizes = {f: space.family(f).size for f in layout.families}
    assert all((sizes[f] - n) % 2 == 0 for f, n in per_family.items())
    # greedy: 3 + 4, the small family's odd third pick goes back (6), a whole block of 2 fills (8)
    assert sum(per_family.values()) == 8


# ---------------------------------------------------------------- the fused step against the step as it was
def random_layout(seed: int):
    """A PruningSpace and ErasingSpace written by hand over random float32 tensors: groups on leading,
    middle and trailing axes, heads of several indices, indices of no group, a tensor with no group, and
    erasable regions whose groups overlap channel groups (a tensor with two views)."""
    from onnxprune.space import PRODUCER, ErasingSpace, Family, Member, PruningSpace, Region

    rng = np.random.default_rng(seed)
    shapes = {"w0": (24, 10), "b0": (24,), "s0": (24,), "w1": (40, 16), "w2": (3, 20, 6), "w3": (30, 700),
              "w4": (8, 4, 3), "r0": (5, 5), "u": (7, 3)}
    params = {k: torch.tensor(rng.standard_normal(s), dtype=torch.float32) for k, s in shapes.items()}

    def table(axis_size, groups, per_group=1):
        return rng.permutation(axis_size)[:groups * per_group].reshape(groups, per_group)

    specs = [("c0", 24, [("w0", 0, 24, 1), ("b0", 0, 24, 1), ("s0", 0, 24, 1)]),
             ("heads", 10, [("w1", 0, 40, 4)]),
             ("mid", 16, [("w2", 1, 20, 1)]),  # 4 of the 20 indices belong to no group
             ("wide", 30, [("w3", 0, 30, 1)]),
             ("last", 4, [("w4", 1, 4, 1)])]
    families = tuple(Family(i, name, size, "head" if name == "heads" else "channel",
                            tuple(Member(t, a, table(n, size, k), PRODUCER) for t, a, n, k in members))
                     for i, (name, size, members) in enumerate(specs))
    regions = (Region(0, "e0", "x0", "add0", 1, ("op0",), ("r0",), group=("r0",)),
               Region(1, "e1", "x1", "add1", 1, ("op1",), ("w1",), group=("w1",)))
    space, erasing = PruningSpace(families), ErasingSpace(regions)
    layout = group_layout(space, shapes, erasing=erasing)
    return space, erasing, layout, params


FUSED_CASES = {
    "hesso-momentum": lambda: (BaseSettings("sgd", momentum=0.9), HessoSettings(
        target_group_sparsity=0.5, start_pruning_step=2, pruning_steps=6, pruning_periods=3, target_erase=0.5)),
    "hesso-nesterov-decay": lambda: (BaseSettings("sgd", momentum=0.9, nesterov=True, weight_decay=1e-2), HessoSettings(
        target_group_sparsity=0.4, start_pruning_step=1, pruning_steps=8, pruning_periods=2, group_divisible=2)),
    "hesso-plain-sgd": lambda: (BaseSettings("sgd", momentum=0.0), HessoSettings(
        target_group_sparsity=0.3, start_pruning_step=0, pruning_steps=4, pruning_periods=1)),
    "hesso-adamw": lambda: (BaseSettings("adamw", weight_decay=1e-2), HessoSettings(
        target_group_sparsity=0.5, start_pruning_step=3, pruning_steps=6, pruning_periods=2, target_erase=1.0)),
    "dhspg-momentum": lambda: (BaseSettings("sgd", momentum=0.9), DhspgSettings(
        target_group_sparsity=0.5, tolerance=0.1, lmbda=0.5, epsilon=0.95, partition_step=1, half_space_project_steps=2,
        target_erase=0.5)),
    "dhspg-finish": lambda: (BaseSettings("sgd", momentum=0.9, weight_decay=1e-3), DhspgSettings(
        target_group_sparsity=0.5, lmbda=0.1, partition_step=2, half_space_project_steps=1, finish_step=8)),
}


@pytest.mark.parametrize("chunk", [None, 64])
@pytest.mark.parametrize("case", sorted(FUSED_CASES))
def test_fused_step_matches_the_step_as_it_was(case, chunk, monkeypatch):
    """Fourteen steps through the zeroing schedule on a random layout (float32): parameters within 1e-6 of
    the unfused reference, the same groups zero, exactly zero. chunk=64 sends every product through the
    chunked CPU sums (rows of a chunk, a row longer than a chunk, chunks along a leading axis)."""
    from onnxprune.optim import segments

    from .optim_reference import ReferenceDhspg, ReferenceHesso

    if chunk is not None:
        monkeypatch.setattr(segments, "CHUNK", chunk)
    space, erasing, layout, params = random_layout(seed=sorted(FUSED_CASES).index(case))
    base, settings = FUSED_CASES[case]()
    fused_class, reference_class = (Hesso, ReferenceHesso) if case.startswith("hesso") else (Dhspg, ReferenceDhspg)
    rng = np.random.default_rng(7)
    grads_seq = [{k: torch.tensor(rng.standard_normal(tuple(v.shape)), dtype=torch.float32) for k, v in params.items()}
                 for _ in range(14)]
    results = []
    for make in (fused_class, reference_class):
        x = {k: v.clone() for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        optimizer = make(x, grads, layout, base, settings)
        masks = []
        for step_grads in grads_seq:
            drive(optimizer, grads, [step_grads], 0.05)
            masks.append(optimizer.zero.clone())
        results.append((x, masks, optimizer.zero_groups()))
    (fused, fused_masks, fused_zero), (reference, reference_masks, reference_zero) = results
    for k in params:
        np.testing.assert_allclose(fused[k].numpy(), reference[k].numpy(), rtol=1e-6, atol=1e-6, err_msg=k)
    for step, (a, b) in enumerate(zip(fused_masks, reference_masks)):
        assert torch.equal(a, b), f"step {step}: zero groups differ"
    assert fused_zero.any(), "nothing was zeroed: the test would not exercise the schedule"
    assert np.array_equal(fused_zero, reference_zero)
    # the groups the optimizer zeroed are exactly zero (others may be too: a region's group covers heads of w1)
    assert fused_zero[fused_masks[-1].numpy()].all()


@pytest.mark.parametrize("chunk", [None, 64, 7])
def test_group_sums_match_float64_sums_on_every_path(chunk, monkeypatch):
    """Per-group sums of squares and of products (whole views, chunks of rows, rows longer than a chunk,
    chunks along a leading axis) against float64 sums of the float32 products, to float32 accuracy."""
    from onnxprune.optim import segments

    from .optim_reference import sum_products

    if chunk is not None:
        monkeypatch.setattr(segments, "CHUNK", chunk)
    _, _, layout, params = random_layout(seed=4)
    rng = np.random.default_rng(8)
    other = {k: torch.tensor(rng.standard_normal(tuple(v.shape)), dtype=torch.float32) for k, v in params.items()}
    seg = GroupSegments(layout, {k: tuple(v.shape) for k, v in params.items()})
    pairs = [(params, params), (params, other), (other, other)]
    ours, expected = seg.sum_products(pairs), sum_products(seg, pairs)
    scale = torch.sqrt(expected[0] * expected[2])  # |<x, y>| <= ||x|| ||y||
    for k in range(3):
        np.testing.assert_allclose(ours[k].numpy(), expected[k].numpy(), rtol=0, atol=1e-6 * float(scale.max()))
        assert ((ours[k] - expected[k]).abs() <= 1e-5 * scale).all()


def test_zero_groups_counts_values_whose_squares_underflow():
    """A group of tiny values (1e-30: its squares underflow in float32) is not zero: compact would remove
    weights that still compute something."""
    space, _, layout, params = random_layout(seed=0)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Hesso(params, grads, layout)
    group = 3
    for entry in layout.axes:
        for i in np.flatnonzero(entry.group_of_index == group):
            params[entry.tensor].select(entry.axis, int(i)).fill_(1e-30)
    assert not optimizer.zero_groups()[group]
    for entry in layout.axes:
        for i in np.flatnonzero(entry.group_of_index == group):
            params[entry.tensor].select(entry.axis, int(i)).zero_()
    assert optimizer.zero_groups()[group]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("case", ["hesso-momentum", "dhspg-momentum"])
def test_cuda_steps_do_not_wait_for_the_device(case):
    """Between the host's decisions (a period's start, the partition), a step on CUDA never synchronises:
    torch's sync debug mode turns any read-back into an error."""
    space, erasing, layout, params = random_layout(seed=1)
    base, settings = FUSED_CASES[case]()
    x = {k: v.cuda() for k, v in params.items()}
    grads = {k: torch.randn_like(v) for k, v in x.items()}
    optimizer = (Hesso if case.startswith("hesso") else Dhspg)(x, grads, layout, base, settings)
    decisions = {settings.start_pruning_step + i * (settings.pruning_steps // settings.pruning_periods)
                 for i in range(settings.pruning_periods)} if case.startswith("hesso") else {settings.partition_step}
    for n in range(12):
        if n in decisions:
            optimizer.step(0.05)
            continue
        torch.cuda.set_sync_debug_mode("error")
        try:
            optimizer.step(0.05)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert optimizer.zero_groups().any()

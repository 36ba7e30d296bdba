"""The width search (`onnxprune.width_search`, `select rank=widths`): width vectors within a point of
the target, the fastest the estimate finds, each family's least important groups out; and `prune`
adding its candidates only where neither ranking meets the latency bar. Timings come from conftest's
fake table (an op's multiply-adds, dearer off multiples of 8): nothing here times this machine."""

from __future__ import annotations

import itertools

import pytest
from onnxprune.passes.cost import SelectionCost
from onnxprune.passes.select import SelectOptions, select_groups

import onnxprune
from onnxprune import runtime
from onnxprune.passmanager import REGISTRY, AnalysisManager, PassManager
from onnxprune.width_search import WidthEstimate, search_widths
from onnxprune.widths import WidthTable

from .conftest import ZOO
from .test_cli import run_cli
from .test_latency_target import _fake_times


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A timing table of this test's own: other tests read the session's table as a fresh one."""
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path / "cache"))


# three families of 16, 32 and 64 groups in a chain: each pair of neighbours multiplies (a Conv's
# input and output channels), the first also reads a fixed input of 3
SIZES = {0: 16, 1: 32, 2: 64}


def chain_flops(kept: dict[int, int]) -> float:
    return 3 * kept[0] + kept[0] * kept[1] + kept[1] * kept[2]


def padded_ms(kept: dict[int, int]) -> float:
    """A step-function time: channels padded up to 16, as a blocked layout does."""
    pad = {f: -(-k // 16) * 16 for f, k in kept.items()}
    return 3 * pad[0] + pad[0] * pad[1] + pad[1] * pad[2]


def brute_force(steps: dict[int, int], target: float, tolerance: float) -> float:
    """The smallest estimate of every width vector within the tolerance of the target."""
    total = chain_flops(SIZES)
    levels = [range(steps[f], SIZES[f] + 1, steps[f]) for f in sorted(SIZES)]
    best = min(padded_ms(dict(zip(sorted(SIZES), k))) for k in itertools.product(*levels)
               if abs(total - chain_flops(dict(zip(sorted(SIZES), k))) - target) <= tolerance)
    return best


def test_the_search_lands_within_the_tolerance_at_the_fastest_estimate():
    steps = dict.fromkeys(SIZES, 8)
    caps = {f: s - 1 for f, s in SIZES.items()}
    total = chain_flops(SIZES)
    target, tolerance = 0.5 * total, 0.01 * total
    kept = search_widths(SIZES, steps, caps, lambda k: total - chain_flops(k), padded_ms, target, tolerance)
    assert kept is not None and all(k % 8 == 0 and 8 <= k <= SIZES[f] for f, k in kept.items())
    assert abs(total - chain_flops(kept) - target) <= tolerance
    assert padded_ms(kept) == brute_force(steps, target, tolerance)


def test_no_width_vector_in_reach_is_none():
    steps = dict.fromkeys(SIZES, 16)
    caps = dict.fromkeys(SIZES, 0)  # nothing may go
    total = chain_flops(SIZES)
    assert search_widths(SIZES, steps, caps, lambda k: total - chain_flops(k), padded_ms, 0.5 * total,
                         0.01 * total) is None


def test_the_estimate_times_each_op_at_its_exact_widths():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    estimate = WidthEstimate(graph, am.get("shapes"), space, WidthTable(1))
    full = estimate.ms({})
    assert full == pytest.approx(estimate.ms({f.id: f.size for f in space.prunable}))
    # the stem's family feeds and leaves several Convs: narrowing it narrows exactly those
    stem = next(f for f in space.prunable if f.name.startswith("stem"))
    touching = [op for op, (_, i), (_, o) in estimate.ops if stem.id in {f for f, _ in i + o}]
    assert len(touching) >= 3
    assert estimate.ms({stem.id: 8}) < full
    probe = touching[0].at(None, 8)
    assert probe.w[0] == 8 and touching[0].probe(1.0, 1) == touching[0].at(None, None)


@pytest.mark.parametrize("name", ["densenet.onnx", "inceptionish.onnx", "resnet.onnx"])
def test_an_axis_several_families_share_keeps_the_sum_of_their_widths(name):
    """A Conv reading a Concat: its input channels are the kept channels of every family there (the
    estimate at full width is the model's own; one family narrower narrows exactly its share)."""
    graph = onnxprune.load(ZOO / name)
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    estimate = WidthEstimate(graph, am.get("shapes"), space, WidthTable(1))
    full = {f.id: f.size for f in space.prunable if f.size > 1}
    assert [op.at(*(None, None)) for op, _, _ in estimate.ops] == [op.probe(1.0, 1) for op, _, _ in estimate.ops]
    assert estimate.ms(full) == pytest.approx(estimate.ms({}))
    shared = [(index, op, inputs) for index, (op, inputs, _) in enumerate(estimate.ops) if len(inputs[1]) > 1]
    assert bool(shared) == (name != "resnet.onnx")
    for index, op, (width, families) in shared:
        family, per_group = families[0]
        assert width == op.channels[0] and per_group == 1.0
        narrower = {**full, family: full[family] - 2}
        assert estimate.probes(narrower)[index].x[1] == width - 2  # its share goes, the other families' stays


def test_select_by_widths_is_within_a_point_of_the_target():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space, cost = am.get("prune-space"), am.get("cost")
    options = SelectOptions(ratio=0.5, by="flops", round_to=8, round_small=True, rank="widths")
    exact = SelectionCost(graph, am.get("shapes"), cost, space)
    estimate = WidthEstimate(graph, am.get("shapes"), space, WidthTable(1))
    selection, outcome = select_groups(graph, space, cost, options, exact, widths=estimate)
    assert abs(outcome.removed / outcome.total - 0.5) <= 0.01
    for family_id, groups in selection.pruned.items():  # each family's least important groups, a multiple of 8 kept
        family = space.family(family_id)
        assert (family.size - len(groups)) % 8 == 0 or family.size < 16
    # the exact cost is the compact model's
    am.provide(selection)
    PassManager([REGISTRY.get("compact")(), REGISTRY.get("cleanup")()]).run(graph, am)
    assert AnalysisManager(graph).get("cost").flops == pytest.approx(outcome.total - outcome.removed)


def test_prune_rank_widths_verifies(capsys, tmp_path):
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "w.onnx", "--ratio", "0.5",
                                "--by", "flops", "--rank", "widths", "--round-to", "8", "--no-report", "--no-latency")
    # verify compares the compact model with the masked original (a difference is exit 1)
    assert status == 0 and "verify     compact vs masked" in text, err + text
    reached = float(text.split("target     50.0% of the flops, reached ")[1].split("%")[0])
    assert abs(reached - 50.0) <= 1.0, text


@pytest.mark.parametrize("extra, said", [(["--scope", "local"], "rank=widths chooses every family's width itself"),
                                         (["--round-to", "16", "--max-family-ratio", "0.01"], "found no widths")])
def test_rank_widths_refusals_are_one_line(capsys, tmp_path, extra, said):
    status, _, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "w.onnx", "--ratio", "0.5",
                                "--by", "flops", "--rank", "widths", "--no-report", "--no-latency", *extra)
    assert status == 2 and said in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("widths_ms, chosen", [(1.0, "widths"), (9.9, "importance")])
def test_default_prune_searches_widths_only_when_the_rankings_miss_the_bar(capsys, tmp_path, monkeypatch,
                                                                           widths_ms, chosen):
    # both rankings cut 5% of the time for 50% of the FLOPs: the width search adds its candidates, and
    # the fastest of all is kept
    times = {"original": 10.0, "compact": 9.5, "importance": 9.5, "latency": 9.6,
             **{f"widths {m}": widths_ms for m in (16, 8, 4)}}
    monkeypatch.setattr(runtime, "measure_latency", _fake_times(times))
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report")
    assert status == 0, err
    assert "so widths were searched" in text, text
    assert f"rank       {chosen}" in text, text
    # where a ranking keeps up, nothing is searched
    times.update(importance=4.0)
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "b.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report")
    assert status == 0 and "widths were searched" not in text and "rank       importance" in text, text


def test_rank_widths_with_auto_rounding_tries_the_finer_multiples(capsys, tmp_path):
    """An MLP whose families are too coarse at 16 for 30 % of the FLOPs: --rank widths moves on to the
    next multiple instead of failing there."""
    status, text, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "m.onnx", "--ratio", "0.3",
                                "--by", "flops", "--rank", "widths", "--no-report", "--no-latency")
    assert status == 0, err
    line = next(line for line in text.splitlines() if line.startswith("round-to"))
    assert "finds no widths" in line, line
    reached = float(text.split("target     30.0% of the flops, reached ")[1].split("%")[0])
    assert abs(reached - 30.0) <= 1.0, text


def test_no_width_search_on_a_model_too_slow_to_time_its_candidates(capsys, tmp_path, monkeypatch):
    from onnxprune.app import widths_choice

    times = {"original": 10.0, "compact": 9.5, "importance": 9.5, "latency": 9.6}
    monkeypatch.setattr(runtime, "measure_latency", _fake_times(times))
    monkeypatch.setattr(widths_choice, "WIDTHS_MAX_MS", 100.0)  # the original's batch 32 takes 320 ms here
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report")
    assert status == 0, err
    assert "too slow to time the width search's candidates (over 100 ms)" in text and "widths were searched" not in text

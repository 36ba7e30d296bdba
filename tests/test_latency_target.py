"""`prune --by latency` and `--target-latency MS` (HALP's latency lookup on the width table): the
estimate fits each heavy op from its measured widths, the ranking trades importance against the time a
group saves, and the selection reaches its target on the table's estimate. Timings come from the fake
table of conftest (an op's multiply-adds): nothing here asserts how fast this machine is."""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnxprune.passes.select import per_latency

import onnxprune
from onnxprune import runtime
from onnxprune.latency_model import LatencyModel, OpLatency, latency_model
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection
from onnxprune.widths import WidthTable

from .conftest import ZOO
from .test_cli import run_cli


def test_op_time_follows_the_kept_shares_above_its_fixed_part():
    op = OpLatency(full_ms=2.0, fixed=0.25, families=(3, 5))
    assert op.ms({}) == pytest.approx(2.0)
    assert op.ms({3: 0.5, 5: 0.5}) == pytest.approx(2.0 * (0.25 + 0.75 * 0.25))
    model = LatencyModel([op, OpLatency(1.0, 0.0, (5,))], {3: 10, 5: 20}, keep=0.5)
    assert model.total_ms == pytest.approx(3.0)
    assert model.estimate(Selection({5: tuple(range(10))})) == pytest.approx(2.0 * (0.25 + 0.75 * 0.5) + 0.5)
    # one group of family 5 saves its share of both ops; family 3 only of the first
    assert model.per_group(5) == pytest.approx(2.0 * 0.75 * 0.5 / 20 + 1.0 / 20)
    assert model.per_group(3) == pytest.approx(2.0 * 0.75 * 0.5 / 10)


def test_fixed_share_is_fit_from_the_measured_widths(tmp_path):
    # a table where every op costs 0.01 ms more than its multiply-adds say: the fit finds that part
    def timer(probe, threads):
        from tests.conftest import fake_probe_ms
        return 0.01 + fake_probe_ms(probe, threads) / 3  # the fake's factor 3 off multiples of 8 dropped

    graph = onnxprune.load(ZOO / "vgg.onnx")
    am = AnalysisManager(graph)
    model = latency_model(graph, am.get("shapes"), am.get("prune-space"), 0.5, 8, WidthTable(folder=tmp_path, measure=timer))
    heavy = [op for op in model.ops if not op.elementwise and op.families]
    assert heavy and all(0 < op.fixed < 1 for op in heavy)
    for op in heavy:
        assert op.full_ms > 0.01 and op.fixed * op.full_ms == pytest.approx(0.01, rel=0.05, abs=1e-3)
    # and each family's activations cost their elements at the table's per-element time
    assert {op.families for op in model.ops if op.elementwise} == {(f.id,) for f in am.get("prune-space").prunable}


def test_ranking_prefers_groups_that_save_more_time_per_importance():
    normalized = {1: np.array([1.0, 1.0]), 2: np.array([1.0, 1.0]), 3: np.array([0.1])}
    ranked = per_latency(normalized, {1: 4.0, 2: 1.0, 3: 0.0})
    assert ranked[1].max() < ranked[2].min()  # equal importance, four times the time saved: first
    assert ranked[3].min() > ranked[2].max()  # saves nothing measurable: last, however unimportant


# (on the small zoo models, 16 to 96 channels wide, one step of 8 or 16 channels moves the estimate by
# 1 to 2 points of the total)
@pytest.mark.parametrize("model, within", [("mobilenetv2.onnx", 1.5), ("resnet50ish.onnx", 1.0), ("vgg.onnx", 2.5)])
@pytest.mark.parametrize("ratio", ["0.3", "0.5"])
def test_prune_by_latency_reaches_the_target_on_the_estimate(capsys, tmp_path, ratio, model, within):
    status, text, err = run_cli(capsys, "prune", ZOO / model, "-o", tmp_path / "r.onnx", "--by", "latency",
                                "--ratio", ratio, "--no-report")
    assert status == 0, err
    reached = re.search(r"target +([\d.]+)% of the latency \(estimated\), reached ([\d.]+)% \(width table\)", text)
    assert reached and float(reached[1]) == pytest.approx(100 * float(ratio))
    assert abs(float(reached[2]) - float(reached[1])) <= within, text
    estimate = re.search(r"estimate +Conv/Gemm/MatMul time at batch 1 \(width table\): ([\d.e-]+) -> ([\d.e-]+) ms", text)
    assert estimate and float(estimate[2]) < float(estimate[1])
    assert re.search(r"latency +batch 1: [\d.]+ -> [\d.]+ ms", text)  # and measured after


def _fake_now(ms: float):
    def measure(graphs, **options):
        return runtime.Latency(1, {1: {name: runtime.Timing(ms, ms) for name in graphs}}, {1: 5},
                               {name: "all" for name in graphs})
    return measure


def test_target_latency_is_reached_on_the_estimate(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "measure_latency", _fake_now(10.0))  # the model "runs in" 10 ms
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "r.onnx",
                                "--target-latency", "8", "--no-latency", "--no-report")
    assert status == 0, err
    said = re.search(r"target +8 ms at batch 1: the model runs in 10 ms, ([\d.]+) ms of it in its Conv/Gemm/MatMul "
                     r"ops \(width table\); removing ([\d.]+)% of that", text)
    assert said, text
    heavy, share = float(said[1]), float(said[2])
    assert share == pytest.approx(100 * 2.0 / heavy, abs=0.1)
    reached = re.search(r"target +[\d.]+% of the latency \(estimated\), reached ([\d.]+)%", text)
    left = 10.0 - float(reached[1]) / 100 * heavy  # what the rest of the model takes stays
    assert left == pytest.approx(8.0, abs=0.1 * 2.0), text  # within a tenth of what is removed


@pytest.mark.parametrize("target, said", [("20", "already runs in 10 ms"), ("0.001", "cannot be reached"),
                                          ("-1", "must be a positive number")])
def test_unreachable_latency_targets_are_one_line(capsys, tmp_path, monkeypatch, target, said):
    monkeypatch.setattr(runtime, "measure_latency", _fake_now(10.0))
    status, _, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "r.onnx",
                             "--target-latency", target, "--no-report")
    assert status == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.onnx").exists()


def test_ratio_and_target_latency_exclude_each_other(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "r.onnx", "--ratio", "0.5",
                "--target-latency", "1")
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_narrowest_cuts_every_family_as_far_as_select_may():
    from onnxprune.widths import narrowest

    space = AnalysisManager(onnxprune.load(ZOO / "digits_cnn.onnx")).get("prune-space")
    sizes = {f.id: f.size for f in space.prunable}
    assert sorted(sizes.values()) == [16, 32, 32]
    plain = narrowest(space, 0.9)
    assert {f: sizes[f] - len(g) for f, g in plain.pruned.items()} == {f: s - int(0.9 * s) for f, s in sizes.items()}
    rounded = narrowest(space, 0.9, 8)  # kept counts stay multiples of 8 (at least one)
    assert all(sizes[f] - len(g) == 8 for f, g in rounded.pruned.items()) and len(rounded.pruned) == 3


def _fake_times(ms: dict[str, float]):
    def measure(graphs, **options):
        # models not named (the two rankings prune compares) take the compact model's time
        timings = {b: {name: runtime.Timing(ms.get(name, ms["compact"]) * b, ms.get(name, ms["compact"]) * b)
                       for name in graphs} for b in (1, 32)}
        return runtime.Latency(1, timings, {1: 5, 32: 5}, {name: "all" for name in graphs})
    return measure


@pytest.mark.parametrize("narrowest_ms, said", [(9.6, "96% of the time is per-run and per-op cost that no pruning "
                                                       "removes"),
                                                (4.0, "so more is possible at this batch")])
def test_prune_says_whether_the_latency_bar_could_be_reached(capsys, tmp_path, monkeypatch, narrowest_ms, said):
    # 50% of the FLOPs go but the time falls 5%: the narrowest model pruning can make decides what is said
    monkeypatch.setattr(runtime, "measure_latency",
                        _fake_times({"original": 10.0, "compact": 9.5, "narrowest": narrowest_ms}))
    status, text, err = run_cli(capsys, "prune", ZOO / "digits_cnn.onnx", "-o", tmp_path / "d.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report")
    assert status == 0, err
    lines = [line for line in text.splitlines() if "below 0.8 x" in line]
    assert [line.split(":")[0] for line in lines] == ["latency    batch 1", "latency    batch 32"], text
    assert all("a 5% cut for 50% of the FLOPs" in line and said in line for line in lines), lines


def test_no_bar_line_when_the_latency_cut_keeps_up(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "measure_latency", _fake_times({"original": 10.0, "compact": 5.5}))
    status, text, err = run_cli(capsys, "prune", ZOO / "digits_cnn.onnx", "-o", tmp_path / "d.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report")
    assert status == 0 and "below 0.8 x" not in text and "latency    batch 1: 10.000 -> 5.500 ms" in text, text


@pytest.mark.parametrize("faster", ["importance", "latency"])
def test_default_prune_keeps_the_ranking_that_measures_faster(capsys, tmp_path, monkeypatch, faster):
    times = {"importance": 2.0, "latency": 2.0, "original": 10.0, "compact": 5.0, faster: 1.0}
    monkeypatch.setattr(runtime, "measure_latency", _fake_times(times))
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet50ish.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report", "--selection-out", tmp_path / "a.json")
    assert status == 0, err
    assert f"rank       {faster} (measured: batch 1: importance " in text, text
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet50ish.onnx", "-o", tmp_path / "b.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-report", "--rank", faster, "--selection-out", tmp_path / "b.json")
    assert status == 0 and "rank " not in text
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()

"""Widths that run fast (`onnxprune.widths`, `prune --round-to auto`): the timing table is keyed by
machine, cached and reused, its choice is applied by select, and `--round-to N` overrides it. Timings
come from a fake table (conftest): nothing here asserts how fast this machine is."""

from __future__ import annotations

import json

import pytest

import onnxprune
from onnxprune import widths
from onnxprune.cli import main
from onnxprune.facts import Outcome
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection
from onnxprune.widths import HeavyOp, Probe, WidthTable, choose_for_graph, keep_share, kept_width

from .conftest import ZOO, fake_probe_ms


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


class Counting:
    """A fake timer that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, probe, threads):
        self.calls += 1
        return fake_probe_ms(probe, threads)


def test_kept_width_rounds_as_select_does():
    assert kept_width(64, 0.7, 1) == 45
    assert kept_width(64, 0.7, 8) == 48 and kept_width(64, 0.7, 16) == 48
    assert kept_width(12, 0.5, 16) == 12  # no larger than the multiple: left whole
    assert kept_width(12, 0.5, 16, round_small=True) == 8  # unless narrow families take a finer step
    assert kept_width(24, 0.1, 8) == 8  # at least one multiple
    assert keep_share(0.5, "groups") == 0.5 and keep_share(0.75, "flops") == pytest.approx(0.5)


def test_probe_widths_follow_the_prunable_axes():
    conv = HeavyOp("conv", "Conv", (1, 64, 8, 8), (96, 64, 3, 3), (("group", 1),), True, True)
    assert conv.probe(0.7, 16) == Probe("Conv", (1, 48, 8, 8), (64, 48, 3, 3), (("group", 1),))
    frozen_in = HeavyOp("conv", "Conv", (1, 3, 8, 8), (96, 3, 3, 3), (("group", 1),), False, True)
    assert frozen_in.probe(0.7, 8).x[1] == 3 and frozen_in.probe(0.7, 8).w[:2] == (64, 3)
    depthwise = HeavyOp("depthwise", "Conv", (1, 40, 8, 8), (40, 1, 3, 3), (("group", 40),), True, True)
    probe = depthwise.probe(0.7, 8)
    assert probe.x[1] == probe.w[0] == dict(probe.attrs)["group"] == 32
    gemm = HeavyOp("gemm", "Gemm", (1, 100), (10, 100), (("transB", 1),), True, False)
    assert gemm.probe(0.5, 8).x == (1, 48) and gemm.probe(0.5, 8).w == (10, 48)


def test_table_is_keyed_by_machine_cached_and_reused(tmp_path):
    timer = Counting()
    probes = [Probe("Conv", (1, c, 8, 8), (c, c, 3, 3), (("group", 1),)) for c in (8, 13)]
    table = WidthTable(1, tmp_path, measure=timer)
    first = dict(table.times(probes))
    assert timer.calls == 2 and table.measured == 2 and table.path.parent == tmp_path
    data = json.loads(table.path.read_text())
    assert data["key"] == {"cpu": widths.cpu_model(), "onnxruntime": data["key"]["onnxruntime"], "threads": "1"}
    again = WidthTable(1, tmp_path, measure=timer)  # a later run: everything from the file
    assert again.times(probes) == first and timer.calls == 2 and again.measured == 0
    other = WidthTable(4, tmp_path, measure=timer)  # another thread count is another table
    assert other.path != table.path
    other.times(probes)
    assert timer.calls == 4
    table.path.write_text("{not json")  # a damaged file is measured anew, not an error
    assert WidthTable(1, tmp_path, measure=timer).times(probes) == first and timer.calls == 6


def test_cache_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path / "here"))
    assert widths.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("ONNXPRUNE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert widths.cache_dir() == tmp_path / "xdg" / "onnxprune"


def test_choice_is_the_fastest_multiple_and_near_ties_go_to_the_coarser_one(tmp_path):
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    table = WidthTable(1, tmp_path, measure=fake_probe_ms)
    choice = choose_for_graph(graph, am.get("shapes"), am.get("prune-space"), 0.5, "flops", table=table)
    assert choice.ops > 0 and set(choice.estimates) == {1, 4, 8, 16}
    fastest = min(choice.estimates.values())
    assert choice.round_to == max(m for m, ms in choice.estimates.items() if ms <= 1.05 * fastest)
    assert choice.estimates[1] > fastest  # the fake table makes unaligned widths dearer
    assert "measured: 1:" in choice.describe()
    flat = WidthTable(1, tmp_path / "flat", measure=lambda probe, threads: 1.0)  # every width as fast
    ops = widths.heavy_ops(graph, am.get("shapes"), widths.prunable_axes(am.get("prune-space")))
    assert widths.choose_round_to(ops, 0.7, flat).round_to == 16  # a tie: the coarsest


def test_real_probe_is_timed(monkeypatch):
    monkeypatch.undo()  # the real timer, on one tiny op: a positive figure, whatever it is
    probe = Probe("Conv", (1, 8, 6, 6), (8, 8, 3, 3), (("dilations", (1, 1)), ("group", 1), ("pads", (1, 1, 1, 1)),
                                                    ("strides", (1, 1))))
    for timed in (widths.measure_probe(probe, 1), widths.measure_probe(Probe("MatMul", (2, 16), (16, 8)), 1)):
        assert timed.ms > 0 and timed.alone > 0 and isinstance(timed.blocked, bool)


def test_estimate_charges_layout_conversions_to_plain_convs_among_blocked_ones():
    blocked = Probe("Conv", (1, 16, 4, 4), (16, 16, 1, 1), (("strides", (1, 1)),))
    plain = Probe("Conv", (1, 15, 4, 4), (15, 15, 1, 1), (("strides", (1, 1)),))
    # the blocked op alone spends 0.512 ms more than in a model on 512 elements: 0.001 ms an element
    times = {blocked.key: widths.Timed(1.0, 1.512, True), plain.key: widths.Timed(1.0, 1.0, False)}
    assert widths.estimate({16: [blocked], 1: [plain]}, times) == {16: 1.0, 1: pytest.approx(1.48)}
    times[blocked.key] = widths.Timed(1.0, 1.512, False)  # nothing blocked: nothing to convert
    assert widths.estimate({16: [blocked], 1: [plain]}, times) == {16: 1.0, 1: 1.0}


def _kept_widths(path):
    graph = onnxprune.load(path)
    return [graph.inputs_of(op)[1].tensor.shape[0] for op in graph.ops() if op.op_type == "Conv"]


def test_prune_auto_says_what_it_chose_applies_it_and_reuses_the_table(capsys, tmp_path, widths_cache):
    out = tmp_path / "a.onnx"
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.5", "--by", "flops",
                                "--no-latency")
    assert status == 0, err
    line = next(line for line in text.splitlines() if line.startswith("round-to"))
    chosen = int(line.split()[1].rstrip(","))  # "16" or, where the widths were searched, "8, narrow ..."
    assert chosen in (4, 8, 16) and "measured: 1:" in line and "shapes timed" in line
    original = _kept_widths(ZOO / "resnet.onnx")
    assert all(k == o or k % widths.family_multiple(o, chosen, True) == 0 for k, o in zip(_kept_widths(out), original))
    target = next(line for line in text.splitlines() if line.startswith("target"))
    assert abs(float(target.split("reached ")[1].split("%")[0]) - 50) <= 1.0
    assert list(widths_cache.glob("widths-*.json"))
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.5", "--by", "flops",
                                "--no-latency")
    assert status == 0 and "from the cached table" in text


def test_auto_falls_back_to_a_finer_multiple_where_the_target_is_out_of_reach(capsys, tmp_path, monkeypatch):
    """A fake table where aligned widths are fast, and a precision that the steps of 4, 8 or 16 channels
    of the zoo's narrow inceptionish cannot meet: prune says what each multiple reached and takes the
    next fastest multiple, down to 1, which can."""
    monkeypatch.setattr("onnxprune.widths.measure_probe",
                        lambda probe, threads: fake_probe_ms(probe, threads) * (1 if probe.w[0] % 16 == 0 else 5))
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path / "cache"))  # not the session's table of the plain fake
    monkeypatch.setattr("onnxprune.widths.PRECISION", 0.0005)  # coarse steps miss this; 1 (no rounding) does not
    status, text, err = run_cli(capsys, "prune", ZOO / "inceptionish.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5",
                                "--by", "flops", "--no-latency", "--rank", "importance")  # the widths alone
    assert status == 0, err
    line = next(line for line in text.splitlines() if line.startswith("round-to"))
    tried = int(line.split("(")[1].split()[0])  # the fastest multiple, whose steps were too coarse
    assert f"({tried} reaches " in line and "of the flops, over a point from the target" in line
    assert int(line.split()[1]) < tried
    target = next(line for line in text.splitlines() if line.startswith("target"))
    assert abs(float(target.split("reached ")[1].split("%")[0]) - 50) <= 0.05


def test_choice_order_tries_the_chosen_multiple_then_the_fastest():
    choice = widths.WidthChoice(16, {1: 9.0, 4: 5.0, 8: 6.0, 16: 5.1}, 3, 0, 0.0)
    assert choice.order == [16, 4, 8, 1]


def test_round_to_override_measures_nothing(capsys, tmp_path, monkeypatch):
    def no_timing(probe, threads):
        raise AssertionError("--round-to N must not time anything")

    monkeypatch.setattr("onnxprune.widths.measure_probe", no_timing)
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "a.onnx"
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.5", "--by", "flops",
                                "--round-to", "4", "--no-latency")
    assert status == 0, err
    assert not any(line.startswith("round-to") for line in text.splitlines())
    original = _kept_widths(ZOO / "resnet.onnx")
    assert all(k == o or k % 4 == 0 for k, o in zip(_kept_widths(out), original))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value", ["x", "0", "-8", "2.5"])
def test_bad_round_to_is_one_line_and_exit_2(capsys, tmp_path, value):
    status, _, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5",
                             "--round-to", value)
    assert status == 2 and err.strip().splitlines() == [
        f"onnxprune: error: --round-to must be a positive whole number or auto, got {value!r}"]


@pytest.mark.parametrize("round_to", [4, 8, 16])
def test_rounded_select_by_flops_reaches_its_target(round_to):
    graph = onnxprune.load(ZOO / "mobilenetv2.onnx")
    am = AnalysisManager(graph)
    from onnxprune.passmanager import REGISTRY, PassManager

    PassManager([REGISTRY.get("select")(ratio=0.5, by="flops", round_to=round_to)]).run(graph, am)
    outcome = am.fact(Outcome)
    assert abs(outcome.share - 0.5) <= 0.01
    space = am.get("prune-space")
    for family_id, groups in am.fact(Selection).pruned.items():
        size = space.family(family_id).size
        assert (size - len(groups)) % round_to == 0 or size <= round_to


def test_narrow_families_round_to_a_finer_power_of_two_only_when_asked():
    assert widths.family_multiple(96, 16, True) == 16 and widths.family_multiple(24, 16, True) == 8
    assert widths.family_multiple(8, 16, True) == 4 and widths.family_multiple(24, 16, False) == 16
    graph = onnxprune.load(ZOO / "fashion_cnn.onnx")
    am = AnalysisManager(graph)
    from onnxprune.passmanager import REGISTRY, PassManager

    PassManager([REGISTRY.get("select")(ratio=0.5, by="flops", round_to=16, round_small=True)]).run(graph, am)
    space = am.get("prune-space")
    for family_id, groups in am.fact(Selection).pruned.items():
        size = space.family(family_id).size
        step = widths.family_multiple(size, 16, True)
        assert (size - len(groups)) % step == 0


def test_grouped_convolution_probes_lose_whole_groups():
    # a RegNet-style grouped 3x3 convolution: 12 groups of 8 channels; rounding to 16 channels is 2 groups
    grouped = HeavyOp("grouped", "Conv", (1, 96, 8, 8), (96, 8, 3, 3), (("group", 12),), False, True)
    probe = grouped.probe(0.5, 16)
    assert dict(probe.attrs)["group"] == 6 and probe.x[1] == 48 and probe.w == (48, 8, 3, 3)
    assert grouped.probe(0.7, 1).w[0] % 8 == 0  # never part of a group
    frozen = HeavyOp("grouped", "Conv", (1, 96, 8, 8), (96, 8, 3, 3), (("group", 12),), False, False)
    assert frozen.probe(0.5, 16).w == (96, 8, 3, 3)


def test_group_steps_count_channels():
    assert widths.group_step(12, 8, 16, False) == 2  # 16 channels are 2 groups of 8
    assert widths.group_step(12, 8, 4, False) == 1  # a group of 8 is already a multiple of 4
    assert widths.group_step(64, 1, 16, False) == 16
    assert widths.group_step(12, 64, 16, False) == 1  # attention heads of 64 channels


@pytest.mark.slow  # two short training runs
def test_run_rounds_to_the_measured_multiple_that_reaches_the_target(capsys, tmp_path):
    # digits_cnn's families have 16, 32 and 32 channels: at 16 a family keeps one multiple, so the
    # 16-wide one stays whole and training could zero 32 groups, fewer than half of the 80
    space = AnalysisManager(onnxprune.load(ZOO / "digits_cnn.onnx")).get("prune-space")
    assert widths.removable_groups(space, 16) == 32 and widths.removable_groups(space, 8) == 56
    assert widths.removable_groups(space, 1) == 77
    out = tmp_path / "d.onnx"
    status, text, err = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz", "-o", out,
                                "--steps", "12", "--no-progress", "--batch-size", "32", "--no-latency", "--no-report")
    assert status == 0, err
    line = next(line for line in text.splitlines() if line.startswith("round-to"))
    assert line.startswith("round-to   8 (measured: 1: ") and "16: " in line  # the fake table: 8 is fast
    graph = onnxprune.load(out)
    kept = [graph.initializer(graph.inputs_of(op)[1].name).shape[0] for op in graph.ops() if op.op_type == "Conv"]
    assert kept and all(k % 8 == 0 for k in kept), kept
    status, text, _ = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", ZOO / "digits.npz", "-o",
                              tmp_path / "e.onnx", "--steps", "12", "--no-progress", "--batch-size", "32",
                              "--no-latency", "--no-report", "--round-to", "1")
    assert status == 0 and not any(line.startswith("round-to") for line in text.splitlines())

"""Exact accounting: what a selection removes is measured on the model compact writes, and select
reaches its --by params/flops target within 1 % of it."""

from __future__ import annotations

import numpy as np
import pytest
from onnxprune.passes.cost import SelectionCost

import onnxprune
from onnxprune.facts import Outcome, VerifyReport
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.space import Selection

from .conftest import ZOO
from .test_compact import random_selection

CNNS = ["resnet.onnx", "resnet50ish.onnx", "mobilenetv2.onnx", "vgg.onnx", "fashion_cnn.onnx",
        "efficientnetish.onnx", "regnetish.onnx", "densenet.onnx", "mobilenetv3ish.onnx"]


def _compact_cost(graph, selection):
    am = AnalysisManager(graph)
    am.provide(selection)
    PassManager("compact,cleanup").run(graph, am)
    return AnalysisManager(graph).get("cost")


@pytest.mark.parametrize("name", [*CNNS, "vit.onnx", "llama.onnx", "shufflenetish.onnx", "unetish.onnx"])
def test_selection_cost_equals_the_compact_models_cost(name):
    graph = onnxprune.load(ZOO / name)
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    exact = SelectionCost(graph, am.get("shapes"), am.get("cost"), space)
    for seed in range(3):
        selection = random_selection(space, np.random.default_rng(seed)) if seed else Selection({})
        predicted = exact.measure(selection)
        found = _compact_cost(graph.copy(), selection)
        assert (predicted.parameters, predicted.flops) == (found.parameters, found.flops)


def test_selection_cost_counts_erased_regions():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    exact = SelectionCost(graph, am.get("shapes"), am.get("cost"), space, erasing)
    selection = Selection(random_selection(space, np.random.default_rng(4)).pruned, (0,)).without_clashes(
        space, erasing)
    predicted = exact.measure(selection)
    found = _compact_cost(graph.copy(), selection)
    assert (predicted.parameters, predicted.flops) == (found.parameters, found.flops)


def _select(graph, pipeline: str):
    before = AnalysisManager(graph).get("cost")
    am = AnalysisManager(graph)
    PassManager(pipeline + ",compact,cleanup,verify").run(graph, am)
    assert am.fact(VerifyReport).ok
    return before, AnalysisManager(graph).get("cost"), am.fact(Outcome)


@pytest.mark.parametrize("name", [*CNNS, "digits_cnn.onnx", "conv1d_audio.onnx", "vit.onnx", "gpt.onnx"])
@pytest.mark.parametrize("by", ["flops", "params"])
def test_select_reaches_the_target_within_one_percent(name, by):
    graph = onnxprune.load(ZOO / name)
    before, after, outcome = _select(graph, f"select{{ratio=0.5,by={by}}}")
    key = "flops" if by == "flops" else "parameters"
    achieved = 1 - getattr(after, key) / getattr(before, key)
    assert abs(achieved - 0.5) <= 0.005, achieved  # within 1 % of the target
    # the figure select reports is the compact model's own
    assert outcome.removed == getattr(before, key) - getattr(after, key)
    assert outcome.total == getattr(before, key)


@pytest.mark.parametrize("by", ["flops", "params"])
def test_local_scope_also_reaches_a_params_or_flops_target(by):
    graph = onnxprune.load(ZOO / "mobilenetv2.onnx")
    before, after, outcome = _select(graph, f"select{{ratio=0.5,by={by},scope=local}}")
    key = "flops" if by == "flops" else "parameters"
    assert abs(1 - getattr(after, key) / getattr(before, key) - 0.5) <= 0.005
    assert outcome.removed == getattr(before, key) - getattr(after, key)


def test_select_with_erased_blocks_reports_the_compact_figure():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    before, after, outcome = _select(graph, "select{ratio=0.6,by=flops,erase=1}")
    assert outcome.removed == before.flops - after.flops
    assert abs(outcome.share - 0.6) <= 0.025  # one group of this toy model's 16-channel families is up to 2.3 %


def test_select_says_when_the_target_is_out_of_reach():
    graph = onnxprune.load(ZOO / "llama.onnx")  # embeddings and the output head are the interface: frozen
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.9,by=params}").run(graph, am)
    outcome = am.fact(Outcome)
    assert outcome.removed < outcome.target and outcome.share < 0.9


def test_select_by_groups_counts_groups():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.3}").run(graph, am)
    outcome, selection = am.fact(Outcome), am.fact(Selection)
    assert outcome.removed == selection.group_count
    assert abs(outcome.removed - 0.3 * outcome.total) <= 1


@pytest.mark.slow
def test_torchvision_resnet18_reaches_the_flops_target(tmp_path):
    pytest.importorskip("onnxscript")  # torch's dynamo exporter
    import sys

    sys.path.insert(0, str(ZOO))
    try:
        from exports import build, import_torchvision
    finally:
        sys.path.remove(str(ZOO))
    try:
        import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")
    (path,) = build(["resnet18"], tmp_path, "dynamo", 18)
    for by in ("flops", "params"):
        graph = onnxprune.load(path)
        before, after, outcome = _select(graph, f"select{{ratio=0.5,by={by}}}")
        key = "flops" if by == "flops" else "parameters"
        assert abs(1 - getattr(after, key) / getattr(before, key) - 0.5) <= 0.005
        assert outcome.removed == getattr(before, key) - getattr(after, key)

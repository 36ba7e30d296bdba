"""Attention heads of real exports: the files in models/exports/ are what torch's two exporters write for
nn.MultiheadAttention, nn.TransformerEncoderLayer, torchvision's ViT and Swin block and `transformers`
GPT-2, Llama (grouped-query, rotary) and BERT (built by `python models/exports.py OUT --attention`,
tiny configs, random weights). Their reshape targets are computed at run time, q/k/v come fused or
separate, Llama repeats its key/value heads; every attention layer must still have its heads prunable,
and compacting any selection must compute what the masked model computes."""

from __future__ import annotations

import numpy as np
import pytest
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.choose import AxisBudget
from onnxprune.facts import Compaction, VerifyReport
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.space import Selection

from .builders import Builder
from .conftest import ZOO
from .test_compact import check_compact_matches_masked

EXPORTS = ZOO / "exports"
#: export -> the sizes of its prunable head families (one attention layer each; Llama's groups are its
#: two key/value heads, each with the two query heads that share it).
HEADS = {
    "mha_torchscript14": [4], "mha_torchscript17": [4], "mha_dynamo18": [4],
    "encoder_layer_torchscript17": [4], "encoder_layer_dynamo18": [4],
    "vit_torchscript17": [4], "vit_dynamo18": [4], "swin_block_torchscript17": [4], "swin_block_dynamo18": [4],
    "gpt2_torchscript17": [4], "gpt2_dynamo18": [4],
    "llama_dynamo18": [2], "llama_eager_torchscript17": [2], "llama_eager_dynamo18": [2],
    "bert_torchscript17": [4], "bert_dynamo18": [4],
}


#: exports whose KV cache is an output: the heads are the model's interface and must stay.
CACHE = ("gpt2_cache_torchscript17", "gpt2_cache_dynamo18")


def test_every_committed_export_is_listed():
    assert sorted(p.stem for p in EXPORTS.glob("*.onnx")) == sorted([*HEADS, *CACHE])


def load(name: str):
    graph = onnxprune.load(EXPORTS / f"{name}.onnx")
    return graph, AnalysisManager(graph)


def feeds(graph, seed: int) -> dict[str, np.ndarray]:
    """Batch 2 and sequence 5 where those are dynamic; an attention mask of ones and zeros (first token kept)."""
    bindings = []
    for value in graph.inputs:
        if not value.is_initializer:
            dims = [d if isinstance(d, int) and d > 0 else (2 if axis == 0 else 5) for axis, d in enumerate(value.shape)]
            bindings.append(f"{value.name}={'x'.join(map(str, dims))}")
    rng = np.random.default_rng(seed)
    found = random_inputs(graph, rng, 2, bindings)
    if "attention_mask" in found:
        mask = rng.integers(0, 2, found["attention_mask"].shape)
        mask[:, 0] = 1
        found["attention_mask"] = mask.astype(found["attention_mask"].dtype)
    return found


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_are_prunable_and_compact_equals_masked(name):
    graph, am = load(name)
    space = am.get("prune-space")
    heads = [f for f in space.prunable if f.kind == "head"]
    assert sorted(f.size for f in heads) == HEADS[name], [(f.name, f.size, f.reasons[:1]) for f in space.families]
    for family in heads:  # the projections that make q, k and v (or the fused one) produce the heads
        assert len({m.value for m in family.producers}) >= 2
    samples = [feeds(graph, seed) for seed in (1, 2)]
    for trial in range(3):
        rng = np.random.default_rng(trial)
        budget, pruned = AxisBudget(space), {}
        for family in space.prunable:  # heads and MLP channels together, the last trial all but one head
            count = family.size - 1 if trial == 2 else int(rng.integers(1, family.size))
            pruned[family.id] = tuple(sorted(int(g) for g in rng.permutation(family.size)[:count]
                                             if budget.take(family, int(g))))
        selection = Selection(pruned)
        assert all(pruned[f.id] for f in heads)
        compacted = graph.copy()
        report = compact_graph(compacted, space, selection, am.get("shapes"))
        assert report.parameters_after < report.parameters_before
        result = compare(masked_graph(graph, space, selection), compacted, samples, 1e-4)
        assert result.ok, (trial, str(result))
        unpruned = compare(graph, compacted, samples, 1e-4)
        assert not unpruned.ok  # removing heads changes what the model computes: the comparison can fail


@pytest.mark.parametrize("name", ["mha_torchscript17", "vit_dynamo18", "gpt2_torchscript17", "llama_dynamo18",
                                  "llama_eager_torchscript17", "bert_dynamo18"])
def test_prune_removes_the_head_its_ranking_ranks_last(name):
    graph, am = load(name)
    (heads,) = [f for f in am.get("prune-space").prunable if f.kind == "head"]
    for member in heads.producers:  # make group 1 the least important by far
        array = np.array(graph.initializer(member.value), copy=True)
        index = (slice(None),) * member.axis + (member.indices((1,)),)
        array[index] *= 1e-3
        graph.set_initializer(member.value, array)
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.5,scope=local},compact,cleanup,verify").run(graph, am)
    selection = am.fact(Compaction).selection
    assert selection.pruned[heads.id].count(1) == 1  # the head scaled down is among those removed
    assert am.fact(VerifyReport).ok
    left = heads.size - len(selection.pruned[heads.id])
    if left > 1:  # the smaller model's heads are prunable again (one group left is a family of one: frozen)
        assert {f.size for f in AnalysisManager(graph).get("prune-space").prunable if f.kind == "head"} == {left}


@pytest.mark.parametrize("name", CACHE)
def test_heads_of_a_kv_cache_output_stay_with_the_interface_as_the_reason(name):
    _, am = load(name)
    space = am.get("prune-space")
    (heads,) = [f for f in space.families if f.kind == "head" and f.size == 4]
    assert not heads.prunable
    assert any("model output" in reason and "interface" in reason for reason in heads.reasons), heads.reasons
    assert {f.size for f in space.prunable} == {64}  # the MLP channels still prune


def _read_across_families(mixed: bool):
    """Two conv families; the second is reshaped to [N, C, H*W] with C read at run time from the first's
    Shape, through Gather (a piece of its own) or a Slice that also carries the batch (`mixed`)."""
    b = Builder()
    first = b.op("Relu", [b.conv("x", 3, 6)])
    second = b.op("Relu", [b.conv("x", 3, 6)])
    if mixed:
        pieces = [b.op("Slice", [b.op("Shape", [first]), b.const(np.array([0])), b.const(np.array([2]))])]
    else:  # one Unsqueeze'd scalar per element, as the TorchScript exporter writes targets
        pieces = [b.op("Unsqueeze", [b.op("Gather", [b.op("Shape", [value]), b.const(np.array(axis))]),
                                     b.const(np.array([0]))]) for value, axis in ((second, 0), (first, 1))]
    flat = b.op("Reshape", [second, b.op("Concat", [*pieces, b.const(np.array([-1]))], axis=0)])
    pooled = b.op("ReduceSum", [flat, b.const(np.array([2]))], keepdims=0)
    y = b.op("Add", [b.op("Gemm", [pooled, b.weight((4, 6)), b.weight((4,))], transB=1),
                     b.op("Gemm", [b.op("Flatten", [b.op("GlobalAveragePool", [first])]), b.weight((4, 6))],
                          transB=1)])
    return onnxprune.load(b.model({"x": ["N", 3, 4, 4]}, [y]))


def test_a_static_dimension_read_from_another_family_keeps_its_size():
    graph = _read_across_families(mixed=False)
    space = AnalysisManager(graph).get("prune-space")
    first, second = (next(f for f in space.families if f.name == f"{w}:0") for w in ("w1", "w5"))
    assert not first.prunable
    assert any("to size a Reshape axis of another family" in r for r in first.reasons), first.reasons
    assert second.prunable, second.reasons  # compact writes its new count into the Reshape as a constant
    check_compact_matches_masked(graph, Selection({second.id: (0, 3)}), space)


def test_a_size_read_from_another_family_beside_run_time_sizes_freezes_both():
    space = AnalysisManager(_read_across_families(mixed=True)).get("prune-space")
    first, second = (next(f for f in space.families if f.name == f"{w}:0") for w in ("w1", "w5"))
    assert not first.prunable and not second.prunable
    assert any("read at run time from another family" in r for r in second.reasons), second.reasons


@pytest.mark.parametrize("path", [EXPORTS / "mha_torchscript17.onnx", EXPORTS / "llama_eager_torchscript17.onnx",
                                  EXPORTS / "gpt2_dynamo18.onnx", ZOO / "vit.onnx"])
def test_dimensions_bound_for_the_analysis_stay_dynamic_in_the_pruned_model(path):
    """`--input-shape` binds batch 1 (and sequence 8) for the analysis only: the pruned model must still
    run, and match the masked one, at batch 2 and sequence 5 (constants must not replace sizes computed
    from Shape, nor a batch x heads product)."""
    graph = onnxprune.load(path)
    bindings = tuple(f"{v.name}=" + "x".join(str(d if isinstance(d, int) else (1 if i == 0 else 8))
                                             for i, d in enumerate(v.shape)) for v in graph.inputs)
    am = AnalysisManager(graph, input_shapes=bindings)
    assert [f for f in am.get("prune-space").prunable if f.kind == "head"]
    PassManager("select{ratio=0.5},compact,cleanup,verify").run(graph, am)
    result = compare(am.fact(Compaction).reference, graph, [feeds(graph, 3)], 1e-4)
    assert result.ok, str(result)

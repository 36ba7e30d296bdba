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
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.space import AxisBudget, Selection

from .conftest import ZOO

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


def test_every_committed_export_is_listed():
    assert sorted(p.stem for p in EXPORTS.glob("*.onnx")) == sorted(HEADS)


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
    selection = am.state["selection"]
    assert 1 in selection.pruned[heads.id]
    assert am.state["verify"].ok
    left = heads.size - len(selection.pruned[heads.id])
    if left > 1:  # the smaller model's heads are prunable again (one group left is a family of one: frozen)
        assert {f.size for f in AnalysisManager(graph).get("prune-space").prunable if f.kind == "head"} == {left}

"""Decoder-only causal LMs as `transformers` builds them (Llama, Qwen2, Phi-3; 2 layers, grouped-query
attention with 4 query and 2 key/value heads; logits out), exported by both torch exporters into
models/exports/decoders/ (`python models/exports.py OUT --decoders`). Their heads (each key/value head
with the query heads that read it) and MLP channels must be prunable, compacting any selection must
compute what the masked model computes, and the result must still be a causal LM whose loss
onnxprune can measure."""

from __future__ import annotations

import numpy as np
import pytest
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare

import onnxprune
from onnxprune.calibration import causal_lm_loss, is_causal_lm
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import AxisBudget, Selection

from .conftest import ZOO

DECODERS = ZOO / "exports" / "decoders"
#: export -> (sizes of its prunable head families, number of prunable MLP channel families, 64 wide).
#: A known gap, kept exact so a change either way shows: Phi-3's TorchScript export splits its fused
#: gate_up projection at a run-time half of its width (`Shape` reads it), so its MLP channels freeze.
EXPECTED = {
    "llama_lm_torchscript17": ([2, 2], 2), "llama_lm_dynamo18": ([2, 2], 2),
    "qwen2_lm_torchscript17": ([2, 2], 2), "qwen2_lm_dynamo18": ([2, 2], 2),
    "phi3_lm_torchscript17": ([2, 2], 0), "phi3_lm_dynamo18": ([2, 2], 2),
}


def test_every_committed_decoder_is_listed():
    assert sorted(p.stem for p in DECODERS.glob("*.onnx")) == sorted(EXPECTED)


def _ids(seed: int, batch: int = 2, sequence: int = 6) -> dict[str, np.ndarray]:
    return {"input_ids": np.random.default_rng(seed).integers(0, 64, (batch, sequence)).astype(np.int64)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_heads_and_mlp_channels_prune_and_compact_equals_masked(name):
    graph = onnxprune.load(DECODERS / f"{name}.onnx")
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    heads = [f for f in space.prunable if f.kind == "head"]
    channels = [f for f in space.prunable if f.kind == "channel" and f.size == 64]
    expected_heads, expected_channels = EXPECTED[name]
    assert sorted(f.size for f in heads) == expected_heads, [(f.name, f.size, f.reasons[:1]) for f in space.families]
    assert len(channels) == expected_channels, [(f.name, f.size, f.reasons[:1]) for f in space.families]
    assert is_causal_lm(graph)
    samples = [_ids(seed) for seed in (1, 2)]
    dense_loss = causal_lm_loss(graph, samples[0])
    for trial in range(2):
        rng = np.random.default_rng(trial)
        budget, pruned = AxisBudget(space), {}
        for family in space.prunable:
            count = int(rng.integers(1, family.size))
            pruned[family.id] = tuple(sorted(int(g) for g in rng.permutation(family.size)[:count]
                                             if budget.take(family, int(g))))
        selection = Selection(pruned)
        compacted = graph.copy()
        report = compact_graph(compacted, space, selection, am.get("shapes"))
        assert report.parameters_after < report.parameters_before
        result = compare(masked_graph(graph, space, selection), compacted, samples, 1e-4)
        assert result.ok, (trial, str(result))
        loss = causal_lm_loss(compacted, samples[0])
        assert loss is not None and np.isfinite(loss) and loss != pytest.approx(dense_loss, abs=1e-6)

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
from onnxprune.choose import AxisBudget
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .conftest import ZOO

DECODERS = ZOO / "exports" / "decoders"
#: export -> (sizes of its prunable head families, number of prunable MLP channel families, 64 wide).
#: Phi-3's TorchScript export splits its fused gate_up projection at a run-time half of its width
#: (torch.chunk: Shape, (size + 1) // 2, Slice): channel j of the gate and of the up half go together.
EXPECTED = {
    "llama_lm_torchscript17": ([2, 2], 2), "llama_lm_dynamo18": ([2, 2], 2),
    "qwen2_lm_torchscript17": ([2, 2], 2), "qwen2_lm_dynamo18": ([2, 2], 2),
    "phi3_lm_torchscript17": ([2, 2], 2), "phi3_lm_dynamo18": ([2, 2], 2),
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


STEPS = ZOO / "exports" / "decoder_steps"
#: decoding steps with their KV cache (`python models/exports.py models/exports/decoder_steps --decoder-steps`)
STEP_EXPORTS = ["llama_step_torchscript17", "qwen2_step_torchscript17"]


def test_every_committed_decoding_step_is_listed():
    assert sorted(p.stem for p in STEPS.glob("*.onnx")) == STEP_EXPORTS


def _generate(session, prompt: np.ndarray, past: list[np.ndarray], steps: int) -> tuple[list, list]:
    """Greedy decoding through a step model's KV-cache interface: each step's presents are the next
    step's pasts and its argmax token the next input. Returns the logits and tokens of every step."""
    names = [i.name for i in session.get_inputs()][2:]
    ids, logits_seen, tokens = prompt, [], []
    for _ in range(steps):
        mask = np.ones((ids.shape[0], past[0].shape[2] + ids.shape[1]), dtype=np.int64)
        logits, *past = session.run(None, {"input_ids": ids, "attention_mask": mask, **dict(zip(names, past))})
        logits_seen.append(logits)
        ids = logits[:, -1:].argmax(-1).astype(np.int64)
        tokens.append(ids)
    return logits_seen, tokens


@pytest.mark.parametrize("name", STEP_EXPORTS)
def test_a_decoding_step_prunes_its_mlp_and_keeps_its_kv_cache_interface(name):
    """With the KV cache as inputs and outputs (`models/exports.py --decoder-steps`), the key/value head
    count is the interface: head families freeze naming the past input, the MLP channels stay
    prunable, and the compact model decodes through the same cache tensors as the masked one."""
    from onnxprune.runtime import inference_session

    graph = onnxprune.load(STEPS / f"{name}.onnx")
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    heads = [f for f in space.families if f.kind == "head"]
    assert len(heads) == 2 and not any(f.prunable for f in heads)
    assert all("model input 'past_" in f.reasons[0] for f in heads), [f.reasons[:1] for f in heads]
    mlp = [f for f in space.prunable if f.kind == "channel" and f.size == 64]
    assert len(mlp) == 2, [(f.name, f.size, f.reasons[:1]) for f in space.families]
    rng = np.random.default_rng(0)
    selection = Selection({f.id: tuple(sorted(int(g) for g in rng.permutation(64)[:40])) for f in mlp})
    compacted = graph.copy()
    compact_graph(compacted, space, selection, am.get("shapes"))
    masked = inference_session(masked_graph(graph, space, selection))
    compact = inference_session(compacted)
    assert [(i.name, i.shape) for i in compact.get_inputs()] == [(i.name, i.shape) for i in masked.get_inputs()]
    prompt = rng.integers(0, 64, (2, 3)).astype(np.int64)
    past = [rng.standard_normal((2, 2, 4, 8)).astype(np.float32) for _ in range(4)]
    (want, want_tokens), (got, got_tokens) = (_generate(s, prompt, past, 4) for s in (masked, compact))
    for step, (a, b) in enumerate(zip(want, got)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=f"step {step}")
    assert [t.tolist() for t in got_tokens] == [t.tolist() for t in want_tokens]
    unpruned = inference_session(graph)
    assert not np.allclose(_generate(unpruned, prompt, past, 1)[0][0], got[0], atol=1e-4)  # the MLP did shrink

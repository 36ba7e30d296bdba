"""torch.chunk as TorchScript exports it: Slice bounds k x ceil(size / parts), the size read by Shape
from the sliced tensor at run time (Phi-3's fused gate_up projection). Index j of every chunk is one
group, so the chunks stay equal and the run-time bounds stay right after compaction; anything else
that reads the size, or a size that is not a multiple of the chunk count, still freezes."""

from __future__ import annotations

import numpy as np
import pytest

import onnxprune
from onnxprune.ops.shape_consts import Chunk, slice_chunk
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .builders import Builder
from .test_compact import check_compact_matches_masked


def chunked_mlp(parts: int, width: int = 6, ceil: bool = True, other_reader: bool = False, separate: bool = False):
    """x [2, 3, 4] -> MatMul to parts x width -> torch.chunk(parts, -1) as TorchScript writes it ->
    the chunks multiplied together (or, `separate`, each through a MatMul of its own, summed) -> MatMul
    back to 4."""
    b = Builder()
    fused = b.op("MatMul", ["x", b.weight((4, parts * width))])
    axis = b.const(np.array([-1], dtype=np.int64))
    size = b.op("Gather", [b.op("Shape", [fused]), axis], axis=0)
    if ceil:
        size = b.op("Add", [size, b.const(np.array(parts - 1, dtype=np.int64))])
    chunk = b.op("Div", [size, b.const(np.array(parts, dtype=np.int64))])
    bounds = [b.const(np.array([0], dtype=np.int64))] + \
        [b.op("Mul", [chunk, b.const(np.array(k, dtype=np.int64))]) for k in range(1, parts + 1)]
    pieces = [b.op("Slice", [fused, bounds[k], bounds[k + 1], axis]) for k in range(parts)]
    if separate:
        ends = [b.op("MatMul", [piece, b.weight((width, 4))]) for piece in pieces]
        outputs = [b.op("Add", ends[:2])]
    else:
        joined = b.op("Sigmoid", [pieces[0]])
        for piece in pieces[1:]:
            joined = b.op("Mul", [joined, piece])
        outputs = [b.op("MatMul", [joined, b.weight((width, 4))])]
    if other_reader:  # the size also sizes an output of its own: it must keep its value
        outputs.append(b.op("Cast", [size], to=1))
    return onnxprune.load(b.model({"x": [2, 3, 4]}, outputs))


def fused_family(graph):
    space = AnalysisManager(graph).get("prune-space")
    return space, next(f for f in space.families if any(m.value.startswith("w") and m.axis == 1 and
                                                        graph.value(m.value).tensor.shape[0] == 4
                                                        for m in f.members))


def test_the_chunk_pattern_is_recognised():
    graph = chunked_mlp(2)
    slices = [op for op in graph.ops() if op.op_type == "Slice"]
    assert [slice_chunk(graph, op, 3) for op in slices] == [Chunk(2, 0, 1, 2), Chunk(2, 1, 2, 2)]


@pytest.mark.parametrize("parts", [2, 3])
def test_chunks_multiplied_together_prune_as_one_group_and_compact_equals_masked(parts):
    width = 6
    graph = chunked_mlp(parts, width)
    space, family = fused_family(graph)
    assert family.prunable and family.size == width, family.reasons
    fused = next(m for m in family.members if m.axis == 1 and graph.value(m.value).tensor.shape[0] == 4)
    assert [sorted(row[row >= 0].tolist()) for row in fused.table] == \
        [[j + k * width for k in range(parts)] for j in range(width)]
    for groups in [(0,), (1, 4), (0, 2, 3, 5)]:  # the Mul ties chunk j's channels: they go together
        compacted, _ = check_compact_matches_masked(graph, Selection({family.id: groups}), space)
        kept = width - len(groups)
        assert compacted.initializer(fused.value).shape == (4, parts * kept)


def test_floor_division_chunks_prune_too():
    graph = chunked_mlp(2, ceil=False)
    space, family = fused_family(graph)
    assert family.prunable
    check_compact_matches_masked(graph, Selection({family.id: (2,)}), space)


def test_a_size_read_for_anything_else_still_freezes():
    _, family = fused_family(chunked_mlp(2, other_reader=True))
    assert not family.prunable and any("Shape reads this dimension" in r for r in family.reasons), family.reasons


def test_chunks_used_apart_prune_apart_and_compact_rewrites_their_bounds():
    """Nothing ties the chunks when each goes its own way: they lose different channels, and compact
    writes each Slice's new bounds (the sizes are static here, so the bounds are constants to it)."""
    graph = chunked_mlp(2, separate=True)
    space = AnalysisManager(graph).get("prune-space")
    (fused,) = [f for f in space.prunable if any(m.axis == 1 and graph.value(m.value).tensor.shape == (4, 12)
                                                 for m in f.members)]
    assert fused.size == 12  # every channel of either chunk a group of its own
    compacted, _ = check_compact_matches_masked(graph, Selection({fused.id: (0, 1, 2, 11)}), space)
    assert not [op for op in compacted.ops() if op.op_type == "Shape"]  # the run-time bounds are constants now

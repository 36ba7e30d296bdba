"""Property: for random graphs of supported ops and random selections, compact ≡ masked."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import onnxprune
from onnxprune.errors import UserError
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .builders import Builder
from .test_compact import check_compact_matches_masked

ACTIVATIONS = ["Relu", "Erf", "Sigmoid", "Tanh", "LeakyRelu", "HardSwish", None]


def random_model(data) -> tuple:
    """Draw a random CNN-like DAG: a pool of NCHW tensors grown by random supported ops."""
    b = Builder(seed=data.draw(st.integers(0, 1000), label="weights"))
    draw_int = lambda lo, hi, label: data.draw(st.integers(lo, hi), label=label)  # noqa: E731
    pool = [(b.op("Relu", [b.conv("x", 3, draw_int(2, 6, "stem"), 3)]), None, 8)]
    pool[0] = (pool[0][0], None, 8)
    channels = {pool[0][0]: int(b.inits[0].dims[0])}

    def add(name: str, c: int, side: int) -> None:
        pool.append((name, None, side))
        channels[name] = c

    def activate(name: str) -> str:
        kind = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
        return b.op(kind, [name]) if kind else name

    for _ in range(draw_int(2, 9, "steps")):
        name, _, side = data.draw(st.sampled_from(pool), label="source")
        c = channels[name]
        step = data.draw(st.sampled_from(["conv", "bn", "residual", "concat", "split", "slice", "depthwise", "se",
                                          "pool", "reshape", "scale"]), label="step")
        if step == "conv":
            out = draw_int(2, 7, "width")
            add(activate(b.conv(name, c, out, data.draw(st.sampled_from([1, 3])), bias=data.draw(st.booleans()))),
                out, side)
        elif step == "bn":
            add(activate(b.bn(name, c)), c, side)
        elif step == "residual":
            branch = b.bn(b.conv(b.op("Relu", [b.conv(name, c, c, 3)]), c, c, 1, bias=False), c)
            add(activate(b.op("Add", [name, branch])), c, side)
        elif step == "concat":
            others = [n for n, _, s in pool if s == side]
            other = data.draw(st.sampled_from(others), label="partner")
            add(b.op("Concat", [name, other], axis=1), c + channels[other], side)
        elif step == "split" and c >= 2:
            first = draw_int(1, c - 1, "split")
            outs = [b.name("split"), b.name("split")]
            from onnx import helper
            b.nodes.append(helper.make_node("Split", [name, b.const(np.array([first, c - first], np.int64))], outs,
                                            axis=1))
            add(outs[0], first, side)
            add(outs[1], c - first, side)
        elif step == "slice" and c >= 2:
            start = draw_int(0, c - 1, "start")
            end = draw_int(start + 1, c, "end")
            add(b.op("Slice", [name, b.const(np.array([start], np.int64)), b.const(np.array([end], np.int64)),
                               b.const(np.array([1], np.int64))]), end - start, side)
        elif step == "depthwise":
            add(activate(b.conv(name, c, c, 3, group=c)), c, side)
        elif step == "se":
            squeeze = draw_int(1, 4, "squeeze")
            s = b.op("Relu", [b.conv(b.op("GlobalAveragePool", [name]), c, squeeze)])
            gate = b.op("Sigmoid", [b.conv(s, squeeze, c)])
            add(b.op("Mul", [name, gate]), c, side)
        elif step == "pool" and side >= 4:
            add(b.op("MaxPool", [name], kernel_shape=[2, 2], strides=[2, 2]), c, side // 2)
        elif step == "reshape" and c % 2 == 0:
            split = b.op("Reshape", [name, b.const(np.array([1, 2, c // 2, side, side], np.int64))])
            add(b.op("Reshape", [split, b.const(np.array([1, c, side, side], np.int64))]), c, side)
        elif step == "scale":
            add(b.op("Mul", [name, b.weight((c, 1, 1))]), c, side)
    name, _, side = pool[-1]
    c = channels[name]
    if data.draw(st.booleans(), label="gemm head"):
        flat = b.op("Flatten", [b.op("Relu", [name])])
        out = b.op("Gemm", [flat, b.weight((5, c * side * side)), b.weight((5,))], transB=1)
    else:
        out = b.conv(name, c, 3)
    return b.model({"x": [1, 3, 8, 8]}, [out])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs_compact_equals_masked(data):
    graph = onnxprune.load(random_model(data))
    space = AnalysisManager(graph).get("prune-space")
    pruned = {}
    for family in space.prunable:
        count = data.draw(st.integers(0, family.size - 1), label=f"family {family.id} count")
        pruned[family.id] = tuple(sorted(data.draw(st.permutations(range(family.size)))[:count]))
    selection = Selection(pruned)
    try:
        selection.check(space)
    except UserError:
        assume(False)  # e.g. it would empty one output of a Split: refused, and rightly so
    check_compact_matches_masked(graph, selection, space)

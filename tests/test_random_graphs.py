"""Property: for random graphs of supported ops and random selections, compact ≡ masked.

Two generators: CNN-like DAGs (convolutions, residuals, Concat/Split/Slice, Gather, Pad, Expand,
squeeze-excite, pooling, reshapes) and transformer-like stacks over a dynamic batch axis (multi-head
attention with head-splitting Reshapes, MLPs, LayerNorm, Split/Concat chains, Gather, Expand to a
run-time shape, Pad). Selections prune random groups of every prunable family and, drawn too, erase
random admissible regions (residual branches) of the erase-space analysis.
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from onnxprune.passes.cleanup import remove_dead_ops, remove_unused_values
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.errors import UserError
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .builders import Builder

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
                                          "pool", "reshape", "scale", "gather", "pad", "expand"]), label="step")
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
        elif step == "gather" and c >= 2:
            picked = sorted(data.draw(st.sets(st.integers(0, c - 1), min_size=1, max_size=c - 1), label="gather"))
            add(b.op("Gather", [name, b.const(np.array(picked, np.int64))], axis=1), len(picked), side)
        elif step == "pad":
            padded = b.op("Pad", [name, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
            add(b.op("Conv", [padded, b.weight((c, c, 3, 3))], kernel_shape=[3, 3]), c, side)  # unpadded 3x3: +2 -2
        elif step == "expand":
            pooled = b.op("GlobalAveragePool", [name])
            add(b.op("Add", [name, b.op("Expand", [pooled, b.const(np.array([1, c, side, side], np.int64))])]), c, side)
    name, _, side = pool[-1]
    c = channels[name]
    if data.draw(st.booleans(), label="gemm head"):
        flat = b.op("Flatten", [b.op("Relu", [name])])
        out = b.op("Gemm", [flat, b.weight((5, c * side * side)), b.weight((5,))], transB=1)
    else:
        out = b.conv(name, c, 3)
    return b.model({"x": [1, 3, 8, 8]}, [out])


def random_transformer(data):
    """Draw a transformer-like stack over input [N, S, 5] (N symbolic): a stream of width D grown by
    attention and MLP residual blocks, LayerNorms, Split/Concat chains and side branches (Gather,
    Pad, Expand), each side branch ending in an output of its own."""
    b = Builder(seed=data.draw(st.integers(0, 1000), label="weights"))
    draw_int = lambda lo, hi, label: data.draw(st.integers(lo, hi), label=label)  # noqa: E731
    heads, head_dim, seq = draw_int(1, 3, "heads"), draw_int(2, 3, "head dim"), 3
    width = heads * head_dim

    def linear(x, n_in, n_out, bias=True):
        y = b.op("MatMul", [x, b.weight((n_in, n_out))])
        return b.op("Add", [y, b.weight((n_out,))]) if bias else y

    h = linear("x", 5, width)
    outputs = []
    for _ in range(draw_int(1, 5, "steps")):
        step = data.draw(st.sampled_from(["attention", "mlp", "layernorm", "splitconcat", "gather", "pad",
                                          "expand"]), label="step")
        if step == "attention":
            split = b.const(np.array([0, 0, heads, head_dim], np.int64))  # 0 copies the batch and sequence
            q, k, v = (b.op("Reshape", [linear(h, width, width), split]) for _ in range(3))
            q, v = (b.op("Transpose", [t_], perm=[0, 2, 1, 3]) for t_ in (q, v))
            k = b.op("Transpose", [k], perm=[0, 2, 3, 1])
            scores = b.op("Div", [b.op("MatMul", [q, k]), b.const(np.array(np.sqrt(head_dim), np.float32))])
            context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
            merged = b.op("Reshape", [b.op("Transpose", [context], perm=[0, 2, 1, 3]),
                                      b.const(np.array([0, 0, width], np.int64))])
            h = b.op("Add", [h, linear(merged, width, width)])
        elif step == "mlp":
            hidden = draw_int(2, 8, "mlp width")
            act = data.draw(st.sampled_from(["Relu", "Erf", "Tanh"]), label="mlp activation")
            h = b.op("Add", [h, linear(b.op(act, [linear(h, width, hidden)]), hidden, width)])
        elif step == "layernorm":
            h = b.op("LayerNormalization", [h, b.weight((width,)), b.weight((width,))], axis=-1)
        elif step == "splitconcat" and width >= 2:
            first = draw_int(1, width - 1, "split")
            parts = [b.name("split"), b.name("split")]
            from onnx import helper
            b.nodes.append(helper.make_node("Split", [h, b.const(np.array([first, width - first], np.int64))], parts,
                                            axis=2))
            mixed = [b.op("Relu", [linear(p_, n, n)]) for p_, n in zip(parts, (first, width - first))]
            h = b.op("Add", [h, b.op("Concat", mixed[::-1], axis=2)])
        elif step == "gather" and width >= 2:
            picked = sorted(data.draw(st.sets(st.integers(0, width - 1), min_size=1, max_size=width - 1),
                                      label="gather"))
            side = b.op("Gather", [h, b.const(np.array(picked, np.int64))], axis=2)
            outputs.append(linear(b.op("Relu", [side]), len(picked), 2))
        elif step == "pad":
            side = b.op("Pad", [h, b.const(np.array([0, 1, 0, 0, 1, 0], np.int64))])  # the sequence grows by 2
            outputs.append(linear(b.op("ReduceMean", [side], axes=[1], keepdims=1), width, 2))
        elif step == "expand":
            bias = b.weight((1, 1, width))
            target = data.draw(st.sampled_from(["shape", "constant"]), label="expand target")
            shape = b.op("Shape", [h]) if target == "shape" else b.const(np.array([1, seq, width], np.int64))
            h = b.op("Mul", [h, b.op("Expand", [bias, shape])])
    outputs.insert(0, linear(h, width, 3))
    return b.model({"x": ["N", seq, 5]}, outputs)


def check_random_selection(data, graph) -> None:
    """Draw groups of every prunable family and admissible erased regions; compact ≡ masked."""
    # the generators leave branches that reach no output; drop them (compact with erased regions drops
    # such dead code too, and then fails on families pruned there: see test_erase_space's xfail)
    remove_dead_ops(graph)
    remove_unused_values(graph, graph.names_used_outside())
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    erased: list[int] = []
    if erasing.regions and data.draw(st.booleans(), label="erase"):
        for region in data.draw(st.permutations(range(len(erasing.regions))), label="regions"):
            wanted = not erased or data.draw(st.booleans(), label=f"erase {region}")  # at least one
            if wanted and erasing.admissible([*erased, region]):
                erased.append(region)
    pruned = {}
    for family in space.prunable:
        count = data.draw(st.integers(0, family.size - 1), label=f"family {family.id} count")
        pruned[family.id] = tuple(sorted(data.draw(st.permutations(range(family.size)))[:count]))
    selection = Selection(pruned, tuple(sorted(erased)))
    event(f"erased regions: {bool(erased)}")  # --hypothesis-show-statistics shows what the draws covered
    event(f"pruned head families: {any(space.family(f).kind == 'head' and g for f, g in pruned.items())}")
    try:
        selection.check(space)
        reference = masked_graph(graph, space, selection, erasing)
        compacted = graph.copy()
        compact_graph(compacted, space, selection, am.get("shapes"), erasing)
    except UserError:
        assume(False)  # it would empty one output of a Split, or prune into an erased region: refused, rightly
    compacted.verify()
    onnx.checker.check_model(compacted.to_onnx(), full_check=True)
    feeds = [random_inputs(graph, np.random.default_rng(i), 2) for i in range(2)]
    result = compare(reference, compacted, feeds, 1e-4)
    assert result.ok, result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs_compact_equals_masked(data):
    check_random_selection(data, onnxprune.load(random_model(data)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_random_transformers_compact_equals_masked(data):
    check_random_selection(data, onnxprune.load(random_transformer(data)))

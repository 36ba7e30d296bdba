"""Known answers: the families, sizes, members and reasons that prune-space finds."""

from __future__ import annotations

import numpy as np
import pytest

import onnxprune
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import CONSUMER, PRODUCER

from .builders import Builder
from .conftest import ZOO


def space_of(model):
    return AnalysisManager(onnxprune.load(model)).get("prune-space")


def family_with(space, value: str, axis: int = 0):
    found = [f for f in space.families if any(m.value == value and m.axis == axis for m in f.members)]
    assert len(found) == 1, (value, axis, [f.name for f in found])
    return found[0]


def member(family, value: str, axis: int):
    (found,) = [m for m in family.members if m.value == value and m.axis == axis]
    return found


def test_chain_conv_bn_relu_and_interface():
    b = Builder()
    h = b.op("Relu", [b.bn(b.conv("x", 3, 8, 3, bias=False), 8)])
    y = b.conv(h, 8, 4)
    space = space_of(b.model({"x": [1, 3, 8, 8]}, [y]))
    hidden = family_with(space, "w1")
    assert hidden.prunable and hidden.size == 8 and hidden.kind == "channel"
    assert {m.value for m in hidden.producers} == {"w1", "w3", "w4", "w5", "w6"}  # conv rows, BN scale/bias/mean/var
    assert member(hidden, "w9", 1).role == CONSUMER  # the next conv's columns
    assert "model input" in family_with(space, "x", 1).reasons[0]
    assert "model output" in family_with(space, "w9", 0).reasons[0]


def test_flatten_to_gemm_owns_blocks_of_columns():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 5, 3)])
    flat = b.op("Flatten", [b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])])
    y = b.op("Gemm", [flat, b.weight((10, 20)), b.weight((10,))], transB=1)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert family.prunable and family.size == 5
    columns = member(family, "w7", 1)
    assert columns.role == CONSUMER
    np.testing.assert_array_equal(columns.table[1], [4, 5, 6, 7])


def test_concat_of_two_producers_keeps_two_families_with_offsets():
    b = Builder()
    cat = b.op("Concat", [b.op("Relu", [b.conv("x", 3, 3)]), b.op("Relu", [b.conv("x", 3, 5)])], axis=1)
    y = b.conv(cat, 8, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    first, second = family_with(space, "w1"), family_with(space, "w5")
    assert (first.size, second.size) == (3, 5) and first.prunable and second.prunable
    np.testing.assert_array_equal(member(first, cat, 1).indices(range(3)), [0, 1, 2])
    np.testing.assert_array_equal(member(second, cat, 1).indices(range(5)), [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(member(second, "w10", 1).table[:, 0], [3, 4, 5, 6, 7])


def test_residual_add_joins_two_producers():
    b = Builder()
    a, c = b.conv("x", 3, 6), b.conv("x", 3, 6)
    y = b.conv(b.op("Relu", [b.op("Add", [a, c])]), 6, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert family.prunable and family.size == 6
    assert {m.value for m in family.producers} == {"w1", "w2", "w4", "w5"}


def test_depthwise_joins_its_input_family():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 8)])
    d = b.op("Relu", [b.conv(h, 8, 8, k=3, group=8)])
    y = b.conv(d, 8, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 6, 6]}, [y])), "w1")
    assert family.prunable and family.size == 8
    assert member(family, "w5", 0).role == PRODUCER  # the depthwise weight


def test_squeeze_excitation_gate_keeps_both_families_prunable():
    b = Builder()
    x = b.op("Relu", [b.conv("x", 3, 8)])
    s = b.op("Relu", [b.conv(b.op("GlobalAveragePool", [x]), 8, 4)])
    gate = b.op("Sigmoid", [b.conv(s, 4, 8)])
    y = b.conv(b.op("Mul", [x, gate]), 8, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    channels, squeeze = family_with(space, "w1"), family_with(space, "w6")
    assert channels.prunable and channels.size == 8
    assert squeeze.prunable and squeeze.size == 4
    assert channels is not squeeze


def test_sigmoid_before_a_contraction_is_not_zero_invariant():
    b = Builder()
    y = b.conv(b.op("Sigmoid", [b.conv("x", 3, 8)]), 8, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert not family.prunable
    assert any("not zero-invariant" in r and "Sigmoid" in r for r in family.reasons)


def test_channel_shuffle_is_frozen_not_guessed():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 4)])
    split = b.op("Reshape", [h, b.const(np.array([1, 2, 2, 4, 4], np.int64))])
    moved = b.op("Transpose", [split], perm=[0, 2, 1, 3, 4])
    shuffled = b.op("Reshape", [moved, b.const(np.array([1, 4, 4, 4], np.int64))])
    y = b.conv(shuffled, 4, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    assert not family_with(space, "w1").prunable
    assert any("inner axis" in r for r in family_with(space, "w1").reasons)


def test_unknown_op_freezes_with_its_name():
    b = Builder()
    h = b.op("Mystery", [b.conv("x", 3, 4)], domain="acme")
    y = b.conv(h, 4, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y], domains=["acme"])), "w1")
    assert any("no pruning rule for acme.Mystery" in r for r in family.reasons)


def test_grouped_convolution_loses_whole_groups():
    b = Builder()
    y = b.conv(b.op("Relu", [b.conv(b.op("Relu", [b.conv("x", 3, 8)]), 8, 8, k=3, group=2)]), 8, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    family = family_with(space, "w1")
    # one group of the family is one group of the convolution: 4 channels in and 4 out, with the
    # producing 1x1 convolution's 4 rows, never part of a group (groups must stay equal)
    assert family.prunable and family.size == 2
    assert member(family, "w1", 0).table.shape == (2, 4)  # w1: the 1x1 convolution's weight
    assert sorted(member(family, "w1", 0).table[0]) == [0, 1, 2, 3]
    assert member(family, "w5", 0).table.shape == (2, 4)  # the grouped convolution's output rows join it
    assert member(family, "w9", 1).table.shape == (2, 4)  # and the next convolution's input columns
    assert not any(m.value == "w5" and m.axis == 1 for f in space.families for m in f.members)  # each group's width stays


def test_grouped_convolution_with_uneven_shapes_stays_frozen():
    b = Builder()
    x = b.op("Relu", [b.conv("x", 3, 8)])
    w = b.weight((6, 3, 3, 3))  # 8 input channels do not split into 3 groups of 3: onnxruntime rejects it
    y = b.op("Conv", [x, w], kernel_shape=[3, 3], pads=[1] * 4, group=3)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert not family.prunable


# ---------------------------------------------------------------------- zoo known answers
def test_resnet_residual_families():
    space = space_of(onnxprune.load(ZOO / "resnet.onnx").to_onnx())
    stem = family_with(space, "stem.0.weight")
    assert stem.prunable and stem.size == 16
    assert "block1.conv2.weight" in {m.value for m in stem.producers}  # identity shortcut joins the stem
    block2 = family_with(space, "block2.conv2.weight")
    assert "block2.shortcut.0.weight" in {m.value for m in block2.producers}  # projection joins block2's output
    assert sorted(f.size for f in space.prunable) == [16, 16, 32, 32, 64, 64]


def test_transformer_heads_ffn_and_frozen_hidden_size():
    space = space_of(onnxprune.load(ZOO / "transformer.onnx").to_onnx())
    heads = family_with(space, "q.weight")
    assert heads.kind == "head" and heads.size == 4 and heads.prunable
    assert {m.value for m in heads.producers} == {"q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias"}
    assert member(heads, "o.weight", 1).role == CONSUMER
    assert member(heads, "q.weight", 0).table.shape == (4, 16)  # 16 rows of head_dim per head
    ffn = family_with(space, "ffn1.weight")
    assert ffn.prunable and ffn.size == 256 and ffn.kind == "channel"
    hidden = family_with(space, "o.weight")
    assert not hidden.prunable
    assert any("LayerNormalization normalises over this axis" in r for r in hidden.reasons)


@pytest.mark.parametrize("name, sizes", [
    ("mlp.onnx", [64, 128]), ("vgg.onnx", [16, 16, 32, 32, 64, 64]),
    ("mobilenetv2.onnx", [16, 24, 32, 64, 64, 96, 96, 128]), ("densenet.onnx", [8] * 8 + [16, 24]),
    ("digits_cnn.onnx", [16, 32, 32]),
])
def test_zoo_prunable_family_sizes(name, sizes):
    assert sorted(f.size for f in space_of(onnxprune.load(ZOO / name).to_onnx()).prunable) == sizes


def test_shape_freezes_only_the_dimensions_that_are_used():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 6)])
    batch = b.op("Slice", [b.op("Cast", [b.op("Shape", [h])], to=7), b.const(np.array([0], np.int64)),
                           b.const(np.array([1], np.int64))])  # only the batch size is read
    target = b.op("Concat", [batch, b.const(np.array([-1], np.int64))], axis=0)
    flat = b.op("Reshape", [b.op("GlobalAveragePool", [h]), target])
    y = b.op("Gemm", [flat, b.weight((4, 6)), b.weight((4,))], transB=1)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert family.prunable, family.reasons
    for arithmetic in (False, True):
        b2 = Builder()
        h2 = b2.op("Relu", [b2.conv("x", 3, 6)])
        pooled = b2.op("GlobalAveragePool", [h2])
        target = b2.op("Shape", [pooled])
        if arithmetic:  # the dimensions feed arithmetic: a Reshape can no longer tie them to its axes
            target = b2.op("Mul", [target, b2.const(np.ones(4, np.int64))])
        y2 = b2.conv(b2.op("Reshape", [pooled, target]), 6, 2)
        family = family_with(space_of(b2.model({"x": [1, 3, 4, 4]}, [y2])), "w1")
        # read only into a Reshape target, the channel count is tied to the axis it sizes and may shrink
        assert family.prunable != arithmetic, family.reasons
        assert any("Shape reads this dimension" in r for r in family.reasons) == arithmetic


def test_axes_a_rule_does_not_map_freeze():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 4)])
    scales = b.op("Concat", [b.op("Constant", [], value=onnx_tensor([1.0, 1.0])),
                             b.op("Constant", [], value=onnx_tensor([2.0, 2.0]))], axis=0)
    up = b.op("Resize", [h, "", scales], mode="nearest")
    y = b.conv(up, 4, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    assert sorted(f.size for f in space.prunable) == [4]  # the float scales vector is no family
    scale_family = [f for f in space.families if any(m.value == scales for m in f.members)]
    assert all(not f.prunable for f in scale_family)


def onnx_tensor(values):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(values, np.float32))


def test_einsum_linear_layers_form_families_and_compact_exactly():
    from onnxprune.space import Selection

    from .test_compact import check_compact_matches_masked

    b = Builder()
    h = b.op("Relu", [b.op("Einsum", ["x", b.weight((8, 6))], equation="bsd,hd->bsh")])
    y = b.op("Einsum", [h, b.weight((8, 3))], equation="bsh,ho->bso")
    graph = onnxprune.load(b.model({"x": [2, 5, 6]}, [y]))
    space = AnalysisManager(graph).get("prune-space")
    (hidden,) = space.prunable
    assert hidden.size == 8 and member(hidden, "w4", 0).role == CONSUMER
    check_compact_matches_masked(graph, Selection({hidden.id: (1, 4, 6)}), space)


@pytest.mark.parametrize("name, qkv, rows_per_head", [
    ("vit.onnx", "blocks.0.qkv.weight", 48),  # fused [3, heads, head_dim] split: 3 x 16 rows per head
    ("vit_dynamo.onnx", None, 48),
    ("gpt.onnx", "blocks.0.c_attn.weight", 48),
    ("bert.onnx", "layers.0.query.weight", 16),
])
def test_attention_heads_of_other_transformers(name, qkv, rows_per_head):
    space = space_of(onnxprune.load(ZOO / name).to_onnx())
    heads = [f for f in space.prunable if f.kind == "head"]
    assert [f.size for f in heads] == [4, 4]  # two blocks of four heads
    widest = max(int((m.table >= 0).sum(axis=1).max()) for m in heads[0].producers)
    assert widest == rows_per_head
    if qkv is not None:
        assert qkv in {m.value for m in heads[0].producers}
    assert all(f.kind == "channel" and f.size == (256 if name == "gpt.onnx" else 128)
               for f in space.prunable if f.kind != "head")  # the MLP intermediates
    hidden = [f for f in space.families if not f.prunable and
              any("LayerNormalization normalises over this axis" in r for r in f.reasons)]
    assert hidden


def test_shared_weights_tie_their_channels():
    b = Builder()
    shared = b.weight((6, 3, 1, 1))
    a = b.op("Relu", [b.op("Conv", ["x", shared])])
    c = b.op("Relu", [b.op("Conv", ["x", shared])])
    y = b.conv(b.op("Concat", [a, c], axis=1), 12, 2)
    space = space_of(b.model({"x": [1, 3, 4, 4]}, [y]))
    family = family_with(space, shared)
    assert family.prunable and family.size == 6
    concat_member = [m for m in family.members if m.value.startswith("concat")][0]
    np.testing.assert_array_equal(concat_member.table[2], [2, 8])  # channel 2 of both copies


def test_depth_to_space_freezes_channels():
    b = Builder()
    y = b.conv(b.op("DepthToSpace", [b.op("Relu", [b.conv("x", 3, 8)])], blocksize=2), 2, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert any("mixes channels and space" in r for r in family.reasons)


# ---------------------------------------------------------------------- regressions found by review
def _gemm_family(b: Builder, width: int) -> str:
    return b.op("Gemm", ["inp", b.weight((4, width))])


def test_outer_sum_carries_the_family_on_two_axes_and_is_not_zero_invariant():
    b = Builder()
    x = _gemm_family(b, 6)  # [1, 6]
    z = b.op("Add", [x, b.op("Transpose", [x], perm=[1, 0])])  # z[g, j] = x[j] + x[g]: row g is not zero
    y = b.op("ReduceSum", [z], keepdims=0)
    family = family_with(space_of(b.model({"inp": [1, 4]}, [y])), "w1", 1)  # the Gemm's output columns
    assert not family.prunable and any("not zero-invariant" in r for r in family.reasons)


def test_square_weight_in_one_family_on_both_axes():
    b = Builder()
    x = b.op("Sigmoid", [b.op("MatMul", ["inp", b.weight((5, 6))])])
    z = b.op("MatMul", [x, b.weight((6, 6))])  # axis 0 consumes x (never zeroed), axis 1 produces z
    y = b.op("MatMul", [b.op("Mul", [x, z]), b.weight((6, 3))])
    family = family_with(space_of(b.model({"inp": [4, 5]}, [y])), "w1", 1)
    assert not family.prunable


def test_instance_norm_spatial_axes_do_not_shrink():
    b = Builder()
    norm = b.op("InstanceNormalization", [b.weight((1, 4, 6)), b.weight((4,)), b.weight((4,))])
    a = b.op("Mul", [b.op("Mul", [norm, b.weight((1, 1, 6))]), "x"])
    y = b.op("ReduceSum", [a, b.const(np.array([2], np.int64))], keepdims=1)
    space = space_of(b.model({"x": [1, 4, 1]}, [y]))
    spatial = family_with(space, "w5", 2)
    assert any("InstanceNormalization normalises over this axis" in r for r in spatial.reasons)


def test_extra_outputs_are_not_claimed_zero():
    b = Builder()
    h = b.conv("x", 3, 6)
    mask = b.name("mask")
    from onnx import helper

    b.nodes.append(helper.make_node("Dropout", [h], [b.name("d"), mask]))
    p = b.op("Mul", [b.op("Sigmoid", [h]), b.op("Cast", [mask], to=1)])  # the mask is all ones, not zero
    y = b.conv(p, 6, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert not family.prunable and any("not zero-invariant" in r for r in family.reasons)


def test_an_exponent_zeroed_as_a_producer_elsewhere_breaks_pow():
    b = Builder()
    h = b.conv("x", 3, 6)
    e = b.const(np.full((1, 6, 1, 1), 2.0, np.float32), "e")
    a = b.op("Add", [b.op("Pow", [h, e]), b.op("Mul", [h, e])])  # the Mul makes e a producer: zeroed
    y = b.conv(a, 6, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert not family.prunable


def test_infinite_values_on_a_zeroed_slice_poison_later_zero_claims():
    b = Builder()
    h = b.conv("x", 3, 6)
    inverse = b.op("Pow", [h, b.const(np.array(-1.0, np.float32))])  # 1/0 = inf on a zeroed channel
    normed = b.op("InstanceNormalization", [inverse, b.weight((6,)), b.weight((6,))])  # 0 * inf = NaN
    y = b.conv(normed, 6, 2)
    family = family_with(space_of(b.model({"x": [1, 3, 4, 4]}, [y])), "w1")
    assert not family.prunable

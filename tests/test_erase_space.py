"""erase-space: the erasable regions are exactly the blocks a person would name."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.errors import UserError
from onnxprune.passmanager import AnalysisManager
from onnxprune.space import Selection

from .builders import Builder
from .conftest import ZOO
from .test_cli import run_cli


def regions_of(graph):
    return AnalysisManager(graph).get("erase-space")


def merges(name):
    space = regions_of(onnxprune.load(ZOO / f"{name}.onnx"))
    return sorted((r.merge, r.slot) for r in space.regions), space


# model -> the (merge, input slot) of every region: the residual branches a person names (for resnet's
# projection blocks, the shortcut conv is a region too, exclusive with the main branch)
KNOWN = {
    "resnet": [("/block1/Add", 0), ("/block2/Add", 0), ("/block2/Add", 1), ("/block3/Add", 0), ("/block3/Add", 1)],
    "mobilenetv2": [("/blocks/blocks.0/Add", 1), ("/blocks/blocks.2/Add", 1)],
    "vit": [(f"/blocks/blocks.{i}/Add{s}", 1) for i in range(2) for s in ("", "_1")],
    "gpt": [(f"/blocks/blocks.{i}/Add{s}", 1) for i in range(2) for s in ("", "_1")],
    "bert": [(f"/layers.{i}/Add_{s}", 1) for i in range(2) for s in (1, 2)],
    "llama": [(f"/layers.{i}/Add_{s}", 1) for i in range(2) for s in (3, 4)],
    "transformer": [("/Add", 1), ("/Add_1", 1)],
    "yoloish": [("/backbone/backbone.2/m.0/Add", 1), ("/backbone/backbone.4/m.0/Add", 1),
                ("/backbone/backbone.4/m.1/Add", 1)],
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_regions_are_the_residual_blocks(name):
    found, space = merges(name)
    if name == "resnet":  # block1: identity shortcut (one region); blocks 2-3: main branch and projection
        assert found == sorted(KNOWN[name])
        assert sorted(map(sorted, space.exclusive)) == [[1, 2], [3, 4]]
        assert {(r.merge, len(r.ops)) for r in space.regions} >= {("/block1/Add", 5), ("/block2/Add", 2)}
        return
    assert found == sorted(KNOWN[name])
    assert not space.exclusive  # identity shortcuts: the merge always keeps its skip input


@pytest.mark.parametrize("name", ["vgg", "mlp", "digits_cnn", "fashion_cnn", "densenet", "unetish", "inceptionish",
                                  "shufflenetish", "conv1d_audio"])
def test_models_without_summed_branches_have_no_regions(name):
    assert regions_of(onnxprune.load(ZOO / f"{name}.onnx")).regions == ()


def test_attention_and_mlp_regions_hold_their_weights():
    _, space = merges("vit")
    attention, mlp = space.regions[0], space.regions[1]
    assert len(attention.ops) > len(mlp.ops) > 3
    assert attention.params == 4 * 64 * 64 + 4 * 64 + 2 * 64  # q, k, v, out projections + biases, LayerNorm
    assert attention.flops > 0 and mlp.params > 0


def test_hand_built_residual_block():
    b = Builder()
    stem = b.op("Relu", [b.conv("x", 3, 4)])
    y = b.conv(b.op("Relu", [b.conv(stem, 4, 4)]), 4, 4)
    out = b.op("Add", [stem, y])
    space = regions_of(onnxprune.load(b.model({"x": [1, 3, 4, 4]}, [out])))
    (region,) = space.regions
    assert region.entry == stem and region.exit == y and region.slot == 1
    assert list(region.ops) == ["Conv", "Relu", "Conv"]
    assert region.params == 2 * (4 * 4 + 4)


def test_branch_whose_inside_is_read_elsewhere_is_not_a_region():
    b = Builder()
    stem = b.op("Relu", [b.conv("x", 3, 4)])
    inner = b.op("Relu", [b.conv(stem, 4, 4)])
    y = b.conv(inner, 4, 4)
    out = b.op("Add", [stem, y])
    model = b.model({"x": [1, 3, 4, 4]}, [out, inner])  # `inner` leaves the block: erasing it would break that
    assert regions_of(onnxprune.load(model)).regions == ()


def test_parallel_summed_branches_may_not_all_go():
    b = Builder()
    stem = b.op("Relu", [b.conv("x", 3, 4)])
    out = b.op("Sum", [b.conv(stem, 4, 4), b.conv(stem, 4, 4), b.conv(stem, 4, 4)])
    space = regions_of(onnxprune.load(b.model({"x": [1, 3, 4, 4]}, [out])))
    assert len(space.regions) == 3
    assert space.exclusive == ((0, 1, 2),)
    assert space.admissible({0, 1}) and not space.admissible({0, 1, 2})


# ---------------------------------------------------------------- erasing: compact ≡ masked
WITH_REGIONS = ["resnet", "fashion_resnet", "resnet50ish", "mobilenetv2", "mobilenetv3ish", "efficientnetish", "regnetish", "yoloish",
                "convnextish", "vit", "vit_dynamo", "bert", "bert_dynamo", "gpt", "llama", "llama_dynamo",
                "transformer", "resnet_dynamo"]


def random_admissible(erasing, rng):
    order = [int(r) for r in rng.permutation(len(erasing.regions))]
    chosen = []
    for r in order[:int(rng.integers(1, len(order) + 1))]:
        if erasing.admissible(chosen + [r]):
            chosen.append(r)
    return tuple(sorted(chosen))


@pytest.mark.parametrize("name", WITH_REGIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_erasing_regions_computes_the_masked_model(name, seed):
    graph = onnxprune.load(ZOO / f"{name}.onnx")
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    selection = Selection({}, random_admissible(erasing, np.random.default_rng(seed)))
    assert selection.erased
    reference = masked_graph(graph, space, selection, erasing)
    compacted = graph.copy()
    compact_graph(compacted, space, selection, am.get("shapes"), erasing)
    compacted.verify()
    onnx.checker.check_model(compacted.to_onnx(), full_check=True)
    assert len(compacted) < len(graph)  # the depth reduction is real: fewer nodes
    feeds = [random_inputs(graph, np.random.default_rng(seed + i), 2) for i in range(2)]
    result = compare(reference, compacted, feeds, 1e-4)
    assert result.ok, result
    # and the masked model really differs from the original (the erased blocks did something)
    assert not compare(graph, reference, feeds, 1e-4).ok


def test_inadmissible_region_sets_are_rejected():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    for group in erasing.exclusive:
        with pytest.raises(UserError, match="would leave their merge"):
            compact_graph(graph.copy(), space, Selection({}, tuple(group)), am.get("shapes"), erasing)
    with pytest.raises(UserError, match="but the model has 5 regions"):
        compact_graph(graph.copy(), space, Selection({}, (7,)), am.get("shapes"), erasing)


def test_cli_prune_erase_writes_regions_and_compact_reproduces_it(tmp_path, capsys):
    out, sel, again = tmp_path / "a.onnx", tmp_path / "s.json", tmp_path / "b.onnx"
    code, stdout, _ = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.2", "--erase", "2",
                              "--selection-out", sel)
    assert code == 0 and "erased 2 regions" in stdout
    regions = json.loads(sel.read_text())["regions"]
    assert len(regions) == 2 and all(r["group"] for r in regions)
    code, _, _ = run_cli(capsys, "compact", ZOO / "resnet.onnx", "--selection", sel, "-o", again)
    assert code == 0 and out.read_bytes() == again.read_bytes()


def test_pruning_into_an_erased_region_is_refused():
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    region = erasing.regions[0]
    inner = next(f for f in space.prunable if any(m.value in region.parameters for m in f.members))
    with pytest.raises(UserError, match="reaches into an erased region"):
        compact_graph(graph.copy(), space, Selection({inner.id: (0,)}, (0,)), am.get("shapes"), erasing)


def test_nested_regions_know_their_parent_and_erase_together():
    """x + A(x) where A = conv, then y + B(y), then conv: B nests inside A."""
    b = Builder(seed=5)
    x = b.op("Relu", [b.conv("x", 3, 4)])
    y = b.op("Relu", [b.conv(x, 4, 4)])
    inner = b.op("Add", [y, b.bn(b.conv(y, 4, 4), 4)])
    outer = b.op("Add", [x, b.bn(b.conv(inner, 4, 4), 4)])
    graph = onnxprune.load(b.model({"x": [1, 3, 5, 5]}, [outer]))
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    assert len(erasing.regions) == 2 and not erasing.exclusive
    inner_region, outer_region = sorted(erasing.regions, key=lambda r: len(r.ops))
    assert inner_region.parent == outer_region.id and outer_region.parent is None
    assert set(inner_region.ops) < set(outer_region.ops)
    for erased in [(inner_region.id,), (outer_region.id,), (inner_region.id, outer_region.id)]:
        selection = Selection({}, erased)
        reference = masked_graph(graph, space, selection, erasing)
        compacted = graph.copy()
        compact_graph(compacted, space, selection, am.get("shapes"), erasing)
        feeds = [random_inputs(graph, np.random.default_rng(i), 1) for i in range(2)]
        assert compare(reference, compacted, feeds, 1e-4).ok
        assert len(compacted) < len(graph)


def test_a_branch_whose_merge_would_broadcast_without_it_is_not_a_region(tmp_path, capsys):
    """Add(Conv(GlobalAveragePool(a)) [1,C,1,1], Conv(Relu(Conv(a))) [1,C,H,W]): without the spatial
    branch the Add's output would shrink to [1,C,1,1], so only the pooled side is a region."""
    b = Builder()
    a = b.op("Relu", [b.conv("x", 3, 8, 3)])
    pooled = b.conv(b.op("GlobalAveragePool", [a]), 8, 8)
    spatial = b.conv(b.op("Relu", [b.conv(a, 8, 8, 3)]), 8, 8, 3)
    out = b.op("Add", [pooled, spatial])
    model = b.model({"x": [1, 3, 8, 8]}, [out])
    graph = onnxprune.load(model)
    space = regions_of(graph)
    assert [(r.exit, r.slot) for r in space.regions] == [(pooled, 0)]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code, out_text, err = run_cli(capsys, "prune", path, "--ratio", "0", "--erase", "1", "-o", tmp_path / "o.onnx")
    assert code == 0 and "erased 1 regions" in out_text and "max abs diff" in out_text, err


def test_a_sum_of_thousands_of_branches_is_bounded(tmp_path):
    """One Sum of 2,000 branches made erase-space quadratic (9 s); such a merge offers no regions."""
    from onnx import TensorProto, helper, numpy_helper

    count = 2000
    inits = [numpy_helper.from_array(np.full(4, i + 1, np.float32), f"w{i}") for i in range(count)]
    nodes = [helper.make_node("Mul", ["x", f"w{i}"], [f"m{i}"]) for i in range(count)]
    nodes.append(helper.make_node("Sum", [f"m{i}" for i in range(count)], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    graph = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    assert regions_of(graph).regions == ()  # (with 64 branches or fewer, each would be a region)


def test_erasing_with_a_dead_branch_and_pruning_there():
    """A branch that reaches no output, pruned, while a residual block elsewhere is erased."""
    from .builders import Builder

    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 4, 3)])
    b.op("Relu", [b.conv(h, 4, 3, 1)])  # dead: nothing reads it
    branch = b.bn(b.conv(b.op("Relu", [b.conv(h, 4, 4, 3)]), 4, 4, 1, bias=False), 4)
    out = b.conv(b.op("Add", [h, branch]), 4, 2, 1)
    graph = onnxprune.load(b.model({"x": [1, 3, 6, 6]}, [out]))
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    dead = next(f for f in space.prunable if f.size == 3)
    selection = Selection({dead.id: (0,)}, (0,))
    reference = masked_graph(graph, space, selection, erasing)
    compacted = graph.copy()
    compact_graph(compacted, space, selection, am.get("shapes"), erasing)
    feeds = [random_inputs(graph, np.random.default_rng(0), 2)]
    assert compare(reference, compacted, feeds, 1e-4).ok

"""compact ≡ masked: removing selected groups computes what zeroing their parameters computes."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnxprune.passes.compact import compact_graph, masked_graph
from onnxprune.passes.verify import compare, random_inputs

import onnxprune
from onnxprune.choose import AxisBudget
from onnxprune.errors import UserError
from onnxprune.facts import VerifyReport
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.space import Selection

from .builders import Builder
from .conftest import ZOO, ZOO_MODELS
from .test_cli import run_cli


def random_selection(space, rng: np.random.Generator, leave_one: bool = False) -> Selection:
    """Random groups of every prunable family (all but one with leave_one), never emptying a tensor."""
    budget, pruned = AxisBudget(space), {}
    for family in space.prunable:
        count = family.size - 1 if leave_one else int(rng.integers(0, family.size))
        candidates = rng.permutation(family.size)[:count]
        pruned[family.id] = tuple(sorted(int(g) for g in candidates if budget.take(family, int(g))))
    return Selection(pruned)


def check_compact_matches_masked(graph: onnxprune.Graph, selection: Selection, space=None, seed: int = 0,
                                 full_check: bool = True):
    am = AnalysisManager(graph)
    space = space or am.get("prune-space")
    reference = masked_graph(graph, space, selection)
    compacted = graph.copy()
    report = compact_graph(compacted, space, selection, am.get("shapes"))
    compacted.verify()
    onnx.checker.check_model(compacted.to_onnx(), full_check=full_check)
    feeds = [random_inputs(graph, np.random.default_rng(seed + i), 2) for i in range(2)]
    result = compare(reference, compacted, feeds, 1e-4)
    assert result.ok, result
    return compacted, report


@pytest.mark.parametrize("name", ZOO_MODELS)
@pytest.mark.parametrize("seed", [0, 1, 2, "leave-one"])
def test_zoo_compact_equals_masked(name, seed):
    graph = onnxprune.load(ZOO / name)
    space = AnalysisManager(graph).get("prune-space")
    selection = random_selection(space, np.random.default_rng(7 if seed == "leave-one" else seed),
                                 leave_one=seed == "leave-one")
    compacted, report = check_compact_matches_masked(graph, selection, space)
    if selection.group_count:
        assert report.parameters_after < report.parameters_before


def test_depthwise_group_attribute_follows_the_channels():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 8)])
    d = b.op("Relu", [b.conv(h, 8, 8, k=3, group=8)])
    graph = onnxprune.load(b.model({"x": [1, 3, 6, 6]}, [b.conv(d, 8, 2)]))
    space = AnalysisManager(graph).get("prune-space")
    (family,) = [f for f in space.prunable if f.size == 8]
    compacted, _ = check_compact_matches_masked(graph, Selection({family.id: (1, 4, 6)}), space)
    depthwise = [op for op in compacted.ops() if op.op_type == "Conv" and op.attr("group", 1) != 1]
    assert [op.attr("group") for op in depthwise] == [5]


@pytest.mark.parametrize("per_out", [4, 8])  # ResNeXt/RegNet blocks (out = in per group), and 2x wider
def test_grouped_convolution_loses_whole_groups_exactly(per_out):
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 16)])
    g = b.op("Relu", [b.conv(h, 16, 4 * per_out, k=3, group=4)])
    graph = onnxprune.load(b.model({"x": [1, 3, 6, 6]}, [b.conv(g, 4 * per_out, 2)]))
    space = AnalysisManager(graph).get("prune-space")
    (family,) = [f for f in space.prunable if f.size == 4]
    compacted, _ = check_compact_matches_masked(graph, Selection({family.id: (1, 2)}), space)
    grouped = [op for op in compacted.ops() if op.op_type == "Conv" and op.attr("group", 1) != 1]
    assert [op.attr("group") for op in grouped] == [2]
    weight = compacted.initializer(compacted.inputs_of(grouped[0])[1].name)
    assert weight.shape == (2 * per_out, 4, 3, 3)


def test_head_pruning_rewrites_reshape_shapes_without_touching_shared_constants():
    graph = onnxprune.load(ZOO / "transformer.onnx")
    shared_before = {v.name: v.tensor.array.copy() for v in graph.initializers if v.tensor.data_type == 7}
    space = AnalysisManager(graph).get("prune-space")
    heads = next(f for f in space.families if f.kind == "head")
    compacted, _ = check_compact_matches_masked(graph, Selection({heads.id: (0, 2)}), space)
    for name, array in shared_before.items():  # the original int constants are untouched
        if name in compacted:
            np.testing.assert_array_equal(compacted.initializer(name), array)
    assert compacted.initializer("q.weight").shape == (32, 64)
    assert compacted.initializer("o.weight").shape == (64, 32)


def test_selection_json_round_trip_and_validation(tmp_path):
    graph = onnxprune.load(ZOO / "resnet.onnx")
    space = AnalysisManager(graph).get("prune-space")
    selection = random_selection(space, np.random.default_rng(3))
    data = json.loads(json.dumps(selection.to_json(space)))
    assert Selection.from_json(data, space).pruned == {k: v for k, v in selection.pruned.items() if v}
    first = data["families"][0]
    group = str(first["groups"][0])
    assert any(s["role"] == "producer" for s in first["slices"][group])
    frozen = next(f for f in space.families if not f.prunable)
    with pytest.raises(UserError, match="frozen"):
        Selection({frozen.id: (0,)}).check(space)
    family = space.prunable[0]
    with pytest.raises(UserError, match="removes every group"):
        Selection({family.id: tuple(range(family.size))}).check(space)
    data["families"][0]["name"] = "something else"
    with pytest.raises(UserError, match="another model"):
        Selection.from_json(data, space)


def test_select_compact_verify_pipeline_reaches_the_target():
    graph = onnxprune.load(ZOO / "vgg.onnx")
    before = AnalysisManager(graph).get("cost").flops
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.5,by=flops,round-to=4},compact,cleanup,verify,check", verify_each=True).run(graph, am)
    after = AnalysisManager(graph).get("cost").flops
    assert 0.40 <= 1 - after / before <= 0.65
    assert am.fact(VerifyReport).ok
    for op in graph.ops():
        if op.op_type == "Conv":
            assert graph.initializer(graph.inputs_of(op)[1].name).shape[0] % 4 == 0


def test_select_respects_caps_and_scope():
    graph = onnxprune.load(ZOO / "mobilenetv2.onnx")
    am = AnalysisManager(graph)
    PassManager("select{ratio=1.0,max-family-ratio=0.5}").run(graph, am)
    space = am.get("prune-space")
    for family_id, groups in am.fact(Selection).pruned.items():
        assert len(groups) <= space.family(family_id).size // 2
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.25,scope=local}").run(graph, am)
    for family_id, groups in am.fact(Selection).pruned.items():
        assert len(groups) == int(0.25 * am.get("prune-space").family(family_id).size)


def test_prune_and_compact_commands(capsys, tmp_path):
    out, sel = tmp_path / "p.onnx", tmp_path / "sel.json"
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0.5", "--by", "flops",
                                "--round-to", "8", "--selection-out", sel)
    assert status == 0, err
    assert "verify     compact vs masked" in text and "FLOPs      25,281,802 -> " in text
    again = tmp_path / "c.onnx"
    status, _, err = run_cli(capsys, "compact", ZOO / "resnet.onnx", "--selection", sel, "-o", again)
    assert status == 0, err
    assert again.read_bytes() == out.read_bytes()
    status, _, err = run_cli(capsys, "compact", ZOO / "vgg.onnx", "--selection", sel, "-o", tmp_path / "x.onnx")
    assert status == 2 and "another model" in err
    status, _, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", tmp_path / "y.onnx", "--ratio", "1.5")
    assert status == 2 and "ratio" in err


def test_verify_reports_non_finite_mismatches():
    graph = onnxprune.load(ZOO / "mlp.onnx")
    broken = graph.copy()
    weight = next(v for v in broken.initializers if len(v.tensor.shape) == 2)
    array = np.array(weight.tensor.array)
    array[0, 0] = np.inf
    broken.set_initializer(weight, array)
    report = compare(graph, broken, [random_inputs(graph, np.random.default_rng(0), 2)], 1e-4)
    assert not report.ok and report.max_abs == float("inf")
    assert compare(broken, broken, [random_inputs(graph, np.random.default_rng(0), 2)], 1e-4).ok


def test_squeeze_without_axes_keeps_a_single_remaining_channel():
    b = Builder()
    pooled = b.op("GlobalAveragePool", [b.op("Relu", [b.conv("x", 3, 4)])])
    y = b.op("Gemm", [b.op("Squeeze", [pooled]), b.weight((2, 4)), b.weight((2,))], transB=1)
    graph = onnxprune.load(b.model({"x": [2, 3, 4, 4]}, [y]))
    space = AnalysisManager(graph).get("prune-space")
    (family,) = space.prunable
    compacted, _ = check_compact_matches_masked(graph, Selection({family.id: (0, 1, 3)}), space)
    squeeze = next(op for op in compacted.ops() if op.op_type == "Squeeze")
    assert compacted.initializer(compacted.inputs_of(squeeze)[1].name).tolist() == [2, 3]


def test_crop_and_resize_freezes():
    b = Builder()
    h = b.op("Relu", [b.conv("x", 3, 4)])
    roi = b.const(np.array([0, 0.25, 0, 0, 1, 1, 1, 1], np.float32))
    up = b.op("Resize", [h, roi, b.const(np.array([1, 1, 2, 2], np.float32))], mode="linear",
              coordinate_transformation_mode="tf_crop_and_resize")
    graph = onnxprune.load(b.model({"x": [1, 3, 4, 4]}, [b.conv(up, 4, 2)]))
    space = AnalysisManager(graph).get("prune-space")
    assert not any(f.size == 4 for f in space.prunable)


def test_output_bytes_do_not_depend_on_the_hash_seed(tmp_path):
    """Weights in Constant ops become initializers during compact: their order must not follow set
    iteration (four hash seeds once gave four different files)."""
    import subprocess
    import sys

    from .test_train import dynamic_cnn

    source = dynamic_cnn()
    for name in ("w2", "fc"):  # as Constant ops too, like the first conv's weight (paddle2onnx style)
        tensor = next(t for t in source.graph.initializer if t.name == name)
        source.graph.node.insert(0, onnx.helper.make_node("Constant", [], [name], value=tensor))
        source.graph.initializer.remove(tensor)
    path = tmp_path / "m.onnx"
    onnx.save(source, path)
    script = ("import sys, onnxprune; from onnxprune.passmanager import AnalysisManager, PassManager; "
              "g = onnxprune.load(sys.argv[1]); am = AnalysisManager(g, input_shapes=('x=1x3x16x16',)); "
              "PassManager('select{ratio=0.5},compact,cleanup').run(g, am); onnxprune.save(g, sys.argv[2])")
    outputs = []
    for seed in ("0", "1", "2", "3"):
        out = tmp_path / f"out{seed}.onnx"
        done = subprocess.run([sys.executable, "-c", script, str(path), str(out)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs[1:])


_GOOD = {"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [0]}]}


@pytest.mark.parametrize("text", [
    '{"format": "onnxprune.selection/1", "families": {"family": 0, "groups": [0]}}',  # families as a dict
    '{"format": "onnxprune.selection/1", "families": "0"}',
    '{"format": "onnxprune.selection/1", "families": 3}',
    '{"format": "onnxprune.selection/1", "families": [{"groups": [0]}]}',  # no family key
    '{"format": "onnxprune.selection/1", "families": [{"family": 0}]}',  # no groups key
    '{"format": "onnxprune.selection/1", "families": [{"family": "0", "groups": [0]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": ["1"]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [null]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [NaN]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [Infinity]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [[1]]}]}',
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [1.5]}]}',  # floats
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": [true]}]}',  # booleans
    '{"format": "onnxprune.selection/1", "families": [{"family": 0, "groups": "12"}]}',  # a string for a list
    '{"format": "onnxprune.selection/1", "families": [{"family": -1, "groups": [0]}]}',
    '{"format": "onnxprune.selection/1", "regions": [{"exit": "x"}]}',
    '[' * 10000 + ']' * 10000,
])
def test_malformed_selection_files_are_one_line_exit_2(tmp_path, capsys, text):
    path = tmp_path / "sel.json"
    path.write_text(text)
    code, _, err = run_cli(capsys, "compact", ZOO / "mlp.onnx", "--selection", path, "-o", tmp_path / "o.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_unreadable_selection_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "sel.json"
    path.mkdir()  # a folder where the file belongs
    code, _, err = run_cli(capsys, "compact", ZOO / "mlp.onnx", "--selection", path, "-o", tmp_path / "o.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1

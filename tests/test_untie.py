"""`untie`: initializers an exporter shared between roles get one tensor per role; true tying stays.

The fresh exports are made here with torch's TorchScript exporter (a dependency), as a user makes
them: untrained, so every BatchNorm's ones and zeros and every zero bias are de-duplicated.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.app.training import sparse_train
from onnxprune.errors import UserError
from onnxprune.facts import VerifyReport
from onnxprune.ops.sharing import shared_roles, untie
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.runtime import inference_session
from onnxprune.train.artifacts import build_artifacts
from onnxprune.train.config import TrainConfig
from onnxprune.train.data import open_data

from .conftest import ZOO
from .test_cli import run_cli


def _module(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ZOO / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def fresh_exports(tmp_path_factory):
    """TorchScript exports of untrained models: the BN CNN (BatchNorm kept) and the zoo's ResNet
    (with and without constant folding, which folds BatchNorm into the Convs' zero biases)."""
    exports, zoo_defs = _module("exports"), _module("zoo_defs")
    folder = tmp_path_factory.mktemp("fresh")
    torch.manual_seed(0)
    paths = {"bn_cnn": exports.export(exports.bn_cnn(), (torch.randn(2, 1, 28, 28),), folder / "bn_cnn.onnx",
                                      constant_folding=False)}
    for folding in (False, True):
        torch.manual_seed(0)
        paths[f"resnet_fold{int(folding)}"] = exports.export(zoo_defs.ResNet(), (torch.randn(2, 3, 32, 32),),
                                                             folder / f"resnet{int(folding)}.onnx",
                                                             constant_folding=folding)
    return paths


def _outputs(graph, feeds):
    return inference_session(graph).run(None, feeds)


def test_fresh_export_shares_batchnorm_roles_and_untie_splits_them(fresh_exports):
    graph = onnxprune.load(fresh_exports["bn_cnn"])
    shared = shared_roles(graph)
    assert shared, "the TorchScript exporter no longer de-duplicates: this test lost its subject"
    feeds = {"input": np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)}
    before = _outputs(graph, feeds)
    untied = untie(graph)
    assert {u.source for u in untied} == set(shared)
    assert shared_roles(graph) == {}
    assert not any(op.op_type == "Identity" for op in graph.ops())
    for op in graph.ops():  # every BatchNorm reads four initializers of its own
        if op.op_type == "BatchNormalization":
            names = [v.name for v in graph.inputs_of(op)[1:]]
            assert len(set(names)) == 4 and all(len(graph.uses(graph.value(n))) == 1 for n in names)
    np.testing.assert_array_equal(_outputs(graph, feeds)[0], before[0])


@pytest.mark.parametrize("folding", [0, 1])
def test_fresh_resnet_export_has_the_trained_models_families_and_regions(fresh_exports, folding):
    reference = AnalysisManager(onnxprune.load(ZOO / "resnet.onnx"))  # the zoo's trained-style export
    graph = onnxprune.load(fresh_exports[f"resnet_fold{folding}"])
    tied = AnalysisManager(graph.copy())
    assert len(tied.get("prune-space").prunable) < len(reference.get("prune-space").prunable)  # the bug
    untie(graph)
    am = AnalysisManager(graph)
    assert len(am.get("prune-space").prunable) == len(reference.get("prune-space").prunable)
    assert len(am.get("erase-space").regions) == len(reference.get("erase-space").regions)


def test_training_refuses_a_tensor_with_several_roles(fresh_exports, tmp_path):
    graph = onnxprune.load(fresh_exports["bn_cnn"])
    with pytest.raises(UserError, match="several roles .* run the untie pass first"):
        build_artifacts(graph, tmp_path / "artifacts", "cross-entropy")


def test_sparse_train_unties_a_fresh_export_and_each_batchnorm_keeps_its_own_statistics(fresh_exports, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", input=rng.standard_normal((128, 1, 28, 28)).astype(np.float32),
             labels=rng.integers(0, 10, 128))
    graph = onnxprune.load(fresh_exports["bn_cnn"])
    am = AnalysisManager(graph)
    config = TrainConfig(steps=6, batch_size=32, lr=0.05, threads=1, target_sparsity=0.5, log_every=2)
    result = sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "d.npz")), config)
    assert shared_roles(graph) == {}
    for op in graph.ops():
        if op.op_type == "BatchNormalization":
            scale, _, _, var = (graph.initializer(v.name) for v in graph.inputs_of(op)[1:])
            assert not np.array_equal(scale, var)  # trained scale and written-back variance both moved
    am.provide(result.selection)  # the README's Python flow compacts against the untied graph
    PassManager("compact,cleanup,verify").run(graph, am)
    assert am.fact(VerifyReport).ok


def _tied_embedding_model() -> onnx.ModelProto:
    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32), "emb")
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["h"]),
             helper.make_node("MatMul", ["h", "embT"], ["logits"]),
             helper.make_node("Transpose", ["emb"], ["embT"], perm=[1, 0])]
    graph = helper.make_graph(nodes, "tied", [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 10])], [table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_true_tying_is_kept_unless_everything_is_asked():
    graph = onnxprune.load(_tied_embedding_model())
    version = graph.version
    assert untie(graph) == [] and graph.version == version
    untied = untie(graph, everything=True)
    assert [(u.source, len(u.copies), u.why) for u in untied] == [("emb", 1, "shared")]
    assert all(len(graph.uses(v)) == 1 for v in graph.initializers)


def test_statistics_read_elsewhere_get_their_own_copy():
    ones = numpy_helper.from_array(np.ones(3, np.float32), "ones")
    zeros = numpy_helper.from_array(np.zeros(3, np.float32), "zeros")
    nodes = [helper.make_node("BatchNormalization", ["x", "ones", "zeros", "zeros", "ones"], ["y"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])], [ones, zeros])
    graph = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    untied = untie(graph)
    assert sorted(u.source for u in untied) == ["ones", "zeros"] and all(u.why == "statistics" for u in untied)
    (op,) = graph.ops()
    assert len({v.name for v in graph.inputs_of(op)[1:]}) == 4


def test_commands_untie_and_say_so(fresh_exports, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "analyze", fresh_exports["bn_cnn"])
    assert code == 0 and out.startswith("onnxprune: untied ") and "Identity" in out
    code, out, _ = run_cli(capsys, "prune", fresh_exports["resnet_fold1"], "-o", tmp_path / "p.onnx", "--ratio", "0.3",
                           "--selection-out", tmp_path / "sel.json")
    assert code == 0 and "verify" in out
    code, _, _ = run_cli(capsys, "compact", fresh_exports["resnet_fold1"], "--selection", tmp_path / "sel.json",
                         "-o", tmp_path / "c.onnx")
    assert code == 0 and (tmp_path / "c.onnx").read_bytes() == (tmp_path / "p.onnx").read_bytes()

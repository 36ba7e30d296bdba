"""Interop for deployment pipelines: onnx-graphsurgeon graphs and ModelProtos in, the same kind out."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

import onnxprune
from onnxprune.passmanager import PassManager
from onnxprune.runtime import inference_session

from .conftest import ZOO

PIPELINE = "select{ratio=0.5,by=flops},compact,cleanup,verify"


def _run(model: onnx.ModelProto, feeds):
    return inference_session(onnxprune.load(model)).run(None, feeds)[0]


def test_graphsurgeon_cleanup_fold_then_prune_then_export():
    """What TensorRT users write: graphsurgeon cleanup and constant folding, onnxprune, graphsurgeon export."""
    graph = gs.import_onnx(onnx.load(ZOO / "vgg.onnx"))
    graph.cleanup().toposort()
    graph.fold_constants()
    before = gs.export_onnx(graph)
    manager = PassManager(PIPELINE)
    pruned = manager.apply(graph)
    assert isinstance(pruned, gs.Graph)
    assert gs.export_onnx(graph) == before  # the caller's graph is untouched
    assert manager.last_report.results["verify"].ok
    model = gs.export_onnx(pruned)
    onnx.checker.check_model(model)
    conv = [n for n in model.graph.node if n.op_type == "Conv"]
    weights = {t.name: t for t in model.graph.initializer}
    original = {t.name: t for t in before.graph.initializer}
    assert any(weights[n.input[1]].dims[0] < original[n.input[1]].dims[0] for n in conv if n.input[1] in original)
    feeds = {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    assert _run(model, feeds).shape == _run(before, feeds).shape


def test_model_proto_in_model_proto_out():
    model = onnx.load(ZOO / "resnet.onnx")
    before = model.SerializeToString()
    pruned = PassManager(PIPELINE).apply(model)
    assert isinstance(pruned, onnx.ModelProto) and model.SerializeToString() == before
    assert sum(t.dims[0] for t in pruned.graph.initializer if len(t.dims) == 4) < \
        sum(t.dims[0] for t in model.graph.initializer if len(t.dims) == 4)


def test_load_takes_a_graphsurgeon_graph():
    graph = onnxprune.load(gs.import_onnx(onnx.load(ZOO / "mlp.onnx")))
    assert len(graph) == len(onnxprune.load(ZOO / "mlp.onnx"))

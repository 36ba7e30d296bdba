"""In practice: latency of the compact model against the original (one helper, runtime.measure_latency,
for prune, compact and run; figures are checked for presence and form, never as timings), nothing to
prune is never silent, and run's report compares the original, trained and compact models."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.facts import VerifyReport
from onnxprune.runtime import Latency, Timing, compare_latency, measure_latency

from .conftest import ZOO
from .test_cli import run_cli
from .test_train import dynamic_cnn


def _check(latency: Latency, names, batches) -> None:
    assert list(latency.timings) == list(batches)
    for batch in batches:
        assert set(latency.timings[batch]) == set(names)
        assert latency.runs[batch] >= 5
        for timing in latency.timings[batch].values():
            assert 0 < timing.min_ms <= timing.median_ms


def test_compare_latency_measures_batch_one_and_a_larger_batch():
    graph = onnxprune.load(ZOO / "mlp.onnx")
    latency = compare_latency(graph, graph.copy(), budget_s=0.05)
    assert latency.threads == 1 and set(latency.levels) == {"original", "compact"}
    (large,) = [b for b in latency.timings if b != 1]
    assert large in (8, 32)
    _check(latency, {"original", "compact"}, (1, large))
    data = json.loads(json.dumps(latency.to_json()))
    assert [entry["batch"] for entry in data["batches"]] == [1, large]
    assert set(data["batches"][0]["compact"]) == {"median_ms", "min_ms"}
    assert "batch 1:" in latency.describe("original", "compact") and "1 thread" in latency.describe("original",
                                                                                                   "compact")


def test_a_fixed_batch_is_measured_at_its_size_and_said():
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [weight])
    model = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    latency = measure_latency({"a": model, "b": model.copy()}, budget_s=0.02)
    _check(latency, {"a", "b"}, (2,))  # labelled with the fixed leading size
    assert "no input has a free batch axis" in latency.notes[0]


def test_bound_input_shapes_give_one_samples_sizes():
    model = onnxprune.load(dynamic_cnn())
    latency = measure_latency({"a": model}, batches=(1, 4), input_shapes=("x=1x3x20x20",), budget_s=0.02)
    _check(latency, {"a"}, (1, 4))  # the declared batch axis is free, so it grows
    assert not latency.notes


def test_sizes_the_model_cannot_take_skip_the_timing_not_the_result(capsys, tmp_path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "k2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, 1])],
                              [numpy_helper.from_array(rng.standard_normal((8, 3, 2, 2)).astype(np.float32), "w1"),
                               numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")])
    model = tmp_path / "k2.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    out = tmp_path / "o.onnx"
    # verify's sample inputs are 2x2 (a 2x2 kernel fits); latency's are 1x1 (it does not)
    status, text, err = run_cli(capsys, "prune", model, "-o", out, "--ratio", "0.5")
    assert status == 0, err
    assert out.exists() and "latency    not measured: latency: onnxruntime could not run" in text


def test_not_faster_needs_both_median_and_min():
    latency = Latency(1, {1: {"original": Timing(2.0, 1.0), "compact": Timing(2.5, 0.9)},
                          8: {"original": Timing(9.0, 8.0), "compact": Timing(9.5, 8.5)}},
                      {1: 5, 8: 5}, {"original": "all", "compact": "all"})
    assert latency.not_faster("compact", "original") == [8]


def test_prune_prints_latency_and_no_latency_skips_it(capsys, tmp_path):
    status, text, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "a.onnx", "--ratio", "0.5")
    assert status == 0, err
    line = next(line for line in text.splitlines() if line.startswith("latency"))
    assert "batch 1:" in line and "-> " in line and "interleaved" in line and "1 thread" in line
    if "not faster" in err:  # said in one line, with what to try
        assert "--round-to 8" in err and len(err.strip().splitlines()) == 1
    status, text, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "b.onnx", "--ratio", "0.5",
                                "--no-latency")
    assert status == 0 and not any(line.startswith("latency") for line in text.splitlines())
    status, _, err = run_cli(capsys, "prune", ZOO / "mlp.onnx", "-o", tmp_path / "c.onnx", "--ratio", "0.5",
                             "--latency-threads", "0")
    assert status == 2 and "--latency-threads" in err


def test_run_report_has_the_latency_of_both_models(tmp_path):
    from onnxprune.app.run import run_model
    from onnxprune.train.config import TrainConfig

    config = TrainConfig(steps=4, batch_size=8, lr=0.01, threads=1, target_sparsity=0.5, loss="distill")
    report = run_model(str(ZOO / "mlp.onnx"), str(tmp_path / "o.onnx"), None, config, synthetic=32, progress=False,
                       log=lambda _: None)
    latency = report["latency_ms"]
    assert latency["threads"] == 1 and latency["batches"][0]["batch"] == 1
    assert len(latency["batches"]) == 2
    for entry in latency["batches"]:
        assert entry["original"]["median_ms"] > 0 and entry["compact"]["min_ms"] > 0
    assert isinstance(latency["not_faster_at"], list) and "batch 1:" in latency["summary"]
    quiet = run_model(str(ZOO / "mlp.onnx"), str(tmp_path / "q.onnx"), None, config, synthetic=32, progress=False,
                      log=lambda _: None, latency=False)
    assert "latency_ms" not in quiet


# ---------------------------------------------------------------- nothing to prune is never silent
def test_prune_with_no_prunable_family_says_why_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "out.onnx"
    status, text, err = run_cli(capsys, "prune", ZOO / "lstm.onnx", "-o", out, "--ratio", "0.5")
    assert status == 0, err
    lines = text.splitlines()
    assert lines[0] == "pruned 0 groups: no family of the model is prunable (2 found)"
    assert lines[1].startswith("2 of 2 families are frozen")
    assert "no pruning rule for LSTM" in lines[2] and "1 family (32 groups)" in lines[2]
    assert len([line for line in lines if line.startswith("  ")]) == 3
    assert lines[-1].startswith("nothing written: ") and not out.exists()


def test_an_empty_selection_writes_nothing_and_says_so(capsys, tmp_path):
    out, sel = tmp_path / "out.onnx", tmp_path / "sel.json"
    status, text, err = run_cli(capsys, "prune", ZOO / "resnet.onnx", "-o", out, "--ratio", "0", "--selection-out", sel)
    assert status == 0, err
    assert text.startswith("pruned 0 groups: --ratio 0 selects no group") and "nothing written" in text
    assert not out.exists() and not sel.exists()
    sel.write_text(json.dumps({"format": "onnxprune.selection/1", "families": []}))
    status, text, err = run_cli(capsys, "compact", ZOO / "resnet.onnx", "--selection", sel, "-o", out)
    assert status == 0, err
    assert text.startswith("pruned 0 groups: the selection file removes nothing") and not out.exists()


def test_frozen_kinds_group_and_count_the_reasons():
    from onnxprune.frozen import frozen_kinds
    from onnxprune.passmanager import AnalysisManager

    kinds = frozen_kinds(AnalysisManager(onnxprune.load(ZOO / "resnet.onnx")).get("prune-space"))
    assert kinds[0].kind == "the model's own inputs or outputs" and kinds[0].families == 2
    assert all(k.advice for k in kinds) and len(kinds) <= 3


# ---------------------------------------------------------------- run's report compares what matters
def test_run_report_scores_the_original_beside_dense_and_compact(tmp_path):
    from onnxprune.app.run import run_model
    from onnxprune.train.config import TrainConfig

    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, input=rng.standard_normal((96, 64)).astype(np.float32), labels=rng.integers(0, 10, 96))
    config = TrainConfig(steps=6, batch_size=16, lr=0.01, threads=1, target_sparsity=0.5)
    report = run_model(str(ZOO / "mlp.onnx"), str(tmp_path / "o.onnx"), str(data), config, progress=False,
                       log=lambda _: None, latency=False, eval_fraction=0.25)
    assert list(report["eval"]) == ["original", "dense", "compact"]
    for found in report["eval"].values():
        assert set(found) == {"loss", "accuracy", "samples"} and found["samples"] == 24
    assert "teacher" not in report


def test_small_losses_keep_their_digits():
    from onnxprune.app.run import figure as _figure

    assert _figure(5.6e-19) == "5.6e-19" and _figure(0.0) == "0.0000" and _figure(0.93125) == "0.9313"
    assert _figure(2.5e-4) == "0.00025" and _figure(123456.0) == "1.23e+05"


def test_a_teacher_that_ignores_its_input_is_flagged(tmp_path):
    from onnxprune.app.run import run_model
    from onnxprune.train.config import TrainConfig

    graph = onnxprune.load(ZOO / "mlp.onnx")
    first = next(v for v in graph.initializers if len(v.tensor.shape) == 2)
    graph.set_initializer(first, np.zeros(first.tensor.shape, np.float32))  # every input gives the same output
    model = tmp_path / "constant.onnx"
    onnxprune.save(graph, model)
    said = []
    config = TrainConfig(steps=2, batch_size=8, lr=0.01, threads=1, target_sparsity=0.5, loss="distill")
    report = run_model(str(model), str(tmp_path / "o.onnx"), None, config, synthetic=32, progress=False,
                       log=said.append, latency=False)
    assert report["teacher"]["varies"] is False and "same" in report["teacher"]["note"]
    assert any("distillation teacher" in line for line in said)
    report = run_model(str(ZOO / "mlp.onnx"), str(tmp_path / "p.onnx"), None, config, synthetic=32, progress=False,
                       log=lambda _: None, latency=False)
    assert "teacher" not in report and set(report["eval"]) == {"original", "dense", "compact"}
    assert report["eval"]["original"]["distill_mse"] == 0.0  # the teacher against itself


def test_run_with_nothing_to_prune_says_why_before_training(capsys, tmp_path):
    status, _, err = run_cli(capsys, "run", ZOO / "lstm.onnx", "--synthetic", "16", "-o", tmp_path / "o.onnx")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "nothing to prune" in err and "no pruning rule for LSTM" in err
    assert not (tmp_path / "o.metrics.jsonl").exists()  # stopped before training


def test_other_dynamic_sizes_are_named():
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", 3])], [weight])
    model = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    latency = measure_latency({"a": model}, batches=(1, 2), budget_s=0.02)
    _check(latency, {"a"}, (1, 2))
    assert any("dynamic sizes other than the batch of x were 1" in note for note in latency.notes)
    bound = measure_latency({"a": model}, batches=(1, 2), budget_s=0.02, input_shapes=("x=1x7x4",))
    assert not bound.notes


def test_large_models_reach_onnxruntime_through_a_file(monkeypatch):
    """Above IN_MEMORY_LIMIT a session is made from a temporary file `save` streams (no ModelProto and
    bytes copies of the weights); verify gives the same figures either way."""
    from onnxprune import runtime
    from onnxprune.passmanager import AnalysisManager, PassManager

    def verified():
        graph = onnxprune.load(ZOO / "resnet.onnx")
        am = AnalysisManager(graph)
        PassManager("select{ratio=0.5},compact,verify").run(graph, am)
        return am.fact(VerifyReport)

    in_memory = verified()
    monkeypatch.setattr(runtime, "IN_MEMORY_LIMIT", 0)
    through_file = verified()
    assert through_file.ok and (through_file.max_abs, through_file.max_rel) == (in_memory.max_abs, in_memory.max_rel)
    session = runtime.inference_session(onnxprune.load(ZOO / "mlp.onnx"))
    assert session.get_inputs()[0].name == "input"

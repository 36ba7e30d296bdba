"""Training throughput: onnxprune (onnxruntime-training or the torch engine, + our HESSO step) against plain torch.

Two architectures: a VGG-style CNN (3x32x32 input, ~1.1M parameters, BatchNorm) and the zoo's
fashion_cnn (1x28x28, 95k parameters); one batch size and the same thread count for both trainers,
side by side in one process, random data (throughput does not depend on it), in alternating short
windows. Reports images/s of each, their ratio, the share of a training step that our optimizer step
takes (HESSO with sgd+momentum, inside its pruning period, so the per-group work is included), and the
same training with onnxruntime's own gradient kernels (what ops/gradient_rules.py buys).

With `--engine torch` the trainers are plain torch eager (torch.optim.SGD with momentum), the torch
engine executing the exported ONNX graph with the same torch.optim.SGD (the engine alone), and the
torch engine with our HESSO step as `onnxprune run --engine torch` trains (`--device cuda` runs all
three on the GPU, synchronising at the end of each window).

    python benchmarks/train_throughput.py [--engine ort|torch] [--device cpu|cuda] [--batch 32] [--threads 1,2]
        [--rounds 10] [--window 6] [--models vgg,fashion]
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
from onnxprune.train.sparse import prepare_for_training
from onnxprune.train.torch_engine import TorchEngine


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


class TorchTrainer:
    """Plain torch training: SGD with momentum, cross-entropy."""

    def __init__(self, model: nn.Module, x: np.ndarray, y: np.ndarray, threads: int, device: str = "cpu"):
        self.model, self.threads, self.device = model.train().to(device), threads, device
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.loss = nn.CrossEntropyLoss()

    def window(self, steps: int) -> tuple[float, float]:
        """Run `steps` steps; (seconds, seconds in the optimizer step)."""
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=False)
            # the batch comes from the host each step, as the torch engine's does
            self.loss(self.model(self.x.to(self.device)), self.y.to(self.device)).backward()
            self.optimizer.step()
        _sync(self.device)
        return time.perf_counter() - start, 0.0


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class TorchEngineTrainer:
    """The torch engine on the exported graph, as `onnxprune run --engine torch` sets it up; the step is
    torch.optim.SGD with momentum (`optimizer="sgd"`: the engine alone, against torch eager) or our HESSO
    inside its pruning period (`"hesso"`: what a run pays)."""

    def __init__(self, path: Path, x: np.ndarray, y: np.ndarray, threads: int, total_steps: int,
                 optimizer: str = "sgd", device: str = "cpu"):
        graph = onnxprune.load(path)
        prepare_for_training(graph)  # as run does: untie the tensors the exporter shared (BN scales, zero biases)
        am = AnalysisManager(graph)
        space = am.get("prune-space")
        self.engine = TorchEngine(graph, "cross-entropy", device)
        self.threads, self.device = threads, device
        if optimizer == "sgd":
            self.optimizer = torch.optim.SGD(list(self.engine.program.parameters().values()), lr=0.01, momentum=0.9)
        else:
            layout = group_layout(space, {k: tuple(v.shape) for k, v in self.engine.params.items()},
                                  frozenset(running_statistics(graph)))
            self.optimizer = Hesso(self.engine.params, self.engine.grads, layout,
                                   BaseSettings("sgd", momentum=0.9),
                                   HessoSettings(0.5, start_pruning_step=0, pruning_steps=total_steps + 1,
                                                 pruning_periods=1))
        self.sgd = optimizer == "sgd"
        self.feeds = [x, y]

    def window(self, steps: int) -> tuple[float, float]:
        torch.set_num_threads(self.threads)
        optimizer_time = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            self.engine.step(self.feeds)  # returns the loss as a float: one host sync per step, as run has
            t = time.perf_counter()
            if self.sgd:
                self.optimizer.step()
            else:
                self.optimizer.step(0.01)
            optimizer_time += time.perf_counter() - t
        _sync(self.device)
        return time.perf_counter() - start, optimizer_time


class OnnxpruneTrainer:
    """onnxprune training as `onnxprune run` sets it up: legalized graph, onnxruntime-training artifacts
    (with the CPU gradient rewrites), torch at one thread, HESSO with sgd+momentum inside its pruning
    period for every timed step, so the per-group work is included."""

    def __init__(self, path: Path, x: np.ndarray, y: np.ndarray, threads: int, work: Path, total_steps: int,
                 gradient_rules: bool = True):
        graph = onnxprune.load(path)
        prepare_for_training(graph)  # as run does: untie what the exporter shared (BN scales, zero biases)
        am = AnalysisManager(graph)
        space, types = am.get("prune-space"), am.get("shapes")
        legal = graph.copy()
        added = legalize(legal, types)
        artifacts = build_artifacts(legal, work / f"artifacts{threads}", "cross-entropy", exclude=added,
                                    gradient_rules=gradient_rules)
        self.engine = TrainingEngine(artifacts, threads=threads)
        layout = group_layout(space, {k: tuple(v.shape) for k, v in self.engine.params.items()},
                              frozenset(running_statistics(legal)))
        self.optimizer = Hesso(self.engine.params, self.engine.grads, layout,
                               BaseSettings("sgd", momentum=0.9),
                               HessoSettings(0.5, start_pruning_step=0, pruning_steps=total_steps + 1,
                                             pruning_periods=1))
        self.feeds = [x, y]
        self.params = sum(v.numel() for v in self.engine.params.values())

    def window(self, steps: int) -> tuple[float, float]:
        torch.set_num_threads(1)  # as `onnxprune run` does: onnxruntime owns the cores
        optimizer_time = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            self.engine.step(self.feeds)
            t = time.perf_counter()
            self.optimizer.step(0.01)
            optimizer_time += time.perf_counter() - t
        return time.perf_counter() - start, optimizer_time


def compare(trainers: dict, batch: int, rounds: int, window: int, warmup: int) -> dict:
    """Run short windows of each trainer in turn, `rounds` times: this machine's speed drifts by 10-20%
    over tens of seconds, so each round compares neighbours. Per trainer: median images/s, and the
    median, lowest and highest per-round ratio to the first trainer; the optimizer's share of its time."""
    for trainer in trainers.values():
        trainer.window(warmup)
    times = {name: [] for name in trainers}
    optimizer = dict.fromkeys(trainers, 0.0)
    for _ in range(rounds):
        for name, trainer in trainers.items():
            elapsed, in_optimizer = trainer.window(window)
            times[name].append(elapsed)
            optimizer[name] += in_optimizer
    reference = np.array(next(iter(times.values())))
    return {name: {"rate": float(np.median(window * batch / np.array(t))),
                   "ratio": float(np.median(reference / np.array(t))),
                   "low": float(np.min(reference / np.array(t))), "high": float(np.max(reference / np.array(t))),
                   "optimizer_share": optimizer[name] / sum(t)} for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=10, help="turns of short windows of each trainer")
    parser.add_argument("--window", type=int, default=6, help="steps per window")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--models", default="vgg,fashion")
    parser.add_argument("--engine", choices=["ort", "torch"], default="ort",
                        help="whose training to compare with torch eager (default ort)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="--engine torch: where all train")
    args = parser.parse_args()
    if args.engine == "torch":
        return main_torch(args)
    print(f"torch {torch.__version__}, batch {args.batch}, {args.rounds} rounds of {args.window} steps of each "
          f"trainer after {args.warmup} warm-up; medians over rounds, per-round ratio range in brackets.\n"
          "'ort kernels' = onnxprune with onnxruntime's own gradient kernels (ops/gradient_rules.py off)")
    print(f"{'model':<8} {'params':>10} {'threads':>7} {'torch':>7} {'onnxprune':>10} {'ratio':>6} {'(range)':>11} "
          f"{'optimizer':>9} {'ort kernels':>12} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        make, shape = ARCHITECTURES[name]
        x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, args.batch).astype(np.int64)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            path = work / "net.onnx"
            torch.manual_seed(0)
            export(make(), path, shape)
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.manual_seed(0)
                total = args.warmup + args.rounds * args.window
                result = compare({"torch": TorchTrainer(make(), x, y, threads),
                                  "ours": OnnxpruneTrainer(path, x, y, threads, work / "ours", total),
                                  "plain": OnnxpruneTrainer(path, x, y, threads, work / "plain", total,
                                                            gradient_rules=False)},
                                 args.batch, args.rounds, args.window, args.warmup)
                params = sum(p.numel() for p in make().parameters())
                torch_, ours, plain = result["torch"], result["ours"], result["plain"]
                print(f"{name:<8} {params:>10,} {threads:>7} {torch_['rate']:>7.0f} {ours['rate']:>10.0f} "
                      f"{ours['ratio']:>6.2f} {ours['low']:>5.2f}-{ours['high']:<5.2f} {ours['optimizer_share']:>9.1%} "
                      f"{plain['rate']:>12.0f} {plain['ratio']:>6.2f}", flush=True)


def main_torch(args) -> None:
    """--engine torch: torch eager against the torch engine (with torch's SGD, and with our HESSO)."""
    print(f"torch {torch.__version__}, {args.device}, batch {args.batch}, {args.rounds} rounds of {args.window} steps "
          f"of each trainer after {args.warmup} warm-up; medians over rounds, per-round ratio range in brackets.\n"
          "engine+sgd: the torch engine with torch.optim.SGD (momentum 0.9), as torch eager uses; "
          "engine+hesso: with our HESSO step in its pruning period (what `run --engine torch` pays)")
    print(f"{'model':<8} {'params':>10} {'threads':>7} {'torch':>7} {'engine+sgd':>10} {'ratio':>6} {'(range)':>11} "
          f"{'engine+hesso':>12} {'ratio':>6} {'optimizer':>9}")
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        make, shape = ARCHITECTURES[name]
        x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, args.batch).astype(np.int64)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            torch.manual_seed(0)
            export(make(), path, shape)
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.manual_seed(0)
                total = args.warmup + args.rounds * args.window
                result = compare({"torch": TorchTrainer(make(), x, y, threads, args.device),
                                  "sgd": TorchEngineTrainer(path, x, y, threads, total, "sgd", args.device),
                                  "hesso": TorchEngineTrainer(path, x, y, threads, total, "hesso", args.device)},
                                 args.batch, args.rounds, args.window, args.warmup)
                params = sum(p.numel() for p in make().parameters())
                torch_, sgd, hesso = result["torch"], result["sgd"], result["hesso"]
                print(f"{name:<8} {params:>10,} {threads:>7} {torch_['rate']:>7.0f} {sgd['rate']:>10.0f} "
                      f"{sgd['ratio']:>6.2f} {sgd['low']:>5.2f}-{sgd['high']:<5.2f} {hesso['rate']:>12.0f} "
                      f"{hesso['ratio']:>6.2f} {hesso['optimizer_share']:>9.1%}", flush=True)


if __name__ == "__main__":
    main()

"""Train-once on fresh torch exports: `onnxprune run` against the same architecture trained in torch.

A user's usual start: a fresh (untrained) model exported with torch's exporters, then `onnxprune run`.
The TorchScript exporter de-duplicates equal initializers (every BatchNorm's ones and zeros, zero
biases) through Identity ops; before the `untie` pass that training collapsed to chance. This script
trains, with the same seed, steps, batch, learning-rate schedule and SGD momentum:

* torch: `models/exports.py`'s 5-conv BatchNorm CNN, dense, in plain torch (the reference accuracy);
* onnxprune run on its TorchScript export (eval mode, no constant folding, so BatchNorm stays) and on
  its dynamo export, at a target group sparsity that removes about half the FLOPs. The dynamo
  exporter folds every BatchNorm into its Conv (in train mode too), so what it exports is the same
  CNN without BatchNorm: its torch reference is that architecture, trained the same way,

and prints top-1 on Fashion-MNIST's 10,000 test images, FLOPs cut and training time.

    apt-get install dataset-fashion-mnist
    python benchmarks/fresh_export_training.py [--epochs 3] [--target-sparsity 0.3] [--exporters torchscript,dynamo]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from onnxprune.app.run import run_model
from onnxprune.train.config import TrainConfig

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "models"))
from exports import bn_cnn, export  # noqa: E402
from fashion_mnist import prepare  # noqa: E402


def torch_reference(train: Path, test: Path, args, batch_norm: bool) -> tuple[float, float]:
    """Top-1 of the dense CNN trained in torch with the recipe `onnxprune run` uses; and seconds."""
    torch.manual_seed(args.seed)
    model = bn_cnn(batch_norm)
    with np.load(train) as data:
        x, y = torch.from_numpy(data["input"]), torch.from_numpy(data["labels"])
    with np.load(test) as data:
        x_test, y_test = torch.from_numpy(data["input"]), torch.from_numpy(data["labels"])
    steps_per_epoch = len(x) // args.batch_size
    total = args.epochs * steps_per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(1, s / total))))
    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        perm = torch.from_numpy(np.random.default_rng(args.seed + epoch).permutation(len(x)))
        for step in range(steps_per_epoch):
            batch = perm[step * args.batch_size:(step + 1) * args.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    return accuracy, seconds


def onnxprune_run(exporter: str, train: Path, test: Path, work: Path, args) -> dict:
    """`onnxprune run` on a fresh export of the same CNN (same seed, so the same initial weights)."""
    torch.manual_seed(args.seed)
    path = export(bn_cnn(), (torch.randn(2, 1, 28, 28),), work / f"bn_cnn_{exporter}.onnx", exporter=exporter,
                  opset=17 if exporter == "torchscript" else 18, constant_folding=False)
    config = TrainConfig(target_sparsity=args.target_sparsity, epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size, seed=args.seed, group_divisible=args.round_to, log_every=100)
    return run_model(str(path), str(work / f"bn_cnn_{exporter}_pruned.onnx"), str(train), config,
                     eval_data=str(test), progress=False, log=lambda line: print(line, file=sys.stderr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--target-sparsity", type=float, default=0.3)
    parser.add_argument("--round-to", type=int, default=1)
    parser.add_argument("--exporters", default="torchscript,dynamo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = prepare()
    with tempfile.TemporaryDirectory() as folder:
        for exporter in args.exporters.split(","):
            batch_norm = exporter == "torchscript"
            reference, seconds = torch_reference(train, test, args, batch_norm)
            print(f"torch, {'with' if batch_norm else 'without'} BatchNorm  top-1 {reference:.4f}  "
                  f"train {seconds:.0f} s", flush=True)
            report = onnxprune_run(exporter, train, test, Path(folder), args)
            accuracy = report["eval"]["compact"]["accuracy"]
            cut = 1 - report["flops"]["compact"] / report["flops"]["dense"]
            print(f"onnxprune {exporter:<11} top-1 {accuracy:.4f} ({100 * (accuracy - reference):+.2f} pt vs torch)  "
                  f"FLOPs -{cut:.1%}  group sparsity {report['group_sparsity']:.3f}  "
                  f"train {report['time_s']['train']:.0f} s", flush=True)
    print(f"Fashion-MNIST, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr} cosine, SGD momentum 0.9, "
          f"seed {args.seed}; all 60,000 training images; onnxprune: HESSO at target group sparsity "
          f"{args.target_sparsity}; each export against torch training the architecture it holds")


if __name__ == "__main__":
    main()

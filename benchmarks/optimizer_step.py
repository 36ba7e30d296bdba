"""Optimizer step time: torch's SGD (momentum) against our HESSO and DHSPG steps on the same tensors.

An MLP stack of `--layers` Linear layers of `--width` (default 16 x 4096: 268 M parameters in 65,536
groups, one per output channel: the weight's row and the bias element). One set of parameters and
gradients serves all three optimizers (each keeps its own momentum buffer), so they read and write the
same memory. HESSO is timed inside its pruning period (every group it chose shrinks each step), DHSPG in
its penalty phase with the half-space projection on: the steps that do the per-group work. The steps
where the host decides (HESSO's period start, DHSPG's partition) run once before timing. Runs are
interleaved (SGD, HESSO, DHSPG, SGD, ...) so drift in machine load hits all three alike; the table gives
the best and the median per step and the ratios to SGD of both. On CUDA every step is synchronised.

    python benchmarks/optimizer_step.py [--threads 1,2] [--device cpu,cuda] [--rounds 5]
        [--layers 16] [--width 4096] [--optimizers sgd,hesso,dhspg,dhspg-compiled] [--json FILE]

dhspg-compiled is DHSPG with its penalty steps fused and compiled (`Dhspg(compiled=True)`, run
--compile; onnxprune/optim/fused.py): torch.compile needs a C++ compiler on CPU.

Memory: parameters, gradients and a momentum buffer per optimizer, 5 x 4 bytes per parameter (5.4 GB at
268 M) with three optimizers, one more buffer with dhspg-compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

import onnxprune
from onnxprune.optim import BaseSettings, Dhspg, DhspgSettings, Hesso, HessoSettings, group_layout
from onnxprune.space import PRODUCER, Family, Member, PruningSpace


def mlp_space(layers: int, width: int) -> tuple[PruningSpace, dict[str, tuple[int, ...]]]:
    """The pruning space of an MLP stack: each layer's output channels are a family of `width` groups
    (weight row and bias element)."""
    families, shapes = [], {}
    table = np.arange(width).reshape(width, 1)
    for layer in range(layers):
        weight, bias = f"fc{layer}.weight", f"fc{layer}.bias"
        shapes[weight], shapes[bias] = (width, width), (width,)
        families.append(Family(layer, f"fc{layer}", width, "channel",
                               (Member(weight, 0, table, PRODUCER), Member(bias, 0, table, PRODUCER))))
    return PruningSpace(tuple(families)), shapes


def make_optimizers(names: list[str], params: dict, grads: dict, space: PruningSpace, shapes: dict, lr: float):
    """name -> a function doing one step, after the steps where the host decides."""
    layout = group_layout(space, shapes)
    base = BaseSettings("sgd", momentum=0.9)
    steps = {}
    for name in names:
        if name == "sgd":
            for p, g in zip(params.values(), grads.values()):
                p.grad = g
            sgd = torch.optim.SGD(list(params.values()), lr=lr, momentum=0.9)
            steps[name] = sgd.step
        elif name == "hesso":
            hesso = Hesso(params, grads, layout, base, HessoSettings(
                target_group_sparsity=0.5, start_pruning_step=1, pruning_steps=10**6, pruning_periods=1))
            steps[name] = lambda hesso=hesso: hesso.step(lr)
        elif name in ("dhspg", "dhspg-compiled"):
            dhspg = Dhspg(params, grads, layout, base, DhspgSettings(
                target_group_sparsity=0.5, partition_step=1, half_space_project_steps=0),
                compiled=name == "dhspg-compiled")
            steps[name] = lambda dhspg=dhspg: dhspg.step(lr)
        else:
            raise SystemExit(f"unknown optimizer {name!r} (sgd, hesso, dhspg, dhspg-compiled)")
        # step 0, then the period start / the partition (host decisions, not timed); compiled, a third
        # step builds the kernels
        for _ in range(3 if name.endswith("-compiled") else 2):
            steps[name]()
        if name == "dhspg-compiled" and dhspg.fused is None:  # it warned why; its steps would be eager ones
            print("optimizer_step: dhspg-compiled left out: the compiled step could not be built", file=sys.stderr)
            del steps[name]
    return steps


def measure(device: str, threads: int, args) -> dict:
    """Best and median seconds per step of each optimizer, interleaved."""
    torch.set_num_threads(threads)
    space, shapes = mlp_space(args.layers, args.width)
    generator = torch.Generator(device="cpu").manual_seed(0)
    params = {k: (torch.randn(s, generator=generator) * 0.02).to(device) for k, s in shapes.items()}
    grads = {k: (torch.randn(s, generator=generator) * 0.01).to(device) for k, s in shapes.items()}
    steps = make_optimizers(args.optimizers, params, grads, space, shapes, lr=1e-3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {"device": device, "threads": threads if device == "cpu" else None,
            "parameters": sum(int(np.prod(s)) for s in shapes.values()), "groups": args.layers * args.width,
            "best_ms": {k: 1e3 * min(v) for k, v in times.items()},
            "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}}


def print_table(rows: list[dict]) -> None:
    names = list(rows[0]["best_ms"])
    others = [n for n in names if n != "sgd"]
    header = ["device", *[f"{n} best / median" for n in names]]
    if "sgd" in names:
        header += [f"{n} ÷ sgd (best, median)" for n in others]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        where = f"CPU, {row['threads']} thread{'s' if row['threads'] != 1 else ''}" if row["device"] == "cpu" else \
            torch.cuda.get_device_name()
        cells = [where, *[f"{row['best_ms'][n]:.1f} / {row['median_ms'][n]:.1f} ms" for n in names]]
        if "sgd" in names:
            cells += [f"{row['best_ms'][n] / row['best_ms']['sgd']:.2f}, {row['median_ms'][n] / row['median_ms']['sgd']:.2f}"
                      for n in others]
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1", help="CPU thread counts, comma-separated (default 1)")
    parser.add_argument("--device", default=None, help="cpu, cuda or both (default: cpu, and cuda when present)")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps of each optimizer (default 5)")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--optimizers", default="sgd,hesso,dhspg")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    args.optimizers = args.optimizers.split(",")
    devices = args.device.split(",") if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        print("optimizer_step: no CUDA device", file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(f"onnxprune from {os.path.dirname(onnxprune.__file__)}; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {args.layers} x {args.width}² + biases, "
          f"{args.rounds} interleaved steps each; HESSO inside its pruning period, DHSPG in its penalty phase")
    rows = []
    for device in devices:
        for threads in ([int(t) for t in args.threads.split(",")] if device == "cpu" else [torch.get_num_threads()]):
            rows.append(measure(device, threads, args))
            torch.cuda.empty_cache() if device == "cuda" else None
    print(f"{rows[0]['parameters'] / 1e6:.1f} M parameters in {rows[0]['groups']} groups")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

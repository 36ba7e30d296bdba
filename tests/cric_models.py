"""A model with an indispensable narrow bottleneck whose channels score low by magnitude, for HESSO-CRIC's
tests and benchmarks/hesso_cric.py.

An MLP on the zoo's digits (8x8 images, 10 classes): 64 -> 64 -> 4 -> 64 -> 10 with ReLUs, trained in
torch, then the 4-wide bottleneck's weights and bias are scaled by 1/`shrink` and the next layer's
weights by `shrink`. ReLU is positively homogeneous, so the function is unchanged, but the bottleneck's
weights are tiny: every channel of it carries a quarter of what the classifier sees, and none looks
important by magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = Path(__file__).resolve().parent.parent / "models" / "digits.npz"


def digits_split() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The digits data as (train, test) dicts of `input` and `labels` (the file's own is_test split)."""
    with np.load(DIGITS) as archive:
        x, y, test = archive["input"], archive["labels"].astype(np.int64), archive["is_test"].astype(bool)
    return {"input": x[~test], "labels": y[~test]}, {"input": x[test], "labels": y[test]}


def bottleneck_mlp(path: Path, width: int = 4, shrink: float = 4.0, steps: int = 400, seed: int = 0) -> Path:
    """Train the bottleneck MLP on the digits' training split and export it (TorchScript exporter, training
    mode, opset 17) to `path`."""
    import torch

    torch.manual_seed(seed)
    train, _ = digits_split()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 10))
    x, y = torch.from_numpy(train["input"]), torch.from_numpy(train["labels"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights on any machine (2 threads sum in another order,
    try:                      # and 400 Adam steps later the model differs enough to change what CRIC finds)
        for _ in range(steps):
            rows = torch.randint(0, len(x), (64,), generator=generator)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        model[3].weight /= shrink
        model[3].bias /= shrink
        model[5].weight *= shrink
    torch.onnx.export(model, (x[:2],), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    return path

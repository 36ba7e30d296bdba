"""Loss probes: the training loss of the current parameters on a few fixed held-in batches, for
optimizers that measure before they decide (HESSO-CRIC's trial projections and cycles).

A probe is a function of no arguments returning a float. It runs the training engine's forward pass:
an engine with `evaluate_loss(feeds) -> float` (the torch engine) is asked directly; the
onnxruntime-training engine, whose Module has no separate forward, runs its training step (forward and
backward) with the gradients of the step in progress saved before and put back after, and without
writing BatchNorm statistics back, so a probe changes nothing the training sees. BatchNorm uses batch
statistics as in training, so the probe's loss is the loss training minimises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def engine_loss(engine, feeds: Sequence[np.ndarray]) -> float:
    """The engine's training loss on one batch of `feeds` (model inputs, then labels/target), with its
    parameters and gradients left as they were."""
    evaluate = getattr(engine, "evaluate_loss", None)
    if evaluate is not None:
        return float(evaluate(list(feeds)))
    saved = {name: grad.clone() for name, grad in engine.grads.items()}
    engine.module.lazy_reset_grad()
    results = engine.module(*feeds)
    loss = results if isinstance(results, np.ndarray) else results[0]
    for name, grad in saved.items():
        engine.grads[name].copy_(grad)
    return float(loss)


def loss_probe(engine, batches: Sequence[Sequence[np.ndarray]]) -> Callable[[], float]:
    """A probe: the mean of `engine_loss` over `batches` (fixed once, so every evaluation compares like
    with like)."""
    if not batches:
        raise ValueError("a loss probe needs at least one batch")

    def probe() -> float:
        return float(np.mean([engine_loss(engine, feeds) for feeds in batches]))
    return probe

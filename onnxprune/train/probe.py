"""Loss probes: the training loss of the current parameters on a few fixed held-in batches, for
optimizers that measure before they decide (HESSO-CRIC's trial projections and cycles).

A probe is a function of no arguments returning a float. It asks the training engine's
`evaluate_loss(feeds)`: both engines compute the loss as a training step does (BatchNorm on the batch's
statistics) and leave gradients, parameters and running statistics as they were, so a probe changes
nothing the training sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def engine_loss(engine, feeds: Sequence[np.ndarray]) -> float:
    """The engine's training loss on one batch of `feeds` (model inputs, then labels/target), with its
    parameters and gradients left as they were."""
    return float(engine.evaluate_loss(list(feeds)))


def loss_probe(engine, batches: Sequence[Sequence[np.ndarray]]) -> Callable[[], float]:
    """A probe: the mean of `engine_loss` over `batches` (fixed once, so every evaluation compares like
    with like)."""
    if not batches:
        raise ValueError("a loss probe needs at least one batch")

    def probe() -> float:
        return float(np.mean([engine_loss(engine, feeds) for feeds in batches]))
    return probe

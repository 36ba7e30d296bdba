"""Sparse training from Python, as `onnxprune run` trains (README, "Sparse training from Python").

`sparse_train` prepares the graph, makes its analyses again when preparing changed it (through the
pass manager: this layer may reach the passes, `onnxprune/train/` does not), chooses the loop's
callbacks from plain options and calls `train.sparse.train_graph`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import UserError
from ..ir import Graph
from ..passmanager import AnalysisManager
from ..space import ErasingSpace, PruningSpace
from ..train.callbacks import Checkpointing, OnMetrics, ProgressBar, ResumeOnInterrupt
from ..train.checkpoint import run_settings
from ..train.config import TrainConfig, TrainResult
from ..train.data import ArrayData, FactoryData
from ..train.loop import Callback
from ..train.sparse import prepare_for_training, train_graph


def sparse_train(graph: Graph, space: PruningSpace, types: dict, data: ArrayData | FactoryData, config: TrainConfig,
                 *, work_dir: Path | None = None, checkpoint_dir: Path | None = None, resume: bool = False,
                 on_metrics: Callable[[dict], None] | None = None, progress: bool = False,
                 erasing: ErasingSpace | None = None, input_shapes: tuple[str, ...] = (),
                 log: Callable[[str], None] | None = None) -> TrainResult:
    """Train `graph` with a group-sparse optimizer; write the trained weights into it (in place) and
    return the Selection of groups that are exactly zero (and of regions, with `erasing` and
    `config.target_erase`, whose groups are zero: those are erased whole). Constant-op weights become
    initializers first (trained values come back by name) and initializers an exporter shared between
    roles are untied; if that changed the graph, `space`, `types` and `erasing` described the graph
    before, and are made again, so the Selection refers to the space of the graph as it is afterwards,
    which is what compact analyses. `checkpoint_dir` (with `resume`: continue from it), `on_metrics`
    (each metrics row) and `progress` (a bar) choose the loop's callbacks; Ctrl-C ends in Interrupted,
    which says how to resume. `log` hears which engine `auto` chose."""
    if resume and checkpoint_dir is None:
        raise UserError("--resume needs a checkpoint folder")
    if prepare_for_training(graph):
        am = AnalysisManager(graph, input_shapes=input_shapes)
        space, types = am.get("prune-space"), am.get("shapes")
        erasing = am.get("erase-space") if erasing is not None else None
    from ..train.distributed import launched_ranks

    main = launched_ranks().main  # rank 0 alone writes and reports (every rank reads a checkpoint to resume)
    callbacks = training_callbacks(config, graph, data, checkpoint_dir=checkpoint_dir, resume=resume,
                                   progress=progress and main,
                                   metrics=OnMetrics(on_metrics) if on_metrics is not None and main else None)
    return train_graph(graph, space, types, data, config, callbacks=callbacks, erasing=erasing,
                       input_shapes=input_shapes, log=log, work_dir=work_dir)


def training_callbacks(config: TrainConfig, graph: Graph, data, *, checkpoint_dir: Path | None, resume: bool,
                       progress: bool, metrics: Callback | None) -> Sequence[Callback]:
    """The loop's callbacks for a run: the checkpoint first (it restores the step the others start at),
    the progress bar, the metrics rows, then what Ctrl-C says (after the checkpoint has saved).
    `graph` is prepared for training: the checkpoint's settings name its parameters."""
    callbacks: list[Callback] = []
    if checkpoint_dir is not None:
        callbacks.append(Checkpointing(Path(checkpoint_dir), run_settings(config, graph, data),
                                       every=config.checkpoint_every, resume=resume))
    if progress:
        callbacks.append(ProgressBar())
    if metrics is not None:
        callbacks.append(metrics)
    callbacks.append(ResumeOnInterrupt(checkpoint_dir))
    return callbacks


__all__ = ["sparse_train", "training_callbacks"]

"""Sparse training of a graph: the engine, the group layout, the optimizer and the loop (DESIGN §8).

`train_graph` trains a graph prepared for training (`prepare_for_training`) whose analyses the caller
made, with the callbacks the caller chose, and returns the Selection of groups that reached exact
zero. It imports no pass and no pass manager: re-running analyses after preparation is the caller's
(`onnxprune.app.training.sparse_train`, the `sparse-train` pass), so training never reaches back
into the passes that call it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..ir import Graph
from ..space import ErasingSpace, PruningSpace
from .artifacts import LOSSES, build_artifacts, fix_sample_sizes, running_statistics
from .config import TrainConfig, TrainResult, resolve_device, resolve_engine
from .data import ArrayData, FactoryData, check_batch, check_labels, input_specs
from .loop import Callback, share, train_loop
from .optimizers import cric_summary, held_in_probe, make_optimizer
from .schedule import LearningRate


def prepare_for_training(graph: Graph) -> bool:
    """Constant-op weights become initializers (trained values come back by name) and initializers an
    exporter shared between roles are untied, in place, until that changes nothing more (folding can
    hand one new initializer to two roles); True if the graph changed (its analyses must then be made
    again)."""
    from ..ops.training_rules import constant_weights
    from ..prepare import prepare

    start = graph.version
    for _ in range(4):
        version = graph.version
        constant_weights(graph)
        prepare(graph)
        if graph.version == version:
            return graph.version != start
    raise RuntimeError("preparing the graph for training does not settle: each round changes it again")


def train_graph(graph: Graph, space: PruningSpace, types: dict, data: ArrayData | FactoryData, config: TrainConfig,
                *, callbacks: Sequence[Callback] = (), erasing: ErasingSpace | None = None,
                input_shapes: tuple[str, ...] = (), log: Callable[[str], None] | None = None,
                work_dir: Path | None = None) -> TrainResult:
    """Train `graph` (prepared: `prepare_for_training`) with a group-sparse optimizer; write the trained
    weights into it (in place) and return the Selection of groups that are exactly zero (and of
    regions, with `erasing` and `config.target_erase`, whose groups are zero: those are erased whole).
    `space`, `types` and `erasing` describe `graph` as it is. The engine (`config.engine`) is
    onnxruntime-training or torch; `log` hears which one `auto` chose. torch's thread count is set for
    the run and restored after."""
    import torch

    from ..ops.training_rules import legalize
    from ..optim import group_layout
    from .distributed import join, shard
    from .engine import TrainingEngine

    if config.loss not in LOSSES:
        raise UserError(f"unknown loss {config.loss!r} (one of {', '.join(LOSSES)})")
    if prepare_for_training(graph):
        raise ValueError("train_graph needs a graph prepared for training (prepare_for_training) before it is "
                         "analysed; preparing it changed it, so the analyses given describe another graph")
    device = resolve_device(config.device)
    engine_name, why = resolve_engine(config, device)
    if why and log is not None:
        log(f"onnxprune: training with {'torch' if engine_name == 'torch' else 'onnxruntime-training'} on "
            f"{device.upper()} ({why})")
    legal = graph.copy()
    if fix_sample_sizes(legal, _sample_sizes(data, input_shapes)):
        from ..ir.shapes import infer_shapes

        types = {**types, **infer_shapes(legal)}  # static now where they were symbolic
    ranks = join("nccl" if engine_name == "torch" and device == "cuda" else "gloo")  # rank 0 of 1 without torchrun
    if device == "cuda" and ranks.world > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per rank
    # onnxruntime owns the cores during a step and our update is cheap; torch computes the torch engine's
    threads = 1 if engine_name == "ort" else config.threads or len(os.sched_getaffinity(0))
    with _torch_threads(threads), _work_folder(work_dir) as folder:
        if engine_name == "torch":  # torch differentiates every op it runs: nothing to rewrite
            from .torch_engine import TorchEngine

            engine = TorchEngine(legal, config.loss, device, bf16=config.bf16, compile=config.compile)
        else:
            added = legalize(legal, types, "cpu")
            artifacts = build_artifacts(legal, folder / "artifacts", config.loss, exclude=added,
                                        input_shapes=input_shapes)
            engine = TrainingEngine(artifacts, threads=config.threads or None)
        shapes = {k: tuple(v.shape) for k, v in engine.params.items()}
        if config.target_erase and (erasing is None or not erasing.regions):
            raise UserError("--target-erase: the model has no erasable regions (see `onnxprune analyze`)")
        layout = group_layout(space, shapes, frozenset(running_statistics(legal)),
                              erasing if config.target_erase else None)
        if not layout.n_groups and config.target_sparsity > 0:
            raise UserError("no prunable group has trainable weights; see `onnxprune analyze` for why families froze")
        specs = input_specs(graph)
        steps_per_epoch = len(data) // config.batch_size if isinstance(data, ArrayData) else 0
        if isinstance(data, ArrayData) and steps_per_epoch == 0:
            raise UserError(f"{data.source}: {len(data)} samples is fewer than one batch of {config.batch_size}")
        total = config.steps or config.epochs * steps_per_epoch
        if total <= 0:
            raise UserError("give --steps for data from a module:function (its length is unknown)")
        teacher = _teacher(graph, engine.loss_output) if config.loss == "distill" else None
        classes = _classes(types, engine.loss_output)
        probe = held_in_probe(engine, data, config, specs, teacher, classes) \
            if config.optimizer == "hesso-cric" else None
        optimizer = make_optimizer(engine, layout, config, total, device, probe)
        labels = data.arrays.get("labels") if isinstance(data, ArrayData) else None
        if engine.target == "labels" and isinstance(labels, np.ndarray):
            check_labels(labels, classes, data.source)  # all of them before step 1 (shards: batch by batch)

        def batches(start: int) -> Iterator[list[np.ndarray]]:
            source = getattr(data, "source", "data")
            for batch in _batches_from(data, config.batch_size, config.seed, start, steps_per_epoch):
                feeds = check_batch(batch, specs, None if teacher else engine.target, source, classes)
                feeds = shard(feeds, ranks)  # this rank's share of the global batch (all of it with one rank)
                if teacher is not None:
                    feeds.append(teacher(feeds[:len(specs)]))
                yield feeds

        state = train_loop(engine, optimizer, batches, LearningRate(config.lr, total, config.schedule, config.warmup),
                           callbacks, total=total, batch_size=config.batch_size, log_every=config.log_every,
                           ranks=ranks)
        return _result(graph, space, erasing, config, engine, engine_name, layout, state)


def _result(graph: Graph, space: PruningSpace, erasing: ErasingSpace | None, config: TrainConfig, engine,
            engine_name: str, layout, state) -> TrainResult:
    """Write the trained weights into `graph` and say what training zeroed."""
    from .distributed import check_same_groups

    for name, array in engine.weights().items():
        graph.set_initializer(name, array.astype(graph.value(name).tensor.array.dtype, copy=False))
    check_same_groups(state.optimizer.zero, state.ranks, state.step)
    zero = state.optimizer.zero_groups()
    selection = layout.selection(zero).without_clashes(space, erasing)
    cric = cric_summary(state.optimizer, space, config) if config.optimizer == "hesso-cric" else None
    return TrainResult(selection, state.step, state.loss, state.history, share(zero), layout.skipped, engine_name, cric)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` for the block, and restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _work_folder(given: Path | None) -> Iterator[Path]:
    """`given`, or a temporary folder removed afterwards (the training artifacts live there)."""
    if given is not None:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="onnxprune-train-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sample_sizes(data: ArrayData | FactoryData, input_shapes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """The sizes (after the batch) every training sample has: those of the data's arrays, or, for data
    from a function, what `input_shapes` bind."""
    from ..runtime import bound_shapes

    if isinstance(data, ArrayData):
        return {name: tuple(array.shape[1:]) for name, array in data.arrays.items()}
    return {name: dims[1:] for name, dims in bound_shapes(input_shapes).items()}


def _batches_from(data: ArrayData | FactoryData, batch_size: int, seed: int, start: int, steps_per_epoch: int):
    """Batches from step `start` on: epoch e is shuffled with seed + e, and a resumed run skips the batches
    its epoch already used. Data from a factory (steps_per_epoch 0) is one pass."""
    epoch, skip = divmod(start, steps_per_epoch) if steps_per_epoch else (0, start)
    while True:
        for batch in data.batches(batch_size, seed + epoch):
            if skip:
                skip -= 1
                continue
            yield batch
        if not steps_per_epoch:
            return
        epoch += 1


def _teacher(graph: Graph, output: str):
    """A function returning the original model's `output` for a list of input feeds (for distillation)."""
    from ..runtime import user_session

    session = user_session(graph, "the distillation teacher")
    names = [i.name for i in session.get_inputs()]

    def teach(feeds: list[np.ndarray]) -> np.ndarray:
        return session.run([output], dict(zip(names, feeds)))[0]
    return teach


def _classes(types: dict, output: str) -> int | None:
    """The class count a cross-entropy loss reads: axis 1 of the output, when static."""
    found = types.get(output)
    shape = found.shape if found is not None else None
    return shape[1] if shape is not None and len(shape) >= 2 and isinstance(shape[1], int) else None


__all__ = ["prepare_for_training", "train_graph"]

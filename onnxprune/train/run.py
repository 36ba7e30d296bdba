"""Sparse training end to end: analyze → legalize → train (HESSO/DHSPG) → compact → verify → report.

`sparse_train` trains a graph in place and returns the Selection of groups that reached exact zero;
`run` wraps it for `onnxprune run`: data, progress bar, metrics as JSON lines, checkpoints and resume,
the compact model, and `report.json` (accuracy/loss of the dense and compact models on the held-out
split, params, FLOPs, latency, groups removed per family, time per stage).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from ..errors import Interrupted, UserError
from ..facts import VerifyReport
from ..ir import Graph
from ..space import ErasingSpace, PruningSpace, Selection
from .artifacts import LOSSES, build_artifacts, fix_sample_sizes, running_statistics
from .data import ArrayData, FactoryData, check_batch, check_labels, input_specs
from .schedule import LearningRate


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a sparse-training run (also the `sparse-train` pass's options)."""

    optimizer: Literal["hesso", "hesso-cric", "dhspg"] = "hesso"
    variant: Literal["sgd", "adam", "adamw"] = "sgd"
    target_sparsity: float = 0.5
    target_erase: float = 0.0  # share of the erasable regions (whole blocks) to erase (HESSO, or DHSPG = H2SPG)
    loss: Literal["cross-entropy", "mse", "distill"] = "cross-entropy"
    epochs: int = 3
    steps: int = 0  # if set, overrides epochs
    lr: float = 0.05
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    warmup: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"
    engine: Literal["auto", "ort", "torch"] = "auto"  # auto: torch where the device is CUDA, else onnxruntime
    bf16: bool = False  # torch engine on CUDA: forward and backward under bf16 autocast
    compile: bool = False  # torch engine: torch.compile the forward
    seed: int = 0
    pruning_periods: int = 5
    group_divisible: int = 1  # kept groups per family: multiples of this (the same as prune's --round-to)
    threads: int = 0  # intra-op threads of the engine (0: all cores)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end and on Ctrl-C)
    log_every: int = 10
    # HESSO-CRIC (optim/hesso_cric.py): cycles at most, trial levels per family (1/(n+1) .. n/(n+1)),
    # stop when a cycle adds at most this share of K new groups, the loss penalty's weight against
    # saliency, loss evaluations at most (0: auto), held-in batches per evaluation, steps per cycle (0: auto)
    cric_cycles: int = 3
    cric_levels: int = 3
    cric_tolerance: float = 0.05
    cric_loss_weight: float = 1.0
    cric_budget: int = 0
    cric_batches: int = 2
    cric_cycle_steps: int = 0
    cric_choice: Literal["fixed", "progressive"] = "fixed"  # zero CRIC's final set, or choose per period


@dataclass
class TrainResult:
    """What training produced."""

    record: ClassVar[bool] = True  # a fact that no later transform invalidates

    selection: Selection
    steps: int
    final_loss: float
    history: list[dict] = field(default_factory=list)
    group_sparsity: float = 0.0
    skipped_families: tuple[str, ...] = ()
    engine: str = "ort"  # the engine that trained: "ort" or "torch"
    cric: dict | None = None  # what HESSO-CRIC measured and rescued (optimizer hesso-cric)


def resolve_device(device: str) -> str:
    """auto → cuda when torch sees a GPU, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return device


def resolve_engine(config: TrainConfig, device: str) -> tuple[str, str]:
    """(engine, why): `auto` trains with torch where the device is CUDA (onnxruntime-training's GPU wheel
    needs CUDA 11.8) and with onnxruntime-training on the CPU; options only the torch engine has are
    refused with the onnxruntime one."""
    if config.engine not in ("auto", "ort", "torch"):
        raise UserError(f"unknown engine {config.engine!r} (auto, ort, torch)")
    engine = config.engine
    why = ""
    if engine == "auto":
        engine = "torch" if device == "cuda" else "ort"
        why = ("--engine auto: a CUDA device is present" if engine == "torch" else
               "--engine auto: no CUDA device; --engine torch trains with torch on the CPU")
    if engine == "ort" and (config.bf16 or config.compile):
        raise UserError("--bf16 and --compile need the torch engine (--engine torch)")
    if config.bf16 and device != "cuda":
        raise UserError("--bf16 autocasts on CUDA only; this run's device is the CPU")
    return engine, why


def _sample_sizes(data: ArrayData | FactoryData, input_shapes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """The sizes (after the batch) every training sample has: those of the data's arrays, or, for data
    from a function, what `input_shapes` bind."""
    from ..runtime import bound_shapes

    if isinstance(data, ArrayData):
        return {name: tuple(array.shape[1:]) for name, array in data.arrays.items()}
    return {name: dims[1:] for name, dims in bound_shapes(input_shapes).items()}


def cric_settings(config: TrainConfig, total: int, units: int) -> dict:
    """HESSO-CRIC's schedule for a run of `total` steps over `units` trial units (families of two or more
    groups, and regions): CRIC starts where HESSO would start pruning (1/10 of the steps), cycles of
    total/50 steps, then a pruning span as long as HESSO's. Trial levels are 1/(n+1) .. n/(n+1) of a
    family, the target sparsity when it lies beyond them, and all groups but one. The evaluation budget
    defaults to 5 % of the steps' batches, but never below the reference, the cycles and every level of
    16 units."""
    start = total // 10
    cycle_steps = config.cric_cycle_steps or max(1, total // 50)
    pruning_steps = max(total // 4 - start, 1)
    levels = tuple(i / (config.cric_levels + 1) for i in range(1, config.cric_levels + 1))
    if levels[-1] < config.target_sparsity < 1:  # measure how deep the target itself would cut
        levels += (config.target_sparsity,)
    levels += (1.0,)  # and all but one group: the steep end of every family's loss curve
    budget = config.cric_budget or max(total // (20 * max(config.cric_batches, 1)),
                                       1 + config.cric_cycles + len(levels) * min(units, 16))
    return {"cric_start_step": start, "cycle_steps": cycle_steps, "max_cycles": config.cric_cycles, "levels": levels,
            "tolerance": config.cric_tolerance, "loss_weight": config.cric_loss_weight, "budget": budget,
            "pruning_steps": pruning_steps, "pruning_periods": max(1, min(config.pruning_periods, pruning_steps)),
            "choice": config.cric_choice}


def _units(layout) -> int:
    """HESSO-CRIC's trial units in `layout`: families of two or more groups, and regions."""
    families, sizes = np.unique(layout.family_of_group, return_counts=True)
    return int(((families >= 0) & (sizes >= 2)).sum() + (families < 0).sum())


def _make_optimizer(engine, space: PruningSpace, layout, config: TrainConfig, total: int, device: str,
                    erasing: ErasingSpace | None = None, probe=None):
    from ..optim import BaseSettings, Dhspg, DhspgSettings, Hesso, HessoSettings

    params, grads = engine.params, engine.grads
    if device != engine.device:  # our step runs on the GPU; onnxruntime's CPU buffers are synced around it
        params = {k: v.to("cuda") for k, v in params.items()}
        grads = {k: v.to("cuda") for k, v in grads.items()}
    base = BaseSettings(config.variant, momentum=config.momentum if config.variant == "sgd" else 0.0,
                        weight_decay=config.weight_decay)
    if config.optimizer == "hesso":
        start = total // 10
        pruning_steps = max(total // 4 - start, 1)
        periods = max(1, min(config.pruning_periods, pruning_steps))
        settings = HessoSettings(config.target_sparsity, start, pruning_steps, periods, config.group_divisible,
                                 target_erase=config.target_erase)
        optimizer = Hesso(params, grads, layout, space, base, settings, erasing)
    elif config.optimizer == "hesso-cric":
        from ..optim.hesso_cric import HessoCric, HessoCricSettings

        settings = HessoCricSettings(config.target_sparsity, group_divisible=config.group_divisible,
                                     target_erase=config.target_erase, **cric_settings(config, total, _units(layout)))
        optimizer = HessoCric(params, grads, layout, space, probe, base, settings, erasing)
    elif config.optimizer == "dhspg":
        lmbda = 1e-3 if config.variant == "sgd" else 1e-2
        settings = DhspgSettings(config.target_sparsity, lmbda=lmbda, partition_step=total // 10,
                                 half_space_project_steps=total // 10, group_divisible=config.group_divisible,
                                 target_erase=config.target_erase, finish_step=total // 2)
        optimizer = Dhspg(params, grads, layout, space, base, settings, erasing)
    else:
        raise UserError(f"unknown optimizer {config.optimizer!r} (hesso, hesso-cric, dhspg)")
    return optimizer, params, grads


def refuse_existing_checkpoint(directory: Path) -> None:
    """Stop before a fresh run could replace `directory` (or its `.old` twin): whatever is there was not
    made by this run, so it is the user's to keep, to resume, or to remove."""
    for path in (directory, directory.with_name(directory.name + ".old")):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path} already exists (a checkpoint of an earlier run?): continue that run with "
                            "--resume, or move or remove it yourself; onnxprune never deletes what it did not write")


@dataclass
class _Checkpoint:
    directory: Path

    def save(self, step: int, engine, optimizer, extra: dict, settings: dict) -> None:
        import torch

        tmp = Path(tempfile.mkdtemp(dir=self.directory.parent, prefix=".ckpt-"))
        try:
            np.savez(tmp / "weights.npz", **engine.weights())
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            (tmp / "progress.json").write_text(json.dumps({"step": step, **extra, "settings": settings}))
        except BaseException as error:
            shutil.rmtree(tmp, ignore_errors=True)  # never a half-written checkpoint folder on a full disk
            if isinstance(error, OSError) or "enforce fail" in str(error):  # torch reports a full disk so
                raise UserError(f"cannot write the checkpoint in {self.directory.parent}: "
                                f"{getattr(error, 'strerror', None) or str(error).splitlines()[0][:120]}") from error
            raise
        old = self.directory.with_name(self.directory.name + ".old")
        if self.directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.directory.rename(old)
        tmp.rename(self.directory)  # the last good checkpoint is replaced only once the new one is whole
        shutil.rmtree(old, ignore_errors=True)

    def progress(self) -> dict:
        """What progress.json says (step, loss, the settings of the run that wrote it)."""
        path = self.directory / "progress.json"
        if not path.exists():
            raise UserError(f"--resume: no checkpoint in {self.directory}")
        try:
            found = json.loads(path.read_text())
            int(found["step"])
            return found
        except (ValueError, KeyError, TypeError, OSError):
            raise UserError(f"--resume: {path} is damaged; start afresh after removing {self.directory}") from None

    def load(self, engine, optimizer, settings: dict) -> dict:
        """Restore weights and optimizer state; refuse a checkpoint written with other settings."""
        import torch

        progress = self.progress()
        saved = progress.get("settings", {})
        for key, value in settings.items():
            if saved.get(key) != value:
                raise UserError(f"--resume: the checkpoint in {self.directory} was written with {key}={saved.get(key)!r}, "
                                f"this run has {key}={value!r}; resume with the same settings, or start afresh after "
                                f"removing {self.directory}")
        try:
            with np.load(self.directory / "weights.npz") as archive:
                engine.load_weights({k: archive[k] for k in archive.files})
            optimizer.load_state_dict(torch.load(self.directory / "optimizer.pt"))
        except Exception as error:  # numpy, zipfile, pickle and torch each raise their own kinds
            raise UserError(f"--resume: the checkpoint in {self.directory} cannot be read "
                            f"({type(error).__name__}); start afresh after removing it") from None
        return progress


def run_settings(config: TrainConfig, graph: Graph, data) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint: every setting that shapes
    the trajectory, the model (its parameters' names and shapes) and the data (source and size)."""
    import hashlib

    kept = {k: v for k, v in asdict(config).items()
            if k not in ("checkpoint_every", "log_every", "threads", "device", "engine", "bf16", "compile")
            and (config.optimizer == "hesso-cric" or not k.startswith("cric_"))}  # older checkpoints still resume
    layout = ";".join(f"{v.name}:{'x'.join(map(str, v.tensor.shape))}" for v in graph.initializers)
    size = len(data) if isinstance(data, ArrayData) else None
    source = str(getattr(data, "source", "data"))
    source = os.path.realpath(source) if os.path.exists(source) else source  # the same file by another path
    return {**kept, "model": hashlib.sha256(layout.encode()).hexdigest()[:16],
            "data": source + (f" ({size} samples)" if size is not None else "")}


def trim_metrics(path: Path, step: int) -> None:
    """Drop metric rows past `step` (written after the checkpoint a resumed run restarts from), so a run
    killed and resumed never lists a step twice."""
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                rows.append(line)
        except (ValueError, AttributeError):
            continue  # a line cut short by the kill
    from ..files import atomic_write

    with atomic_write(path, "w") as handle:
        handle.write("".join(row + "\n" for row in rows))


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
    before, and are recomputed, so the Selection refers to the space of the graph as it is afterwards,
    which is what compact analyses. The engine (`config.engine`) is onnxruntime-training or torch;
    `log` hears which one `auto` chose."""
    import torch

    from ..ops.training_rules import constant_weights, legalize
    from ..optim import group_layout
    from ..prepare import prepare
    from .engine import TrainingEngine

    if config.loss not in LOSSES:
        raise UserError(f"unknown loss {config.loss!r} (one of {', '.join(LOSSES)})")
    if checkpoint_dir is not None and not resume:
        refuse_existing_checkpoint(checkpoint_dir)
    device = resolve_device(config.device)
    engine_name, why = resolve_engine(config, device)
    if why and log is not None:
        log(f"onnxprune: training with {'torch' if engine_name == 'torch' else 'onnxruntime-training'} on "
            f"{device.upper()} ({why})")
    if engine_name == "ort":
        torch.set_num_threads(1)  # onnxruntime owns the cores during a step; our update is cheap
    else:
        torch.set_num_threads(config.threads or len(os.sched_getaffinity(0)))
    version = graph.version
    constant_weights(graph)
    prepare(graph)  # weights as initializers, one tensor per trained role
    if graph.version != version:
        from ..passmanager import AnalysisManager

        am = AnalysisManager(graph, input_shapes=input_shapes)
        space, types = am.get("prune-space"), am.get("shapes")
        erasing = am.get("erase-space") if erasing is not None else None
    legal = graph.copy()
    if fix_sample_sizes(legal, _sample_sizes(data, input_shapes)):
        from ..ir.shapes import infer_shapes

        types = {**types, **infer_shapes(legal)}  # static now where they were symbolic
    from .distributed import average, check_same_groups, join, shard

    ranks = join("nccl" if engine_name == "torch" and device == "cuda" else "gloo")  # rank 0 of 1 without torchrun
    if device == "cuda" and ranks.world > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per rank
    if not ranks.main:  # rank 0 alone writes and reports (every rank reads a checkpoint to resume)
        on_metrics, progress = None, False
    own_dir = work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="onnxprune-train-")) if own_dir else work_dir
    try:
        if engine_name == "torch":  # torch differentiates every op it runs: nothing to rewrite
            from .torch_engine import TorchEngine

            engine = TorchEngine(legal, config.loss, device, bf16=config.bf16, compile=config.compile)
        else:
            added = legalize(legal, types, "cpu")
            artifacts = build_artifacts(legal, work_dir / "artifacts", config.loss, exclude=added,
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
        probe = None
        if config.optimizer == "hesso-cric":
            probe = _held_in_probe(engine, data, config, specs, teacher, classes)
        optimizer, opt_params, opt_grads = _make_optimizer(engine, space, layout, config, total, device, erasing,
                                                           probe)
        if probe is not None and device == "cuda":
            probe.sync = (opt_params, engine.params)
        schedule = LearningRate(config.lr, total, config.schedule, config.warmup)
        checkpoint = _Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        settings = run_settings(config, graph, data)
        step = 0
        if resume:
            if checkpoint is None:
                raise UserError("--resume needs a checkpoint folder")
            step = int(checkpoint.load(engine, optimizer, settings)["step"])
            if device != engine.device:
                for k in opt_params:
                    opt_params[k].copy_(engine.params[k])
        labels = data.arrays.get("labels") if isinstance(data, ArrayData) else None
        if engine.target == "labels" and isinstance(labels, np.ndarray):
            check_labels(labels, classes, data.source)  # all of them before step 1 (shards: batch by batch)
        history: list[dict] = []
        bar = _progress_bar(total, step) if progress else None
        last_loss = math.nan
        started = time.perf_counter()
        interrupted = False
        try:
            for batch in _batches_from(data, config.batch_size, config.seed, step, steps_per_epoch):
                if step >= total:
                    break
                feeds = check_batch(batch, specs, None if teacher else engine.target, getattr(data, "source", "data"),
                                    classes)
                feeds = shard(feeds, ranks)  # this rank's share of the global batch (all of it with one rank)
                if teacher is not None:
                    feeds.append(teacher(feeds[:len(specs)]))
                loss = engine.step(feeds)
                if ranks.world > 1:  # the mean gradient (and loss) of the global batch, in one all-reduce
                    mean_loss = torch.tensor([loss], dtype=torch.float32, device=engine.device)
                    average([*engine.grads.values(), mean_loss], ranks)
                    loss = float(mean_loss)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} at step {step}; lower --lr" +
                        (f" (the last good checkpoint is in {checkpoint.directory})" if checkpoint else ""))
                lr = schedule(step)
                _update(optimizer, engine, opt_params, opt_grads, device, lr)
                step += 1
                last_loss = loss
                if step % config.log_every == 0 or step == total:
                    check_same_groups(optimizer.zero, ranks, step)
                    record = {"step": step, "loss": loss, "lr": lr,
                              "group_sparsity": _share(optimizer.zero.cpu().numpy()),
                              "samples_per_s": step * config.batch_size / max(time.perf_counter() - started, 1e-9)}
                    history.append(record)
                    if on_metrics:
                        on_metrics(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss:.4f}", sparsity=f"{record['group_sparsity']:.2f}",
                                        lr=f"{lr:.3g}", refresh=False)
                if bar is not None:
                    bar.update(1)
                if ranks.world > 1 and engine.running:
                    average(engine.running.values(), ranks)  # each share's statistics: keep one mean
                if checkpoint and ranks.main and config.checkpoint_every and step % config.checkpoint_every == 0:
                    checkpoint.save(step, engine, optimizer, {"loss": loss}, settings)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
        if checkpoint is not None and ranks.main:
            checkpoint.save(step, engine, optimizer, {"loss": last_loss}, settings)
        if interrupted:
            raise Interrupted(f"interrupted at step {step}; resume with --resume" +
                            (f" (checkpoint: {checkpoint.directory})" if checkpoint else ""))
        for name, array in engine.weights().items():
            graph.set_initializer(name, array.astype(graph.value(name).tensor.array.dtype, copy=False))
        check_same_groups(optimizer.zero, ranks, step)
        zero = optimizer.zero_groups()
        selection = layout.selection(zero).without_clashes(space, erasing)
        cric = _cric_summary(optimizer, space, config) if config.optimizer == "hesso-cric" else None
        return TrainResult(selection, step, last_loss, history, _share(zero), layout.skipped, engine_name, cric)
    finally:
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


class _Probe:
    """The loss probe HESSO-CRIC calls; on CUDA (`sync` set) the optimizer's parameters are copied into
    the engine first, since the engine computes with its own CPU buffers."""

    def __init__(self, evaluate):
        self.evaluate, self.sync = evaluate, None

    def __call__(self) -> float:
        if self.sync is not None:
            source, target = self.sync
            for k in target:
                target[k].copy_(source[k])
        return self.evaluate()


def _held_in_probe(engine, data, config: TrainConfig, specs, teacher, classes) -> _Probe:
    """HESSO-CRIC's probe: the training loss on `cric_batches` batches of the training data, drawn once
    with a seed of their own (held in: the model trains on them too, as the reference's loss does)."""
    from .probe import loss_probe

    batches = []
    for batch in data.batches(config.batch_size, config.seed + 1_000_003):
        source = getattr(data, "source", "data")
        feeds = check_batch(batch, specs, None if teacher else engine.target, source, classes)
        if teacher is not None:
            feeds.append(teacher(feeds[:len(specs)]))
        batches.append(feeds)
        if len(batches) >= max(config.cric_batches, 1):
            break
    if not batches:
        raise UserError("hesso-cric: the data gave no batch to measure the loss on")
    return _Probe(loss_probe(engine, batches))


def _cric_summary(optimizer, space: PruningSpace, config: TrainConfig) -> dict:
    """HESSO-CRIC's summary for the report, with family names and the cost in forward passes."""
    found = optimizer.summary()

    def unit_name(unit: int) -> str:
        return space.family(unit).name if unit >= 0 else f"region {-1 - unit}"
    found["rescued"] = {space.family(f).name: groups for f, groups in found["rescued"].items()}
    found["rescued_count"] = sum(len(g) for g in found["rescued"].values()) + len(found["rescued_regions"])
    for trial in found["trials"]:
        trial["unit"] = unit_name(trial["unit"])
    found["unprobed"] = [unit_name(u) for u in found["unprobed"]]
    found["forward_batches"] = found["evaluations"] * max(config.cric_batches, 1)
    found["budget"] = optimizer.settings.budget
    return found


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


def _update(optimizer, engine, params, grads, device: str, lr: float) -> None:
    """One optimizer step. Where the step runs elsewhere than the engine (onnxruntime on the CPU, the
    step on CUDA) it runs on copies: gradients go there first, parameters come back after."""
    if device != engine.device:
        for k in grads:
            grads[k].copy_(engine.grads[k], non_blocking=True)
    optimizer.step(lr)
    if device != engine.device:
        for k in params:
            engine.params[k].copy_(params[k])


def _share(flags: np.ndarray) -> float:
    """Share of True entries (0 for none)."""
    return float(flags.mean()) if len(flags) else 0.0


def _teacher(graph: Graph, output: str):
    """A function returning the original model's `output` for a list of input feeds (for distillation)."""
    from ..runtime import user_session

    session = user_session(graph, "the distillation teacher")
    names = [i.name for i in session.get_inputs()]

    def teach(feeds: list[np.ndarray]) -> np.ndarray:
        return session.run([output], dict(zip(names, feeds)))[0]
    return teach


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)


# ---------------------------------------------------------------------- onnxprune run
@dataclass(frozen=True)
class RunPaths:
    """Where `run` writes: the compact model, its report, metrics and checkpoints."""

    output: Path
    report: Path
    metrics: Path
    checkpoint: Path

    @classmethod
    def beside(cls, output: str | Path) -> RunPaths:
        """`OUT.onnx` → `OUT.report.json`, `OUT.metrics.jsonl`, `OUT.ckpt/`."""
        output = Path(output)
        stem = output.with_suffix("")
        return cls(output, Path(f"{stem}.report.json"), Path(f"{stem}.metrics.jsonl"), Path(f"{stem}.ckpt"))


def _classes(types: dict, output: str) -> int | None:
    """The class count a cross-entropy loss reads: axis 1 of the output, when static."""
    found = types.get(output)
    shape = found.shape if found is not None else None
    return shape[1] if shape is not None and len(shape) >= 2 and isinstance(shape[1], int) else None


def evaluate(graph: Graph, data: ArrayData, loss: str, output: str, batch_size: int = 256,
             teacher: Graph | None = None) -> dict:
    """Loss (and top-1 accuracy, for labelled data) of `graph` on `data`, in inference mode."""
    from ..runtime import inference_session, user_session

    session = inference_session(graph)
    specs = input_specs(graph)
    reference = user_session(teacher, "the distillation teacher") if teacher is not None else None
    total, correct, squared, count = 0.0, 0, 0.0, 0
    for batch in data.batches(batch_size, None, drop_last=False):
        feeds = check_batch(batch, specs, None, data.source)
        named = dict(zip([s.name for s in specs], feeds))
        out = session.run([output], named)[0]
        if "labels" in batch and loss == "cross-entropy":
            check_labels(batch["labels"], out.shape[1] if out.ndim >= 2 else None, data.source)
            labels = batch["labels"].astype(np.int64)
            shifted = out - out.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            total += float(-log_probs[np.arange(len(labels)), labels].sum())
            correct += int((out.argmax(axis=1) == labels).sum())
        elif reference is not None:
            squared += float(((out - reference.run([output], named)[0]) ** 2).mean()) * len(out)
        count += len(out)
    if not count:
        return {}
    if loss == "cross-entropy" and "labels" in data.arrays:
        return {"loss": total / count, "accuracy": correct / count, "samples": count}
    return {"distill_mse": squared / count, "samples": count} if reference is not None else {"samples": count}


def teacher_spread(teacher: Graph, data: ArrayData, output: str, samples: int = 64) -> float | None:
    """How much the distillation teacher's `output` varies across the first `samples` inputs of `data`:
    the largest standard deviation over samples of any output element, relative to the output's largest
    magnitude. 0 means every input gets the same answer, so distillation has nothing to teach (an
    untrained model, or one whose output ignores its input). None if fewer than two samples."""
    from ..runtime import user_session

    specs = input_specs(teacher)
    batch = next(data.batches(min(samples, len(data)), None, drop_last=False), None)
    if batch is None or len(next(iter(batch.values()))) < 2:
        return None
    feeds = dict(zip([s.name for s in specs], check_batch(batch, specs, None, data.source)))
    out = np.asarray(user_session(teacher, "the distillation teacher").run([output], feeds)[0], dtype=np.float64)
    scale = float(np.max(np.abs(out))) if out.size else 0.0
    spread = float(np.max(np.std(out, axis=0))) if out.size else 0.0
    return spread / scale if scale > 0 else spread


def run_model(model: str, output: str, data_spec: str | None, config: TrainConfig, *, eval_data: str | None = None,
              eval_fraction: float = 0.1, synthetic: int = 0, resume: bool = False, tolerance: float = 1e-4,
              progress: bool = True, log: Callable[[str], None] = print, input_shapes: tuple[str, ...] = (),
              untie_all: bool = False, sample_inputs: str | None = None, latency: bool = True,
              latency_threads: int = 1) -> dict:
    """`onnxprune run`: train, compact, verify and report; returns the report (also written as JSON).
    `input_shapes` ("name=1x3x224x224") bind dynamic input dims for the analysis and for every sample
    input (synthetic data, verify, latency); `sample_inputs` (an .npz of real inputs) are what verify
    feeds, and their sizes bind like `input_shapes`; sizes the model's metadata states bind the rest.
    `untie_all` also splits true weight tying. `latency`: time the compact model against the original
    (onnxruntime on the CPU, `latency_threads` threads, interleaved runs at batch 1 and a larger batch)."""
    from ..files import atomic_write
    from ..inputs import read_samples, resolve_bindings
    from ..ir import load, save, validate
    from ..ops.training_rules import constant_weights
    from ..passmanager import AnalysisManager, PassManager
    from ..prepare import prepare
    from .data import open_data, synthetic_data
    from .distributed import launched_ranks

    ranks = launched_ranks()
    if not ranks.main:  # under torchrun, rank 0 alone speaks and writes
        log, progress = (lambda line: None), False
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    paths = RunPaths.beside(output)
    if not resume:
        refuse_existing_checkpoint(paths.checkpoint)
    graph = load(model)
    validate(graph, model, full=True)
    # Constant-op weights become initializers and shared initializers are untied before the analysis
    # (training would, and the report reads this space)
    constant_weights(graph)
    for line in prepare(graph, untie_all=untie_all):
        log(f"onnxprune: {line}")
    samples = read_samples(sample_inputs, graph) if sample_inputs else {}
    bindings = resolve_bindings(graph, input_shapes, samples)
    for note in bindings.notes:
        log(f"onnxprune: note: {note}")
    input_shapes = bindings.shapes
    original = graph.copy()
    am = AnalysisManager(graph, input_shapes=input_shapes)
    space = am.get("prune-space")
    erasing = am.get("erase-space")
    types = am.get("shapes")
    dense_cost = am.get("cost")
    stage("analyze")
    if not space.prunable and config.target_sparsity > 0 and not (config.target_erase and erasing.regions):
        # say it before data, artifacts and training, with what holds the families back
        from ..frozen import frozen_kinds

        kinds = "; ".join(f"{k.families} famil{'y' if k.families == 1 else 'ies'}: {k.kind}"
                          for k in frozen_kinds(space))
        raise UserError(f"{model}: nothing to prune: none of its {len(space.families)} families is prunable "
                        f"({kinds}); `onnxprune analyze` lists each family's reasons")
    if data_spec is None and not synthetic:
        specs = ", ".join(f"{s.name} ({s.dtype}, {'x'.join('N' if d is None else str(d) for d in s.shape)})"
                          for s in input_specs(graph))
        raise UserError(f"{model}: training needs data: --data FILE.npz|DIR|module:function with arrays named after "
                        f"the inputs [{specs}] plus 'labels' for --loss cross-entropy; or --synthetic N to distil on "
                        "N random inputs")
    if synthetic:
        data = synthetic_data(graph, synthetic, config.seed, input_shapes=input_shapes)
        config = TrainConfig(**{**asdict(config), "loss": "distill"})
        log(f"onnxprune: training on {synthetic} SYNTHETIC random inputs (distillation from the original model)")
    else:
        data = open_data(data_spec)
    held_out = None
    if eval_data is not None:
        held_out = open_data(eval_data)
    elif isinstance(data, ArrayData) and eval_fraction > 0:
        data, held_out = data.split(eval_fraction, config.seed)
    if isinstance(data, ArrayData) and not len(data):
        raise UserError(f"{data.source}: the data set is empty")
    teacher_note = None
    if config.loss == "distill":
        probe = data if isinstance(data, ArrayData) else held_out if isinstance(held_out, ArrayData) else None
        spread = teacher_spread(original, probe, graph.outputs[0].name) if probe is not None else None
        if spread is not None and spread <= 1e-6:  # float32 noise: the same answer for every input
            teacher_note = (f"the distillation teacher (the original model) gives the same {graph.outputs[0].name!r} "
                            f"for every input (relative spread {spread:.2g}): distillation can only teach a constant; "
                            "check the model's weights (untrained?) and inputs, or train with labels")
            log(f"onnxprune: warning: {teacher_note}")
    stage("data")
    if not ranks.main:  # train alongside rank 0, which writes everything
        result = sparse_train(graph, space, types, data, config, checkpoint_dir=paths.checkpoint, resume=resume,
                              erasing=erasing, input_shapes=input_shapes)
        return {"rank": ranks.rank, "steps": result.steps}
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        trim_metrics(paths.metrics, int(_Checkpoint(paths.checkpoint).progress()["step"]))
    try:
        with open(paths.metrics, "a" if resume else "w") as metrics:
            def on_metrics(record: dict) -> None:
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
            result = sparse_train(graph, space, types, data, config, checkpoint_dir=paths.checkpoint, resume=resume,
                                  on_metrics=on_metrics, progress=progress, erasing=erasing, input_shapes=input_shapes,
                                  log=log)
    except BaseException:
        if paths.metrics.exists() and not paths.metrics.stat().st_size:
            paths.metrics.unlink()  # a run that failed before its first step leaves no empty file behind
        raise
    stage("train")
    trained = graph.copy()
    am = AnalysisManager(graph, input_shapes=input_shapes, sample_inputs=samples)
    am.provide(result.selection)
    PassManager(f"compact,cleanup,verify{{tolerance={tolerance:g}}}").run(graph, am)
    report_verify = am.fact(VerifyReport)
    compact_cost = AnalysisManager(graph, input_shapes=input_shapes).get("cost")
    stage("compact+verify")
    output_name = graph.outputs[0].name
    report = {
        "command": "run", "model": str(model), "output": str(output), "config": asdict(config), "engine": result.engine,
        "ranks": ranks.world,
        "data": "synthetic" if synthetic else data_spec, "steps": result.steps, "final_loss": result.final_loss,
        "group_sparsity": result.group_sparsity, "groups_removed": result.selection.group_count,
        "regions_erased": [erasing.regions[r].merge for r in result.selection.erased],
        "nodes": {"dense": len(original), "compact": len(graph)},
        "families": {space.family(f).name: {"removed": len(g), "size": space.family(f).size}
                     for f, g in sorted(result.selection.pruned.items()) if g},
        "skipped_families": list(result.skipped_families),
        "params": {"dense": dense_cost.parameters, "compact": compact_cost.parameters},
        "flops": {"dense": dense_cost.flops, "compact": compact_cost.flops},
        "verify": {"max_abs": report_verify.max_abs, "max_rel": report_verify.max_rel, "ok": report_verify.ok},
    }
    from ..app.report import report_sections

    report.update(report_sections(space, result.selection, erasing))  # widths, frozen families, erased blocks
    if result.cric is not None:
        report["cric"] = result.cric
    if teacher_note is not None:
        report["teacher"] = {"varies": False, "note": teacher_note}
    if held_out is not None and isinstance(held_out, ArrayData) and len(held_out):
        teacher = original if config.loss == "distill" else None
        # the original beside the trained ("dense": groups zeroed, not yet removed) and the compact model,
        # so the report shows what training cost, not only that compact kept what training made
        report["eval"] = {name: evaluate(scored, held_out, config.loss, output_name, teacher=teacher)
                          for name, scored in (("original", original), ("dense", trained), ("compact", graph))}
    stage("evaluate")
    if latency:
        from ..runtime import compare_latency

        try:
            found = compare_latency(original, graph, threads=latency_threads, input_shapes=input_shapes)
            report["latency_ms"] = found.to_json()
            report["latency_ms"]["not_faster_at"] = found.not_faster("compact", "original")
            report["latency_ms"]["summary"] = found.describe("original", "compact")
        except UserError as error:  # the model is trained and written: a timing failure is only reported
            report["latency_ms"] = {"notes": [f"not measured: {error}"], "not_faster_at": [], "summary": "not measured"}
        if input_shapes:
            report["latency_ms"]["input_shapes"] = list(input_shapes)
        stage("latency")
    report["time_s"] = stages
    save(graph, output)  # only now: a failed evaluation leaves no model without its report (the checkpoint resumes)
    with atomic_write(paths.report, "w") as handle:
        handle.write(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(paths.checkpoint, ignore_errors=True)  # only an unfinished run needs its checkpoint
    return report

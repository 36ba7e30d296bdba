"""Building the group-sparse optimizer a training run steps: HESSO, HESSO-CRIC (with its loss probe and
schedule) or DHSPG over the run's group layout, on the engine's device or on CUDA beside a CPU engine.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ..space import PruningSpace
from .config import TrainConfig
from .data import check_batch


def hesso_schedule(config: TrainConfig, total: int) -> tuple[int, int, int]:
    """HESSO's schedule for a run of `total` steps: (first pruning step, pruning steps, periods). Pruning
    starts at 1/10 of the steps and ends at 1/4, so most of the run recovers from the cut."""
    start = total // 10
    pruning_steps = max(total // 4 - start, 1)
    return start, pruning_steps, max(1, min(config.pruning_periods, pruning_steps))


def cric_settings(config: TrainConfig, total: int, units: int) -> dict:
    """HESSO-CRIC's schedule for a run of `total` steps over `units` trial units (families of two or more
    groups, and regions): CRIC's trials run where HESSO would start pruning (1/10 of the steps), then
    HESSO's pruning span (with --cric-choice fixed, after cycles of total/50 steps). Trial levels are
    1/(n+1) .. n/(n+1) of a family, the target sparsity when it lies beyond them, and all groups but
    four, two and one. The evaluation budget defaults to 5 % of the steps' batches, but never below the
    reference, the dead trial, the cycles and every trial of 16 units. Cycles with the progressive choice
    are refused."""
    if config.cric_cycles and config.cric_choice == "progressive":
        raise UserError("--cric-cycles needs --cric-choice fixed: each progressive period chooses afresh from the "
                        "current saliency and the trials' penalties, so a cycle's measurements would go unused")
    start, pruning_steps, periods = hesso_schedule(config, total)
    cycle_steps = config.cric_cycle_steps or max(1, total // 50)
    levels = tuple(i / (config.cric_levels + 1) for i in range(1, config.cric_levels + 1))
    if levels[-1] < config.target_sparsity < 1:  # measure how deep the target itself would cut
        levels += (config.target_sparsity,)
    levels += (1.0,)  # and all but one group: the steep end of every family's loss curve
    keeps = (4, 2)  # and all but four and two: where on that end the loss turns steep
    budget = config.cric_budget or max(total // (20 * max(config.cric_batches, 1)),
                                       2 + config.cric_cycles + (len(levels) + len(keeps)) * min(units, 16))
    return {"cric_start_step": start, "cycle_steps": cycle_steps, "max_cycles": config.cric_cycles, "levels": levels,
            "keeps": keeps,
            "tolerance": config.cric_tolerance, "loss_weight": config.cric_loss_weight, "collapse": config.cric_collapse,
            "budget": budget,
            "pruning_steps": pruning_steps, "pruning_periods": periods,
            "choice": config.cric_choice}


def trial_units(layout) -> int:
    """HESSO-CRIC's trial units in `layout`: families of two or more groups, and regions."""
    families, sizes = np.unique(layout.family_of_group, return_counts=True)
    return int(((families >= 0) & (sizes >= 2)).sum() + (families < 0).sum())


def make_optimizer(engine, layout, config: TrainConfig, total: int, device: str, probe: Probe | None = None):
    """The optimizer `config` names over `layout` (which carries all it needs to choose groups), set for a
    run of `total` steps. Where `device` is not the engine's (onnxruntime's CPU buffers, the step on CUDA) it steps copies (`OffloadedStep`), and
    HESSO-CRIC's `probe` copies them into the engine before it measures."""
    from ..optim import BaseSettings, Dhspg, DhspgSettings, Hesso, HessoSettings

    params, grads = engine.params, engine.grads
    if device != engine.device:  # our step runs on the GPU; onnxruntime's CPU buffers are synced around it
        params = {k: v.to("cuda") for k, v in params.items()}
        grads = {k: v.to("cuda") for k, v in grads.items()}
    base = BaseSettings(config.variant, momentum=config.momentum if config.variant == "sgd" else 0.0,
                        weight_decay=config.weight_decay)
    if config.optimizer == "hesso":
        start, pruning_steps, periods = hesso_schedule(config, total)
        settings = HessoSettings(config.target_sparsity, start, pruning_steps, periods, config.group_divisible,
                                 target_erase=config.target_erase)
        optimizer = Hesso(params, grads, layout, base, settings)
    elif config.optimizer == "hesso-cric":
        from ..optim.hesso_cric import HessoCric, HessoCricSettings

        settings = HessoCricSettings(config.target_sparsity, group_divisible=config.group_divisible,
                                     target_erase=config.target_erase,
                                     **cric_settings(config, total, trial_units(layout)))
        optimizer = HessoCric(params, grads, layout, probe, base, settings)
    elif config.optimizer == "dhspg":
        lmbda = 1e-3 if config.variant == "sgd" else 1e-2
        settings = DhspgSettings(config.target_sparsity, lmbda=lmbda, partition_step=total // 10,
                                 half_space_project_steps=total // 10, group_divisible=config.group_divisible,
                                 target_erase=config.target_erase, finish_step=total // 2)
        optimizer = Dhspg(params, grads, layout, base, settings, compiled=config.compile)
    else:
        raise UserError(f"unknown optimizer {config.optimizer!r} (hesso, hesso-cric, dhspg)")
    if device == engine.device:
        return optimizer
    if probe is not None:
        probe.sync = (params, engine.params)
    return OffloadedStep(optimizer, engine, params, grads)


class OffloadedStep:
    """The optimizer stepping on another device than the engine computes on (onnxruntime on the CPU,
    the step on CUDA): gradients are copied there before each step and parameters come back after.
    Everything else (`zero`, `zero_groups`, `state_dict`, ...) is the optimizer's own."""

    def __init__(self, optimizer, engine, params: dict, grads: dict):
        self.optimizer, self.engine, self.params, self.grads = optimizer, engine, params, grads

    def step(self, lr: float) -> None:
        """One optimizer step on the copies."""
        for k in self.grads:
            self.grads[k].copy_(self.engine.grads[k], non_blocking=True)
        self.optimizer.step(lr)
        for k in self.params:
            self.engine.params[k].copy_(self.params[k])

    def load_state_dict(self, state: dict) -> None:
        """Restore the optimizer's state; its parameters follow the engine's (restored first)."""
        self.optimizer.load_state_dict(state)
        for k in self.params:
            self.params[k].copy_(self.engine.params[k])

    def __getattr__(self, name: str):
        return getattr(self.optimizer, name)


class Probe:
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


def held_in_probe(engine, data, config: TrainConfig, specs, teacher, classes) -> Probe:
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
    return Probe(loss_probe(engine, batches))


def cric_summary(optimizer, space: PruningSpace, config: TrainConfig) -> dict:
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
    found["collapse"] = optimizer.settings.collapse
    found["trials_past_bound"] = sum(t["increase"] > optimizer.settings.collapse for t in found["trials"])
    found["caveat"] = cric_caveat(found)
    return found


def cric_caveat(cric: dict) -> str:
    """Why CRIC's trials said little, or "": the dead trial gave no scale (its loss not a finite number,
    or no higher than the reference), or most trials rose past the bound (a reference close to the dead
    trial's loss: a model that had learned little by then, where every rise is large in its units)."""
    if not cric["trials"]:
        return ""
    reference, dead = cric.get("reference_loss", math.nan), cric.get("dead_loss", math.nan)
    if not (math.isfinite(reference) and math.isfinite(dead)):
        return (f"the reference loss ({reference:.3g}) or the loss with every prunable group zeroed ({dead:.3g}) is not "
                "a finite number: CRIC had no scale to measure a collapse by and charged only trials whose loss was "
                "not finite")
    if dead <= reference:
        return (f"the loss with every prunable group zeroed ({dead:.3g}) is no higher than the reference ({reference:.3g}): "
                "the model did no better than one without its prunable groups, so no finite trial could read as a "
                "collapse")
    past, trials = cric.get("trials_past_bound", 0), len(cric["trials"])
    if past * 2 > trials:
        return (f"{past} of {trials} trials rose past the collapse bound ({cric['collapse']:g}), so CRIC protected most "
                f"deep cuts; where the reference loss ({reference:.3g}) is close to the loss with every prunable group "
                f"zeroed ({dead:.3g}), the model had learned little by the trials and every cut's rise is large in "
                "their units: use --optimizer hesso there, or a larger --cric-collapse")
    return ""

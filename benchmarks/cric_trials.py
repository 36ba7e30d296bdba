"""What HESSO-CRIC's trials measure on a model: the reference loss L0, the dead trial's loss Ld (every
prunable group zeroed) and each family's rises (L - L0)/(Ld - L0) at its trial cuts, the figures that
`--cric-collapse` is a bound on. Use it to see where a model's cuts would read as collapses before
choosing that bound for it.

Each seed trains as `run --optimizer hesso-cric` would up to CRIC's trials (10 % of the steps) and stops
there: what training does after the trials cannot change them, so a full run is not needed.

    python benchmarks/cric_trials.py MODEL (--data D | --synthetic N) [--eval-data E] [--sparsity 0.9]
                                     [--epochs 3 | --steps N] [--train-size N] [--seeds 0,1,2] [--lr 0.05]
                                     [--batch-size 64] [--curves] [--recover R]

`--eval-data` is held out instead of a tenth of D, as benchmarks/hesso_cric.py holds out the test set
(the same steps, so the same trials as its runs).

Per seed: L0, Ld, the largest rise among cuts that keep three or more groups of a family, two, and one
(with the family), how many trials rose past the default bound, and the families the evaluation budget
left unprobed. `--curves` adds every family's points (groups removed, rise). Channel families and heads
only: the script does not erase, so no region is tried.

`--recover R` also asks whether the deep cuts (those that keep four groups or fewer, and any past the
bound) recover: it zeroes the cut, trains R plain-SGD steps at the run's learning rate on two other
held-in batches with the cut held at zero, and measures again. Its rise is against the uncut model
trained the same R steps, in the same units (Ld - L0), so ordinary progress in those steps does not
count as recovery. An experiment, not what CRIC does: a trial there is measured right after the cut.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from onnxprune.app.run import run_model
from onnxprune.optim.hesso_cric import HessoCric, HessoCricSettings
from onnxprune.train import probe as probes
from onnxprune.train.config import TrainConfig


class TrialsMeasured(Exception):
    """Ends a run once CRIC's trials are measured (raised by the wrapped trial step of `measure`)."""


def family_names(optimizer: HessoCric) -> dict[int, str]:
    """Unit -> the first tensor whose axis holds its groups (a family's name starts with it)."""
    names: dict[int, str] = {}
    family_of = optimizer.layout.family_of_group
    for entry in optimizer.layout.axes:
        for group in np.unique(entry.group_of_index[entry.group_of_index >= 0]):
            names.setdefault(int(family_of[group]), entry.tensor)
    return names


def recovered_rises(optimizer: HessoCric, engine, fit: list, steps: int, lr: float, bound: float) -> dict:
    """(unit, groups removed) -> the rise of that trial's cut after `steps` plain-SGD steps on `fit` with
    the cut held at zero, against the uncut model trained alike, for the trials that keep at most four
    groups or rose past `bound`. Parameters are restored after each (from CRIC's cache)."""
    sizes = {unit: len(groups) for unit, groups in optimizer.trial_units()}
    # the trials' own ranking: at that point saliency_sum holds exactly the saliency they ranked by
    ranked = {unit: groups[np.lexsort((groups, optimizer.saliency_sum.numpy()[groups]))]
              for unit, groups in optimizer.trial_units()}

    def trained(removed: np.ndarray) -> float:
        factor = torch.ones(optimizer.layout.n_groups, dtype=torch.float64)
        factor[torch.as_tensor(removed, dtype=torch.long)] = 0.0
        optimizer.segments.scale_(optimizer.params, factor)
        for step in range(steps):
            engine.step(list(fit[step % len(fit)]))
            for name, value in optimizer.params.items():
                value.sub_(optimizer.grads[name], alpha=lr)
            optimizer.segments.scale_(optimizer.params, factor)
        loss = optimizer.probe()
        optimizer._restore()
        return loss

    control = trained(np.zeros(0, dtype=np.int64))  # the uncut model, trained the same steps
    span = optimizer.dead_loss - optimizer.reference_loss
    return {(t["unit"], t["removed"]): (trained(ranked[t["unit"]][:t["removed"]]) - control) / span
            for t in optimizer.trials if sizes[t["unit"]] - t["removed"] <= 4 or t["increase"] > bound}


def measure(model: str, data: str | None, eval_data: str | None, config: TrainConfig, synthetic: int,
            recover: int = 0) -> dict:
    """Train up to CRIC's trials and return what they measured (losses, trials, unit sizes and names; with
    `recover`, the deep cuts' rises after that many steps of retraining)."""
    measured: dict = {}
    original, original_probe = HessoCric._trials, probes.loss_probe
    held_in: dict = {}

    def probe_of_two(engine, batches):  # CRIC measures on the first two held-in batches, as by default;
        held_in.update(engine=engine, fit=list(batches[2:]))  # --recover trains on the next two
        return original_probe(engine, batches[:2])

    def trials_then_stop(self: HessoCric, saliency) -> None:
        original(self, saliency)
        names = family_names(self)
        measured.update(reference=self.reference_loss, dead=self.dead_loss, step=self.steps,
                        sizes={unit: len(groups) for unit, groups in self.trial_units()},
                        names={unit: names.get(unit, f"unit {unit}") for unit, _ in self.trial_units()},
                        trials=[(t["unit"], t["removed"], t["increase"]) for t in self.trials],
                        unprobed=[names.get(unit, f"unit {unit}") for unit in self.unprobed])
        if recover:
            measured["recovered"] = recovered_rises(self, held_in["engine"], held_in["fit"], recover, config.lr,
                                                    self.settings.collapse)
        raise TrialsMeasured

    HessoCric._trials = trials_then_stop
    if recover:
        probes.loss_probe = probe_of_two
    try:
        with tempfile.TemporaryDirectory(prefix="cric-trials-") as tmp:
            run_model(model, str(Path(tmp) / "out.onnx"), data, config, eval_data=eval_data, synthetic=synthetic,
                      progress=False, latency=False, log=lambda line: None)
    except TrialsMeasured:
        return measured
    finally:
        HessoCric._trials, probes.loss_probe = original, original_probe
    raise SystemExit("the run ended without CRIC trials (no target, or no budget for them)")


def summary(found: dict, bound: float) -> str:
    """One line: L0, Ld, the largest rise by groups kept (with its family), trials past `bound`."""
    largest: dict[str, tuple[float, str]] = {}
    past = 0
    for unit, removed, rise in found["trials"]:
        past += rise > bound
        kept = found["sizes"][unit] - removed
        key = "keeps 1" if kept == 1 else "keeps 2" if kept == 2 else "keeps >= 3"
        if rise > largest.get(key, (-1.0, ""))[0]:
            largest[key] = (rise, f"{found['names'][unit]} at {kept}")
    cells = ", ".join(f"{key} {largest[key][0]:.2f} ({largest[key][1]})" for key in ("keeps >= 3", "keeps 2", "keeps 1")
                      if key in largest)
    unprobed = f"; unprobed (budget): {', '.join(found['unprobed'])}" if found["unprobed"] else ""
    return (f"step {found['step']}: L0 {found['reference']:.4g}, Ld {found['dead']:.4g}; largest rise {cells}; "
            f"{past} of {len(found['trials'])} trials past {bound:g}{unprobed}")


def curves(found: dict) -> list[str]:
    """Each family's (groups removed, rise) points; after "->", the rise after retraining (--recover)."""
    points: dict[int, list[str]] = {}
    recovered = found.get("recovered", {})
    for unit, removed, rise in found["trials"]:
        after = f" -> {recovered[unit, removed]:.2f}" if (unit, removed) in recovered else ""
        points.setdefault(unit, []).append(f"{removed}: {rise:.2f}{after}")
    return [f"  {found['names'][u]} ({found['sizes'][u]} groups): " + ", ".join(p) for u, p in points.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data")
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--eval-data")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=0, help="train on the first N rows of --data")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--curves", action="store_true")
    parser.add_argument("--recover", type=int, default=0, metavar="R",
                        help="also retrain the deep cuts R steps and measure again (with --curves: after ->)")
    args = parser.parse_args()
    if bool(args.data) == bool(args.synthetic):
        parser.error("give --data or --synthetic")
    if args.synthetic and args.train_size:
        parser.error("--train-size takes the first rows of --data; with --synthetic give the sample count there")
    bound = HessoCricSettings().collapse
    with tempfile.TemporaryDirectory(prefix="cric-trials-data-") as tmp:
        data = args.data
        if data and args.train_size:
            data = str(Path(tmp) / "train.npz")
            with np.load(args.data) as archive:
                np.savez(data, **{k: archive[k][:args.train_size] for k in archive.files})
        for seed in (int(s) for s in args.seeds.split(",")):
            config = TrainConfig(optimizer="hesso-cric", target_sparsity=args.sparsity, epochs=args.epochs,
                                 steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=seed, threads=1,
                                 cric_batches=4 if args.recover else 2)
            found = measure(args.model, data, args.eval_data, config, args.synthetic, args.recover)
            print(f"{Path(args.model).stem} seed {seed}, {summary(found, bound)}", flush=True)
            if args.curves:
                print("\n".join(curves(found)), flush=True)


if __name__ == "__main__":
    main()

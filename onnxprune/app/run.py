"""`onnxprune run`: data, training, compact, verify, evaluation, latency and the report (DESIGN §8).

`run_model` is the command's application layer: it reads the model and data, trains with the loop's
callbacks for this command (checkpoint beside the output, progress bar, `OUT.metrics.jsonl`, Ctrl-C),
compacts and verifies, evaluates the original, trained and compact models on the held-out split,
times them, and writes the model with `OUT.report.json`. `run_command` is the command's body from
its parsed options: checks, `--round-to auto`, the report's summary lines and the HTML page. Lines
for the user go to `say` (stdout) and `warn` (stderr).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..bounds import check_bounds
from ..errors import UserError
from ..facts import VerifyReport
from ..ir import Graph
from ..train.config import TrainConfig
from ..train.data import ArrayData, check_batch, check_labels, input_specs
from .command_io import check_output_path, input_bindings, warn, write_page
from .options import parse_round_to
from .summary import cost_lines, removed_lines

Say = Callable[[str], None]


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


def run_command(args: argparse.Namespace, say: Say = print, warn: Say = warn) -> int:
    """`run` from its parsed options: refuse bad values and outputs before any work, choose `--round-to
    auto` from measured widths, run `run_model`, say its summary, write the HTML page."""
    from .prune import warn_not_faster
    from .report import read_metrics, report_paths

    check_bounds(args)
    paths = RunPaths.beside(args.output)
    report_html = report_paths(args.output)[1]
    for path in (args.output, f"{args.output}.data", paths.report, paths.metrics,
                 *(() if args.no_report else (report_html,))):
        check_output_path(path, (args.model,))
    if args.target_erase is None:
        args.target_erase = 0.5 if args.erase else 0.0
    if not 0 <= args.target_erase <= 1:
        raise UserError(f"--target-erase must be between 0 and 1, got {args.target_erase}")
    round_to = parse_round_to(args.round_to)
    if round_to is None:
        from .widths_choice import run_round_to

        graph = load_for_training(args.model, args.untie_all, lambda line: None)  # run_model says what changed
        round_to = run_round_to(args, graph, input_bindings(args, graph, lambda note: None)[0].shapes, say=say)
    args.round_to = round_to
    report = run_model(args.model, args.output, args.data, config_from(args), eval_data=args.eval_data,
                       eval_fraction=args.eval_fraction, synthetic=args.synthetic, resume=args.resume,
                       tolerance=args.tolerance, progress=not args.no_progress,
                       input_shapes=tuple(args.input_shape or ()), untie_all=args.untie_all,
                       sample_inputs=args.sample_inputs, latency=not args.no_latency,
                       latency_threads=args.latency_threads, log=say)
    if report.get("rank"):  # a data-parallel rank other than 0: rank 0 reports
        return 0
    for line in run_summary(report):
        say(line)
    if not args.no_report:
        write_page(report, report_html, read_metrics(paths.metrics))
    say(f"wrote {args.output}, {paths.report}, {paths.metrics}" + ("" if args.no_report else f", {report_html}"))
    if report.get("latency_ms") is not None:
        warn_not_faster(report["latency_ms"]["not_faster_at"], warn)
    return 0


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig `run`'s options describe (`--round-to` already a number)."""
    return TrainConfig(optimizer=args.optimizer, variant=args.variant, target_sparsity=args.target_sparsity,
                       target_erase=args.target_erase,
                       loss=args.loss, epochs=args.epochs, steps=args.steps or 0, lr=args.lr, schedule=args.schedule,
                       warmup=args.warmup, momentum=args.momentum, weight_decay=args.weight_decay,
                       batch_size=args.batch_size, device=args.device, engine=args.engine, bf16=args.bf16,
                       compile=args.compile, seed=args.seed,
                       pruning_periods=args.pruning_periods, group_divisible=args.round_to, threads=args.threads,
                       checkpoint_every=args.checkpoint_every, cric_cycles=args.cric_cycles,
                       cric_levels=args.cric_levels, cric_tolerance=args.cric_tolerance,
                       cric_loss_weight=args.cric_loss_weight, cric_collapse=args.cric_collapse,
                       cric_budget=args.cric_budget,
                       cric_batches=args.cric_batches, cric_cycle_steps=args.cric_cycle_steps,
                       cric_choice=args.cric_choice)


def cric_lines(cric: dict) -> list[str]:
    """What HESSO-CRIC cost and rescued; and where its trials could not measure a collapse, or read most
    cuts as one, why (the summary's caveat: train/optimizers.py `cric_caveat`)."""
    cycles = f", {len(cric['cycles'])} cycles ({cric['cycle_steps']} steps)" if cric["cycles"] else ""
    lines = [f"hesso-cric {cric['evaluations']} loss evaluations ({cric['forward_batches']} batches){cycles}; "
             f"rescued {cric['rescued_count']} groups"]
    return lines + ([f"hesso-cric {cric['caveat']}"] if cric.get("caveat") else [])


def run_summary(report: dict) -> list[str]:
    """The lines `run` says about its report: steps, sparsity, what was removed, params and FLOPs,
    latency, held-out evaluation, the teacher's warning, verify."""
    lines = [f"trained {report['steps']} steps; group sparsity {report['group_sparsity']:.3f}; "
             f"removed {report['groups_removed']} groups in {len(report['families'])} families"
             + (f"; erased {len(report['regions_erased'])} blocks ({report['nodes']['dense']} -> "
                f"{report['nodes']['compact']} nodes)" if report["regions_erased"] else "")]
    lines += [f"  {line}" for line in removed_lines(report)]
    if report.get("cric") is not None:
        lines += cric_lines(report["cric"])
    lines += cost_lines(*((report[key]["dense"], report[key]["compact"]) for key in ("params", "flops")))
    lat = report.get("latency_ms")
    if lat is not None:
        lines.append(f"latency    {lat['summary']}")
        lines += [f"latency    {note}" for note in lat["notes"]]
    for name, found in report.get("eval", {}).items():
        shown = ", ".join(f"{k} {figure(v)}" for k, v in found.items() if k != "samples")
        label = {"dense": "trained (zeroed)"}.get(name, name)
        lines.append(f"eval       {label}: {shown} ({found.get('samples', 0)} held-out samples)")
    if "teacher" in report:
        lines.append(f"teacher    {report['teacher']['note']}")
    verify = report["verify"]
    lines.append(f"verify     compact vs trained: max abs diff {verify['max_abs']:.3g}, "
                 f"max rel diff {verify['max_rel']:.3g}")
    return lines


def figure(value: float) -> str:
    """A loss or accuracy with the digits that matter: 4 decimals in the usual range, else 3 significant
    digits in exponent form (a distillation loss of 5.6e-19 is not 0.0000)."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3g}"


def load_for_training(model: str, untie_all: bool, log: Callable[[str], None]) -> Graph:
    """Load and validate `model` and prepare it for training before any analysis (training would, and the
    report reads this space): Constant-op weights become initializers, shared initializers are untied
    (each change said to `log`), and what that exposed is settled, so training takes the graph as
    analysed."""
    from ..ir import load, validate
    from ..ops.training_rules import constant_weights
    from ..prepare import prepare
    from ..train.sparse import prepare_for_training

    graph = load(model)
    validate(graph, model, full=True)
    constant_weights(graph)
    for line in prepare(graph, untie_all=untie_all):
        log(f"onnxprune: {line}")
    prepare_for_training(graph)
    return graph


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
    from ..ir import save
    from ..passmanager import AnalysisManager, PassManager
    from ..train.callbacks import MetricsLog
    from ..train.checkpoint import Checkpoint, refuse_existing_checkpoint, trim_metrics
    from ..train.data import open_data, synthetic_data
    from ..train.distributed import launched_ranks
    from ..train.sparse import train_graph
    from .training import training_callbacks

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
    graph = load_for_training(model, untie_all, log)
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
    def train(progress: bool, metrics: MetricsLog | None):
        callbacks = training_callbacks(config, graph, data, checkpoint_dir=paths.checkpoint, resume=resume,
                                       progress=progress, metrics=metrics)
        return train_graph(graph, space, types, data, config, callbacks=callbacks, erasing=erasing,
                           input_shapes=input_shapes, log=log)

    if not ranks.main:  # train alongside rank 0, which writes everything
        result = train(False, None)
        return {"rank": ranks.rank, "steps": result.steps}
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        trim_metrics(paths.metrics, int(Checkpoint(paths.checkpoint).progress()["step"]))
    try:
        with open(paths.metrics, "a" if resume else "w") as metrics:
            result = train(progress, MetricsLog(metrics))
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
    from .report import report_sections

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

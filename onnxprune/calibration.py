"""Calibration: run the model on a few of the user's inputs and score what it computes there.

- `block_influence`: ShortGPT's Block Influence ("ShortGPT: Layers in Large Language Models are More
  Redundant Than You Expect"; "The Unreasonable Ineffectiveness of the Deeper Layers") of every
  erasable region: 1 - cos(residual stream before the region, after its merge), averaged over tokens
  (positions). A region that barely turns the stream matters little, whatever its weights' size.
- `activation_importance`: a channel or head group's importance from what flows through it (the
  structured form of Wanda's |W| x ||X||, "A Simple and Effective Pruning Approach for LLMs"; LLM-Pruner
  and FLAP score by activations too): removing the group's inputs to a consumer weight W changes that
  op's output by X_g W_g, whose energy over the calibration positions is sum_k ||X_k||^2 ||W_k||^2
  (cross terms dropped). A channel with large weights that the data never excites scores 0.
- `causal_lm_loss`: the next-token cross-entropy of a causal language model (token ids in, logits
  [batch, sequence, vocabulary] out) on held-out calibration tokens, so dense and compact models can be
  compared by what users of such models read (loss, perplexity).

Inputs come from a `.npz` (arrays named after the model's inputs) or one `.npy` of token ids for a
model with one input. They are split once: the first part scores, the rest is held out.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .ir import Graph
from .norms import per_index, row_sums
from .space import ACTIVATION, CONSUMER, ErasingSpace, Family, PruningSpace

#: the one line for criterion activation without data (`select` says it; `prune` before loading the model)
NEEDS_CALIBRATION = ("criterion activation ranks groups on calibration inputs: give --calibration DATA "
                     "(select{calibration=FILE})")
#: Rows per onnxruntime run of the calibration inputs (bounds the memory of the captured activations).
BATCH = 8


@dataclass(frozen=True)
class Calibration:
    """The user's calibration inputs (name -> array, rows on axis 0), split into the rows that score
    (`scoring`) and the rows held out to measure the result (`held_out`, may be empty)."""

    source: str
    scoring: dict[str, np.ndarray]
    held_out: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        """Rows used to score."""
        return len(next(iter(self.scoring.values())))


def read_calibration(path: str | Path, graph: Graph, held_out: float = 0.25) -> Calibration:
    """Read calibration inputs for `graph` (one clear line for what does not fit) and hold out the last
    `held_out` share of the rows (none when there is a single row)."""
    path = Path(path)
    needed = [v for v in graph.inputs if not v.is_initializer]
    try:
        if path.suffix == ".npy":
            if len(needed) != 1:
                raise UserError(f"{path}: one .npy array fits a model with one input; this model has "
                                f"{len(needed)} ({', '.join(v.name for v in needed)}): give a .npz with an array "
                                "per input")
            arrays = {needed[0].name: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise UserError(f"{path}: no such calibration file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a .npy/.npz of calibration inputs ({exc})") from None
    missing = [v.name for v in needed if v.name not in arrays]
    if missing:
        raise UserError(f"{path}: no array for input(s) {', '.join(missing)} (it holds {', '.join(arrays) or 'none'})")
    arrays = {v.name: arrays[v.name] for v in needed}
    rows = {len(a) if a.ndim else 0 for a in arrays.values()}
    if len(rows) != 1 or 0 in rows:
        raise UserError(f"{path}: calibration arrays need the same number of rows (axis 0), at least one; "
                        f"got {sorted(rows)}")
    count = rows.pop()
    for v in needed:
        array = arrays[v.name]
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise UserError(f"{path}: input {v.name} holds NaN or infinite values")
    keep = count if count == 1 else max(1, round(count * (1 - held_out)))
    return Calibration(str(path), {k: a[:keep] for k, a in arrays.items()}, {k: a[keep:] for k, a in arrays.items()})


def _batches(arrays: dict[str, np.ndarray], graph: Graph):
    count = len(next(iter(arrays.values())))
    for start in range(0, count, BATCH):
        yield {name: np.ascontiguousarray(_as_input_type(graph, name, a[start:start + BATCH]))
               for name, a in arrays.items()}


def _as_input_type(graph: Graph, name: str, array: np.ndarray) -> np.ndarray:
    import onnx.helper

    dtype = graph.value(name).dtype
    return array.astype(onnx.helper.tensor_dtype_to_np_dtype(dtype), copy=False) if dtype else array


def _run_with_outputs(graph: Graph, names: list[str], arrays: dict[str, np.ndarray], what: str):
    """Run `graph` with `names` exposed as extra outputs, batch by batch; yield the arrays of `names`."""
    from .runtime import run_reference, user_session

    probe = graph.copy()
    declared = {v.name for v in probe.outputs}
    for name in names:
        if name not in declared:
            probe.outputs.append(probe.value(name))
            declared.add(name)
    session = user_session(probe, what)
    order = [o.name for o in session.get_outputs()]
    for feeds in _batches(arrays, graph):
        found = dict(zip(order, run_reference(session, feeds, what)))
        yield [found[name] for name in names]


def _hidden_axis(space: PruningSpace, value: str, rank: int) -> int:
    """The channel (hidden) axis of `value`: the axis a family of the space puts it on (frozen or not);
    else the last axis (a transformer's [batch, sequence, hidden])."""
    for family in space.families:
        for member in family.members:
            if member.value == value and member.role == "activation":
                return member.axis
    return rank - 1


def _mean_cosine(before: np.ndarray, after: np.ndarray, axis: int) -> tuple[float, int]:
    """Sum of cos(before, after) along `axis` over every other position, and how many positions."""
    a = np.moveaxis(before.astype(np.float64), axis, -1).reshape(-1, before.shape[axis])
    b = np.moveaxis(after.astype(np.float64), axis, -1).reshape(-1, after.shape[axis])
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.where(norms > 0, np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1), 1.0)
    return float(same.sum()), len(same)


def block_influence(graph: Graph, space: PruningSpace, erasing: ErasingSpace, arrays: dict[str, np.ndarray]
                    ) -> np.ndarray:
    """Block influence of each region of `erasing` on `arrays`: 1 - mean over positions of the cosine
    between the value the region reads (its entry) and the output of the op it merges into. Low =
    the region barely changes the stream (erase it first)."""
    if not erasing.regions:
        return np.zeros(0)
    pairs = []
    for region in erasing.regions:
        ((merge, _),) = graph.uses(graph.value(region.exit))  # a region's exit feeds only its merge
        pairs.append((region.entry, graph.outputs_of(merge)[0].name))
    names = sorted({n for pair in pairs for n in pair})
    sums = np.zeros(len(pairs))
    counts = np.zeros(len(pairs))
    for arrays_out in _run_with_outputs(graph, names, arrays, "calibration"):
        found = dict(zip(names, arrays_out))
        for i, (entry, out) in enumerate(pairs):
            before, after = found[entry], found[out]
            if before.shape != after.shape:  # the merge broadcasts (not offered as a region; be safe)
                counts[i] = np.nan
                continue
            total, n = _mean_cosine(before, after, _hidden_axis(space, entry, before.ndim))
            sums[i] += total
            counts[i] += n
    with np.errstate(invalid="ignore", divide="ignore"):
        influence = 1.0 - sums / counts
    return np.where(np.isfinite(influence), influence, np.inf)  # unmeasurable regions go last


#: ops whose output is the activation contracted with the weight along the group's axis (a Div's
#: denominator, a PRelu slope or a norm's scale are consumers too, but they do not weigh what flows)
CONTRACTING = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose"})


def _consumer_pairs(graph: Graph, family: Family) -> list[tuple]:
    """(consumer weight member, activation member) pairs of `family`: a weight sliced along the group's
    axis and the family's activation that the same contracting op reads beside it (a down projection's
    input)."""
    activations = {m.value: m for m in family.members if m.role == ACTIVATION}
    pairs = []
    for weight in (m for m in family.members if m.role == CONSUMER):
        for op, _ in graph.uses(graph.value(weight.value)):
            if op.op_type not in CONTRACTING or op.domain not in ("", "ai.onnx"):
                continue
            beside = [activations[v.name] for v in graph.inputs_of(op) if v is not None and v.name in activations]
            if beside:
                pairs.append((weight, beside[0]))
    return pairs


def activation_importance(graph: Graph, space: PruningSpace, arrays: dict[str, np.ndarray]
                          ) -> dict[int, np.ndarray]:
    """Per prunable family that reads into a consumer weight, every group's activation-weighted
    importance on `arrays` (higher = keep): sqrt(sum over its consumer weights and indices k of
    E[X_k^2] ||W_k||^2), E over every position of every row. Families without such a pair (whose
    groups only reach the graph through ops with no weight) are left out: the caller ranks them by
    their weights."""
    from .ops.rule import constant_value

    pairs = {f.id: _consumer_pairs(graph, f) for f in space.prunable}
    pairs = {f: p for f, p in pairs.items() if p}
    keys = sorted({(act.value, act.axis) for p in pairs.values() for _, act in p})  # a value may carry two axes
    names = sorted({name for name, _ in keys})
    if not names:
        return {}
    squares = dict.fromkeys(keys, 0.0)
    positions = dict.fromkeys(keys, 0)
    for found in _run_with_outputs(graph, names, arrays, "calibration"):
        arrays_of = dict(zip(names, found))
        for name, axis in keys:
            array = arrays_of[name]
            squares[(name, axis)] = squares[(name, axis)] + per_index(array, axis)
            positions[(name, axis)] += array.size // max(array.shape[axis], 1)
    scores = {}
    for family_id, family_pairs in pairs.items():
        total = np.zeros(space.family(family_id).size)
        for weight, act in family_pairs:
            w_energy = per_index(constant_value(graph, graph.value(weight.value)), weight.axis)
            x_energy = squares[(act.value, act.axis)] / max(positions[(act.value, act.axis)], 1)
            if weight.table.shape == act.table.shape:  # index k of the group on both axes is the same channel
                valid = (weight.table >= 0) & (act.table >= 0)
                total += np.where(valid, w_energy[np.where(valid, weight.table, 0)]
                                  * x_energy[np.where(valid, act.table, 0)], 0.0).sum(axis=1)
            else:  # no index correspondence: the product of the group's two energies
                total += row_sums(weight.table, w_energy) * row_sums(act.table, x_energy)
        scores[family_id] = np.sqrt(total)
    return scores


def is_causal_lm(graph: Graph) -> bool:
    """True for a model that reads integer token ids [batch, sequence] and whose first output is logits
    [batch, sequence, vocabulary]: the shape of a causal LM export (its KV-cache outputs may follow)."""
    ids = [v for v in graph.inputs if not v.is_initializer and v.dtype in (6, 7)]  # int32, int64
    out = graph.outputs[0] if graph.outputs else None
    return (len(ids) >= 1 and ids[0].shape is not None and len(ids[0].shape) == 2
            and out is not None and out.shape is not None and len(out.shape) == 3)


def causal_lm_loss(graph: Graph, arrays: dict[str, np.ndarray]) -> float | None:
    """Mean next-token cross-entropy (nats) of a causal LM on `arrays` (token ids predict their
    successors: logits at position t score token t + 1); None if the model is not one or no rows."""
    if not is_causal_lm(graph) or not arrays or not len(next(iter(arrays.values()))):
        return None
    ids_name = next(v.name for v in graph.inputs if not v.is_initializer and v.dtype in (6, 7))
    logits_name = graph.outputs[0].name
    total, count = 0.0, 0
    start = 0
    for (logits,) in _run_with_outputs(graph, [logits_name], arrays, "LM loss"):
        ids = arrays[ids_name][start:start + len(logits)]
        start += len(logits)
        scores = logits[:, :-1].astype(np.float64)
        targets = ids[:, 1:].astype(np.int64)
        if targets.size == 0 or targets.max() >= scores.shape[-1] or targets.min() < 0:
            return None
        top = scores.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(scores - top).sum(axis=-1)) + top[..., 0]
        picked = np.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]
        total += float((log_norm - picked).sum())
        count += targets.size
    return total / count if count else None

"""`verify`: the compact model computes what the masked original computes (DESIGN §7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from onnxprune.bounds import check_bounds, pass_option
from onnxprune.errors import VerifyFailed
from onnxprune.facts import Compaction, VerifyReport
from onnxprune.ir import Graph
from onnxprune.passmanager import CheckPass
from onnxprune.runtime import inference_session, random_inputs, run_reference, user_session


@dataclass(frozen=True)
class VerifyOptions:
    """Options of `verify`."""

    tolerance: float = 1e-4  # relative: max|a - b| <= atol + tolerance * max|a| for every output
    atol: float = 1e-6  # absolute floor: fp32 kernels (onnxruntime's Sigmoid, say) err by ~1e-7 near zero
    seed: int = 0
    batch: int = 2  # size given to symbolic dimensions of the sample inputs (the analysis manager's input_shapes win)
    samples: int = 2  # batches of random inputs


#: Where a model computes in a half-precision type, every op rounds its result to it (a relative step of
#: 2**-11 for fp16, 2**-8 for bf16), and the compact model sums fewer terms in another order: the
#: relative tolerance and the absolute floor are at least these (differences are measured in float64).
HALF_TOLERANCE = {TensorProto.FLOAT16: (1e-2, 1e-3), TensorProto.BFLOAT16: (5e-2, 1e-2)}


def computes_in(graph: Graph) -> int | None:
    """The half-precision type the model computes in (fp16 or bf16: one of its outputs has it, or a weight
    of it is read by an op other than a Cast), or None: a model that only stores weights in a half type
    and casts them to float computes in float, where compact and masked agree to fp32 rounding."""
    found = {v.info.type.tensor_type.elem_type for v in graph.outputs if v.info is not None}
    for value in graph.initializers:
        if value.tensor.data_type in HALF_TOLERANCE and any(op.op_type != "Cast" for op in graph.consumers(value)):
            found.add(value.tensor.data_type)
    for half in (TensorProto.BFLOAT16, TensorProto.FLOAT16):  # the coarser one sets the tolerance
        if half in found:
            return half
    return None


def compare(reference: Graph, candidate: Graph, feeds_list: list[dict[str, np.ndarray]], tolerance: float,
            atol: float = 1e-6) -> VerifyReport:
    """Run both graphs on each feed and measure the largest differences."""
    # one session at a time: each holds its own copy of the weights, and the outputs are small
    # lean sessions: verify wants numbers, not speed (see inference_session)
    ref = user_session(reference, "verify", lean=True)  # the user's model, zeroed where pruned
    expected = [run_reference(ref, feeds, "verify") for feeds in feeds_list]
    del ref
    cand = inference_session(candidate, lean=True)
    max_abs = max_rel = 0.0
    ok = True
    for feeds, wanted in zip(feeds_list, expected):
        for a, b in zip(wanted, cand.run(None, feeds)):
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            if a.shape != b.shape:
                raise VerifyFailed(f"verify failed: output shapes differ (masked {a.shape}, compact {b.shape})")
            if a.size == 0:
                continue
            finite = np.isfinite(a) & np.isfinite(b)
            if not np.array_equal(np.isfinite(a), np.isfinite(b)) or \
                    not np.array_equal(a[~finite], b[~finite], equal_nan=True):
                return VerifyReport(float("inf"), float("inf"), tolerance, False)  # inf/NaN where the other is not
            if not finite.any():
                continue
            diff = float(np.max(np.abs(a[finite] - b[finite])))
            scale = float(np.max(np.abs(a[finite])))
            max_abs = max(max_abs, diff)
            max_rel = max(max_rel, diff / scale if scale > 0 else diff)
            ok = ok and diff <= atol + tolerance * scale
    return VerifyReport(max_abs, max_rel, tolerance, ok)


def with_samples(drawn: list[dict[str, np.ndarray]], samples: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The user's samples as the first feed; later feeds keep their drawn floats but take the samples'
    integer and boolean inputs (ids, masks, control scalars), which drawing may not reproduce."""
    fixed = {name: array for name, array in samples.items() if not np.issubdtype(array.dtype, np.floating)}
    return [{**drawn[0], **samples}] + [{**feeds, **fixed} for feeds in drawn[1:]]


class Verify(CheckPass):
    """Check that the compacted model matches the masked original on seeded random inputs.

    Fails the pipeline when an output differs by more than atol + tolerance * its largest magnitude
    (fp32 defaults: 1e-6 + 1e-4 * max|reference|; a model computing in fp16 gets at least
    1e-3 + 1e-2 * max|reference|, in bf16 1e-2 + 5e-2 * max|reference|: `HALF_TOLERANCE`). Both models are
    read by onnxruntime from files (`runtime.inference_session`), weights in external data beside them."""

    name = "verify"
    Options = VerifyOptions
    provides = (VerifyReport,)
    #: A NaN tolerance failed every model (a comparison with NaN is false); no samples checked nothing.
    BOUNDS = (("tolerance", 0, 1, "(0, 1)"), ("atol", 0, None, ">= 0"), ("seed", 0, None, ">= 0"),
              ("batch", 1, None, ">= 1"), ("samples", 1, None, ">= 1"))

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        check_bounds(self.options, self.BOUNDS, pass_option(self.name))

    def requires(self) -> tuple[type, ...]:
        return (Compaction,)

    def run(self, graph: Graph, am) -> VerifyReport:
        reference = am.fact(Compaction).reference
        rng = np.random.default_rng(self.options.seed)
        feeds = [random_inputs(graph, rng, self.options.batch, am.input_shapes) for _ in range(self.options.samples)]
        if am.sample_inputs:
            feeds = with_samples(feeds, am.sample_inputs)
        tolerance, atol = self.options.tolerance, self.options.atol
        half = computes_in(graph)
        if half is not None:
            tolerance, atol = max(tolerance, HALF_TOLERANCE[half][0]), max(atol, HALF_TOLERANCE[half][1])
        report = compare(reference, graph, feeds, tolerance, atol)
        if not report.ok:
            raise VerifyFailed(f"verify failed: {report}")
        return report

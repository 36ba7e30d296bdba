"""Option values the commands share, checked before any work: numeric ranges and `--round-to`."""

from __future__ import annotations

import argparse
import math

from ..errors import UserError


def parse_round_to(text: str) -> int | None:
    """`--round-to`: a positive multiple, or None for "auto" (chosen per model from measured widths)."""
    if str(text).strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--round-to must be a positive whole number or auto, got {text!r}")
    return value


#: Numeric options and their ranges: (option, lowest, highest, range text); None is unbounded.
RUN_BOUNDS = (("target_sparsity", 0, 1, "[0, 1)"), ("latency_threads", 1, None, ">= 1"), ("batch_size", 1, None, ">= 1"),
              ("lr", 0, 10, "(0, 10]"), ("epochs", 1, None, ">= 1"), ("steps", 1, None, ">= 1"),
              ("warmup", 0, None, ">= 0"), ("momentum", 0, 1, "[0, 1]"), ("weight_decay", 0, 1, "[0, 1]"),
              ("pruning_periods", 1, None, ">= 1"), ("round_to", 1, None, ">= 1"), ("threads", 0, None, ">= 0"),
              ("checkpoint_every", 0, None, ">= 0"), ("synthetic", 0, None, ">= 0"), ("eval_fraction", 0, 1, "[0, 1)"),
              ("tolerance", 0, 1, "(0, 1)"), ("seed", 0, None, ">= 0"), ("cric_cycles", 0, None, ">= 0"),
              ("cric_levels", 1, None, ">= 1"), ("cric_tolerance", 0, None, ">= 0"),
              ("cric_loss_weight", 0, None, ">= 0"), ("cric_budget", 0, None, ">= 0"),
              ("cric_batches", 1, None, ">= 1"), ("cric_cycle_steps", 0, None, ">= 0"))


def check_bounds(args: argparse.Namespace, bounds=RUN_BOUNDS) -> None:
    """Refuse, in one line, a numeric option that is not finite or outside its range (an lr of 1e6,
    zero steps, a negative thread count and a NaN tolerance were accepted without a word)."""
    for name, low, high, text in bounds:
        value = getattr(args, name, None)
        if value is None or isinstance(value, str):
            continue
        low_ok = text.startswith(("[", ">="))
        high_ok = text.endswith("]")
        inside = math.isfinite(value) and (value >= low if low_ok else value > low) and \
            (high is None or (value <= high if high_ok else value < high))
        if not inside:
            raise UserError(f"--{name.replace('_', '-')} must be {'in ' if text[0] in '[(' else ''}{text}, got {value}")

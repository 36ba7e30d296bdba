"""The ranges of numeric settings, checked wherever a setting enters: the `run`, `prune` and `compact`
options and the `sparse-train` and `verify` pass options (a pipeline string reaches the same training
code as `run` does, so it gets the same checks: `sparse-train{batch-size=-1}` once hung and
`verify{tolerance=nan}` failed a correct model)."""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import UserError

#: Numeric settings and their ranges: (name, lowest, highest, range text); None is unbounded. The text's
#: bracket says whether the bound itself is allowed ("[" / "]" and ">=": yes; "(" / ")" and ">": no).
RUN_BOUNDS = (("target_sparsity", 0, 1, "[0, 1)"), ("latency_threads", 1, None, ">= 1"), ("batch_size", 1, None, ">= 1"),
              ("lr", 0, 10, "(0, 10]"), ("epochs", 1, None, ">= 1"), ("steps", 1, None, ">= 1"),
              ("warmup", 0, None, ">= 0"), ("momentum", 0, 1, "[0, 1]"), ("weight_decay", 0, 1, "[0, 1]"),
              ("pruning_periods", 1, None, ">= 1"), ("round_to", 1, None, ">= 1"), ("threads", 0, None, ">= 0"),
              ("checkpoint_every", 0, None, ">= 0"), ("synthetic", 0, None, ">= 0"), ("eval_fraction", 0, 1, "[0, 1)"),
              ("tolerance", 0, 1, "(0, 1)"), ("seed", 0, None, ">= 0"), ("cric_cycles", 0, None, ">= 0"),
              ("cric_levels", 1, None, ">= 1"), ("cric_tolerance", 0, None, ">= 0"),
              ("cric_loss_weight", 0, None, ">= 0"), ("cric_collapse", 0, None, ">= 0"),
              ("cric_budget", 0, None, ">= 0"),
              ("cric_batches", 1, None, ">= 1"), ("cric_cycle_steps", 0, None, ">= 0"),
              ("target_erase", 0, 1, "[0, 1]"), ("log_every", 1, None, ">= 1"), ("max_family_ratio", 0, 1, "[0, 1]"),
              ("erase", 0, None, ">= 0"))

#: The same for the `sparse-train` pass, whose options are TrainConfig's: steps 0 means "use epochs",
#: and group-divisible is what `run` calls --round-to.
PASS_BOUNDS = (*(b for b in RUN_BOUNDS if b[0] != "steps"), ("steps", 0, None, ">= 0"),
               ("group_divisible", 1, None, ">= 1"))


def command_option(name: str) -> str:
    """How the command line spells a setting: `--batch-size`."""
    return "--" + name.replace("_", "-")


def pass_option(pass_name: str) -> Callable[[str], str]:
    """How a pipeline string spells a pass's setting: `sparse-train: batch-size`."""
    return lambda name: f"{pass_name}: {name.replace('_', '-')}"


def check_bounds(settings: object, bounds=RUN_BOUNDS, spell: Callable[[str], str] = command_option) -> None:
    """Refuse, in one line, a numeric setting of `settings` (an argparse Namespace, an options
    dataclass) that is not finite or lies outside its range; `spell` names it as the user wrote it.
    Settings `settings` does not have, None, and text (`--round-to auto`) are left alone."""
    for name, low, high, text in bounds:
        value = getattr(settings, name, None)
        if value is None or isinstance(value, (str, bool)):
            continue
        low_ok = text.startswith(("[", ">="))
        high_ok = text.endswith("]")
        inside = math.isfinite(value) and (value >= low if low_ok else value > low) and \
            (high is None or (value <= high if high_ok else value < high))
        if not inside:
            raise UserError(f"{spell(name)} must be {'in ' if text[0] in '[(' else ''}{text}, got {value}")

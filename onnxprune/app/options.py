"""`--round-to`, which the commands share (numeric ranges are `onnxprune.bounds`)."""

from __future__ import annotations

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

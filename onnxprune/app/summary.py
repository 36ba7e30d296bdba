"""What `prune` and `run` print alike: per family which widths changed and which blocks were erased, one
line each, from the report's plain-data sections (`report.report_sections`), and the parameters and
FLOPs before and after."""

from __future__ import annotations

from collections.abc import Mapping

#: family lines printed at most; the report page lists every family
MAX_FAMILY_LINES = 24


def cost_lines(params: tuple[int, int], flops: tuple[int, int]) -> list[str]:
    """"parameters A -> B (+x.x%)" and "FLOPs A -> B (+x.x%) per run" from (before, after) pairs."""
    def change(a: int, b: int) -> str:
        return f"{a:,} -> {b:,} ({100 * (b - a) / a:+.1f}%)" if a else f"{a:,} -> {b:,}"

    return [f"parameters {change(*params)}", f"FLOPs      {change(*flops)} per run"]


def removed_lines(sections: Mapping, limit: int = MAX_FAMILY_LINES) -> list[str]:
    """Lines naming, per family, its width before and after ("layer1.conv: 64 -> 32 channels", heads as
    heads; "-> 0 ... (inside an erased block)" for a family erased with its block), then one line per
    erased block ("erased: block 3, Add_5 (12 ops, 1,234 params)"). Families left whole are not
    named; past `limit` family lines one line says how many more there are."""
    lines = []
    narrowed = [w for w in sections.get("widths", ()) if w["after"] < w["before"]]
    for width in narrowed[:limit]:
        unit = "heads" if width.get("kind") == "head" else "channels"
        lines.append(f"{width['family']}: {width['before']} -> {width['after']} {unit}"
                     + (" (inside an erased block)" if width.get("erased") else ""))
    if len(narrowed) > limit:
        lines.append(f"... and {len(narrowed) - limit} more families narrowed (the report lists every family)")
    for block in sections.get("erased", ()):
        where = f"block {block['id']}, {block['merge']}" if "id" in block else str(block.get("merge", "?"))
        detail = [f"{block['ops']} ops"] if "ops" in block else []
        detail += [f"{block['params']:,} params"] if block.get("params") else []
        lines.append(f"erased: {where}" + (f" ({', '.join(detail)})" if detail else ""))
    return lines

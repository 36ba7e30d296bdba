"""What every command reads and writes: the model given on the command line, its input sizes, output
paths checked before any work, JSON files and the HTML page.

Lines for the user go to `say` (the CLI's stdout) and `warn` (stderr); the defaults print there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write, check_output_name, same_file
from ..inputs import Bindings, read_samples, resolve_bindings
from ..ir import Graph, load, validate
from ..prepare import prepare


def warn(line: str) -> None:
    """A warning or note for the user: one line on stderr, after what stdout already holds."""
    sys.stdout.flush()
    print(line, file=sys.stderr)


def load_model(path: str, *, allow_custom_ops: bool = False, prepared: bool = False,
               untie_all: bool = False, say: Callable[[str], None] = print) -> Graph:
    """Load and validate a model given on the command line. `prepared` (the commands that analyse):
    constant-computed weights are folded and shared initializers untied first (`onnxprune.prepare`),
    and a line (to `say`) says what changed."""
    graph = load(path)
    validate(graph, path, allow_custom_domains=allow_custom_ops, full=True)
    if prepared:
        for line in prepare(graph, untie_all=untie_all):
            say(f"onnxprune: {line}")
    return graph


def input_bindings(args: argparse.Namespace, graph: Graph, warn: Callable[[str], None] = warn
                   ) -> tuple[Bindings, dict]:
    """The sizes the command feeds inputs at (--input-shape, --sample-inputs, the model's metadata) and
    the sample arrays; each note about them goes to `warn` (stderr) as one line."""
    samples = read_samples(args.sample_inputs, graph) if getattr(args, "sample_inputs", None) else {}
    bindings = resolve_bindings(graph, tuple(args.input_shape or ()), samples)
    for note in bindings.notes:
        warn(f"onnxprune: note: {note}")
    return bindings, samples


def check_output_path(output: str | Path, sources: Sequence[str | Path] = (), *, folder_made_later: bool = False
                      ) -> None:
    """Refuse, before any work is done, an output that is a folder, sits in a missing folder (unless
    the command makes it), or would overwrite one of `sources` (the input model and its data files)."""
    path = Path(output)
    check_output_name(path)
    if path.is_dir():
        raise UserError(f"{output}: is a folder; give a file name for the output")
    if not folder_made_later and not path.parent.is_dir():
        raise UserError(f"{output}: folder {path.parent} does not exist")
    for source in sources:
        if path.exists() and same_file(source, path):
            raise UserError(f"{output}: refusing to overwrite the input model or its data; choose another output path")


def check_folder(folder: str | Path, what: str) -> None:
    """Refuse a path that exists but is not a folder."""
    if Path(folder).exists() and not Path(folder).is_dir():
        raise UserError(f"{folder}: {what} is a file, not a folder")


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def write_page(report: dict, path: str | Path, metrics: Sequence[dict] = ()) -> None:
    """The HTML report (matplotlib is imported here, and only when a page is written)."""
    try:
        from .page import write_html
    except ImportError as error:
        raise UserError(f"writing {path} needs matplotlib ({error}); pip install matplotlib, or pass --no-report"
                        ) from None
    write_html(report, path, metrics)

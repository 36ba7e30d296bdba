"""A generated fuzz corpus of bad input: every case ends in one line on stderr and exit status 2, or in a
correct result, never in an internal error, a hang or a partial file.

The cases are generated, not listed: a valid selection file with every field replaced by every value of
the wrong kind and every key removed; every numeric option of `run`, `prune` and `compact` (read from
the parser, so a new option joins the corpus by itself) and of the `sparse-train` and `verify` passes
given values outside any range; the digits training data with each array mutated in dtype, value and
shape; and awkward paths (a NUL byte, 4,000 characters, a symbolic-link loop, a newline, a FIFO) in
every place a command reads or writes a file. Each case fails before any training or model work, so
the corpus runs in a few seconds.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

from onnxprune.cli import build_parser

from .conftest import ZOO
from .test_cli import run_cli

MLP = ZOO / "mlp.onnx"
DIGITS = ZOO / "digits_cnn.onnx"
DIGITS_DATA = ZOO / "digits.npz"


def assert_one_line_exit_2(code: int, err: str, *outputs: Path) -> None:
    """The project's contract for bad input, and nothing written."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("onnxprune: error: "), (code, err)
    for output in outputs:
        assert not Path(output).exists(), output


# ---------------------------------------------------------------------- selection files
VALID_SELECTION = {"format": "onnxprune.selection/1",
                   "families": [{"family": 1, "name": "fc1.weight:0", "groups": [0, 1]}],
                   "regions": []}
#: Every place in the document, and values of the wrong kind for all of them.
SELECTION_PLACES = [(), ("format",), ("families",), ("families", 0), ("families", 0, "family"),
                    ("families", 0, "name"), ("families", 0, "groups"), ("families", 0, "groups", 0), ("regions",)]
WRONG_VALUES = {"null": None, "true": True, "float": 1.5, "string": "1", "negative": -1, "huge": 10 ** 30,
                "empty list": [], "empty object": {}, "nested list": [[0]], "NaN": float("nan"),
                "Infinity": float("inf")}
#: Replacements that leave a valid selection (no or empty lists of families, groups or regions), and
#: the correct result each must give: nothing written (the selection removes nothing), or the two groups.
STILL_VALID = {(("families",), "empty list"): "nothing written", (("families",), "removed"): "nothing written",
               (("families", 0, "groups"), "empty list"): "nothing written",
               (("regions",), "empty list"): "pruned 2 groups", (("regions",), "removed"): "pruned 2 groups"}


def _replaced(place: tuple, value) -> dict:
    document = copy.deepcopy(VALID_SELECTION)
    if not place:
        return value
    holder = document
    for key in place[:-1]:
        holder = holder[key]
    if value is _REMOVE:
        del holder[place[-1]]
    else:
        holder[place[-1]] = value
    return document


_REMOVE = object()
SELECTION_CASES = {f"{'/'.join(map(str, place)) or 'top'}={label}": (place, value)
                   for place in SELECTION_PLACES for label, value in WRONG_VALUES.items()}
SELECTION_CASES.update({f"{'/'.join(map(str, place))}=removed": (place, _REMOVE)
                        for place in SELECTION_PLACES if place and not isinstance(place[-1], int)})


def test_the_valid_selection_of_the_corpus_is_applied(tmp_path, capsys):
    """The document every selection case starts from is valid: it prunes two groups."""
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(VALID_SELECTION))
    code, out, err = run_cli(capsys, "compact", MLP, "--selection", path, "-o", tmp_path / "o.onnx", "--no-latency",
                             "--no-report")
    assert code == 0 and "pruned 2 groups" in out, err


@pytest.mark.parametrize("case", sorted(SELECTION_CASES))
def test_generated_selection_files(tmp_path, capsys, case):
    place, value = SELECTION_CASES[case]
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(_replaced(place, value)))  # NaN and Infinity as Python's json writes them
    out = tmp_path / "o.onnx"
    code, stdout, err = run_cli(capsys, "compact", MLP, "--selection", path, "-o", out, "--no-latency", "--no-report")
    label = case.split("=", 1)[1]
    if (place, label) in STILL_VALID:
        expected = STILL_VALID[place, label]
        assert code == 0 and expected in stdout + err and out.exists() == (expected != "nothing written"), err
    else:
        assert_one_line_exit_2(code, err, out)


def _text_mutations() -> dict[str, bytes]:
    text = json.dumps(VALID_SELECTION).encode()
    cases = {f"cut at {n}": text[:n] for n in range(0, len(text), max(1, len(text) // 8))}
    cases.update({"not UTF-8": text.replace(b"fc1", b"f\xff1"), "UTF-8 BOM": b"\xef\xbb\xbf" + text,
                  "two documents": text + text, "deep nesting": b"[" * 100_000 + b"]" * 100_000,
                  "JSON with a trailing comma": text[:-1] + b",}"})
    return cases


TEXT_CASES = _text_mutations()


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_generated_selection_texts(tmp_path, capsys, case):
    path = tmp_path / "sel.json"
    path.write_bytes(TEXT_CASES[case])
    out = tmp_path / "o.onnx"
    code, _, err = run_cli(capsys, "compact", MLP, "--selection", path, "-o", out)
    assert_one_line_exit_2(code, err, out)


# ---------------------------------------------------------------------- numeric options
def _numeric_options(command: str) -> list[tuple[str, type]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    return [(a.option_strings[-1], a.type) for a in commands[command]._actions if a.type in (int, float)]


#: Values no numeric option takes (every one counts something or is a share, a rate or a tolerance).
OUT_OF_RANGE = {int: ("-1",), float: ("-1", "nan", "inf", "-inf")}
COMMAND_ARGS = {"run": lambda tmp: ["run", DIGITS, "--data", DIGITS_DATA, "-o", tmp / "o.onnx"],
                "prune": lambda tmp: ["prune", MLP, "-o", tmp / "o.onnx"],
                "compact": lambda tmp: ["compact", MLP, "--selection", tmp / "sel.json", "-o", tmp / "o.onnx"]}
OPTION_CASES = [(command, option, value) for command in COMMAND_ARGS
                for option, kind in _numeric_options(command) for value in OUT_OF_RANGE[kind]]


def test_the_option_corpus_covers_every_numeric_option():
    assert {c for c, _, _ in OPTION_CASES} == set(COMMAND_ARGS)
    assert len({o for c, o, _ in OPTION_CASES if c == "run"}) >= 20  # the parser was read


@pytest.mark.parametrize("command, option, value", OPTION_CASES)
def test_generated_out_of_range_options(tmp_path, capsys, command, option, value):
    (tmp_path / "sel.json").write_text(json.dumps(VALID_SELECTION))
    extra = [] if command != "prune" or option in ("--ratio", "--target-latency") else ["--ratio", "0.5"]
    code, _, err = run_cli(capsys, *COMMAND_ARGS[command](tmp_path), *extra, f"{option}={value}")
    assert_one_line_exit_2(code, err, tmp_path / "o.onnx")
    assert option in err


PASS_OPTION_CASES = [("sparse-train{synthetic=8,%s}", option, value)
                     for option in ("lr", "batch-size", "steps", "epochs", "threads", "synthetic", "momentum",
                                    "weight-decay", "target-sparsity", "target-erase", "group-divisible", "warmup",
                                    "pruning-periods", "seed", "log-every", "checkpoint-every")
                     for value in ("-1", "nan", "inf")] + \
                    [("select{ratio=0.5},compact,verify{%s}", option, value)
                     for option in ("tolerance", "atol", "seed", "batch", "samples") for value in ("-1", "nan", "inf")] + \
                    [("select{%s},compact", option, value)
                     for option in ("ratio", "round-to", "max-family-ratio", "erase", "seed", "threads")
                     for value in ("-1", "nan", "inf")]


@pytest.mark.parametrize("template, option, value", PASS_OPTION_CASES)
def test_generated_out_of_range_pass_options(tmp_path, capsys, template, option, value):
    """A pipeline string reaches the training and verify code as the commands do: the same checks,
    before any pass runs (`sparse-train{batch-size=-1}` hung, `verify{tolerance=nan}` failed a
    correct model as an internal error)."""
    pipeline = template % f"{option}={value}"
    code, _, err = run_cli(capsys, "opt", MLP, "--passes", pipeline, "-o", tmp_path / "o.onnx")
    assert_one_line_exit_2(code, err, tmp_path / "o.onnx")


# ---------------------------------------------------------------------- training data
def _digits(count: int = 128) -> dict[str, np.ndarray]:
    with np.load(DIGITS_DATA) as archive:
        return {"input": archive["input"][:count].copy(), "labels": archive["labels"][:count].copy()}


def _mutations() -> dict[str, dict[str, object]]:
    """Each array of the digits data changed in one way: dtype, values, shape, or gone."""
    base = _digits()
    x, y = base["input"], base["labels"]
    nan_rows = x.copy()
    nan_rows[::3] = np.nan
    inf_rows = x.copy()
    inf_rows[1::5] = -np.inf
    cases = {
        "input int32": {"input": x.astype(np.int32)}, "input complex": {"input": x.astype(np.complex64)},
        "input bool": {"input": x > 0}, "input text": {"input": x.astype(str)}, "input NaN": {"input": nan_rows},
        "input -inf": {"input": inf_rows}, "input rank 3": {"input": x[:, 0]}, "input rank 5": {"input": x[:, None]},
        "input 2 channels": {"input": np.concatenate([x, x], axis=1)}, "input 0-d": {"input": np.float32(1)},
        "input missing": {"input": None}, "input fewer rows": {"input": x[:100]}, "no rows": {"input": x[:0], "labels": y[:0]},
        "labels float": {"labels": y.astype(np.float32)}, "labels bool": {"labels": y > 4},
        "labels text": {"labels": y.astype(str)}, "labels 2-D": {"labels": y[:, None]}, "labels 0-d": {"labels": np.int64(3)},
        "labels -1": {"labels": np.where(np.arange(len(y)) % 7 == 0, -1, y)},
        "labels 10": {"labels": np.where(np.arange(len(y)) % 7 == 0, 10, y)},
        "labels 2**40": {"labels": np.full(len(y), 2 ** 40)},
        "labels max uint64": {"labels": np.full(len(y), np.iinfo(np.uint64).max, dtype=np.uint64)},
        "labels missing": {"labels": None}, "labels more rows": {"labels": np.concatenate([y, y])},
    }
    return cases


DATA_CASES = _mutations()


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_generated_training_data(tmp_path, capsys, case):
    arrays = {**_digits(), **DATA_CASES[case]}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / "d.npz", **arrays)
    out = tmp_path / "out" / "o.onnx"
    out.parent.mkdir()
    code, _, err = run_cli(capsys, "run", DIGITS, "--data", tmp_path / "d.npz", "-o", out, "--steps", "2",
                           "--batch-size", "16", "--no-progress", "--eval-fraction", "0", "--round-to", "4",
                           "--no-latency")
    assert_one_line_exit_2(code, err)
    assert list(out.parent.iterdir()) == []  # no model, no report, no metrics file, no checkpoint


# ---------------------------------------------------------------------- paths
def _awkward_paths(tmp_path: Path) -> dict[str, str]:
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    os.mkfifo(tmp_path / "fifo")
    return {"NUL byte": str(tmp_path / "a\0b"), "4,000 characters": str(tmp_path / ("n" * 4000)),
            "deep path": str(tmp_path / ("d/" * 2100)) + "x", "symlink loop": str(tmp_path / "loop-a"),
            "inside a symlink loop": str(tmp_path / "loop-a" / "x"), "newline": str(tmp_path / "two\nlines"),
            "FIFO": str(tmp_path / "fifo"), "a folder": str(tmp_path)}


PATH_KINDS = ["NUL byte", "4,000 characters", "deep path", "symlink loop", "inside a symlink loop", "newline", "FIFO",
              "a folder"]
PATH_PLACES = {
    "model": lambda p, tmp: ["analyze", p],
    "output": lambda p, tmp: ["prune", MLP, "--ratio", "0.5", "-o", p],
    "json report": lambda p, tmp: ["analyze", MLP, "--json", p],
    "selection": lambda p, tmp: ["compact", MLP, "--selection", p, "-o", tmp / "o.onnx"],
    "data": lambda p, tmp: ["run", DIGITS, "--data", p, "-o", tmp / "o.onnx", "--round-to", "4"],
    "sample inputs": lambda p, tmp: ["prune", MLP, "--ratio", "0.5", "--sample-inputs", p, "-o", tmp / "o.onnx"],
}


@pytest.mark.parametrize("kind", PATH_KINDS)
@pytest.mark.parametrize("place", sorted(PATH_PLACES))
def test_generated_awkward_paths(tmp_path, capsys, place, kind):
    path = _awkward_paths(tmp_path)[kind]
    code, _, err = run_cli(capsys, *PATH_PLACES[place](path, tmp_path))
    if kind == "newline" and place in ("output", "json report"):  # a legal file name: written as asked
        assert code == 0 and Path(path).is_file(), err
        return
    assert_one_line_exit_2(code, err, tmp_path / "o.onnx")
    if kind == "FIFO":
        assert "FIFO" in err and Path(path).exists() and not Path(path).is_file()  # never replaced by a file
    if "loop" in kind:
        assert "a loop of symbolic links" in err or "no such" in err

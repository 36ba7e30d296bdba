"""Pipeline strings: `"shapes,cleanup{keep-identity=true},check"`.

Grammar (whitespace between tokens is ignored):

    pipeline := entry (',' entry)*
    entry    := NAME ('{' [option (',' option)*] '}')?
    option   := KEY '=' VALUE
    VALUE    := "quoted, with \\" escapes" | bare text up to ',' or '}'

Names may contain letters, digits, '_', '-', '.' and ':' (third-party passes are often dotted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import PipelineError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@dataclass(frozen=True)
class PipelineEntry:
    """One pass in a pipeline: its name and its options as written (strings, not yet typed)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        inner = ",".join(f"{k}={quote_value(v)}" for k, v in self.options.items())
        return f"{self.name}{{{inner}}}"


def parse_pipeline(text: str) -> list[PipelineEntry]:
    """Parse a pipeline string; PipelineError names the column of the first problem."""
    parser = _Parser(text)
    entries = parser.pipeline()
    return entries


def format_pipeline(entries: list[PipelineEntry]) -> str:
    """The canonical pipeline string for `entries` (parses back to the same entries)."""
    return ",".join(str(e) for e in entries)


def quote_value(value: str) -> str:
    """A value as pipeline text: bare when that parses back unchanged, else double-quoted."""
    if value and not any(c in value for c in ',{}="') and value == value.strip():
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> PipelineError:
        found = f"'{self.text[self.pos]}'" if self.pos < len(self.text) else "the end"
        return PipelineError(f"bad pipeline {self.text!r}: expected {what} at column {self.pos + 1}, found {found}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"'{char}'")
        self.pos += 1

    def match(self, pattern: re.Pattern, what: str) -> str:
        self.skip_space()
        found = pattern.match(self.text, self.pos)
        if not found:
            raise self.fail(what)
        self.pos = found.end()
        return found.group()

    def pipeline(self) -> list[PipelineEntry]:
        if not self.text.strip():
            raise PipelineError("the pipeline is empty: name at least one pass (onnxprune passes lists them)")
        entries = [self.entry()]
        while self.peek() == ",":
            self.pos += 1
            entries.append(self.entry())
        if self.peek():
            raise self.fail("',' or the end of the pipeline")
        return entries

    def entry(self) -> PipelineEntry:
        name = self.match(_NAME, "a pass name")
        options: dict[str, str] = {}
        if self.peek() == "{":
            self.pos += 1
            if self.peek() != "}":
                while True:
                    key = self.match(_KEY, "an option name")
                    if key in options:
                        raise PipelineError(f"bad pipeline {self.text!r}: option '{key}' of '{name}' given twice")
                    self.expect("=")
                    options[key] = self.value()
                    if self.peek() != ",":
                        break
                    self.pos += 1
            self.expect("}")
        return PipelineEntry(name, options)

    def value(self) -> str:
        if self.peek() == '"':
            self.pos += 1
            out = []
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if char == "\\" and self.pos + 1 < len(self.text):
                    out.append(self.text[self.pos + 1])
                    self.pos += 2
                elif char == '"':
                    self.pos += 1
                    return "".join(out)
                else:
                    out.append(char)
                    self.pos += 1
            raise self.fail("a closing '\"'")
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",}{=":
            self.pos += 1
        value = self.text[start:self.pos].strip()
        if not value:
            raise self.fail("a value")
        return value

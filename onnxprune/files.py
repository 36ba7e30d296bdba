"""File-system edges: atomic writes, and path checks shared by every command that reads or writes files."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import UserError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` and rename it over `path` only if the block succeeds,
    so readers never see a half-written output and a failed run leaves the old file untouched.

    A symbolic link is written through: its target gets the new contents and the link stays (a rename
    onto the link itself would replace the link with a file). An error of the file system names
    `path`, not the temporary file the user never asked for."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, OSError) and error.filename is not None and os.fspath(error.filename) == os.fspath(tmp):
            raise type(error)(error.errno, error.strerror, os.fspath(path)) from error
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if both paths name the same existing file (or the same path once resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block (and restore its state after).

    Building and analysing a graph allocates hundreds of thousands of small objects without cycles;
    the collector's full passes over them made run time grow faster than the model. Reference
    counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def path_problem(error: BaseException) -> str:
    """Why a path could not be used, in a few words (the caller names the path once)."""
    if isinstance(error, ValueError):  # Python refuses a NUL byte before the OS sees the name
        return "the name holds a NUL byte"
    if isinstance(error, RuntimeError) or getattr(error, "errno", None) == errno.ELOOP:
        return "a loop of symbolic links"
    return getattr(error, "strerror", None) or str(error).splitlines()[0]


def input_file(path: str | os.PathLike, what: str) -> Path:
    """`path` if it names a regular file, else one line saying what it is instead (missing, a folder,
    a FIFO or device that reading would block on or never end, a name the OS cannot take)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be read as the {what}: {path_problem(error)}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder, not the {what}")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: is not a regular file (a FIFO, socket or device), so not the {what}")
    return Path(path)


def check_output_name(path: str | os.PathLike) -> None:
    """Refuse an output path no file can be written to: a name the OS cannot take (too long, a loop of
    symbolic links, a NUL byte), or an existing FIFO, socket or device (an atomic write would replace
    `/dev/null` itself with a file). Missing files and folders are the caller's to judge."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be an output path: {path_problem(error)}") from None
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UserError(f"{path}: is not a regular file (a FIFO, socket or device); give a file path for the output")

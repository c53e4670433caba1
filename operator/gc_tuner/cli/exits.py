"""The CLI's error types: a clear message on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

__all__ = ["CLIError", "OutputError", "writing_output"]


class CLIError(click.ClickException):
    """Bad input or an unusable environment; click prints `Error: <message>` and exits 2."""

    exit_code = 2


class OutputError(click.ClickException):
    """Standard output cannot be written (closed, disk full); exit 1, as coreutils do on a write error.

    The input was fine, so this is not a CLIError: a caller's retry logic can tell the two apart.
    """

    exit_code = 1


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of what is still buffered cannot fail
    again and print an `Exception ignored` traceback after our one-line message (Python docs, SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or not a real file (a test runner's buffer)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


@contextmanager
def writing_output() -> Iterator[None]:
    """Run a command's output phase: a closed or failing stdout becomes a one-line error, not a traceback.

    A closed reader (`| head`) is the normal end of a pipeline, so EPIPE exits 1 without a message.
    """
    if sys.stdout is None:  # started with fd 1 closed (`>&-`): Python sets sys.stdout to None
        raise OutputError("cannot write output: standard output is closed")
    try:
        yield
        sys.stdout.flush()
    except OSError as e:
        _discard_stdout()
        if e.errno == errno.EPIPE:
            raise click.exceptions.Exit(1) from None
        raise OutputError(f"cannot write output: {e.strerror or e}") from None

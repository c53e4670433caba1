"""The CLI's one error type: a clear message on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import click

__all__ = ["CLIError"]


class CLIError(click.ClickException):
    """Bad input or an unusable environment; click prints `Error: <message>` and exits 2."""

    exit_code = 2

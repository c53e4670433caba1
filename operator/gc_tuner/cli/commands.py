"""The list of `gc-tuner` subcommands. Each lives in its own module under cli/."""

from __future__ import annotations

import click

ALL: list[click.Command] = []

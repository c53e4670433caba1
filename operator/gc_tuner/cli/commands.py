"""The list of `gc-tuner` subcommands. Each lives in its own module under cli/."""

from __future__ import annotations

import click

from gc_tuner.cli.analyze import analyze
from gc_tuner.cli.demo import demo
from gc_tuner.cli.local import local
from gc_tuner.cli.operator import operator
from gc_tuner.cli.recommend import recommend_command

ALL: list[click.Command] = []
ALL.append(analyze)
ALL.append(recommend_command)
ALL.append(local)
ALL.append(operator)
ALL.append(demo)

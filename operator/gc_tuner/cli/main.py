"""The `gc-tuner` command line."""

from __future__ import annotations

import click

from gc_tuner import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gc-tuner")
def main() -> None:
    """gc-tuner: fit the Go GC (GOGC / GOMEMLIMIT) to each workload from real signals.

    \b
    Offline:   analyze a gctrace log, or compute a recommendation from QPS and heap slope.
    Local:     run the control loop against processes by URL (local, demo).
    Cluster:   run the Kubernetes operator (operator).
    """


def _register() -> None:
    # Each subcommand lives in its own module; importing them here keeps `main` the single entry point.
    from gc_tuner.cli import commands

    for cmd in commands.ALL:
        main.add_command(cmd)


_register()

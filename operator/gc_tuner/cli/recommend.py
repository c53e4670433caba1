"""`gc-tuner recommend`: the article's formula for one QPS and heap slope, plus an optional GOMEMLIMIT."""

from __future__ import annotations

import json
import math

import click

from gc_tuner.cli.errors import CLIError

__all__ = ["recommend"]


def _finite(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}", param=param)
    return value


@click.command("recommend")
@click.option("--qps", type=float, required=True, callback=_finite,
              help="Requests per second of the service (negative is treated as 0).")
@click.option("--heap-slope", type=float, required=True, callback=_finite,
              help="Live-heap growth in MB/s (MiB); a shrinking heap (negative) is treated as 0.")
@click.option("--memory-limit", default=None, metavar="QUANTITY",
              help="Container memory limit as a Kubernetes quantity (1Gi, 512Mi, 1e9) to derive GOMEMLIMIT.")
@click.option("--percent", type=click.IntRange(1, 100), default=None,
              help="GOMEMLIMIT as this percent of --memory-limit, rounded down to a whole MiB [default: 90].")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def recommend(qps: float, heap_slope: float, memory_limit: str | None, percent: int | None, fmt: str) -> None:
    """GOGC (and GOMEMLIMIT) from the article's formula for a given load.

    \b
      qpsFactor   = max(0.5, min(2.0, 1.0 - (qps - 500) / 2000))
      slopeFactor = max(0.3, 1.0 / (1.0 + 0.2 * heapSlopeMBPerSec))
      GOGC        = int(max(25, min(200, 100 * qpsFactor * slopeFactor)))

    \b
    Examples:
      gc-tuner recommend --qps 200 --heap-slope 0.8                  # GOGC 99
      gc-tuner recommend --qps 1800 --heap-slope 3.2 --memory-limit 1Gi --percent 90
      gc-tuner recommend --qps 0 --heap-slope 12.5 --format json

    GOMEMLIMIT is always rendered in Go's own syntax (an integer with B, KiB, MiB, GiB or TiB).
    See docs/formula.md for the constants and the clamps.
    """
    from gc_tuner.logic.formula import formula_gogc
    from gc_tuner.logic.memlimit import memory_limit_from, parse_quantity, render_gomemlimit

    if percent is not None and memory_limit is None:
        raise click.UsageError("--percent needs --memory-limit")
    result = formula_gogc(qps, heap_slope)
    gomemlimit: str | None = None
    limit_bytes: int | None = None
    if memory_limit is not None:
        pct = 90 if percent is None else percent
        try:
            limit_bytes = memory_limit_from(parse_quantity(memory_limit), pct)
        except ValueError as e:
            raise CLIError(f"--memory-limit: {e}") from None
        gomemlimit = render_gomemlimit(limit_bytes)

    if fmt == "json":
        doc = {
            "gogc": result.gogc,
            "qps_factor": result.qps_factor,
            "slope_factor": result.slope_factor,
            "gomemlimit": gomemlimit,
            "gomemlimit_bytes": limit_bytes,
            "explanation": result.explanation,
            "inputs": result.inputs,
        }
        click.echo(json.dumps(doc, indent=1, allow_nan=False))
        return
    click.echo(f"GOGC          {result.gogc}")
    click.echo(f"qps_factor    {result.qps_factor:.4f}")
    click.echo(f"slope_factor  {result.slope_factor:.4f}")
    if gomemlimit is not None:
        click.echo(f"GOMEMLIMIT    {gomemlimit}  ({90 if percent is None else percent}% of {memory_limit}, "
                   "rounded down to a whole MiB)")
    else:
        click.echo("GOMEMLIMIT    (none: pass --memory-limit)")
    click.echo(result.explanation)

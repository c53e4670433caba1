"""`gc-tuner recommend`: the article's formula for one QPS and heap slope, plus an optional GOMEMLIMIT;
or (`--strategy budget`) the Budget strategy for one process's heap figures and memory limit; or
(`--strategy cost`) the Cost model for one process's allocation rate, mark cost and prices."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from gc_tuner.cli.exits import CLIError, writing_output

if TYPE_CHECKING:
    from gc_tuner.logic.budget import BudgetResult

__all__ = ["recommend_command"]


@dataclass(frozen=True, slots=True)
class _Options:
    """The command's options, one field per click option (click passes them by these names)."""

    strategy: str
    qps: float | None
    heap_slope: float | None
    memory_limit: str | None
    percent: int | None
    live: str | None
    stacks: str
    globals_: str
    non_heap: str
    horizon: int
    r2: float | None
    fit_span: float | None
    min_gogc: int
    max_gogc: int
    alloc_rate: float | None
    alloc_rate_se: float
    mark_cost: float | None
    mark_cost_se: float
    cpu_price: float
    memory_price: float
    currency: str
    current_gogc: int
    max_fit_error: float
    fmt: str

    @property
    def pct(self) -> int:
        return 90 if self.percent is None else self.percent


def _finite(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # Needed on FloatRange options too: NaN compares false with both ends, so FloatRange lets it through.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}", param=param)
    return value


def _non_negative(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    value = _finite(ctx, param, value)
    if value is not None and value < 0:
        raise click.BadParameter(f"must be >= 0, got {value}", param=param)
    return value


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    value = _finite(ctx, param, value)
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be > 0, got {value}", param=param)
    return value


@click.command("recommend")
@click.option("--strategy", type=click.Choice(["formula", "budget", "cost"]), default="formula",
              show_default=True,
              help="formula: the article's formula (needs --qps, --heap-slope); budget: the largest GOGC "
                   "whose predicted peak fits percent × --memory-limit (needs --live, --memory-limit); "
                   "cost: the GOGC minimising priced GC CPU plus heap overhead (needs --alloc-rate, "
                   "--mark-cost, --live; --memory-limit caps it with the budget).")
@click.option("--qps", type=float, default=None, callback=_finite,
              help="Requests per second of the service (negative is treated as 0). Formula only.")
@click.option("--heap-slope", type=float, default=None, callback=_finite,
              help="Live-heap growth in MB/s (MiB); a shrinking heap (negative) is treated as 0. "
                   "Budget: default 0.")
@click.option("--memory-limit", default=None, metavar="QUANTITY",
              help="Container memory limit as a Kubernetes quantity (1Gi, 512Mi, 1e9) to derive GOMEMLIMIT.")
@click.option("--percent", type=click.IntRange(1, 100), default=None,
              help="GOMEMLIMIT as this percent of --memory-limit, rounded down to a whole MiB [default: 90].")
@click.option("--live", default=None, metavar="QUANTITY",
              help="Budget: live heap (/gc/heap/live), e.g. 150Mi.")
@click.option("--stacks", default="0", show_default=True, metavar="QUANTITY",
              help="Budget: scannable stacks (/gc/scan/stack).")
@click.option("--globals", "globals_", default="0", show_default=True, metavar="QUANTITY",
              help="Budget: scannable globals (/gc/scan/globals).")
@click.option("--non-heap", default="16Mi", show_default=True, metavar="QUANTITY",
              help="Budget: memory outside the heap goal (runtime, free spans, fragmentation).")
@click.option("--horizon", type=click.IntRange(0, 86400), default=300, show_default=True,
              help="Budget: seconds ahead the live heap is predicted (the cooldown).")
@click.option("--r2", type=click.FloatRange(0, 1), default=None, callback=_finite,
              help="Budget: r² of the heap-slope fit; with --fit-span it enables leak suspicion.")
@click.option("--fit-span", type=click.FloatRange(0, 86400), default=None, callback=_finite,
              help="Budget: seconds the heap-slope fit spans.")
@click.option("--min-gogc", type=click.IntRange(1, 10000), default=25, show_default=True, help="GOGC floor.")
@click.option("--max-gogc", type=click.IntRange(1, 10000), default=200, show_default=True, help="GOGC cap.")
@click.option("--alloc-rate", type=float, default=None, callback=_non_negative, metavar="MIB_PER_S",
              help="Cost: allocation rate a in MiB/s (/gc/heap/allocs per second).")
@click.option("--alloc-rate-se", type=float, default=0.0, callback=_non_negative, show_default=True,
              help="Cost: standard error of --alloc-rate (0: taken as exact).")
@click.option("--mark-cost", type=float, default=None, callback=_non_negative, metavar="MS_PER_MIB",
              help="Cost: mark cost c, GC CPU-milliseconds per cycle per MiB of live + stacks + globals.")
@click.option("--mark-cost-se", type=float, default=0.0, callback=_non_negative, show_default=True,
              help="Cost: standard error of --mark-cost (0: taken as exact).")
@click.option("--cpu-price", type=float, default=0.040, callback=_positive, show_default=True,
              help="Cost: price of a core for an hour (the policy's cpuPerCoreHourMilli / 1000).")
@click.option("--memory-price", type=float, default=0.004, callback=_positive, show_default=True,
              help="Cost: price of a GiB for an hour (the policy's memoryPerGiBHourMilli / 1000).")
@click.option("--currency", default="USD", show_default=True, help="Cost: the prices' currency.")
@click.option("--current-gogc", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Cost: the GOGC in force; a poor fit moves only part of the way from it.")
@click.option("--max-fit-error", type=click.FloatRange(min=0, min_open=True, max=1000), default=10.0,
              show_default=True,
              help="Cost: relative error of GOGC* (percent) up to which the whole step is taken.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def recommend_command(**options: Any) -> None:
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

    \b
    Budget (budget = percent × memory limit, also the GOMEMLIMIT it sets):
      live_pred = live + max(0, slope) × horizon
      GOGC      = 100 × (budget − live_pred − non_heap) / (live_pred + stacks + globals)
      gc-tuner recommend --strategy budget --live 150Mi --memory-limit 1Gi --percent 85 --max-gogc 1000
      gc-tuner recommend --strategy budget --live 400Mi --heap-slope 4 --r2 0.95 --fit-span 120 \\
          --memory-limit 1Gi                                    # a leak: GOGC held at --min-gogc

    \b
    Cost (docs/cost.md; `gc-tuner analyze --strategy cost` prints this command for a gctrace log):
      GOGC* = 100 × sqrt(cpu_price × c × a / (memory_price × (live + stacks + globals)))
      gc-tuner recommend --strategy cost --alloc-rate 50 --mark-cost 0.6 --live 30Mi --max-gogc 1000

    GOMEMLIMIT is always rendered in Go's own syntax (an integer with B, KiB, MiB, GiB or TiB).
    See docs/formula.md for the constants and the clamps.
    """
    o = _Options(**options)
    if o.percent is not None and o.memory_limit is None:
        raise click.UsageError("--percent needs --memory-limit")
    if o.min_gogc > o.max_gogc:
        raise click.UsageError(f"--min-gogc {o.min_gogc} is above --max-gogc {o.max_gogc}")
    with writing_output():
        if o.strategy == "budget":
            _budget(o)
        elif o.strategy == "cost":
            _cost(o)
        else:
            _formula(o)


def _formula(o: _Options) -> None:
    from gc_tuner.logic.formula import FormulaParams, formula_gogc
    from gc_tuner.logic.memlimit import render_gomemlimit

    for name, v in (("--qps", o.qps), ("--heap-slope", o.heap_slope)):
        if v is None:
            raise click.UsageError(f"Missing option '{name}' (the formula needs --qps and --heap-slope)")
    assert o.qps is not None and o.heap_slope is not None
    try:
        result = formula_gogc(o.qps, o.heap_slope, FormulaParams(gogc_min=o.min_gogc, gogc_max=o.max_gogc))
    except ValueError as e:  # a value the formula refuses (never clamped): bad input, not a crash
        raise CLIError(f"--qps {o.qps:g} --heap-slope {o.heap_slope:g}: {e}") from None
    gomemlimit: str | None = None
    limit_bytes: int | None = None
    if o.memory_limit is not None:
        limit_bytes = _limit(o.memory_limit, o.pct)
        gomemlimit = render_gomemlimit(limit_bytes)

    if o.fmt == "json":
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
        click.echo(f"GOMEMLIMIT    {gomemlimit}  ({o.pct}% of {o.memory_limit}, rounded down to a whole MiB)")
    else:
        click.echo("GOMEMLIMIT    (none: pass --memory-limit)")
    click.echo(result.explanation)


def _limit(memory_limit: str, pct: int) -> int:
    from gc_tuner.logic.memlimit import memory_limit_from

    try:
        return memory_limit_from(_quantity("--memory-limit", memory_limit), pct)
    except ValueError as e:
        raise CLIError(f"--memory-limit: {e}") from None


def _quantity(option: str, value: str) -> int:
    from gc_tuner.logic.memlimit import parse_quantity

    try:
        return parse_quantity(value)
    except ValueError as e:
        raise CLIError(f"{option}: {e}") from None


def _budget(o: _Options) -> None:
    if o.live is None:
        raise click.UsageError("Missing option '--live' (the budget strategy needs the live heap)")
    if o.memory_limit is None:
        raise click.UsageError("Missing option '--memory-limit' (the budget is percent × the memory limit)")
    r = _budget_result(o, o.memory_limit, o.live)
    if o.fmt == "json":
        doc = {
            "strategy": "budget",
            "gogc": r.gogc,
            "gomemlimit": r.gomemlimit,
            "gomemlimit_bytes": r.gomemlimit_bytes,
            "leak_suspected": r.leak_suspected,
            "leak_reason": r.leak_reason,
            "explanation": r.explanation,
            "inputs": r.inputs,
        }
        click.echo(json.dumps(doc, indent=1, allow_nan=False))
        return
    click.echo(f"GOGC          {r.gogc}")
    budget = f"the budget: {o.pct}% of {o.memory_limit}, rounded down to a MiB"
    click.echo(f"GOMEMLIMIT    {r.gomemlimit}  ({budget})")
    click.echo(f"leak          {'SUSPECTED' if r.leak_suspected else 'no'}: {r.leak_reason}")
    click.echo(r.explanation)


def _budget_result(o: _Options, memory_limit: str, live: str) -> BudgetResult:
    from gc_tuner.logic.budget import BudgetParams, budget_gogc

    budget_bytes, live_bytes = _limit(memory_limit, o.pct), _quantity("--live", live)
    slope = 0.0 if o.heap_slope is None else o.heap_slope
    try:
        return budget_gogc(
            budget_bytes=budget_bytes,
            live_bytes=live_bytes,
            heap_slope_mb_per_s=slope,
            stacks_bytes=_quantity("--stacks", o.stacks),
            globals_bytes=_quantity("--globals", o.globals_),
            non_heap_bytes=_quantity("--non-heap", o.non_heap),
            r2=o.r2,
            span_s=o.fit_span,
            params=BudgetParams(gogc_min=o.min_gogc, gogc_max=o.max_gogc, horizon_s=float(o.horizon)),
        )
    except ValueError as e:  # a value the strategy refuses rather than clamp, e.g. --heap-slope 1e308
        raise CLIError(f"--heap-slope {slope:g} with --horizon {o.horizon}: {e}") from None


def _cost(o: _Options) -> None:
    from gc_tuner.cli.cost_report import cost_doc, echo_cost
    from gc_tuner.logic.cost_model import CostParams, PodCost, cost_gogc

    for name, v in (("--alloc-rate", o.alloc_rate), ("--mark-cost", o.mark_cost), ("--live", o.live)):
        if v is None:
            raise click.UsageError(f"Missing option '{name}' (the cost strategy needs --alloc-rate, "
                                   "--mark-cost and --live)")
    assert o.alloc_rate is not None and o.mark_cost is not None and o.live is not None
    parts = (("--live", o.live), ("--stacks", o.stacks), ("--globals", o.globals_))
    base = sum(_quantity(name, value) for name, value in parts)
    params = CostParams(cpu_per_core_hour=o.cpu_price, memory_per_gib_hour=o.memory_price,
                        gogc_min=o.min_gogc, gogc_max=o.max_gogc, max_fit_error=o.max_fit_error / 100,
                        currency=o.currency)
    pod = PodCost(o.alloc_rate, o.alloc_rate_se, o.mark_cost, o.mark_cost_se, base)
    cap = None
    if o.memory_limit is not None:  # Budget's GOGC for the same live heap caps it from above
        cap = _budget_result(o, o.memory_limit, o.live).raw_gogc
    try:
        r = cost_gogc([pod], params, current_gogc=o.current_gogc, budget_cap=cap)
    except ValueError as e:  # figures the model refuses rather than clamp (e.g. 1e300 MiB/s)
        raise CLIError(f"--alloc-rate {o.alloc_rate:g} --mark-cost {o.mark_cost:g}: {e}") from None
    doc = cost_doc(r, pod, params)
    if o.fmt == "json":
        click.echo(json.dumps(doc, indent=1, allow_nan=False))
        return
    echo_cost(doc)

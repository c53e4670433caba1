"""`gc-tuner analyze`: reverse-derive the pacer from a GODEBUG=gctrace=1 log (docs/analyze.md)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import click

from gc_tuner.cli.exits import CLIError, writing_output

if TYPE_CHECKING:
    from gc_tuner.logic.analysis import Analysis
    from gc_tuner.logic.cost_fit import CycleAccumulator

__all__ = ["analyze", "run_example_trace"]

_SNIFF = 8192  # bytes looked at to tell a binary file from a log, as grep and git do
EXAMPLE_DIR = ("examples", "gcdemo")


class _Prefixed:
    """A binary stream whose first bytes were already read (to sniff them), for iter_lines."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def read1(self, size: int = -1) -> bytes:
        part = self._head.read1(size)
        if part:
            return part
        rest = self._rest
        return rest.read1(size) if hasattr(rest, "read1") else rest.read(size)


@contextmanager
def _open_input(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        if sys.stdin is None:  # started with fd 0 closed (`<&-`): Python sets sys.stdin to None
            raise CLIError("stdin: standard input is closed; pass a FILE or pipe the gctrace log in")
        yield sys.stdin.buffer
        return
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed below; open errors must become CLI errors
    except FileNotFoundError:
        raise CLIError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{name}: is a directory, not a gctrace log") from None
    except PermissionError:
        raise CLIError(f"{name}: permission denied") from None
    except OSError as e:
        raise CLIError(f"{name}: cannot open: {e.strerror or e}") from None
    with f:
        yield f


def _analyze_stream(
    stream: IO[bytes], label: str, qps: float | None, gogc: int | None, cost: CycleAccumulator | None = None
) -> Analysis:
    from gc_tuner.input.gctrace import GCTraceParser, iter_lines
    from gc_tuner.logic.analysis import TraceAnalyzer

    try:
        head = stream.read(_SNIFF)
        if not head:
            raise CLIError(
                f"{label}: empty input; expected the stderr of a Go program run with GODEBUG=gctrace=1"
            )
        if b"\0" in head:
            raise CLIError(f"{label}: binary data (NUL bytes), not a gctrace log")
        parser = GCTraceParser()
        analyzer = TraceAnalyzer()
        for cycle in parser.parse(iter_lines(cast(BinaryIO, _Prefixed(head, stream)))):
            analyzer.add(cycle)
            if cost is not None:
                cost.add(cycle)
    except OSError as e:
        raise CLIError(f"{label}: read failed: {e.strerror or e}") from None
    if len(analyzer.table) == 0:
        kinds = ", ".join(f"{v} {k}" for k, v in parser.skipped.most_common()) or "none"
        where = ""
        if parser.first_garbled is not None:  # gc lines were there: say which one to look at
            where = (f"; the first garbled gc line is line {parser.first_garbled}: cut, interleaved, or "
                     "holding a number no Go runtime prints")
        raise CLIError(
            f"{label}: no gctrace lines (`gc N @...`) among {parser.lines} lines (skipped: {kinds}{where}); "
            "run the Go program with GODEBUG=gctrace=1 and pass its stderr"
        )
    return analyzer.result(skipped_lines=parser.skipped_total, qps=qps, gogc=gogc)


def run_example_trace(duration_s: float) -> bytes:
    """Build examples/gcdemo, run it with GODEBUG=gctrace=1 for `duration_s`, return its stderr."""
    from gc_tuner.cli.gobuild import GoBuildError, build_go, repo_root

    src = repo_root().joinpath(*EXAMPLE_DIR)
    if not (src / "go.mod").is_file():
        raise CLIError(f"--run-example needs the gc-tuner source tree; {src} is missing")
    try:
        binary = build_go(src, "gcdemo")
    except GoBuildError as e:
        raise CLIError(f"cannot build {src}: {e}") from None
    env = {k: v for k, v in os.environ.items() if k not in {"GOGC", "GOMEMLIMIT"}}
    env["GODEBUG"] = "gctrace=1"
    try:
        proc = subprocess.run(
            [str(binary), "-duration", f"{duration_s}s"], env=env, capture_output=True,
            timeout=duration_s + 60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CLIError(f"running {binary} failed: {e}") from None
    if proc.returncode != 0:
        raise CLIError(f"{binary} exited {proc.returncode}: {proc.stderr[-2000:].decode(errors='replace')}")
    return proc.stderr


def _fmt(v: float | None, spec: str = ".3g", none: str = "-") -> str:
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _table_line(r: dict[str, Any]) -> str:
    stacks, globals_, eff, assist = r["stacks_mb"], r["globals_mb"], r["effective_gogc"], r["assist_share"]
    return (
        f"{r['n']:>6} {r['t']:>9.3f} {r['cpu_pct']:>4} {r['heap_start_mb']:>6} {r['heap_end_mb']:>6} "
        f"{r['live_mb']:>6} {r['goal_mb']:>6} {'-' if stacks is None else stacks:>6} "
        f"{'-' if globals_ is None else globals_:>5} {r['procs']:>3} {r['stw_ms']:>8.3f} "
        f"{'-' if eff is None else format(eff, '.0f'):>8} "
        f"{'-' if assist is None else format(assist, '.0%'):>6}{' yes' if r['forced'] else ''}"
    )


def _write_lines(lines: Iterator[str]) -> None:
    """Write many lines in large writes: one click.echo per row costs more than formatting it."""
    out = sys.stdout
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 4096:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()


def _print_json(a: Analysis, label: str, cost: dict[str, Any] | None = None) -> None:
    """The JSON contract, one cycle per line, streamed: a log of a million cycles never becomes a
    million dicts at once."""
    rest = a.as_dict(cycles=False)
    if cost is not None:
        rest["cost"] = cost

    def lines() -> Iterator[str]:
        yield "{"
        yield f" {json.dumps('source')}: {json.dumps(label)},"
        rows = a.table.rows()
        first = next(rows, None)
        if first is None:
            yield ' "cycles": [],'
        else:
            yield ' "cycles": ['
            prev = json.dumps(first, allow_nan=False)
            for row in rows:
                yield f"  {prev},"
                prev = json.dumps(row, allow_nan=False)
            yield f"  {prev}"
            yield " ],"
        items = list(rest.items())
        for i, (key, value) in enumerate(items):
            text = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
            yield f" {json.dumps(key)}: {text}{',' if i < len(items) - 1 else ''}"
        yield "}"

    _write_lines(lines())


def _print_table(a: Analysis, label: str) -> None:
    header = (f"{'n':>6} {'t(s)':>9} {'cpu%':>4} {'start':>6} {'end':>6} {'live':>6} {'goal':>6} "
              f"{'stacks':>6} {'glob':>5} {'P':>3} {'stw_ms':>8} {'eff_gogc':>8} {'assist':>6} forced")
    click.echo(header)
    _write_lines(map(_table_line, a.table.rows()))
    s = a.summary
    click.echo(f"\nSummary of {label}")
    rows = [
        ("cycles", f"{s.cycles} ({s.forced} forced) over {s.span_s:.2f}s in {s.segments} process(es); "
                   f"{s.skipped_lines} other lines skipped"),
        ("STW pause",
         f"p50 {_fmt(s.stw_p50_ms)} ms, p99 {_fmt(s.stw_p99_ms)} ms, max {_fmt(s.stw_max_ms)} ms"),
        ("GC CPU", f"{s.gc_cpu_pct}% (cumulative since start, last line)"),
        ("live heap slope", f"{_fmt(s.live_slope_mb_per_s)} MB/s (r² {_fmt(s.live_slope_r2, '.2f')}; "
                            f"{s.live_slope_note})"),
        ("effective GOGC", f"median {_fmt(s.effective_gogc_median, '.0f')}"),
        ("memory limit", ("binding" if s.memory_limit_binding else "not binding")
         + f" ({s.memory_limit_bound_cycles} cycles below 80% of reference GOGC "
           f"{_fmt(s.reference_gogc, '.0f')}, {s.reference_gogc_source})"),
        ("assist share", f"{_fmt(s.assist_share, '.0%')} of mark CPU"),
    ]
    for k, v in rows:
        click.echo(f"  {k:<16} {v}")
    click.echo("\nAnomalies" + ("" if a.anomalies else ": none"))
    for an in a.anomalies:
        click.echo(f"  [{an.source}] {an.rule}: {an.evidence}")
        click.echo(f"      action: {an.suggested_action}")
        if an.fact_note:
            click.echo(f"      {an.fact_note}")
    rec = a.recommendation
    click.echo("\nRecommendation")
    click.echo(f"  {rec.explanation}")
    for note in rec.notes:
        click.echo(f"  note: {note}")


@dataclass(frozen=True, slots=True)
class _CostOptions:
    """The `--strategy cost` options, one field per click option."""

    strategy: str
    cpu_price: float
    memory_price: float
    currency: str
    min_gogc: int
    max_gogc: int
    max_fit_error: float


def _cost(acc: CycleAccumulator, a: Analysis, gogc: int | None, o: _CostOptions) -> dict[str, Any]:
    """The Cost model on the log's fitted a, c and L+S+G (logic/cost_fit.py, as the operator fits a
    pod's gctrace), from the GOGC it ran with (`--gogc`, else the median effective GOGC, else 100)."""
    from gc_tuner.cli.cost_report import cost_doc, recommend_command_for
    from gc_tuner.logic.cost_fit import NotEnoughData
    from gc_tuner.logic.cost_model import CostParams, PodCost, cost_gogc

    try:
        fit = acc.result()
    except NotEnoughData as e:
        raise CLIError(f"--strategy cost: {e}") from None
    params = CostParams(cpu_per_core_hour=o.cpu_price, memory_per_gib_hour=o.memory_price,
                        gogc_min=o.min_gogc, gogc_max=o.max_gogc, max_fit_error=o.max_fit_error / 100,
                        currency=o.currency)
    pod = PodCost(fit.alloc.value, fit.alloc.se, fit.mark.value, fit.mark.se, fit.base_bytes)
    eff = a.summary.effective_gogc_median
    current = gogc if gogc is not None else round(eff) if eff is not None and eff >= 1 else None
    try:
        r = cost_gogc([pod], params, current_gogc=current, budget_cap=None)
    except ValueError as e:
        raise CLIError(f"--strategy cost: {e}") from None
    doc = cost_doc(r, pod, params)
    doc["cycles"] = fit.cycles
    doc["recommend"] = recommend_command_for(doc, params)
    return doc


def _finite_non_negative(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}", param=param)
    return value


def _positive(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"must be a finite number > 0, got {value}", param=param)
    return value


@click.command("analyze")
@click.argument("file", required=False, metavar="FILE|-")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Per-cycle table plus summary for people, or the JSON contract for programs.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG timeline: heap start/end/live/goal, STW pauses, GC CPU %.")
@click.option("--qps", type=float, default=None, callback=_finite_non_negative,
              help="Request rate of the traced program, for the recommendation "
                   "(a log has none; default: the formula's neutral 500).")
@click.option("--gogc", type=click.IntRange(min=1), default=None,
              help="GOGC the program ran with; makes memory-limit detection exact.")
@click.option("--run-example", is_flag=True,
              help="Build and run examples/gcdemo with GODEBUG=gctrace=1 and analyze its trace.")
@click.option("--example-duration", type=click.FloatRange(min=0.5, max=600), default=4.0, show_default=True,
              help="Seconds to run the example for (with --run-example).")
@click.option("--strategy", type=click.Choice(["formula", "cost"]), default="formula", show_default=True,
              help="cost: also the Cost strategy's GOGC from the log's allocation rate and mark cost.")
@click.option("--cpu-price", type=float, default=0.040, callback=_positive, show_default=True,
              help="Cost: price of a core for an hour.")
@click.option("--memory-price", type=float, default=0.004, callback=_positive, show_default=True,
              help="Cost: price of a GiB for an hour.")
@click.option("--currency", default="USD", show_default=True, help="Cost: the prices' currency.")
@click.option("--min-gogc", type=click.IntRange(1, 10000), default=25, show_default=True,
              help="Cost: GOGC floor.")
@click.option("--max-gogc", type=click.IntRange(1, 10000), default=200, show_default=True,
              help="Cost: GOGC cap.")
@click.option("--max-fit-error", type=click.FloatRange(min=0, min_open=True, max=1000), default=10.0,
              show_default=True,
              help="Cost: relative error of GOGC* (percent) up to which the whole step is taken.")
def analyze(
    file: str | None, fmt: str, plot_path: Path | None, qps: float | None, gogc: int | None,
    run_example: bool, example_duration: float, **cost_options: Any,
) -> None:
    """Reverse-derive the Go GC pacer from a GODEBUG=gctrace=1 log.

    FILE is the program's stderr saved to a file, or - for standard input. The output is a
    per-cycle table (heap at start/end, live, goal, STW pause, effective GOGC), a summary
    (STW p50/p99/max, GC CPU, live-heap slope, median effective GOGC, whether the memory limit
    binds), anomalies with suggested actions, and a GOGC recommendation from the formula.

    \b
    Examples:
      GODEBUG=gctrace=1 ./server 2> gc.log; gc-tuner analyze gc.log
      GODEBUG=gctrace=1 ./server 2>&1 >/dev/null | gc-tuner analyze - --format json
      gc-tuner analyze gc.log --qps 1200 --plot gc.png
      gc-tuner analyze --run-example          # trace a bundled Go program and analyze it
      gc-tuner analyze gc.log --strategy cost --max-gogc 1000   # docs/cost.md

    With --strategy cost the Cost strategy's GOGC is added (JSON key "cost"), with the
    `gc-tuner recommend --strategy cost` command that gives the same answer offline.

    Exit code 2 on unusable input (missing, empty, binary, unreadable, no gc lines).
    The JSON keys and every rule are described in docs/analyze.md.
    """
    co = _CostOptions(**cost_options)
    if co.min_gogc > co.max_gogc:
        raise click.UsageError(f"--min-gogc {co.min_gogc} is above --max-gogc {co.max_gogc}")
    acc = None
    if co.strategy == "cost":
        from gc_tuner.logic.cost_fit import CycleAccumulator

        acc = CycleAccumulator()
    if run_example and file is not None:
        raise click.UsageError("give either FILE or --run-example, not both")
    if run_example:
        label = "examples/gcdemo"
        click.echo(f"running {label} for {example_duration:g}s with GODEBUG=gctrace=1 ...", err=True)
        result = _analyze_stream(io.BytesIO(run_example_trace(example_duration)), label, qps, gogc, acc)
    elif file is None:
        raise click.UsageError("missing FILE (a gctrace log, or - for stdin); or use --run-example")
    else:
        label = "stdin" if file == "-" else file
        with _open_input(file) as stream:
            result = _analyze_stream(stream, label, qps, gogc, acc)
    cost = _cost(acc, result, gogc, co) if acc is not None else None

    if plot_path is not None:
        from gc_tuner.cli.plot import plot_timeline

        try:
            plot_timeline(result.table, plot_path, title=f"gctrace timeline: {label}")
        except OSError as e:
            raise CLIError(f"{plot_path}: cannot write the plot: {e.strerror or e}") from None
        click.echo(f"wrote {plot_path}", err=True)

    with writing_output():
        if fmt == "json":
            _print_json(result, label, cost)
        else:
            _print_table(result, label)
            if cost is not None:
                from gc_tuner.cli.cost_report import echo_cost

                click.echo(f"\nCost strategy ({cost['cycles']} cycles)")
                echo_cost(cost, indent="  ")
                click.echo(f"  offline: {cost['recommend']}")

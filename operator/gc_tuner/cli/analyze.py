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
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import click

from gc_tuner.cli.exits import CLIError, writing_output

if TYPE_CHECKING:
    from gc_tuner.logic.analysis import Analysis

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


def _analyze_stream(stream: IO[bytes], label: str, qps: float | None, gogc: int | None) -> Analysis:
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


def _print_json(a: Analysis, label: str) -> None:
    """The JSON contract, one cycle per line, streamed: a log of a million cycles never becomes a
    million dicts at once."""
    rest = a.as_dict(cycles=False)

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


def _finite_non_negative(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}", param=param)
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
def analyze(
    file: str | None, fmt: str, plot_path: Path | None, qps: float | None, gogc: int | None,
    run_example: bool, example_duration: float,
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

    Exit code 2 on unusable input (missing, empty, binary, unreadable, no gc lines).
    The JSON keys and every rule are described in docs/analyze.md.
    """
    if run_example and file is not None:
        raise click.UsageError("give either FILE or --run-example, not both")
    if run_example:
        label = "examples/gcdemo"
        click.echo(f"running {label} for {example_duration:g}s with GODEBUG=gctrace=1 ...", err=True)
        result = _analyze_stream(io.BytesIO(run_example_trace(example_duration)), label, qps, gogc)
    elif file is None:
        raise click.UsageError("missing FILE (a gctrace log, or - for stdin); or use --run-example")
    else:
        label = "stdin" if file == "-" else file
        with _open_input(file) as stream:
            result = _analyze_stream(stream, label, qps, gogc)

    if plot_path is not None:
        from gc_tuner.cli.plot import plot_timeline

        try:
            plot_timeline(result.table, plot_path, title=f"gctrace timeline: {label}")
        except OSError as e:
            raise CLIError(f"{plot_path}: cannot write the plot: {e.strerror or e}") from None
        click.echo(f"wrote {plot_path}", err=True)

    with writing_output():
        if fmt == "json":
            _print_json(result, label)
        else:
            _print_table(result, label)


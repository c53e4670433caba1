"""A scenario's report: Markdown tables, goals, the front chart, and the raw trials as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import markdown_table, text_table
from bench.quality.aggregate import ScenarioResult
from bench.quality.goals import Goal
from bench.quality.guard_trail import describe, summarize
from bench.quality.intervals import Estimate, beats
from bench.quality.oracle import Distance, front_cpu_at
from bench.quality.trial import TrialRecord

__all__ = ["Meta", "plot_front", "print_summary", "write_report"]

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Meta:
    command: str
    seed: int
    smoke: bool
    provenance: str
    clean: bool
    machine: dict[str, str]
    load: str
    setup: list[str]
    wall_s: float
    budget_s: float


def _e(e: Estimate | None, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if e is None else e.fmt(scale, digits)


def _d(d: Distance | None) -> str:
    if d is None:
        return "n/a"
    if d.excess is None:
        return d.where
    return f"{100 * d.excess:+.1f} %"


def _rows(sr: ScenarioResult) -> tuple[list[str], list[list[str]]]:
    mem = sr.memory_measured
    header = ["setting", "trials", "GC CPU cores (+tuner)", "idle-mark cores", "process cores"]
    header += ["avg memory MiB", "peak memory MiB"] if mem else []
    header += ["p50 ms", "p99 ms", "converged s", "OOM kills", "gc-tuner local cores", "load"]
    rows = []
    for cr in sr.configs.values():
        if cr.unavailable:
            rows.append([cr.config.label, "0", f"unavailable: {cr.unavailable}"] + [""] * (len(header) - 3))
            continue
        g = cr.get
        row = [
            cr.config.label,
            str(len(cr.trials)),
            _e(g("gc"), 1, 4),
            _e(g("gc_idle"), 1, 4),
            _e(g("process"), 1, 3),
        ]
        if mem:
            row += [_e(g("mem_avg"), 1 / MiB, 0), _e(g("mem_peak"), 1 / MiB, 0)]
        loads = [t.load_1m for t in cr.trials]
        row += [
            _e(g("p50"), 1, 3),
            _e(g("p99"), 1, 3),
            _e(g("converged"), 1, 0),
            str(cr.oom_kills),
            _e(g("tuner_raw"), 1, 3),
            f"{min(loads):.1f}-{max(loads):.1f}" if loads else "",
        ]
        rows.append(row)
    return header, rows


def _distance_rows(sr: ScenarioResult) -> tuple[list[str], list[list[str]]]:
    header = [
        "contender",
        "front GC CPU at its avg memory",
        "excess (whole window)",
        "excess (after convergence)",
        "excess vs peak-memory front",
    ]
    rows = []
    for cr in sr.configs.values():
        if not cr.config.contender or cr.unavailable:
            continue
        fc = cr.dist_avg.front_cpu if cr.dist_avg is not None else None
        rows.append(
            [
                cr.config.label,
                "n/a" if fc is None else f"{fc:.4f}",
                _d(cr.dist_avg),
                _d(cr.dist_after),
                _d(cr.dist_peak),
            ]
        )
    return header, rows


def _versus(sr: ScenarioResult, key: str = "cost") -> list[str]:
    """What the intervals allow saying about Cost against each other setting."""
    me = sr.configs.get(key)
    if me is None or not me.trials:
        return [f"- {key}: not run, no comparison"]
    out = []
    for cr in sr.configs.values():
        if cr is me or not cr.trials:
            continue
        said = []
        for metric, name in (("gc", "GC CPU"), ("mem_avg", "avg memory"), ("p99", "p99 latency")):
            if beats(me.get(metric), cr.get(metric)):
                said.append(f"beats it on {name}")
            elif beats(cr.get(metric), me.get(metric)):
                said.append(f"is beaten on {name}")
        out.append(
            f"- {me.config.label} vs {cr.config.label}: "
            + ("; ".join(said) if said else "intervals overlap on every axis")
        )
    return out


def _guard_lines(sr: ScenarioResult, records: Sequence[TrialRecord]) -> list[str]:
    """Per gc-tuner setting: how many changes the guard let through and how their trials ended."""
    out = []
    for key, cr in sr.configs.items():
        if cr.config.kind != "gc-tuner" or cr.unavailable:
            continue
        mine = sorted((r for r in records if r.config == key), key=lambda r: r.repeat)
        if not mine:
            continue
        trails = [r.guard for r in mine if r.guard is not None]
        if not trails:
            out.append(
                f"- **{cr.config.label}**: not recorded (the run predates the trail; `--rejudge --logs DIR`)"
            )
            continue
        out.append(f"- **{cr.config.label}**: {summarize(trails)}")
        out += [f"  - #{r.repeat}: {describe(r.guard)}" for r in mine if r.guard is not None]
    return out


def _goal_lines(goals: Sequence[Goal]) -> list[str]:
    return [f"- **{g.mark}** [{g.tuner}] {g.text}: {g.detail}" for g in goals]


def _header(sr: ScenarioResult, meta: Meta) -> list[str]:
    """Title (flagged for smoke runs and dirty trees), provenance, machine and setup."""
    flags = (" (smoke run: numbers mean nothing)" if meta.smoke else "") + (
        "" if meta.clean else " — DIRTY TREE: not a result"
    )
    lines = [f"# gc-tuner tuning quality: {sr.name}{flags}", "", f"{sr.description}", ""]
    lines += [
        f"- source: {meta.provenance}",
        f"- command: `{meta.command}`",
        f"- trial order seed: {meta.seed}",
    ]
    lines += [
        f"- wall time {meta.wall_s / 60:.1f} min (planned {meta.budget_s / 60:.1f} min on an idle machine)",
        "",
    ]
    lines += (
        ["## Machine", ""]
        + [f"- {k}: {v}" for k, v in meta.machine.items()]
        + [f"- during the run: {meta.load}", ""]
    )
    lines += ["## Setup", ""] + [f"- {s}" for s in meta.setup]
    if not sr.memory_measured:
        lines.append(
            "- **memory was NOT measured** (no writable memory cgroup: run as root): memory "
            "columns, the front and every distance are left out"
        )
    lines += [""] + [f"- {n}" for n in sr.notes] + [""]
    return lines


def write_report(
    sr: ScenarioResult,
    goals: Sequence[Goal],
    checks: Sequence[Goal],
    records: Sequence[TrialRecord],
    meta: Meta,
    out: Path,
    plot: Path | None,
    header: list[str] | None = None,
    readings: bool = True,
    phases: Sequence[str] = (),
) -> Path:
    """`header` replaces the one made from `meta` (a run judged again keeps its own, and its JSON of
    readings is left as the run wrote it: `readings` False)."""
    stem = f"quality_{'smoke_' if meta.smoke else ''}{sr.name}"
    lines = list(header) if header is not None else _header(sr, meta)
    h, rows = _rows(sr)
    lines += ["## Results (medians, [95 % bootstrap interval])", "", markdown_table(h, rows), ""]
    if sr.memory_measured:
        fr = ", ".join(f"{p.key} ({p.memory / MiB:.0f} MiB, {p.cpu:.4f})" for p in sr.front_avg)
        h, rows = _distance_rows(sr)
        lines += [
            "## Distance to the oracle front",
            "",
            f"Front (time-averaged memory): {fr or 'none'}",
            "",
            markdown_table(h, rows),
            "",
        ]
    lines += ["## Cost against the others (only non-overlapping intervals count)", "", *_versus(sr), ""]
    lines += ["## Goals", "", *_goal_lines(goals), ""]
    if phases:
        lines += [
            "## What switching could earn at best (the hindsight per-phase oracle)",
            "",
            "In each phase, the static setting that was cheapest in it, from its own trials (only "
            "settings whose every trial lived through the phase compete); switching to it at every "
            "phase change, free and instant, bounds what a tuner moving between these settings can "
            "save against the best single setting (bench/quality/phase_oracle.py).",
            "",
            *phases,
            "",
        ]
    guard = _guard_lines(sr, records)
    if guard:
        lines += ["## What the guard did (changes applied, and how each one's trial ended)", "", *guard, ""]
    if checks:
        lines += ["## Scenario checks", "", *_goal_lines(checks), ""]
    if plot is not None:
        lines += ["## Chart", "", f"![{plot.stem}]({plot.name})", ""]
    trial_rows = [
        [r.order, r.config, r.repeat, r.exit, f"{r.load_1m:.2f}", "; ".join(r.notes)] for r in records
    ]
    lines += [
        "## Trials in run order",
        "",
        markdown_table(["#", "setting", "repeat", "exit", "load 1 min", "notes"], trial_rows),
        "",
    ]
    path = out / f"{stem}.md"
    path.write_text("\n".join(lines))
    if readings:
        (out / f"{stem}.json").write_text(json.dumps([dataclasses.asdict(r) for r in records]))
    return path


def plot_front(sr: ScenarioResult, out: Path, smoke: bool) -> Path | None:
    if not sr.memory_measured:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, mem, fr, title in (
        (axes[0], "mem_avg", sr.front_avg, "time-averaged memory"),
        (axes[1], "mem_peak", sr.front_peak, "peak memory"),
    ):
        if fr:
            # The front as the distances use it: interpolated in log-log between its points.
            lo, hi = fr[0].memory, fr[-1].memory
            xs = [lo + (hi - lo) * i / 100 for i in range(101)]
            ys = [front_cpu_at(fr, x) for x in xs]
            ax.plot([x / MiB for x in xs], ys, "k--", lw=1, label="static front")
        for cr in sr.configs.values():
            m, g = cr.get(mem), cr.get("gc")
            if m is None or g is None:
                continue
            marker = (
                "s"
                if cr.config.sweep and not cr.config.contender
                else ("*" if cr.config.kind == "gc-tuner" else "o")
            )
            ax.errorbar(
                m.median / MiB,
                g.median,
                xerr=[[(m.median - m.low) / MiB], [(m.high - m.median) / MiB]],
                yerr=[[g.median - g.low], [g.high - g.median]],
                fmt=marker,
                ms=9 if marker == "*" else 6,
                capsize=2,
                label=cr.config.label,
            )
        ax.set_xlabel(f"{title} (MiB)")
        ax.set_ylabel("GC CPU cores (gc-tuner: + its per-pod cost)")
        ax.set_title(f"{sr.name}: GC CPU vs {title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / f"quality_{'smoke_' if smoke else ''}{sr.name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_summary(sr: ScenarioResult, goals: Sequence[Goal], checks: Sequence[Goal]) -> None:
    h, rows = _rows(sr)
    print(f"\n== {sr.name}: {sr.description}")
    print(text_table(h, rows))
    if sr.memory_measured:
        h, rows = _distance_rows(sr)
        print(text_table(h, rows))
    for g in [*goals, *checks]:
        print(f"  [{g.mark}] {g.tuner}: {g.text}: {g.detail}")

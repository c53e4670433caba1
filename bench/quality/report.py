"""Tables, goals, plots and the Markdown report of a tuning-quality run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import markdown_table, text_table
from bench.quality.run import RunResult
from bench.quality.scenarios import CONTENDERS, Scale

__all__ = ["Goal", "evaluate_goals", "plot", "result_rows", "write_report"]

MiB = 1 << 20
HEADER = [
    "contender",
    "GC CPU s",
    "GC CPU %",
    "GC cycles",
    "process CPU s",
    "peak MiB",
    "peak % limit",
    "STW p99 ms",
    "breaches",
    "OOM kills",
    "requests",
    "req/s",
    "p99 latency ms",
    "leak flagged at",
    "load",
]
_LABEL = {c.key: c.label for c in CONTENDERS}


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def result_rows(results: Sequence[RunResult], scenario: str) -> list[list[str]]:
    rows = []
    for r in results:
        if r.scenario != scenario:
            continue
        flagged = "-" if r.leak_flagged_at_s is None else f"{r.leak_flagged_at_s:.0f} s"
        if not any(c.key == r.contender and c.kind == "gc-tuner" for c in CONTENDERS):
            flagged = "n/a"
        label = _LABEL.get(r.contender, r.contender)
        if not r.exit.startswith("clean"):
            label += (
                f" (died at {r.duration_s:.0f} s)"
                if r.oom_kills == 0
                else f" (OOM-killed at {r.duration_s:.0f} s)"
            )
        rows.append(
            [
                label,
                _f(r.gc_cpu_s, ".2f"),
                _f(None if r.gc_cpu_fraction is None else 100 * r.gc_cpu_fraction, ".1f"),
                "n/a" if r.gc_cycles is None else str(r.gc_cycles),
                _f(r.process_cpu_s, ".1f"),
                _f(None if r.peak_bytes is None else r.peak_bytes / MiB, ".0f"),
                _f(None if r.peak_fraction is None else 100 * r.peak_fraction, ".1f"),
                _f(r.pause_p99_ms, ".2f"),
                str(r.breaches),
                str(r.oom_kills),
                "n/a" if r.requests is None else str(r.requests),
                _f(r.requests_per_s, ".0f"),
                _f(r.p99_latency_ms, ".2f"),
                flagged,
                f"{r.load_1m:.1f}",
            ]
        )
    return rows


@dataclass(frozen=True, slots=True)
class Goal:
    text: str
    met: bool | None  # None: could not be judged (a run missing)
    detail: str


def _get(results: Sequence[RunResult], scenario: str, contender: str) -> RunResult | None:
    for r in results:
        if r.scenario == scenario and r.contender == contender:
            return r
    return None


def evaluate_goals(results: Sequence[RunResult], s: Scale) -> list[Goal]:
    goals: list[Goal] = []
    for sc in ("steady", "burst"):
        b, base = _get(results, sc, "budget"), _get(results, sc, "gogc100")
        if b is None or base is None or b.gc_cpu_s is None or base.gc_cpu_s is None or base.gc_cpu_s <= 0:
            goals.append(Goal(f"{sc}: Budget uses ≥ 40% less GC CPU than GOGC=100", None, "run missing"))
            continue
        saved = 1 - b.gc_cpu_s / base.gc_cpu_s
        goals.append(
            Goal(
                f"{sc}: Budget uses ≥ 40% less GC CPU than GOGC=100",
                saved >= 0.4,
                f"{b.gc_cpu_s:.2f} s vs {base.gc_cpu_s:.2f} s: {100 * saved:.0f}% less",
            )
        )
    for sc in ("steady", "burst", "leak"):
        b = _get(results, sc, "budget")
        if b is None or b.peak_fraction is None:
            goals.append(Goal(f"{sc}: Budget peak ≤ 90% of the limit, 0 breaches", None, "run missing"))
            continue
        ok = b.peak_fraction <= 0.9 and b.breaches == 0 and b.oom_kills == 0
        goals.append(
            Goal(
                f"{sc}: Budget peak ≤ 90% of the limit, 0 breaches",
                ok,
                f"peak {100 * b.peak_fraction:.1f}%, {b.breaches} breaches, {b.oom_kills} OOM kills",
            )
        )
    for sc in ("steady", "burst", "leak"):
        b = _get(results, sc, "budget")
        if b is None or b.gc_cpu_s is None or b.peak_bytes is None:
            goals.append(
                Goal(f"{sc}: no contender beats Budget on both GC CPU and peak memory", None, "run missing")
            )
            continue
        beaters = [
            f"{_LABEL.get(r.contender, r.contender)} ({r.gc_cpu_s:.2f} s, {r.peak_bytes / MiB:.0f} MiB)"
            for r in results
            if r.scenario == sc
            and r.contender != "budget"
            and r.exit.startswith("clean")  # a killed run's figures cover less time: not comparable
            and r.gc_cpu_s is not None
            and r.peak_bytes is not None
            and r.gc_cpu_s < b.gc_cpu_s
            and r.peak_bytes < b.peak_bytes
        ]
        goals.append(
            Goal(
                f"{sc}: no contender beats Budget on both GC CPU and peak memory",
                not beaters,
                ("beaten by " + ", ".join(beaters))
                if beaters
                else f"Budget {b.gc_cpu_s:.2f} s GC CPU, {b.peak_bytes / MiB:.0f} MiB peak",
            )
        )
    b = _get(results, "leak", "budget")
    limit_s = 2 * s.window_s
    if b is None:
        goals.append(Goal("leak: flagged within 2 fit windows", None, "run missing"))
        goals.append(Goal("leak: GC CPU never above 50% for more than 30 s", None, "run missing"))
    else:
        at = b.leak_flagged_at_s
        goals.append(
            Goal(
                "leak: flagged within 2 fit windows",
                at is not None and at <= limit_s,
                "not flagged"
                if at is None
                else f"flagged {at:.0f} s after the workload started (2 windows = {2 * s.window_s} s)",
            )
        )
        goals.append(
            Goal(
                "leak: GC CPU never above 50% for more than 30 s",
                b.longest_gc_over_50_s <= 30,
                f"longest stretch above 50% (5 s windows): {b.longest_gc_over_50_s:.0f} s",
            )
        )
    return goals


def plot(results: Sequence[RunResult], scenarios: Sequence[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.5), squeeze=False)
    for ax, sc in zip(axes[0], scenarios, strict=True):
        for r in results:
            if r.scenario != sc or r.gc_cpu_s is None or r.peak_bytes is None:
                continue
            ax.scatter(
                r.peak_bytes / MiB,
                r.gc_cpu_s,
                s=60,
                label=_LABEL.get(r.contender, r.contender),
                marker="*" if r.contender == "budget" else "o",
            )
            ax.annotate(
                _LABEL.get(r.contender, r.contender),
                (r.peak_bytes / MiB, r.gc_cpu_s),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        limit = next((r.limit_bytes for r in results if r.scenario == sc), None)
        if limit:
            ax.axvline(0.9 * limit / MiB, color="tab:orange", ls="--", lw=1, label="90% of limit")
            ax.axvline(limit / MiB, color="tab:red", ls="-", lw=1, label="limit")
        ax.set_title(sc)
        ax.set_xlabel("peak memory (MiB)")
        ax.set_ylabel("GC CPU (s)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle("GC CPU vs peak memory (lower-left is better)")
    fig.tight_layout()
    p = out / "quality_gc_vs_peak.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    contenders = [c.key for c in CONTENDERS if any(r.contender == c.key for r in results)]
    fig, axes = plt.subplots(
        len(scenarios),
        len(contenders),
        figsize=(4.2 * len(contenders), 3.2 * len(scenarios)),
        squeeze=False,
        sharex=True,
    )
    for i, sc in enumerate(scenarios):
        for j, key in enumerate(contenders):
            ax = axes[i][j]
            r = next((x for x in results if x.scenario == sc and x.contender == key), None)
            ax.set_title(f"{sc} / {_LABEL.get(key, key)}", fontsize=9)
            if r is None or not r.timeline:
                continue
            t = [p.t for p in r.timeline]
            ax.plot(t, [p.live_bytes / MiB for p in r.timeline], label="live heap", lw=1)
            ax.plot(t, [p.goal_bytes / MiB for p in r.timeline], label="heap goal", lw=1)
            mem = [(p.t, p.mem_bytes / MiB) for p in r.timeline if p.mem_bytes is not None]
            if mem:
                ax.plot([m[0] for m in mem], [m[1] for m in mem], label="memory (cgroup/RSS)", lw=1)
            ax.axhline(r.limit_bytes / MiB, color="tab:red", lw=0.8)
            ax.set_ylim(0, r.limit_bytes / MiB * 1.08)
            ax.set_ylabel("MiB", fontsize=8)
            ax2 = ax.twinx()
            ax2.step(t, [p.gogc for p in r.timeline], where="post", color="black", lw=1.2, label="GOGC")
            ax2.set_ylabel("GOGC", fontsize=8)
            ax2.set_ylim(0, max(220, max(p.gogc for p in r.timeline) * 1.1))
            if r.leak_flagged_at_s is not None:
                ax.axvline(r.leak_flagged_at_s, color="tab:purple", ls=":", lw=1, label="leak flagged")
            if i == len(scenarios) - 1:
                ax.set_xlabel("s")
            if i == 0 and j == 0:
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = ax2.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, fontsize=6, loc="upper left")
    fig.suptitle("GOGC (black, right axis) and heap (left axis) over each run; red line: the memory limit")
    fig.tight_layout()
    p = out / "quality_timelines.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def write_report(
    results: Sequence[RunResult],
    goals: Sequence[Goal],
    *,
    machine: dict[str, str],
    load: str,
    s: Scale,
    smoke: bool,
    command: str,
    scenario_desc: dict[str, str],
    out: Path,
    plots: Sequence[Path],
    notes: Sequence[str],
) -> Path:
    lines = [f"# gc-tuner tuning quality{' (smoke run: numbers mean nothing)' if smoke else ''}", ""]
    lines += [f"Command: `{command}`", ""]
    lines += (
        ["## Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()] + [f"- during the run: {load}", ""]
    )
    enforcement = sorted({r.limit_enforcement for r in results})
    lines += [
        "## Setup",
        "",
        f"- memory limit {s.limit_bytes // MiB} MiB, enforced by: {'; '.join(enforcement)}",
        f"- each run {s.duration_s:g} s, one process at a time; workload live set flag -live-mib "
        f"{s.live_mib}, {s.garbage_bytes // 1024} KiB garbage per request",
        f"- gc-tuner: `gc-tuner local --mode enforce` through the agent endpoint, interval "
        f"{s.interval_s} s, window {s.window_s} s, cooldown {s.cooldown_s} s, min change 10, "
        f"bounds 25..1000; started {s.tuner_lead_s:g} s before the workload (as an operator runs "
        "before a pod starts), times are from the workload's start",
        "- GC CPU = `/cpu/classes/gc/total` − `/cpu/classes/gc/mark/idle` (the workload's exit "
        "summary); GC CPU % = its share of `/cpu/classes/total` over the run; STW p99 from "
        "`/sched/pauses/total/gc:seconds`; breaches = times usage reached the limit (cgroup "
        "failcnt), or peak above the limit without a cgroup",
        "- the runtime estimates its CPU classes from the time its Ps spend in each state, so on a "
        "loaded machine (other processes taking the 2 cores) GC CPU reads higher: `load` is the "
        "1-minute load average at the end of each run; GC cycles and the process's CPU seconds "
        "(counted by the kernel) do not have that bias",
        "",
    ]
    for c in CONTENDERS:
        lines.append(f"- **{c.label}**: {c.note}")
    lines.append("")
    for sc, desc in scenario_desc.items():
        lines += [f"## {sc}: {desc}", "", markdown_table(HEADER, result_rows(results, sc)), ""]
    lines += ["## Goals", ""]
    for g in goals:
        mark = "met" if g.met else ("NOT MET" if g.met is False else "not judged")
        lines.append(f"- **{mark}**: {g.text} ({g.detail})")
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    run_notes = [f"- {r.scenario}/{r.contender}: {n}" for r in results for n in r.notes]
    run_notes += [
        f"- {r.scenario}/{r.contender}: exit {r.exit}" for r in results if not r.exit.startswith("clean")
    ]
    if notes or run_notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + run_notes + [""]
    path = out / ("quality_smoke.md" if smoke else "quality.md")
    path.write_text("\n".join(lines))
    raw = out / ("quality_smoke.json" if smoke else "quality.json")
    raw.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=None))
    return path


def print_tables(results: Sequence[RunResult], scenario_desc: dict[str, str], goals: Sequence[Goal]) -> None:
    for sc, desc in scenario_desc.items():
        print(f"\n== {sc}: {desc}")
        print(text_table(HEADER, result_rows(results, sc)))
    print("\n== goals")
    for g in goals:
        mark = "met" if g.met else ("NOT MET" if g.met is False else "not judged")
        print(f"  [{mark}] {g.text}: {g.detail}")

"""The operator's cost at fleet scale: `gc-tuner local` against 500, 2,000 and 5,000 fake pods.

    .venv/bin/python -m bench.fleet            # full run, 15 s interval (about 6 minutes)
    .venv/bin/python -m bench.fleet --smoke    # tiny fleets, 1 s interval (seconds)

Prints tables and the goals, and writes bench/results/fleet.md (fleet_smoke.md), fleet.json and
fleet_cost.png. Goals: 2,000 pods per 15 s on ≤ 0.5 core and ≤ 200 MB RSS; a decision (fit +
strategy) ≤ 5 ms; an endpoint rollout to 100 pods ≤ 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS_DIR, LoadSampler, machine_info, markdown_table, text_table
from bench.fleet.cost import (
    DecisionTiming,
    FleetRun,
    RolloutRun,
    build_fleetsim,
    decision_timing,
    profile_fleet,
    run_fleet,
    run_rollout,
)

_FLEET_HEADER = [
    "pods",
    "QPS from",
    "interval s",
    "cycles",
    "pods sampled/s",
    "needed/s",
    "cycle s (median/max)",
    "CPU cores",
    "RSS MiB",
    "peak RSS MiB",
    "startup s",
    "pod failures",
]
_QPS_LABEL = {"agent": "agent GET", "counter": "/metrics GET"}
_DECISION_HEADER = ["pods in policy", "samples/pod", "decision ms (median)", "p90 ms", "per pod ms"]
_ROLLOUT_HEADER = ["pods", "GOGC", "pods acked", "first→last POST s", "cycle start→last POST s"]


def _fleet_rows(runs: list[FleetRun]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in runs:
        cyc = r.cycle_s[1:] or r.cycle_s
        rows.append(
            [
                r.pods,
                _QPS_LABEL.get(r.qps_source, r.qps_source),
                r.interval_s,
                r.cycles,
                f"{r.pods_per_s:.1f}",
                f"{r.pods / r.interval_s:.1f}",
                f"{sorted(cyc)[len(cyc) // 2]:.2f} / {max(cyc):.2f}" if cyc else "n/a",
                f"{r.cpu_cores:.3f}",
                f"{r.rss_mib:.0f}",
                f"{r.peak_rss_mib:.0f}",
                f"{r.startup_s:.1f}",
                r.failures,
            ]
        )
    return rows


def _decision_rows(ds: list[DecisionTiming]) -> list[list[object]]:
    return [
        [d.pods, d.samples_per_pod, f"{d.median_ms:.2f}", f"{d.p90_ms:.2f}", f"{d.per_pod_ms:.3f}"]
        for d in ds
    ]


def _rollout_rows(rs: list[RolloutRun]) -> list[list[object]]:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return [[r.pods, r.gogc, r.acked, f(r.post_span_s), f(r.cycle_to_last_s)] for r in rs]


def _goals(
    runs: list[FleetRun], ds: list[DecisionTiming], rs: list[RolloutRun]
) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for source in ("agent", "counter"):
        big = next((r for r in runs if r.pods == 2000 and r.qps_source == source), None)
        goal = f"2,000 pods per 15 s on ≤ 0.5 core and ≤ 200 MB RSS, QPS from the {_QPS_LABEL[source]}"
        if big is None or not big.cycles:
            if source == "agent":
                out.append((goal, None, "no 2,000-pod run"))
            continue
        rss_mb = big.peak_rss_mib * (1 << 20) / 1e6
        kept_up = big.pods_per_s >= 0.99 * big.pods / big.interval_s
        ok = kept_up and big.cpu_cores <= 0.5 and rss_mb <= 200
        out.append(
            (
                goal,
                ok,
                f"{big.pods_per_s:.0f} pods/s (needed {big.pods / big.interval_s:.0f}), "
                f"{big.cpu_cores:.2f} cores, peak RSS {rss_mb:.0f} MB",
            )
        )
    for d in ds:
        out.append(
            (
                f"decision ≤ 5 ms for a {d.pods}-pod policy",
                d.median_ms <= 5,
                f"{d.median_ms:.2f} ms median ({d.per_pod_ms:.3f} ms per pod: ≤ 5 ms up to "
                f"~{int(5 / d.per_pod_ms) if d.per_pod_ms > 0 else 0} pods)",
            )
        )
    for r in rs:
        ok = r.cycle_to_last_s is not None and r.cycle_to_last_s <= 2 and r.acked == r.pods
        out.append(
            (
                f"endpoint rollout to {r.pods} pods ≤ 2 s",
                ok if r.cycle_to_last_s is not None else None,
                "not observed"
                if r.cycle_to_last_s is None
                else f"{r.cycle_to_last_s:.2f} s from the deciding cycle's start, "
                f"{r.post_span_s:.2f} s first to last POST, {r.acked}/{r.pods} acked",
            )
        )
    return out


def _plot(runs: list[FleetRun], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in runs if r.cycles and r.qps_source == "agent"]
    if not ok:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r.pods for r in ok]
    ax.plot(xs, [r.cpu_cores for r in ok], "o-", label="CPU cores")
    ax.axhline(0.5, color="tab:blue", ls=":", lw=1)
    ax.set_xlabel("pods")
    ax.set_ylabel("CPU cores")
    ax2 = ax.twinx()
    ax2.plot(xs, [r.peak_rss_mib for r in ok], "s--", color="tab:orange", label="peak RSS MiB")
    ax2.axhline(200e6 / (1 << 20), color="tab:orange", ls=":", lw=1)
    ax2.set_ylabel("peak RSS (MiB)")
    ax.set_title(f"gc-tuner local, {ok[0].interval_s} s interval (dotted: goals)")
    fig.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p = out / "fleet_cost.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--sizes", default=None, help="comma-separated fleet sizes [500,2000,5000; smoke 20]")
    ap.add_argument(
        "--counter-sizes",
        default=None,
        help="sizes also run with QPS from a /metrics counter instead of the agent [2000; smoke none]",
    )
    ap.add_argument("--interval", type=int, default=None, help="sampling interval s [15; smoke 1]")
    ap.add_argument("--cycles", type=int, default=None, help="measured cycles per size [5; smoke 2]")
    ap.add_argument("--rollout-pods", type=int, default=None, help="[100; smoke 10]")
    ap.add_argument("--concurrency", type=int, default=16, help="sampling.maxConcurrency [16, the default]")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="PODS",
        help="also profile gc-tuner local on this many pods with py-spy and report the hot frames",
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in (args.sizes or ("20" if args.smoke else "500,2000,5000")).split(",")]
    counter_default = "" if args.smoke else "2000"
    counter_sizes = [int(x) for x in (args.counter_sizes or counter_default).split(",") if x]
    interval = args.interval or (1 if args.smoke else 15)
    cycles = args.cycles or (2 if args.smoke else 5)
    rollout_pods = args.rollout_pods or (10 if args.smoke else 100)

    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    load = LoadSampler()
    workdir = Path(tempfile.mkdtemp(prefix="gctuner-fleet-"))
    print(f"logs in {workdir}", flush=True)
    binary = build_fleetsim()
    started = time.monotonic()

    runs = []
    for n, source in [(n, "agent") for n in sizes] + [(n, "counter") for n in counter_sizes]:
        print(
            f"[{time.monotonic() - started:4.0f} s] fleet of {n} pods, QPS from the {_QPS_LABEL[source]}, "
            f"{interval} s interval, {cycles} cycles",
            flush=True,
        )
        runs.append(
            run_fleet(
                binary,
                n,
                interval_s=interval,
                cycles=cycles,
                workdir=workdir,
                concurrency=args.concurrency,
                qps_source=source,
            )
        )
        load.note()
    print(f"[{time.monotonic() - started:4.0f} s] rollout to {rollout_pods} pods", flush=True)
    rollouts = [
        run_rollout(
            binary,
            rollout_pods,
            interval_s=1 if args.smoke else 2,
            workdir=workdir,
            concurrency=args.concurrency,
        )
    ]
    load.note()
    print(f"[{time.monotonic() - started:4.0f} s] decision timing", flush=True)
    dsizes = [10, 100] if args.smoke else [10, 100, 500, 2000]
    decisions = [decision_timing(p, 20, repeat=3 if args.smoke else 5) for p in dsizes]
    hot: list[tuple[float, str]] = []
    hot_note = ""
    if args.profile:
        print(f"[{time.monotonic() - started:4.0f} s] profiling {args.profile} pods", flush=True)
        hot, hot_note = profile_fleet(
            binary,
            args.profile,
            interval_s=interval,
            seconds=4 * interval,
            workdir=workdir,
            concurrency=args.concurrency,
        )

    goals = _goals(runs, decisions, rollouts)
    print("\n== fleet\n" + text_table(_FLEET_HEADER, _fleet_rows(runs)))
    print(
        "\n== decision (fit + strategy), in-process\n"
        + text_table(_DECISION_HEADER, _decision_rows(decisions))
    )
    print("\n== endpoint rollout\n" + text_table(_ROLLOUT_HEADER, _rollout_rows(rollouts)))
    print("\n== goals")
    for text, met, detail in goals:
        print(f"  [{'met' if met else 'NOT MET' if met is False else 'not judged'}] {text}: {detail}")
    if args.profile:
        print(f"\n== hot frames ({hot_note})")
        for pct, frame in hot:
            print(f"  {pct:5.1f}%  {frame}")
    plot = _plot(runs, args.out)

    command = "python -m bench.fleet " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    smoke_note = " (smoke run: numbers mean nothing)" if args.smoke else ""
    lines = [
        f"# gc-tuner operator cost at fleet scale{smoke_note}",
        "",
        f"Command: `{command.strip()}`",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in machine.items()] + [f"- during the run: {load.summary()}", ""]
    lines += [
        "## Setup",
        "",
        "- one `fleetsim` process (bench/fleet/sim, Go) serves every fake pod on its own loopback "
        "address (127.1.x.y), each an agent, /metrics and expvar responder whose values evolve "
        "(requests at a waving rate, GC cycles following allocation rate and the GOGC written to it, "
        "5% of pods leaking)",
        f"- `gc-tuner local --mode enforce` with one `--target` per pod; policy: agent source, Endpoint "
        f"rollout with a 60 s lease (renewed once less than 40 s is left: every other cycle), "
        f"maxConcurrency {args.concurrency}; QPS from the agent's requestsTotal (`qps.agent`, one GET "
        f"per pod per cycle) or, for comparison, from http_requests_total on /metrics (`qps.counter`, "
        f"a second GET per pod per cycle)",
        "- CPU cores and RSS from /proc/<pid> of the gc-tuner process, measured from the end of the "
        "first cycle (imports and first connections excluded from CPU; peak RSS includes them)",
        "- decision = every pod's fits (QPS and heap slope, Theil–Sen) + the Deployment median + the "
        "leak verdict + the strategy, timed in-process on full windows",
        "",
    ]
    lines += ["## Fleet", "", markdown_table(_FLEET_HEADER, _fleet_rows(runs)), ""]
    lines += ["## Decision time", "", markdown_table(_DECISION_HEADER, _decision_rows(decisions)), ""]
    lines += ["## Endpoint rollout", "", markdown_table(_ROLLOUT_HEADER, _rollout_rows(rollouts)), ""]
    lines += (
        ["## Goals", ""]
        + [
            f"- **{'met' if m else 'NOT MET' if m is False else 'not judged'}**: {t} ({d})"
            for t, m, d in goals
        ]
        + [""]
    )
    if plot is not None:
        lines += [f"![fleet cost]({plot.name})", ""]
    notes = [f"- {r.pods} pods ({r.qps_source}): {n}" for r in runs for n in r.notes] + [
        f"- rollout {r.pods}: {n}" for r in rollouts for n in r.notes
    ]
    notes.append(f"- total wall time {time.monotonic() - started:.0f} s")
    if args.profile:
        lines += ["## Profile", "", f"{hot_note}; inclusive share of samples per frame:", "", "```"]
        lines += [f"{pct:5.1f}%  {frame}" for pct, frame in hot] + ["```", ""]
    lines += ["## Notes", "", *notes, ""]
    name = "fleet_smoke" if args.smoke else "fleet"
    report = args.out / f"{name}.md"
    report.write_text("\n".join(lines))
    (args.out / f"{name}.json").write_text(
        json.dumps(
            {
                "fleet": [dataclasses.asdict(r) for r in runs],
                "rollout": [dataclasses.asdict(r) for r in rollouts],
                "decision": [dataclasses.asdict(d) for d in decisions],
            }
        )
    )
    print(f"\nreport: {report}\n{load.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

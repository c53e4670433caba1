"""Tables, the Markdown report and the JSON of one operator load run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

from bench.common import markdown_table, text_table
from bench.operator_load.measure import CPU_GOAL_CORES, RSS_GOAL_MB, Goal, LoadResult

__all__ = ["git_state", "print_tables", "verdict_word", "write_report"]

_SUMMARY = [
    "pods",
    "interval s",
    "steady s",
    "CPU cores",
    "× 0.5 core",
    "RSS MB (steady max)",
    "peak RSS MB",
    "× 200 MB",
    "apiserver req/s (operator)",
    "agent reads/s (needed)",
    "startup s",
]
_POLICY = [
    "policy",
    "cycles",
    "median gap s",
    "worst gap s",
    "lag s",
    "late",
    "cycle s (median/max)",
    "fewest sampled",
    "most failing (reasons)",
    "kept",
]
_BREAKDOWN = ["verb", "resource", "requests", "per s"]


def git_state(root: Path) -> dict[str, str]:
    """The commit measured and whether the tree matched it (other engineers edit it concurrently)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    changed = [ln for ln in git("status", "--porcelain").splitlines() if ln.strip()]
    tree = "clean" if not changed else f"NOT clean ({len(changed)}: " + ", ".join(changed[:8]) + ")"
    return {"commit": git("rev-parse", "HEAD") or "unknown", "tree": tree}


def verdict_word(met: bool | None) -> str:
    return "met" if met else "NOT MET" if met is False else "not judged"


def _summary_rows(r: LoadResult) -> list[list[object]]:
    rps = "n/a" if r.apiserver_rps is None else f"{r.apiserver_rps:.2f}"
    reads = "n/a" if r.samples_per_s is None else f"{r.samples_per_s:.1f} ({r.pods / r.interval_s:.1f})"
    return [
        [
            f"{r.pods} ({r.policies} × {r.pods_per_policy})",
            r.interval_s,
            f"{r.steady_s:.0f}",
            f"{r.cpu_cores:.3f}",
            f"{r.cpu_cores / CPU_GOAL_CORES:.2f}",
            f"{r.rss_mb:.0f}",
            f"{r.peak_rss_mb:.0f}",
            f"{max(r.rss_mb, r.peak_rss_mb) / RSS_GOAL_MB:.2f}",
            rps,
            reads,
            f"{r.startup_s:.1f}",
        ]
    ]


def _durations(ds: list[float]) -> str:
    return f"{sorted(ds)[len(ds) // 2]:.1f} / {max(ds):.1f}" if ds else "n/a"


def _policy_rows(r: LoadResult) -> list[list[object]]:
    rows: list[list[object]] = []
    for t in r.timings:
        med = t.median_gap_s
        rows.append(
            [
                t.name,
                t.cycles,
                "n/a" if med is None else f"{med:.2f}",
                f"{t.worst_gap_s:.2f}",
                f"{t.worst_gap_s - r.interval_s:+.2f}",
                t.late(r.interval_s, r.tolerance),
                _durations(t.durations_s),
                f"{t.sampled_min if t.sampled_min is not None else 'n/a'}/{t.pods}",
                f"{t.failing_max}" + (f" ({', '.join(sorted(t.reasons))})" if t.reasons else ""),
                "yes" if t.kept(r.interval_s, r.tolerance) else "NO",
            ]
        )
    return rows


def _breakdown_rows(r: LoadResult) -> list[list[object]]:
    return [[v, res, f"{n:.0f}", f"{n / r.steady_s:.2f}"] for v, res, n in r.breakdown] if r.steady_s else []


def _cp_rows(r: LoadResult) -> list[list[object]]:
    return [[k, f"{v:.3f}"] for k, v in sorted(r.control_plane_cores.items(), key=lambda kv: -kv[1])]


def print_tables(r: LoadResult, goals: list[Goal]) -> None:
    print("\n== the operator\n" + text_table(_SUMMARY, _summary_rows(r)))
    print("\n== cycles per policy (gaps between cycle starts)\n" + text_table(_POLICY, _policy_rows(r)))
    print(
        "\n== apiserver requests in the window, every client\n" + text_table(_BREAKDOWN, _breakdown_rows(r))
    )
    print("\n== other processes, CPU cores in the window\n" + text_table(["process", "cores"], _cp_rows(r)))
    print("\n== goals")
    for text, met, detail in goals:
        print(f"  [{verdict_word(met)}] {text}: {detail}")
    for n in r.notes:
        print(f"  note: {n}")
    if r.profile:
        print("\n== hot frames (py-spy, inclusive)")
        for pct, frame in r.profile:
            print(f"  {pct:5.1f}%  {frame}")


def _setup_lines(r: LoadResult, concurrency: int) -> list[str]:
    return [
        "## Setup",
        "",
        "- the e2e harness's control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
        "as local processes; its test kubelet idle), on this machine",
        f"- {r.pods} Pod objects bound to `fleet-node`, a Node with no kubelet whose Lease the benchmark "
        "renews; each pod's status (Running, Ready, podIP) written once through the status subresource; "
        f"podIP = a `fleetsim` listener (bench/fleet/sim) on 127.1.x.y",
        f"- {r.policies} StatefulSets (OnDelete) that adopt {r.pods_per_policy} of the pods each (gc-tuner "
        f"tunes the pods a workload owns), and {r.policies} GCPolicies: the fleet bench's policy (agent "
        f"source, QPS from the agent, Enforce, Endpoint rollout with a 60 s lease, maxConcurrency "
        f"{concurrency}, {r.interval_s} s interval) plus the agent token Secret a production policy names",
        "- `gc-tuner operator --standalone --namespace operator-load` as a host process, under its own "
        "ServiceAccount (cluster-admin) whose requests a FlowSchema of their own counts "
        "(apiserver_flowcontrol_dispatched_requests_total, exempt priority level: no queueing added)",
        "- CPU: utime+stime of the operator (every thread) over the steady window, after a warm-up; "
        "RSS: largest VmRSS sampled every second in the window, and VmHWM (startup and the first "
        "listing included); MB = 10^6 bytes",
        "- cycles: the start of each cycle of each policy that started in the window, from the "
        "recommendation and decision times its status carries (whole seconds), watched one interval "
        "past the window so the last have reported; a cycle's duration is its start to its status "
        "arriving (+0..1 s). A policy keeps its interval when no gap between starts (window edges "
        f"included) exceeds the interval by more than {r.tolerance:.0%} or the 1 s resolution, "
        "whichever is more",
        "",
    ]


def write_report(
    out: Path, name: str, r: LoadResult, goals: list[Goal], header: dict[str, Any], concurrency: int
) -> Path:
    smoke = " (smoke run: numbers mean nothing)" if name.endswith("smoke") else ""
    lines = [f"# gc-tuner operator (kopf) on the real control plane{smoke}", ""]
    lines += [f"Command: `{header['command']}`", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in header.items() if k != "command"] + [""]
    lines += _setup_lines(r, concurrency)
    lines += ["## The operator", "", markdown_table(_SUMMARY, _summary_rows(r)), ""]
    lines += ["## Goals", ""]
    lines += [f"- **{verdict_word(m)}**: {t} ({d})" for t, m, d in goals] + [""]
    lines += [
        "## Cycles per policy (gaps between cycle starts)",
        "",
        markdown_table(_POLICY, _policy_rows(r)),
        "",
    ]
    lines += [
        "## apiserver requests in the window",
        "",
        "apiserver_request_total of every client (it has no user label): the operator, the controller-"
        "manager, the scheduler, the idle test kubelet and this benchmark (lease renewals, a watch).",
        "",
        markdown_table(_BREAKDOWN, _breakdown_rows(r)),
        "",
    ]
    lines += [
        "## Other processes, CPU cores in the window",
        "",
        markdown_table(["process", "cores"], _cp_rows(r)),
    ]
    if r.profile:
        lines += ["", "## Profile (py-spy over the steady window, inclusive share of samples)", "", "```"]
        lines += [f"{pct:5.1f}%  {frame}" for pct, frame in r.profile] + ["```"]
    lines += ["", "## Notes", "", *[f"- {n}" for n in r.notes or ["none"]], ""]
    report = out / f"{name}.md"
    report.write_text("\n".join(lines))
    doc = {"result": dataclasses.asdict(r), "goals": goals, "machine": header}
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    return report

"""The kopf operator's own cost at 2,000 pods on the real control plane (not `gc-tuner local`).

    .venv/bin/python -m bench.operator_load            # 20 policies × 100 pods, 15 s interval (~9 min)
    .venv/bin/python -m bench.operator_load --smoke    # 2 × 10 pods, 2 s interval (about a minute)

Starts the e2e harness's control plane, binds N fake pods (fleetsim listeners on 127.1.x.y) to a
node the benchmark keeps Ready, creates the GCPolicies, runs `gc-tuner operator` as a host process
and measures over a steady window after a warm-up: the operator's CPU and RSS, its requests to the
apiserver, and whether every policy keeps its interval. Writes bench/results/operator_load.md
(operator_load_smoke.md) and .json. Goals: ≤ 0.5 core and ≤ 200 MB RSS at 2,000 pods.
Needs the Kubernetes binaries (`python -m e2e.cluster build`; built on first use).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS_DIR, LoadSampler, machine_info
from bench.operator_load.measure import goals
from bench.operator_load.operator_proc import export_source
from bench.operator_load.report import git_state, print_tables, write_report
from bench.operator_load.run import Plan, run


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.operator_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--smoke", action="store_true", help="2 policies × 10 pods, 2 s interval, short windows")
    ap.add_argument("--policies", type=int, default=None, help="GCPolicies [20; smoke 2]")
    ap.add_argument("--pods-per-policy", type=int, default=None, help="[100; smoke 10]")
    ap.add_argument("--interval", type=int, default=None, help="sampling.intervalSeconds [15; smoke 2]")
    ap.add_argument(
        "--warmup", type=float, default=None, help="s after every policy's first status [60; smoke 8]"
    )
    ap.add_argument("--steady", type=float, default=None, help="measured window, s [300; smoke 30]")
    ap.add_argument("--concurrency", type=int, default=16, help="sampling.maxConcurrency [16, the default]")
    ap.add_argument(
        "--tolerance",
        type=float,
        default=0.1,
        help="a gap between two cycles of a policy may exceed the interval by this share [0.1]",
    )
    ap.add_argument(
        "--operator-rev",
        default="HEAD",
        metavar="REV|worktree",
        help="run the operator (and apply the CRD) of this commit, exported with git archive, so "
        "concurrent edits of the tree are not measured; 'worktree': the tree as it is on disk [HEAD]",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy the operator over the steady window and report the hot frames (py-spy's own "
        "CPU shares the machine: judge the figures of a run without it)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    return ap.parse_args(argv)


def _plan(args: argparse.Namespace, workdir: Path, source: Path | None) -> Plan:
    def pick(value: float | None, full: float, smoke: float) -> float:
        return value if value is not None else smoke if args.smoke else full

    return Plan(
        policies=int(pick(args.policies, 20, 2)),
        per_policy=int(pick(args.pods_per_policy, 100, 10)),
        interval_s=int(pick(args.interval, 15, 2)),
        warmup_s=pick(args.warmup, 60, 8),
        steady_s=pick(args.steady, 300, 30),
        concurrency=args.concurrency,
        tolerance=args.tolerance,
        workdir=workdir,
        source=source,
        profile=args.profile,
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = _args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gctuner-operator-load-"))
    root = RESULTS_DIR.parent.parent
    header: dict[str, str] = {
        "command": " ".join(["python -m bench.operator_load", *map(shlex.quote, argv or sys.argv[1:])]),
        **machine_info(),
        **git_state(root),
    }
    source = None
    if args.operator_rev == "worktree":
        header["operator measured"] = "the working tree as it was on disk (see tree)"
    else:
        source = workdir / "src"
        commit = export_source(root, args.operator_rev, source)
        header["operator measured"] = f"commit {commit}, exported with git archive (no uncommitted edit)"
    plan = _plan(args, workdir, source)
    args.out.mkdir(parents=True, exist_ok=True)
    load = LoadSampler()
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:4.0f} s] {msg}", flush=True)

    say(f"logs in {workdir}; {plan.policies} policies × {plan.per_policy} pods, {plan.interval_s} s interval")
    result = run(plan, load, say)
    load.note()
    header["during the run"] = load.summary()
    header["load average at the end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    header["wall time"] = f"{time.monotonic() - started:.0f} s"
    header["logs"] = str(workdir)
    verdicts = goals(result)
    print_tables(result, verdicts)
    name = "operator_load_smoke" if args.smoke else "operator_load"
    report = write_report(args.out, name, result, verdicts, header, args.concurrency)
    print(f"\nreport: {report}\n{load.summary()}; tree {header['tree']} at {header['commit'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

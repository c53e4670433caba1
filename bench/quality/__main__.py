"""Tuning quality: every contender on the reference workload in the steady, burst and leak scenarios.

    .venv/bin/python -m bench.quality            # full run: 3 scenarios × 5 contenders × 65 s ≈ 18 min
    .venv/bin/python -m bench.quality --smoke    # seconds per run; checks the harness, not the tuners

Prints a table per scenario and the goals, and writes bench/results/quality.md (quality_smoke.md),
the raw results as JSON and two PNGs. The memory limit is a memory cgroup child of this process's
cgroup where one is writable (as root on cgroup v1, or v2 with the memory controller delegated);
otherwise the report says the limit was only counted, not enforced.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench.common import RESULTS_DIR, LoadSampler, machine_info
from bench.quality.report import evaluate_goals, plot, print_tables, write_report
from bench.quality.run import RunResult, make_workdir, run_one
from bench.quality.scenarios import CONTENDERS, scale, scenarios


def _build(with_bytedance: bool, notes: list[str]) -> tuple[Path, Path | None]:
    from gc_tuner.cli.gobuild import GoBuildError, build_go, repo_root

    module = repo_root() / "e2e" / "workload"
    plain = build_go(module, "workload", depends_on=("../../agent",))
    bytedance = None
    if with_bytedance:
        try:
            bytedance = build_go(module, "workload", depends_on=("../../agent",), tags=("gctuner_bytedance",))
        except GoBuildError as e:
            notes.append(f"bytedance gctuner left out: its build failed ({str(e).splitlines()[-1]})")
    return plain, bytedance


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--smoke", action="store_true", help="seconds-long runs with a small workload")
    ap.add_argument("--scenarios", default="steady,burst,leak", help="comma-separated subset")
    ap.add_argument(
        "--contenders", default=",".join(c.key for c in CONTENDERS), help="comma-separated subset"
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the report and plots go")
    ap.add_argument("--no-cgroup", action="store_true", help="do not enforce the limit with a cgroup")
    args = ap.parse_args(argv)

    s = scale(args.smoke)
    all_sc = {sc.name: sc for sc in scenarios(s)}
    wanted_sc = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    wanted_c = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in wanted_sc if n not in all_sc] + [
        n for n in wanted_c if n not in {c.key for c in CONTENDERS}
    ]
    if unknown:
        print(f"unknown scenario or contender: {', '.join(unknown)}", file=sys.stderr)
        return 2
    notes: list[str] = []
    contenders = [c for c in CONTENDERS if c.key in wanted_c]
    plain, bytedance = _build(any(c.kind == "bytedance" for c in contenders), notes)
    if bytedance is None:
        contenders = [c for c in contenders if c.kind != "bytedance"]

    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    load = LoadSampler()
    workdir = make_workdir()
    print(f"logs and policies in {workdir}", flush=True)
    results: list[RunResult] = []
    started = time.monotonic()
    for i, name in enumerate(wanted_sc):
        for j, c in enumerate(contenders):
            binary = bytedance if c.kind == "bytedance" and bytedance is not None else plain
            host = f"127.0.0.{40 + i * len(CONTENDERS) + j}"
            print(f"[{time.monotonic() - started:5.0f} s] {name} / {c.label} on {host} ...", flush=True)
            r = run_one(
                all_sc[name], c, s, binary=binary, host=host, use_cgroup=not args.no_cgroup, workdir=workdir
            )
            load.note()
            results.append(r)
            print(
                f"        GC CPU {r.gc_cpu_s if r.gc_cpu_s is not None else float('nan'):.2f} s, "
                f"peak {(r.peak_bytes or 0) / (1 << 20):.0f} MiB, breaches {r.breaches}, exit {r.exit}",
                flush=True,
            )
    desc = {n: all_sc[n].description for n in wanted_sc}
    goals = evaluate_goals(results, s)
    print_tables(results, desc, goals)
    plots = plot(results, wanted_sc, args.out)
    command = "python -m bench.quality " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    report = write_report(
        results,
        goals,
        machine=machine,
        load=load.summary(),
        s=s,
        smoke=args.smoke,
        command=command.strip(),
        scenario_desc=desc,
        out=args.out,
        plots=plots,
        notes=notes,
    )
    print(f"\nreport: {report}\nplots: {', '.join(str(p) for p in plots)}\n{load.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

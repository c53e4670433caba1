"""Tuning quality against the hindsight oracle: every contender and a sweep of static settings on
one scenario, repeated, interleaved, judged with bootstrap intervals. See docs/benchmarks.md.

    .venv/bin/python -m bench.quality --scenario steady     # one part of the full run (~95 min idle)
    .venv/bin/python -m bench.quality --scenario steady --plan   # print the trial order and budget only
    .venv/bin/python -m bench.quality --smoke               # every scenario, seconds per trial: plumbing only
    .venv/bin/python -m bench.quality --scenario foreign --workload-cmd 'prog -addr {host}:{port}' \\
        --load-cmd 'loadgen {host}:{port}'                  # any Go program under any load

Writes bench/results/quality_<scenario>.{md,json,png} (quality_smoke_* for --smoke). A full run
refuses a tree with uncommitted changes to tracked files (--allow-dirty runs it and marks the report).
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS_DIR, LoadSampler, machine_info
from bench.quality.aggregate import ConfigResult, ScenarioResult, aggregate, view
from bench.quality.contenders import CONFIGS, Config, strategy_available
from bench.quality.goals import PRICE_FACTORS, judge, sanity
from bench.quality.phase_oracle import cuts_for, report_lines
from bench.quality.plan import Planned, budget_s, plan
from bench.quality.prices import default_prices
from bench.quality.provenance import Provenance, provenance
from bench.quality.rejudge import RejudgeError, fill_guard_trails, load_records, run_header, with_notes
from bench.quality.scenarios import FULL, SCENARIO_NAMES, SMOKE, Scale, Scenario, foreign_scenario, scenarios
from bench.quality.trial import Programs, TrialRecord, run_trial
from bench.quality.tuner_cost import per_pod_cost
from bench.quality.writeup import Meta, plot_front, print_summary, write_report

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIGS = {"gogc100", "off70", "budget", "cost"}
SMOKE_STEADY_EXTRA = {"gogc400", "formula", "bytedance"}


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--scenario", help=f"comma-separated, of {', '.join(SCENARIO_NAMES)} (full runs: one at a time)"
    )
    ap.add_argument("--smoke", action="store_true", help="seconds-long trials, one repeat, a few settings")
    ap.add_argument("--seed", type=int, help="trial order seed (default: random, printed)")
    ap.add_argument("--configs", help="comma-separated subset of settings (default: all)")
    ap.add_argument("--repeats", type=int, help="override every setting's repeat count (short checks)")
    ap.add_argument(
        "--run-seconds", type=float, help="override the trial length (short checks; not a result)"
    )
    ap.add_argument(
        "--workload-cmd", help="foreign: the Go program; placeholders {host} {port} {peer_port} {dir}"
    )
    ap.add_argument("--load-cmd", help="foreign: the load command; placeholders {host} {port}")
    ap.add_argument(
        "--agent",
        action="store_true",
        help="foreign: the program serves the gc-tuner agent (with its request counter) at {agent_port}",
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-cgroup", action="store_true", help="no memory cgroup (memory then not measured)")
    ap.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run a full scenario from a dirty tree (report marked DIRTY)",
    )
    ap.add_argument("--plan", action="store_true", help="print the trial order and time budget, run nothing")
    ap.add_argument(
        "--rejudge",
        action="store_true",
        help="measure nothing: judge the run in OUT/quality_<scenario>.json again with this code "
        "(after a change to the figures, goals or report) and rewrite its report and chart",
    )
    ap.add_argument(
        "--logs",
        type=Path,
        help="with --rejudge: the run's log directory, for the guard's trail of a run whose JSON "
        "predates it (read from the kept status logs)",
    )
    return ap.parse_args(argv)


def _fail(msg: str) -> int:
    print(f"bench.quality: {msg}", file=sys.stderr)
    return 2


def _etcd_demo(s: Scale) -> Scenario:
    """etcd v3.6.16 under bench/etcdload's put/range load (clientv3). Every setting runs the same
    binary: etcd's own main from the server module and version e2e/cluster/build.py builds, with the
    gc-tuner agent linked in (bench/etcdload/etcdagent), which stays idle unless gc-tuner writes."""
    from e2e.cluster.build import ETCD_VERSION
    from gc_tuner.cli.gobuild import build_go

    module = ROOT / "bench" / "etcdload"
    etcd = build_go(module, "etcdagent", package="./etcdagent", depends_on=("../../agent",))
    load = build_go(module, "etcdload", depends_on=("../../agent",))
    qps = max(20, round(800 * s.sizes))
    wl = (
        f"{etcd} --name bench --data-dir {{dir}} --listen-client-urls http://{{host}}:{{port}} "
        "--advertise-client-urls http://{host}:{port} --listen-peer-urls http://{host}:{peer_port} "
        "--initial-advertise-peer-urls http://{host}:{peer_port} "
        "--initial-cluster bench=http://{host}:{peer_port} --unsafe-no-fsync "
        "--auto-compaction-mode revision --auto-compaction-retention 20000 --log-level error"
    )
    ld = f"{load} -endpoints {{host}}:{{port}} -qps {qps} -keys 20000 -value-bytes 1024 -put-fraction 0.5"
    return foreign_scenario(
        tuple(shlex.split(wl)),
        tuple(shlex.split(ld)),
        f"etcd {ETCD_VERSION} (etcdmain from go.etcd.io/etcd/server/v3 {ETCD_VERSION}, as "
        "e2e/cluster/build.py builds it, with the gc-tuner agent linked in: bench/etcdload/etcdagent; "
        f"every setting runs this binary) under {qps} QPS of 1 KiB puts and 20-key ranges over "
        "20,000 keys from bench/etcdload (clientv3); WAL without fsync, compaction every 20,000 "
        "revisions; gc-tuner reads QPS from grpc_server_handled_total{grpc_type=unary}",
        env=(("GC_TUNER_AGENT_LISTEN", "{host}:{agent_port}"),),
        agent=True,
        tuner_qps=("grpc_server_handled_total", (("grpc_type", "unary"),)),
    )


def _scenario(name: str, s: Scale, args: argparse.Namespace) -> Scenario:
    if name != "foreign":
        return {sc.name: sc for sc in scenarios(s)}[name]
    if args.workload_cmd:
        return foreign_scenario(
            tuple(shlex.split(args.workload_cmd)),
            tuple(shlex.split(args.load_cmd or "")),
            f"`{args.workload_cmd}` under `{args.load_cmd or 'no load command'}`",
            agent=args.agent,
        )
    return _etcd_demo(s)


def _unavailable(c: Config, sc: Scenario, programs: Programs) -> str | None:
    if c.kind == "gc-tuner":
        if sc.foreign and not sc.agent:
            return (
                "gc-tuner local writes GOGC through the gc-tuner agent endpoint, which this program "
                "does not serve (--agent: it serves the agent at {agent_port})"
            )
        return strategy_available(c.strategy or "")
    if c.kind == "bytedance":
        if sc.foreign:
            return "bytedance gctuner is a library linked into the program; this program does not link it"
        if programs.bytedance is None:
            return "the workload's gctuner_bytedance build failed"
    return None


def _configs(sc: Scenario, args: argparse.Namespace) -> list[Config]:
    keys = {k.strip() for k in args.configs.split(",")} if args.configs else None
    out = []
    for c in CONFIGS:
        if keys is not None and c.key not in keys:
            continue
        if (
            args.smoke
            and keys is None
            and c.key not in SMOKE_CONFIGS | (SMOKE_STEADY_EXTRA if sc.name == "steady" else set())
        ):
            continue
        out.append(c)
    return out


def _build(notes: list[str]) -> Programs:
    from gc_tuner.cli.gobuild import GoBuildError, build_go

    module = ROOT / "e2e" / "workload"
    plain = build_go(module, "workload", depends_on=("../../agent",))
    try:
        bd = build_go(module, "workload", depends_on=("../../agent",), tags=("gctuner_bytedance",))
    except GoBuildError as e:
        notes.append(f"bytedance gctuner unavailable: its build failed ({str(e).splitlines()[-1]})")
        bd = None
    return Programs(plain, bd)


def _scale(args: argparse.Namespace) -> Scale:
    import dataclasses

    s = SMOKE if args.smoke else FULL
    if args.run_seconds:
        s = dataclasses.replace(s, run_s=args.run_seconds, warmup_s=min(s.warmup_s, args.run_seconds / 4))
    return s


def _setup_lines(s: Scale, sc: Scenario, per_pod: str, prices: str) -> list[str]:
    return [
        f"each trial {s.run_s:g} s; figures over [{sc.warmup(s):g} s, end]: the warm-up (the "
        "live set being built) is left out",
        f"memory limit {s.limit_bytes >> 20} MiB (a memory cgroup per trial, OOM kills counted "
        "from memory.oom_control)",
        f"bench time scale for every tuner: interval {s.interval_s} s, window {s.window_s} s, "
        f"cooldown {s.cooldown_s} s, "
        f"canary evaluation {s.evaluation_s} s; everything else at each tuner's documented defaults",
        "GC CPU: gctrace's per-cycle CPU (STW + assist + background marking), counted in the "
        "window its cycle ended in; "
        "idle marking shown apart; process cores (utime+stime) over the same window as the cross-check",
        f"gc-tuner's production cost added to its GC CPU: {per_pod}",
        f"memory: cgroup usage sampled at {s.memory_hz:g} Hz (time average and peak over the window)",
        "latency: the load driver's client-side histogram over the window",
        f"prices (diurnal): {prices}",
        "medians with 95 % percentile bootstrap intervals (scipy.stats.bootstrap, 2000 resamples); "
        "'beats' only when intervals do not overlap",
    ]


def _trials(
    sc: Scenario,
    s: Scale,
    args: argparse.Namespace,
    programs: Programs,
    trials: list[Planned],
    results: dict[str, ConfigResult],
    per_pod: float,
    load: LoadSampler,
) -> list[TrialRecord]:
    """Run the trials one at a time, in plan order; each trial's view goes to its setting."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gctuner-quality-{sc.name}-"))
    print(f"   logs in {workdir}", flush=True)
    records: list[TrialRecord] = []
    started = time.monotonic()
    for i, t in enumerate(trials):
        r = run_trial(
            sc,
            t.config,
            s,
            programs=programs,
            host=f"127.0.1.{i % 250 + 1}",
            workdir=workdir,
            use_cgroup=not args.no_cgroup,
            repeat=t.repeat,
            order=i,
        )
        load.note()
        records.append(r)
        v = view(r, t.config, per_pod, s.tuner_lead_s)
        results[t.config.key].trials.append(v)
        gc = v.whole.gc_cores if v.whole.gc_cores is not None else float("nan")
        print(
            f"   [{time.monotonic() - started:6.0f} s] {i + 1}/{len(trials)} {t.config.label} #{t.repeat}: "
            f"GC {gc:.4f} cores, avg {(v.whole.mem_avg_bytes or 0) / (1 << 20):.0f} MiB, {r.exit}, "
            f"load {r.load_1m:.2f}",
            flush=True,
        )
    return records


def _run_scenario(
    sc: Scenario,
    s: Scale,
    args: argparse.Namespace,
    programs: Programs,
    seed: int,
    meta_base: dict[str, object],
) -> int:
    configs = _configs(sc, args)
    results = {c.key: ConfigResult(c, unavailable=_unavailable(c, sc, programs)) for c in configs}
    runnable = [c for c in configs if results[c.key].unavailable is None]
    trials = plan(runnable, seed, 1 if args.smoke else args.repeats)
    budget = budget_s(trials, s)
    print(
        f"== {sc.name}: {len(trials)} trials, seed {seed}, planned {budget / 60:.1f} min on an idle machine"
    )
    for c in configs:
        if results[c.key].unavailable:
            print(f"   {c.label}: UNAVAILABLE: {results[c.key].unavailable}")
    if args.plan:
        for i, t in enumerate(trials):
            print(f"   {i:3d} {t.config.key} #{t.repeat}")
        return 0
    per_pod = per_pod_cost(RESULTS_DIR / "fleet.json")
    load = LoadSampler()
    started = time.monotonic()
    records = _trials(sc, s, args, programs, trials, results, per_pod.cores if per_pod else 0.0, load)
    sr = aggregate(sc.name, sc.description, s.window_s, results, s.limit_bytes)
    prices = default_prices()
    if per_pod is None:
        sr.notes.append(
            "bench/results/fleet.json has no default-setup run: gc-tuner's per-pod cost NOT added"
        )
    price_text = (
        f"{prices.cpu_per_core_hour:g} per core-hour, {prices.memory_per_gib_hour:g} per GiB-hour "
        f"({prices.source})"
    )
    meta = Meta(
        setup=_setup_lines(s, sc, per_pod.source if per_pod else "unknown", price_text),
        wall_s=time.monotonic() - started,
        budget_s=budget,
        load=load.summary(),
        seed=seed,
        **meta_base,  # type: ignore[arg-type]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    _judge_and_write(sc, s, sr, records, meta, args.out)
    return 0


def _judge_and_write(
    sc: Scenario,
    s: Scale,
    sr: ScenarioResult,
    records: list[TrialRecord],
    meta: Meta,
    out: Path,
    header: list[str] | None = None,
) -> None:
    """Judge the aggregated run, print the summary, draw the chart, write the report: the same for a
    run and for a run judged again (`header` given: the run's own, and its readings left alone)."""
    goals, checks = judge(sr, default_prices()), sanity(sr)
    print_summary(sr, goals, checks)
    png = plot_front(sr, out, meta.smoke)
    phases = _phase_lines(sc, s, sr, records)
    if header is not None:
        header = with_notes(header, sr.notes)
    report = write_report(
        sr, goals, checks, records, meta, out, png, header, readings=header is None, phases=phases
    )
    print(f"   report: {report}", flush=True)


def _phase_lines(sc: Scenario, s: Scale, sr: ScenarioResult, records: list[TrialRecord]) -> list[str]:
    """The per-phase oracle for a scenario whose best setting moves (its phases), else nothing."""
    if not sc.phases or not sr.memory_measured:
        return []
    sweep = [k for k, cr in sr.configs.items() if cr.config.sweep and cr.trials]
    statics = {k: [r for r in records if r.config == k] for k in sweep}
    labels = {k: cr.config.label for k, cr in sr.configs.items()}
    cuts = cuts_for([p.at_s for p in sc.phases], sc.warmup(s), s.run_s)
    return report_lines(statics, labels, cuts, default_prices(), PRICE_FACTORS)


def _rejudge(name: str, args: argparse.Namespace, prov: Provenance) -> int:
    """Aggregate, judge and report a finished run's readings with this code."""
    s = _scale(args)
    sc = _scenario(name, s, args)
    stem = args.out / f"quality_{name}"
    try:
        records = load_records(stem.with_suffix(".json"))
        header = run_header(stem.with_suffix(".md"), f"{prov.line()} (`python -m bench.quality --rejudge`)")
        if args.logs is not None:
            n = fill_guard_trails(records, args.logs)
            header.insert(
                -1,
                f"- the guard's trail of {n} trials read from the run's status logs "
                "(times from the tuner's first status, about 3 s before the workload's start)",
            )
    except RejudgeError as e:
        return _fail(str(e))
    per_pod = per_pod_cost(RESULTS_DIR / "fleet.json")
    results = {c.key: ConfigResult(c) for c in _configs(sc, args)}
    for r in sorted(records, key=lambda r: r.order):
        cr = results.get(r.config)
        if cr is None:
            return _fail(f"{stem}.json: setting {r.config!r} is not one this code knows")
        cr.trials.append(view(r, cr.config, per_pod.cores if per_pod else 0.0, s.tuner_lead_s))
    for cr in results.values():
        if not cr.trials:
            cr.unavailable = "not in the run's readings"
    sr = aggregate(sc.name, sc.description, s.window_s, results, s.limit_bytes)
    meta = Meta("", 0, False, prov.line(), prov.clean, {}, "", [], 0.0, 0.0)
    _judge_and_write(sc, s, sr, records, meta, args.out, header)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    names = [
        n.strip()
        for n in (args.scenario or (",".join(SCENARIO_NAMES) if args.smoke else "")).split(",")
        if n.strip()
    ]
    if not names:
        return _fail("name a scenario (--scenario NAME; full runs go one scenario at a time), or use --smoke")
    bad = [n for n in names if n not in SCENARIO_NAMES]
    bad += [
        k for k in (args.configs or "").split(",") if k.strip() and k.strip() not in {c.key for c in CONFIGS}
    ]
    if bad:
        return _fail(f"unknown scenario or setting: {', '.join(bad)}")
    if args.logs is not None and not args.rejudge:
        return _fail("--logs goes with --rejudge")
    if (args.workload_cmd or args.load_cmd or args.agent) and names != ["foreign"]:
        return _fail("--workload-cmd and --load-cmd go with --scenario foreign")
    prov = provenance(ROOT)
    if args.rejudge:
        if len(names) != 1 or args.smoke:
            return _fail("--rejudge takes one --scenario (a full run's readings), not --smoke")
        if not prov.clean and not args.allow_dirty:
            return _fail(f"refusing to judge from a tree that differs from its commit: {prov.line()}")
        return _rejudge(names[0], args, prov)
    shortened = bool(args.run_seconds or args.repeats or args.configs)
    if not args.smoke and not shortened and not prov.clean and not args.allow_dirty and not args.plan:
        return _fail(
            f"refusing a full run from a tree that differs from its commit: {prov.line()} "
            "(commit first, or --allow-dirty)"
        )
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"source: {prov.line()}; trial order seed {seed}", flush=True)
    s = _scale(args)
    notes: list[str] = []
    programs = _build(notes) if not args.plan else Programs(None, Path("plan"))
    command = "python -m bench.quality " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    meta_base: dict[str, object] = {
        "command": command,
        "smoke": args.smoke or shortened,
        "provenance": prov.line()
        + ("; shortened check (--run-seconds/--repeats/--configs): not a result" if shortened else ""),
        "clean": prov.clean,
        "machine": machine_info(),
    }
    for n in notes:
        print(n, flush=True)
    for name in names:
        sc = _scenario(name, s, args)
        code = _run_scenario(sc, s, args, programs, seed, meta_base)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())

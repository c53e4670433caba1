"""bench.quality's judge on crafted numbers: every goal passes on good figures and fails on bad ones,
the oracle front and its interpolation, bootstrap intervals and 'beats', window figures from raw
readings, the trial plan and its time budget, and the provenance check."""

from __future__ import annotations

import dataclasses
import math
import subprocess
from pathlib import Path

import pytest

from bench.quality.aggregate import ConfigResult, ScenarioResult, TrialView, aggregate
from bench.quality.contenders import CONFIGS, by_key, policy_for, strategy_available
from bench.quality.goals import Goal, judge, sanity
from bench.quality.intervals import Estimate, beats, estimate
from bench.quality.oracle import FrontPoint, distance, front, front_cpu_at
from bench.quality.plan import budget_s, plan
from bench.quality.prices import Prices
from bench.quality.provenance import Provenance, provenance
from bench.quality.scenarios import FULL, SCENARIO_NAMES, scenarios
from bench.quality.trial import Cycle, TrialRecord
from bench.quality.windows import Figures, convergence_s, figures, histogram_quantile
from bench.quality.writeup import Meta, plot_front, write_report

MiB = 1 << 20
PRICES = Prices(40.0, 4.0, "test")


def _fig(
    gc: float, mem_mib: float, *, peak_mib: float | None = None, p99: float = 1.0, secs: float = 90
) -> Figures:
    return Figures(20, 20 + secs, gc, 0.0, 0.5, mem_mib * MiB, int((peak_mib or mem_mib) * MiB), 0.5, p99, 10)


def _trial(key: str, gc: float, mem: float, **kw: float | int | None) -> TrialView:
    f = _fig(gc, mem, p99=float(kw.get("p99") or 1.0), secs=float(kw.get("secs") or 90))
    return TrialView(
        config=key,
        repeat=0,
        whole=f,
        after=f,
        converged_s=kw.get("converged", 0.0),  # type: ignore[arg-type]
        tuner_cores=0.0,
        tuner_raw_cores=None,
        oom_kills=int(kw.get("oom") or 0),
        died_at_s=kw.get("died"),  # type: ignore[arg-type]
        leak_flagged_at_s=kw.get("flagged"),  # type: ignore[arg-type]
        load_1m=0.1,
    )


def _scenario(name: str, trials: dict[str, list[TrialView]]) -> ScenarioResult:
    configs = {k: ConfigResult(by_key(k), list(v)) for k, v in trials.items()}
    return aggregate(name, "crafted", 30, configs, 1 << 30)


# A static front: GC CPU halves as memory doubles (the GC cost model's shape).
SWEEP = {
    "gogc50": [_trial("gogc50", 0.40, 100)] * 3,
    "gogc100": [_trial("gogc100", 0.20, 200)] * 3,
    "gogc200": [_trial("gogc200", 0.10, 400)] * 3,
    "gogc400": [_trial("gogc400", 0.05, 800)] * 3,
}


def _goal(goals: list[Goal], tuner: str, words: str) -> Goal:
    (g,) = [g for g in goals if g.tuner == tuner and words in g.text]
    return g


@pytest.mark.parametrize(("excess", "met"), [(0.03, True), (0.08, False)])
def test_steady_front_goal_passes_within_5_percent_and_fails_beyond(excess: float, met: bool) -> None:
    # At 282.8 MiB (the geometric middle of 200 and 400 MiB) the log-log front is 0.1414 cores.
    front_cpu = 0.2 / math.sqrt(2)
    cost = [_trial("cost", front_cpu * (1 + excess), 200 * math.sqrt(2), converged=40)] * 5
    sr = _scenario("steady", {**SWEEP, "cost": cost})
    g = _goal(judge(sr, PRICES), "cost", "oracle front")
    assert g.met is met, g.detail


@pytest.mark.parametrize(("converged", "met"), [(55.0, True), (65.0, False)])
def test_convergence_goal_counts_two_fit_windows(converged: float, met: bool) -> None:
    cost = [_trial("cost", 0.1, 400, converged=converged)] * 5
    sr = _scenario("burst", {**SWEEP, "cost": cost})
    assert _goal(judge(sr, PRICES), "cost", "final value").met is met


def test_a_tuner_left_of_the_front_is_not_judged_as_passing() -> None:
    cost = [_trial("cost", 5.0, 50)] * 5
    g = _goal(judge(_scenario("steady", {**SWEEP, "cost": cost}), PRICES), "cost", "oracle front")
    assert g.met is None and "left of the front" in g.detail


def test_diurnal_cost_goal_is_judged_at_three_price_ratios() -> None:
    # Prices 40 per core-hour, 4 per GiB-hour. The best static setting is GOGC=400 at the default
    # ratio and at CPU ×3, GOGC=200 at CPU ÷3. 0.04 cores at 300 MiB is >= 10 % cheaper at all three;
    # 0.15 cores at 60 MiB saves memory by spending CPU: cheaper only when CPU costs a third.
    good = [_trial("cost", 0.04, 300)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "cost": good}), PRICES)
    assert [g.met for g in goals if "price-weighted" in g.text] == [True, True, True]
    trade = [_trial("cost", 0.15, 60)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "cost": trade}), PRICES)
    assert [g.met for g in goals if "price-weighted" in g.text] == [False, False, True]


def test_diurnal_best_static_is_one_that_lived_the_whole_day_and_costs_are_rates() -> None:
    # GOGC=800 is the cheapest per hour while it lives (0.01 cores, 100 MiB) and far the cheapest in
    # total (killed 30 s in), but no one could run it for the day: the best viable static is GOGC=400
    # at the default ratio (0.05 × 40 + 0.78 × 4 = 5.1 per hour).
    dead = [_trial("gogc800", 0.01, 100, died=30.0, oom=1, secs=20)] * 3
    good = [_trial("cost", 0.04, 300)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "gogc800": dead, "cost": good}), PRICES)
    g = _goal(goals, "cost", "CPU:memory 10.00:1")
    assert g.met is True and "vs GOGC=400" in g.detail and "killed before the end: GOGC=800" in g.detail
    # A tuner trial cut short is not cheaper for it: at GOGC=400's rate over 20 s it saves nothing.
    short = [_trial("cost", 0.05, 800, died=30.0, secs=20)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "cost": short}), PRICES)
    g = _goal(goals, "cost", "CPU:memory 10.00:1")
    assert g.met is False and "0.0 % lower" in g.detail, g.detail


def test_diurnal_fails_on_an_oom_kill_and_on_latency() -> None:
    bad = [_trial("cost", 0.04, 300, oom=1, p99=1.2)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "cost": bad}), PRICES)
    assert _goal(goals, "cost", "OOM").met is False
    assert _goal(goals, "cost", "p99").met is False  # 1.2 ms against GOGC=100's 1.0 ms: +20 %
    fine = [_trial("cost", 0.04, 300, p99=1.04)] * 5
    goals = judge(_scenario("diurnal", {**SWEEP, "cost": fine}), PRICES)
    assert _goal(goals, "cost", "OOM").met is True and _goal(goals, "cost", "p99").met is True


def test_leak_goals() -> None:
    base = {"gogc100": [_trial("gogc100", 0.2, 200, died=40.0, oom=1)] * 3}
    early = [_trial("cost", 0.1, 300, died=30.0, oom=1, flagged=45.0)] * 5
    goals = judge(_scenario("leak", {**base, "cost": early}), PRICES)
    assert _goal(goals, "cost", "OOM-killed earlier").met is False
    assert _goal(goals, "cost", "leak flagged").met is True
    late = [_trial("cost", 0.1, 300, flagged=75.0)] * 4 + [_trial("cost", 0.1, 300)]
    goals = judge(_scenario("leak", {**base, "cost": late}), PRICES)
    assert _goal(goals, "cost", "OOM-killed earlier").met is True
    assert _goal(goals, "cost", "leak flagged").met is False


def test_foreign_front_goal_and_an_unavailable_tuner_is_listed_not_dropped() -> None:
    cost = [_trial("cost", 0.2 * 1.10, 200)] * 5
    configs = {k: ConfigResult(by_key(k), list(v)) for k, v in {**SWEEP, "cost": cost}.items()}
    configs["budget"] = ConfigResult(by_key("budget"), unavailable="no agent in this program")
    goals = judge(aggregate("foreign", "crafted", 30, configs, 1 << 30), PRICES)
    assert _goal(goals, "cost", "oracle front").met is False
    assert _goal(goals, "budget", "all goals").met is None
    assert "no agent" in _goal(goals, "budget", "all goals").detail


def test_leak_sanity_check_fails_when_gogc_off_never_reached_the_limit() -> None:
    sr = _scenario("leak", {"off70": [_trial("off70", 0.0, 600)] * 3})
    (check,) = [g for g in sanity(sr) if "reached the memory limit" in g.text]
    assert check.met is False
    sr = _scenario("leak", {"off70": [_trial("off70", 0.0, 600, oom=1, died=90.0)] * 3})
    assert [g.met for g in sanity(sr) if "reached the memory limit" in g.text] == [True]


def test_cross_check_fails_when_gc_cpu_exceeds_the_process_cpu() -> None:
    ok = _scenario("steady", {"gogc100": [_trial("gogc100", 0.2, 200)] * 3})  # process 0.5 cores
    assert [g.met for g in sanity(ok)] == [True]
    bad = _scenario("steady", {"gogc100": [_trial("gogc100", 0.7, 200)] * 3})
    (g,) = sanity(bad)
    assert g.met is False and "3 of 3" in g.detail


def test_front_keeps_only_undominated_points_and_interpolates_in_log_log() -> None:
    pts = [
        FrontPoint("a", 100, 0.4),
        FrontPoint("b", 200, 0.2),
        FrontPoint("c", 300, 0.3),
        FrontPoint("d", 400, 0.1),
    ]
    fr = front(pts)
    assert [p.key for p in fr] == ["a", "b", "d"]
    assert front_cpu_at(fr, 200 * math.sqrt(2)) == pytest.approx(0.2 / math.sqrt(2))
    assert front_cpu_at(fr, 50) is None
    assert front_cpu_at(fr, 1000) == pytest.approx(0.1)
    d = distance(fr, 400, 0.11)
    assert d.excess == pytest.approx(0.1) and d.where == "above the front"


def test_a_sweep_setting_killed_in_any_trial_is_left_off_the_front() -> None:
    # As in burst: GOGC=400 died before the window in 2 of 3 trials; the third showed no GC in the
    # 1.7 s it lived into the window.
    killed = dataclasses.replace(
        _trial("gogc400", 0.0, 976, oom=1), whole=Figures(20, 20, None, None, None, None, None, None, None, 0)
    )
    short = dataclasses.replace(_trial("gogc400", 0.0, 976, oom=1), whole=_fig(0.0, 976, secs=1.7))
    sr = _scenario("burst", {**SWEEP, "gogc400": [killed, killed, short]})
    assert [p.key for p in sr.front_avg] == ["gogc50", "gogc100", "gogc200"]
    left_off = "GOGC=400 is left off the front: killed before the end in 3 of its 3 trials"
    assert any(left_off in n for n in sr.notes), sr.notes
    # As in diurnal: cheap until the cache grew and killed it in 1 of 3 trials; still no candidate.
    once = _scenario(
        "diurnal", {**SWEEP, "gogc400": [*SWEEP["gogc400"][:2], _trial("gogc400", 0.01, 300, oom=1)]}
    )
    assert "gogc400" not in [p.key for p in once.front_avg]
    # Every trial to the end: on the front.
    assert [p.key for p in _scenario("burst", SWEEP).front_avg][-1] == "gogc400"


def test_estimate_and_beats() -> None:
    e = estimate([1.0, 1.1, 0.9, 1.05, 0.95])
    assert e is not None and e.low <= e.median <= e.high and e.n == 5
    one = estimate([2.0, None])
    assert one == Estimate(2.0, 2.0, 2.0, 1)
    assert beats(Estimate(1, 0.9, 1.1, 5), Estimate(2, 1.8, 2.2, 5))
    assert not beats(Estimate(1, 0.9, 1.9, 5), Estimate(2, 1.8, 2.2, 5))  # overlap: no verdict
    assert not beats(Estimate(2, 1.8, 2.2, 5), Estimate(1, 0.9, 1.1, 5))


def _record(**kw: object) -> TrialRecord:
    r = TrialRecord("steady", "gogc100", 0, 0, 100, 10, 1 << 30, "cgroup", duration_s=100.5)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_window_figures_from_raw_readings() -> None:
    cycles = [Cycle(5.0, 9.0, 0.0, 10, 20), Cycle(30.0, 1.0, 0.5, 10, 20), Cycle(60.0, 2.0, 0.0, 10, 20)]
    memory = [(t / 10, 100 * MiB if t < 500 else 300 * MiB) for t in range(0, 1001)]
    cpu = [(float(t), 0.5 * t) for t in range(0, 101)]
    counts0 = {"0": 5}
    counts1 = {"0": 5, "10": 98, "100": 2}
    latency = [(10.0, {"counts": counts0}), (100.0, {"counts": counts1})]
    r = _record(cycles=cycles, memory=memory, cpu=cpu, latency=latency)
    f = figures(r, 10)
    # The cycle that ended at 5 s (building the live set) is left out of the window.
    assert f.gc_cores == pytest.approx(3.0 / 90) and f.gc_idle_cores == pytest.approx(0.5 / 90)
    assert f.cycles == 2
    assert f.process_cores == pytest.approx(0.5)
    assert f.mem_avg_bytes == pytest.approx((40 * 100 + 50 * 300) / 90 * MiB, rel=0.01)
    assert f.mem_peak_bytes == 300 * MiB
    assert f.p50_ms == pytest.approx(1e-3 * 1.05**10) and f.p99_ms == pytest.approx(1e-3 * 1.05**100)
    r = _record(cycles=cycles, memory=[], memory_source="")
    assert figures(r, 10).mem_avg_bytes is None  # no cgroup: no memory figure, never RSS instead


def test_a_killed_trial_ends_at_its_death() -> None:
    r = _record(cycles=[Cycle(50.0, 1.0, 0.0, 1, 2)], died_at_s=40.0)
    f = figures(r, 10)
    assert f.end_s == 40.0 and f.gc_cores == 0.0


def test_convergence_and_histogram_quantile() -> None:
    assert convergence_s([(0, 100), (10, 100)]) == 0.0
    assert convergence_s([(0, 100), (10, 300), (20, 190), (30, 205), (40, 200)]) == 20
    assert convergence_s([(0, 100), (10, 200)]) == 10
    assert convergence_s([]) is None
    assert histogram_quantile({"0": 1, "2": 1}, 0.99, 1e-6, 2.0) == pytest.approx(4e-3)


def test_plan_interleaves_in_rounds_and_the_full_run_fits_its_budget() -> None:
    configs = [c for c in CONFIGS]
    a, b = plan(configs, seed=7), plan(configs, seed=7)
    assert [(t.config.key, t.repeat) for t in a] == [(t.config.key, t.repeat) for t in b]
    assert [t.config.key for t in plan(configs, seed=8)] != [t.config.key for t in a]
    for c in configs:
        assert [t.repeat for t in a if t.config.key == c.key] == list(range(c.repeats))
    first_round = [t.config.key for t in a[: len(configs)]]
    assert sorted(first_round) == sorted(c.key for c in configs)
    reps = {c.key: c.repeats for c in CONFIGS}
    assert all(reps[k] >= 5 for k in ("cost", "budget", "formula", "gogc100", "off70"))
    assert all(r >= 3 for r in reps.values())
    assert len(a) == 49
    assert budget_s(a, FULL) <= 100 * 60


def test_every_gc_tuner_policy_is_valid_and_sets_only_the_time_scale() -> None:
    from gc_tuner.model.policy import GCPolicySpec

    for c in CONFIGS:
        if c.kind != "gc-tuner":
            continue
        doc = policy_for(c, FULL, 8080)["spec"]
        if strategy_available(c.strategy or "") is None:
            spec = GCPolicySpec.model_validate(doc)
            assert spec.sampling.interval_seconds == 3 and spec.sampling.window_seconds == 30
            assert spec.bounds.max_gogc == GCPolicySpec.model_fields["bounds"].default_factory().max_gogc  # type: ignore[misc]
        assert "budget" not in doc["strategy"] and "bounds" not in doc  # defaults, not squeezed
    assert "not registered" in (strategy_available("NoSuchStrategy") or "")


def test_scenarios_cover_the_issue() -> None:
    names = [sc.name for sc in scenarios(FULL)]
    assert [*names, "foreign"] == list(SCENARIO_NAMES)
    diurnal = next(sc for sc in scenarios(FULL) if sc.name == "diurnal")
    assert [p.label for p in diurnal.phases] == ["QPS up", "cache grows", "QPS down", "cache dropped"]
    burst = next(sc for sc in scenarios(FULL) if sc.name == "burst")
    assert "-session-bytes" in burst.args  # the live set follows QPS
    # steady, burst and leak measure at least three fit windows after the warm-up
    assert FULL.run_s - FULL.warmup_s >= 3 * FULL.window_s


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_provenance_flags_a_dirty_tree_but_not_the_results_it_writes(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("a\n")
    (tmp_path / "bench" / "results" / "quality.md").write_text("a\n")
    _git(tmp_path, "add", "code.py", "bench/results/quality.md")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "y")
    assert provenance(tmp_path).clean
    (tmp_path / "bench" / "results" / "quality.md").write_text("b\n")
    assert provenance(tmp_path).clean
    (tmp_path / "code.py").write_text("b\n")
    p = provenance(tmp_path)
    assert not p.clean and p.dirty_files == ("code.py",) and "DIRTY" in p.line()


def _meta(clean: bool = True) -> Meta:
    return Meta(
        command="python -m bench.quality --scenario steady",
        seed=1,
        smoke=False,
        provenance="commit abc, clean tree" if clean else "commit abc, DIRTY tree (1 changed: x.py)",
        clean=clean,
        machine={"cpu": "test"},
        load="1-min load average min 0.1",
        setup=["crafted"],
        wall_s=60,
        budget_s=60,
    )


def test_report_without_memory_says_so_and_lists_unavailable_settings(tmp_path: Path) -> None:
    t = _trial("gogc100", 0.2, 200)
    no_mem = dataclasses.replace(
        t, whole=dataclasses.replace(t.whole, mem_avg_bytes=None, mem_peak_bytes=None)
    )
    configs = {"gogc100": ConfigResult(by_key("gogc100"), [no_mem] * 3)}
    configs["cost"] = ConfigResult(by_key("cost"), unavailable="strategy Cost is not registered")
    sr = aggregate("steady", "crafted", 30, configs, 1 << 30)
    assert not sr.memory_measured
    text = write_report(sr, judge(sr, PRICES), sanity(sr), [], _meta(), tmp_path, None).read_text()
    assert "memory was NOT measured" in text and "avg memory" not in text
    assert "## Distance to the oracle front" not in text
    assert "| gc-tuner Cost | 0 | unavailable: strategy Cost is not registered |" in text
    assert "commit abc, clean tree" in text and "DIRTY" not in text
    dirty = write_report(sr, [], [], [], _meta(clean=False), tmp_path, None).read_text()
    assert dirty.splitlines()[0].endswith("DIRTY TREE: not a result")


def test_a_full_run_refuses_a_dirty_tree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.quality.__main__ as cli

    monkeypatch.setattr(cli, "provenance", lambda root: Provenance("abc", ("operator/x.py",)))
    monkeypatch.setattr(cli, "_build", lambda notes: pytest.fail("a refused run built something"))
    assert cli.main(["--scenario", "steady"]) == 2
    assert "refusing a full run" in capsys.readouterr().err
    assert cli.main(["--scenario", "nosuch"]) == 2
    assert cli.main([]) == 2


def test_the_chart_draws_the_front_and_every_setting(tmp_path: Path) -> None:
    sr = _scenario("steady", {**SWEEP, "cost": [_trial("cost", 0.12, 300)] * 5})
    png = plot_front(sr, tmp_path, smoke=False)
    assert png is not None and png.name == "quality_steady.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

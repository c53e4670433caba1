"""`gc-tuner recommend --strategy cost` and `gc-tuner analyze --strategy cost`: the Cost model from the
command line, and both commands (and the operator's strategy) agreeing on the same real gctrace log."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gc_tuner.cli.main import main
from gc_tuner.input.gctrace import GCTraceParser, iter_lines
from gc_tuner.logic.cost_fit import fit_cycles
from gc_tuner.model.policy import parse_policy
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.strategies import PodHistory, recommend
from tests.gcdemo_runs import Run

MiB = 1 << 20


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["recommend", "--strategy", "cost", *args])


def as_json(*args: str) -> dict[str, Any]:
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 0, r.output + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_the_hand_computed_example() -> None:
    # 100 × sqrt(0.04 × (1 ms/MiB × 25 MiB/s = 0.025 cores) / (0.004 × 1 GiB)) = 50
    doc = as_json("--alloc-rate", "25", "--mark-cost", "1", "--live", "1Gi")
    assert doc["gogc"] == 50 and doc["uncapped_gogc"] == pytest.approx(50.0)
    assert doc["predicted_gc_cpu_cores"] == pytest.approx(0.05)
    assert doc["predicted_monthly_saving"] == pytest.approx(0.73)


def test_prices_bounds_and_the_budget_cap() -> None:
    # Memory ten times dearer: GOGC* / sqrt(10).
    dear = as_json("--alloc-rate", "25", "--mark-cost", "1", "--live", "1Gi", "--memory-price", "0.04")
    assert dear["uncapped_gogc"] == pytest.approx(50 / 10**0.5) and dear["gogc"] == 25  # the floor
    # GOGC* 160 on a 100 MiB heap; 90% of a 200Mi limit is 180 MiB: (180 − 100 − 16) / 100 = 64.
    capped = as_json(
        "--alloc-rate",
        "25",
        "--mark-cost",
        "1",
        "--live",
        "100Mi",
        "--memory-limit",
        "200Mi",
        "--max-gogc",
        "1000",
    )
    assert capped["uncapped_gogc"] == pytest.approx(160.0)
    assert capped["gogc"] == 64 and capped["budget_cap_gogc"] == pytest.approx(64.0)
    assert capped["clamps"] == ["budget"] and capped["predicted_monthly_saving"] < 0


def test_a_stated_error_damps_the_step() -> None:
    doc = as_json(
        "--alloc-rate",
        "25",
        "--alloc-rate-se",
        "10",
        "--mark-cost",
        "1",
        "--live",
        "1Gi",
        "--current-gogc",
        "100",
    )
    assert doc["fit_relative_error"] == pytest.approx(0.2) and doc["gogc"] == 75


def test_table_output() -> None:
    r = invoke("--alloc-rate", "25", "--mark-cost", "1", "--live", "1Gi")
    assert r.exit_code == 0, r.output
    assert "GOGC          50" in r.output and "+0.73 USD/month against GOGC=100" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mark-cost", "1", "--live", "1Gi"], "Missing option '--alloc-rate'"),
        (["--alloc-rate", "1", "--live", "1Gi"], "Missing option '--mark-cost'"),
        (["--alloc-rate", "1", "--mark-cost", "1"], "Missing option '--live'"),
        (["--alloc-rate", "-1", "--mark-cost", "1", "--live", "1Gi"], "must be >= 0"),
        (["--alloc-rate", "nan", "--mark-cost", "1", "--live", "1Gi"], "finite"),
        (["--alloc-rate", "1", "--mark-cost", "1", "--live", "1Gi", "--cpu-price", "-0.04"], "must be > 0"),
        (["--alloc-rate", "1", "--mark-cost", "1", "--live", "1Gi", "--memory-price", "0"], "must be > 0"),
        (["--alloc-rate", "1", "--mark-cost", "1", "--live", "lots"], "--live"),
        (["--alloc-rate", "1e300", "--mark-cost", "1e300", "--live", "1Gi"], "not a finite number"),
    ],
)
def test_bad_input_exits_2_naming_it(args: list[str], message: str) -> None:
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output + r.stderr
    assert "Traceback" not in r.output + r.stderr


def test_analyze_recommend_and_the_strategy_agree_on_one_real_log(gcdemo: dict[str, Run]) -> None:
    run = gcdemo["default"]
    # --gogc: what the run had. The strategy's pod reports no GOGC, so it starts from Go's 100 too.
    args = ["analyze", str(run.trace), "--strategy", "cost", "--max-gogc", "1000", "--gogc", "100"]
    r = CliRunner().invoke(main, [*args, "--format", "json"])
    assert r.exit_code == 0, r.output + r.stderr
    cost = json.loads(r.stdout)["cost"]
    assert cost["cycles"] >= 10
    # The same answer offline, from the figures analyze printed (the command it suggests).
    argv = shlex.split(cost["recommend"])[1:]
    offline = CliRunner().invoke(main, [*argv, "--format", "json"])
    assert offline.exit_code == 0, offline.output
    doc = json.loads(offline.stdout)
    same = (
        "gogc",
        "uncapped_gogc",
        "fit_relative_error",
        "predicted_gc_cpu_cores",
        "predicted_monthly_saving",
    )
    assert {k: doc[k] for k in same} == {k: cost[k] for k in same}
    # And the operator's strategy on a pod whose only source is that gctrace.
    cycles = list(GCTraceParser().parse(iter_lines(run.trace.open("rb"))))
    fit = fit_cycles(cycles)
    assert cost["alloc_mib_per_s"] == fit.alloc.value and cost["mark_ms_per_mib"] == fit.mark.value
    spec = parse_policy(
        {
            "targetRef": {"name": "web"},
            "sampling": {"sources": {"gctrace": {}}},
            "qps": {"promql": {"url": "http://prom:9090", "query": "q"}},
            "strategy": {"type": "Cost"},
            "bounds": {"minGOGC": 25, "maxGOGC": 1000},
        }
    )
    pod = PodFit(pod="p", qps=0.0, heap_slope_mb_per_s=0.0, r2=None, samples=0)
    rec = recommend(spec, 0.0, 0.0, pod_fits=[pod], histories={"p": PodHistory(cycles=tuple(cycles))})
    assert cost["current_gogc"] == 100
    assert rec.gogc == cost["gogc"]
    assert rec.inputs["uncappedGOGC"] == round(cost["uncapped_gogc"], 2)


def test_analyze_without_enough_cycles_exits_2(tmp_path: Any) -> None:
    log = tmp_path / "short.log"
    log.write_text(
        "gc 1 @0.010s 1%: 0.01+1.0+0.01 ms clock, 0.02+0.1/0.5/0+0.02 ms cpu, 4->4->2 MB, 5 MB goal, "
        "0 MB stacks, 0 MB globals, 2 P\n"
    )
    r = CliRunner().invoke(main, ["analyze", str(log), "--strategy", "cost"])
    assert r.exit_code == 2 and "--strategy cost: 1 GC cycle(s) to fit the mark cost c" in r.output + r.stderr

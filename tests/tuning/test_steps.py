"""The loop's pure steps: strategy and GOMEMLIMIT, the decide step, discovery, merging, fits, state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gc_tuner.logic.formula import formula_gogc
from gc_tuner.loop.gather import merge_samples
from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.model.sample import GCCycle, MiB, RuntimeSample
from gc_tuner.tuning.decide import decide_change, same_limit
from gc_tuner.tuning.discovery import (
    OwnerRef,
    ReplicaSetInfo,
    SelectorError,
    matches_selector,
    pod_info,
    targets_for,
    workload_info,
)
from gc_tuner.tuning.fitting import fit_deployment, fit_pod, leak_verdict
from gc_tuner.tuning.records import PodFit, rfc3339
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import MemoryLimitTarget, desired_memory_limit, formula_params, recommend

T0 = 1_700_000_000.0


def spec(**over: Any) -> GCPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "sampling": {"intervalSeconds": 5, "windowSeconds": 60, "sources": {"agent": {"port": 8080}}},
        "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
    }
    doc.update(over)
    return parse_policy(doc)


# -- strategy --------------------------------------------------------------------------------------


def test_milli_units_become_the_formula_constants_and_bounds_its_clamp() -> None:
    s = spec(
        strategy={"formula": {"slopeCoefficientMilli": 400, "qpsPivotMilli": 1_000_500, "baseGOGC": 150}},
        bounds={"minGOGC": 40, "maxGOGC": 300},
    )
    p = formula_params(s)
    assert (p.slope_coefficient, p.qps_pivot, p.base_gogc, p.gogc_min, p.gogc_max) == (
        0.4,
        1000.5,
        150.0,
        40,
        300,
    )
    r = recommend(s, 200.0, 0.8)
    assert r.gogc == formula_gogc(200.0, 0.8, p).gogc
    assert r.inputs["qps"] == 200.0 and r.inputs["heapSlopeMBPerSec"] == 0.8 and r.strategy == "Formula"


@pytest.mark.parametrize(("qps", "slope", "gogc"), [(200, 0.8, 99), (1800, 3.2, 30), (0, 12.5, 37)])
def test_the_articles_rows_through_the_policy_defaults(qps: float, slope: float, gogc: int) -> None:
    assert recommend(spec(), qps, slope).gogc == gogc


def test_memory_limit_modes_render_only_go_syntax() -> None:
    assert desired_memory_limit(spec(), "1Gi") == MemoryLimitTarget(None, None, "memoryLimit.mode is Off")
    fixed = desired_memory_limit(spec(memoryLimit={"mode": "Fixed", "fixed": "1.5Gi"}), None)
    assert (fixed.bytes, fixed.rendered) == (1536 * MiB, "1536MiB")
    from_limit = spec(memoryLimit={"mode": "FromContainerLimit", "percent": 90})
    assert desired_memory_limit(from_limit, "256Mi").rendered == "230MiB"
    assert desired_memory_limit(from_limit, "1G").rendered == "858MiB"  # decimal G: 1e9 bytes
    none = desired_memory_limit(from_limit, None)
    assert none.rendered is None and "no memory limit" in none.note


# -- decide ----------------------------------------------------------------------------------------

OFF = MemoryLimitTarget(None, None, "off")
LIMIT = MemoryLimitTarget(230 * MiB, "230MiB", "90% of 256Mi")


def test_decide_applies_holds_within_hysteresis_and_in_cooldown() -> None:
    s = spec(rollout={"cooldownSeconds": 300, "minGOGCChange": 10})
    first = decide_change(s, 70, current=100, current_mem=None, mem=OFF, last_change_at=None, now=T0)
    assert (first.action, first.gogc, first.code) == ("apply", 70, "Applied")
    small = decide_change(s, 95, current=100, current_mem=None, mem=OFF, last_change_at=None, now=T0)
    assert (small.action, small.code) == ("hold", "WithinHysteresis")
    cool = decide_change(s, 140, current=70, current_mem=None, mem=OFF, last_change_at=T0, now=T0 + 60)
    assert (cool.action, cool.gogc, cool.code) == ("hold", 70, "CoolingDown")
    later = decide_change(s, 140, current=70, current_mem=None, mem=OFF, last_change_at=T0, now=T0 + 301)
    assert later.action == "apply"


def test_a_leak_hold_skips_the_cooldown_only_downwards() -> None:
    s = spec(rollout={"cooldownSeconds": 300, "minGOGCChange": 10})
    kw: dict[str, Any] = {"current_mem": None, "mem": OFF, "last_change_at": T0, "now": T0 + 60}
    hold = decide_change(s, 25, current=180, leak_hold=True, **kw)
    assert (hold.action, hold.gogc, hold.code) == ("apply", 25, "LeakHold")
    assert "leak is suspected" in hold.reason
    assert decide_change(s, 25, current=180, **kw).code == "CoolingDown"  # no leak: the cooldown stands
    up = decide_change(s, 180, current=25, leak_hold=True, **kw)
    assert (up.action, up.code) == ("hold", "CoolingDown")  # never a raise inside the cooldown


def test_a_leak_hold_outside_the_cooldown_is_marked_for_the_guard() -> None:
    s = spec(rollout={"cooldownSeconds": 300, "minGOGCChange": 10})
    kw: dict[str, Any] = {"current_mem": None, "mem": OFF, "last_change_at": None, "now": T0}
    hold = decide_change(s, 25, current=180, leak_hold=True, **kw)
    assert (hold.action, hold.gogc, hold.code) == ("apply", 25, "LeakHold")
    assert decide_change(s, 25, current=180, **kw).code == "Applied"  # no leak: an ordinary change
    near = decide_change(s, 25, current=30, leak_hold=True, **kw)
    assert (near.action, near.code) == ("hold", "WithinHysteresis")  # hysteresis still holds


def test_decide_never_leaves_the_bounds() -> None:
    s = spec(bounds={"minGOGC": 50, "maxGOGC": 150})
    d = decide_change(s, 30, current=100, current_mem=None, mem=OFF, last_change_at=None, now=T0)
    assert (d.action, d.gogc) == ("apply", 50)
    out = decide_change(s, 100, current=400, current_mem=None, mem=OFF, last_change_at=T0, now=T0 + 1)
    assert (out.action, out.gogc, out.code) == ("apply", 100, "OutOfBounds")


def test_a_changed_memory_limit_applies_despite_hysteresis_but_waits_for_the_cooldown() -> None:
    s = spec(rollout={"cooldownSeconds": 300})
    d = decide_change(s, 100, current=100, current_mem="460MiB", mem=LIMIT, last_change_at=None, now=T0)
    assert (d.action, d.gogc, d.code) == ("apply", 100, "MemoryLimitChanged")
    assert "460MiB -> 230MiB" in d.reason
    held = decide_change(s, 100, current=100, current_mem="460MiB", mem=LIMIT, last_change_at=T0, now=T0 + 10)
    assert (held.action, held.code) == ("hold", "CoolingDown")
    same = decide_change(
        s, 100, current=100, current_mem="241172480B", mem=LIMIT, last_change_at=None, now=T0
    )
    assert same.code == "AtTarget"  # 241172480 B is 230 MiB: the same limit, written differently
    assert same_limit("1GiB", "1024MiB") and not same_limit("1GiB", None) and not same_limit("1GiB", "1GB")


# -- discovery -------------------------------------------------------------------------------------


def test_label_selector_semantics() -> None:
    labels = {"app": "web", "tier": "front"}
    assert matches_selector({"matchLabels": {"app": "web"}}, labels)
    assert not matches_selector({"matchLabels": {"app": "api"}}, labels)
    assert not matches_selector({}, labels)  # an empty selector matches nothing here, not everything
    exprs = [
        {"key": "tier", "operator": "In", "values": ["front", "edge"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ]
    assert matches_selector({"matchExpressions": exprs}, labels)
    assert not matches_selector(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )
    assert matches_selector({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    with pytest.raises(SelectorError, match="Near"):
        matches_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]}, labels)


def pod(
    name: str,
    *,
    ip: str | None = "127.0.1.2",
    ready: bool = True,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    replicaset: str = "web-abc",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": labels or {"app": "web"}}
    meta["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": replicaset, "uid": f"uid-{replicaset}", "controller": True}
    ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"memory": "512Mi"}}}, {"name": "side"}]
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "app", "restartCount": 2}],
        },
    }


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": 3, "annotations": {}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "GOGC", "value": "80"},
                                {"name": "GOMEMLIMIT", "valueFrom": {"configMapKeyRef": {}}},
                            ],
                            "resources": {"limits": {"memory": "512Mi"}},
                        }
                    ]
                }
            },
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            **status,
        },
    }


def test_targets_are_the_running_matching_pods_with_their_container_facts() -> None:
    w = workload_info(deployment(), "app")
    assert (w.env, w.env_value_from, w.memory_limit, w.rollout_complete) == (
        {"GOGC": "80"},
        ("GOMEMLIMIT",),
        "512Mi",
        True,
    )
    assert not workload_info(deployment(updatedReplicas=1), "app").rollout_complete
    pods = [
        pod("b"),
        pod("a", ready=False),
        pod("gone", deleting=True),
        pod("pending", phase="Pending"),
        pod("noip", ip=None),
        pod("other", labels={"app": "api"}, replicaset="api-abc"),
    ]
    web = OwnerRef("Deployment", "web", "")
    rs = {"uid-web-abc": ReplicaSetInfo("web-abc", "uid-web-abc", web)}
    ts = targets_for([pod_info(p) for p in pods], w, rs)
    assert [(t.name, t.ready, t.restart_count, t.memory_limit) for t in ts] == [
        ("a", False, 2, "512Mi"),
        ("b", True, 2, "512Mi"),
    ]


# -- merging and fits ------------------------------------------------------------------------------


def test_merge_prefers_agent_then_prometheus_then_expvar_per_field() -> None:
    agent = RuntimeSample(t=1, source="agent", live_heap_bytes=10 * MiB, gogc=80)
    prom = RuntimeSample(
        t=1, source="prometheus", live_heap_bytes=11 * MiB, requests_total=500, pause_p99_s=0.001
    )
    exp = RuntimeSample(
        t=1,
        source="expvar",
        live_heap_bytes=12 * MiB,
        live_heap_estimated=True,
        new_pauses_s=(0.002,),
        gc_cpu_fraction=0.01,
    )
    m = merge_samples([exp, prom, agent])
    assert (m.source, m.live_heap_bytes, m.live_heap_estimated, m.gogc) == ("agent", 10 * MiB, False, 80)
    assert (m.requests_total, m.pause_p99_s, m.gc_cpu_fraction, m.new_pauses_s) == (
        500,
        0.001,
        0.01,
        (0.002,),
    )
    only_exp = merge_samples([prom.__class__(t=1, source="prometheus"), exp])
    assert only_exp.live_heap_bytes == 12 * MiB and only_exp.live_heap_estimated


def test_pod_fit_from_samples_then_the_deployment_median() -> None:
    s = spec()
    state = PolicyState(60.0)
    ps = state.pod("a", now=T0)
    for i in range(6):  # 100 QPS, +0.5 MiB/s, every 5 s
        ps.window.add(
            RuntimeSample(
                t=T0 + 5 * i,
                source="agent",
                live_heap_bytes=int((20 + 2.5 * i) * MiB),
                requests_total=500.0 * i,
            )
        )
    f = fit_pod("a", ps, s)
    assert (
        f.qps == pytest.approx(100.0)
        and f.heap_slope_mb_per_s == pytest.approx(0.5)
        and f.r2 == pytest.approx(1)
    )
    fits = [
        f,
        PodFit("b", 300.0, 1.5, 0.9, 6),
        PodFit("c", 200.0, 1.0, 0.5, 6),
        PodFit("d", None, None, None, 1, "x"),
    ]
    d = fit_deployment(fits, s)
    assert (d.qps, d.heap_slope_mb_per_s, d.pods, d.qps_source) == (200.0, 1.0, 3, "Counter")
    # Median slope 1.0 MB/s with median r² 0.9: above leakDetection's 0.1 MB/s at r² 0.8.
    assert (leak_verdict(d, s).status, leak_verdict(d, s).reason) == ("True", "HeapGrowing")
    stable = fit_deployment([PodFit("a", 100.0, 0.02, 0.95, 6)], s)
    assert (leak_verdict(stable, s).status, leak_verdict(stable, s).reason) == ("False", "HeapStable")
    noisy = fit_deployment([PodFit("a", 100.0, 2.0, 0.3, 6)], s)
    assert leak_verdict(noisy, s).status == "False"  # growing, but not a trend the fit believes


def test_too_little_data_is_a_reason_not_a_number() -> None:
    s = spec()
    ps = PolicyState(60.0).pod("a", now=T0)
    ps.window.add(RuntimeSample(t=T0, source="agent", live_heap_bytes=MiB, requests_total=1))
    f = fit_pod("a", ps, s)
    assert f.qps is None and f.heap_slope_mb_per_s is None and "1 sample so far" in f.note
    d = fit_deployment([f], s)
    assert not d.complete and d.insufficient and "a:" in d.insufficient
    assert leak_verdict(d, s).status == "Unknown"


def test_heap_slope_falls_back_to_the_gctrace_window() -> None:
    s = spec()
    ps = PolicyState(60.0).pod("a", now=T0)
    for i in range(6):
        ps.window.add(RuntimeSample(t=T0 + 5 * i, source="prometheus", requests_total=100.0 * i))
        ps.trace.add(
            GCCycle(
                i + 1,
                5.0 * i,
                1,
                0.1,
                1,
                0.1,
                0.1,
                0,
                1,
                0,
                0.1,
                30 + 2 * i,
                31 + 2 * i,
                20 + 2 * i,
                40 + 2 * i,
                1,
                1,
                2,
                False,
            )
        )
    f = fit_pod("a", ps, s)
    assert f.heap_slope_mb_per_s == pytest.approx(0.4) and f.qps == pytest.approx(20.0)


# -- state -----------------------------------------------------------------------------------------


def test_restore_takes_the_newest_of_status_and_the_deployment_annotation() -> None:
    st = PolicyState(60.0)
    status = {"applied": {"gogc": 70, "method": "EnvPatch", "time": rfc3339(T0), "pods": 2}}
    note = json.dumps({"gogc": 65, "gomemlimit": "230MiB", "time": rfc3339(T0 + 30)})
    st.restore(status, {"gctuner.io/applied": note})
    assert st.applied is not None and (st.applied.gogc, st.applied.gomemlimit) == (65, "230MiB")
    assert st.last_change_at == T0 + 30
    st2 = PolicyState(60.0)
    st2.restore(status, {"gctuner.io/applied": "{garbage"})
    assert st2.applied is not None and st2.applied.gogc == 70 and st2.last_change_at == T0
    st3 = PolicyState(60.0)
    st3.restore({}, None)
    assert st3.applied is None and st3.last_change_at is None


def test_a_restarted_container_restarts_its_trace_numbering_and_resize_keeps_samples() -> None:
    st = PolicyState(60.0)
    ps = st.pod("a", now=T0, restart_count=0)
    ps.last_gc_n = 40
    ps.window.add(RuntimeSample(t=T0, source="agent"))
    ps.window.add(RuntimeSample(t=T0 + 50, source="agent"))
    again = st.pod("a", now=T0 + 1, restart_count=1)
    assert again.last_gc_n == 0 and len(again.window) == 2
    st.resize(20.0)
    assert len(st.pods["a"].window) == 1  # only the sample within 20 s of the newest
    st.prune(["b"])
    assert st.pods == {}


async def test_a_missing_target_is_one_warning_event_and_degraded() -> None:
    import httpx

    from gc_tuner.loop.cycle import CycleInputs, run_cycle
    from gc_tuner.loop.ports import CycleIO
    from gc_tuner.tuning.conditions import build_status
    from gc_tuner.tuning.records import Verdict

    missing = Verdict("True", "TargetNotFound", "Deployment ns/web not found")
    state = PolicyState(60.0)
    async with httpx.AsyncClient() as http:
        io = CycleIO(http=http, clock=lambda: T0)
        inputs = CycleInputs(pods=[], owner="gc-tuner/ns/web", target_error=missing)
        first = await run_cycle(spec(), state, inputs, io)
        second = await run_cycle(spec(), state, inputs, io)
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "TargetNotFound")]
    assert second.events == []
    conds = {c["type"]: c for c in build_status(second, None, generation=1)["conditions"]}
    assert conds["Degraded"]["reason"] == "TargetNotFound" and conds["Sampling"]["status"] == "False"

"""Faults around the operator, each checked on real state (the processes' own GOGC and GOMEMLIMIT,
the GCPolicy status, the Deployment, its ReplicaSets, the Events):

1. the operator SIGKILLed for good: Endpoint values lapse with their lease, read from each process;
2. kube-apiserver restarted mid-cooldown (and then the operator itself): status resumes, no second
   rollout;
3. another writer fighting over the GCPolicy status for 20 s: the operator's status comes back whole,
   another writer's own condition is kept;
4. etcd frozen (SIGSTOP) for 10 s: status resumes after it, no second rollout. (The apiserver holds
   the operator's status write until etcd is back rather than failing it: the cycle waits meanwhile.)

The control-plane faults use e2e/cluster/control_plane.py's restart_apiserver and pause_etcd on the
session's cluster, which every later test shares: each restores the cluster before it returns.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.control_plane import pause_etcd, restart_apiserver
from e2e.cluster.harness import Cluster
from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    get_policy,
    token_secret,
    wait_ready,
)
from e2e.test_operator_endpoint import endpoint_deployment, endpoint_policy
from e2e.test_operator_envpatch import env_of
from gc_tuner.tuning.conditions import CONDITION_TYPES
from gc_tuner.tuning.records import parse_rfc3339

pytestmark = pytest.mark.e2e

INTERVAL = 2
LEASE = 8
MARGIN = 3.0  # polling, a busy 2-core machine, the agent's timer
COOLDOWN = 600
LIMIT = "256Mi"
EXPECTED_LIMIT = 230 << 20  # memoryLimit FromContainerLimit 90% of 256 MiB, rounded down to a MiB


# ---------------------------------------------------------------------------------------------------
# helpers


def own_settings(ip: str) -> tuple[int, int]:
    """(GOGC, GOMEMLIMIT bytes) as the process reads them itself: runtime/metrics through its agent."""
    m = agent_get(ip)["metrics"]
    return int(m["/gc/gogc:percent"]), int(m["/gc/gomemlimit:bytes"])


def _time(section: dict[str, Any] | None) -> float:
    return parse_rfc3339((section or {}).get("time", "")) or 0.0


def fresh_status(kube: Any, namespace: str, since: float) -> dict[str, Any] | None:
    """The policy once a cycle that started after `since` has written its status (the decision and
    the recommendation carry the cycle's time, to the second)."""
    o = get_policy(kube, namespace, "web")
    s = o.get("status") or {}
    fresh = _time(s.get("decision")) > since and _time(s.get("recommendation")) > since
    return o if fresh else None


def limited(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": LIMIT}}
    return dep


def envpatch_spec() -> dict[str, Any]:
    return {
        "targetRef": {"name": "web", "container": "workload"},
        "mode": "Enforce",
        # minGOGCChange 1: any new fit would patch again, unless the operator still knows that it
        # changed the Deployment less than a cooldown ago.
        "rollout": {"method": "EnvPatch", "cooldownSeconds": COOLDOWN, "minGOGCChange": 1},
        "guard": {"enabled": False},  # faults of the patch itself; the canary is tested on its own
        "sampling": {"intervalSeconds": INTERVAL, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": 8080}},
        "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
    }


@dataclass(frozen=True)
class RolledOut:
    """The Deployment right after gc-tuner's one rollout."""

    generation: int
    env: dict[str, Any]
    replicasets: frozenset[str]


def replicasets(apps: client.AppsV1Api, namespace: str) -> frozenset[str]:
    items = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    return frozenset(rs.metadata.name for rs in items)


def env_patched_events(core: client.CoreV1Api, namespace: str) -> int:
    events = core.list_namespaced_event(namespace, field_selector="reason=EnvPatched").items
    return sum(e.count or 1 for e in events)


def envpatch_rolled_out(
    kube: Any, namespace: str, make_operator: Callable[..., OperatorProc]
) -> tuple[OperatorProc, RolledOut]:
    """An EnvPatch policy whose one rollout is complete (status.applied set), now in its cooldown."""
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(
        namespace, limited(workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": "1200"}))
    )
    wait_ready(kube, namespace, "web", 2)
    op = make_operator()
    create_policy(kube, namespace, "web", envpatch_spec())

    def patched() -> Any:
        d = apps.read_namespaced_deployment("web", namespace)
        return d if "GOGC" in env_of(d) else None

    generation = wait_for(patched, 90, "the env patch").metadata.generation

    def rolled_out() -> Any:
        d = apps.read_namespaced_deployment("web", namespace)
        s = d.status
        done = (s.observed_generation or 0) >= generation and s.updated_replicas == s.replicas == 2
        return d if done and s.available_replicas == 2 else None

    d = wait_for(rolled_out, 120, "the rollout")
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (condition(o, "Ready") or {}).get("status") == "True"
            and o
        ),
        90,
        "Ready=True after the rollout (the new pods' windows refilled)",
    )
    env = env_of(d)
    applied = pol["status"]["applied"]
    assert applied["method"] == "EnvPatch" and str(applied["gogc"]) == env["GOGC"]
    assert applied["gomemlimit"] == env["GOMEMLIMIT"] == "230MiB"
    for p in wait_ready(kube, namespace, "web", 2):
        assert own_settings(p.status.pod_ip) == (applied["gogc"], EXPECTED_LIMIT)
    rs = replicasets(apps, namespace)
    assert len(rs) == 2, rs
    return op, RolledOut(generation, env, rs)


def assert_no_second_rollout(kube: Any, namespace: str, r: RolledOut) -> dict[str, Any]:
    """No change to the pod template since the one rollout, and the policy holds: returns the policy."""
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.metadata.generation == r.generation, "the Deployment was rolled out a second time"
    assert env_of(d) == r.env
    assert replicasets(apps, namespace) == r.replicasets
    assert env_patched_events(core, namespace) == 1
    pol = get_policy(kube, namespace, "web")
    s = pol["status"]
    assert s["applied"]["method"] == "EnvPatch" and str(s["applied"]["gogc"]) == r.env["GOGC"]
    assert s["decision"]["action"] == "Hold", s["decision"]
    assert s["decision"]["code"] in ("CoolingDown", "AtTarget"), s["decision"]
    return pol


def assert_conditions_whole(pol: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """Every condition type exactly once, the right generation, and Ready=True."""
    conds = pol["status"]["conditions"]
    types = [c["type"] for c in conds]
    assert sorted(types) == sorted((*CONDITION_TYPES, *extra)), types
    gen = pol["metadata"]["generation"]
    assert pol["status"]["observedGeneration"] == gen
    assert all(c.get("observedGeneration") == gen for c in conds if c["type"] in CONDITION_TYPES), conds
    ready = condition(pol, "Ready") or {}
    assert (ready.get("status"), ready.get("reason")) == ("True", "Ready"), ready


# ---------------------------------------------------------------------------------------------------
# 1. the operator gone for good


def test_operator_sigkilled_for_good_every_process_reverts_within_the_lease(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    secret = token_secret(kube, namespace)
    apps.create_namespaced_deployment(
        namespace, limited(endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret))
    )
    ips = [p.status.pod_ip for p in wait_ready(kube, namespace, "web", 2)]
    startup = {ip: own_settings(ip) for ip in ips}
    for ip, values in startup.items():
        s = agent_get(ip)["startup"]
        assert values == (s["gogc"], s["memoryLimitBytes"]), (values, s)

    spec = endpoint_policy(secret, memoryLimit={"mode": "FromContainerLimit", "percent": 90})
    create_policy(kube, namespace, "web", spec)
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (condition(o, "Applied") or {}).get("status") == "True"
            and o["status"]["applied"]["pods"] == 2
            and o
        ),
        90,
        "Applied=True on both pods",
    )
    tuned = (pol["status"]["applied"]["gogc"], EXPECTED_LIMIT)
    assert pol["status"]["applied"]["gomemlimit"] == "230MiB"
    assert all(tuned != startup[ip] for ip in ips)
    wait_for(lambda: all(own_settings(ip) == tuned for ip in ips), 3 * INTERVAL, "both pods tuned")
    time.sleep(INTERVAL)  # a renewal or two: the kill lands at an arbitrary point of the lease

    t0 = time.monotonic()
    operator.kill()  # SIGKILL: no finalizer, no release, nobody renews the leases any more
    at_kill = {ip: own_settings(ip) for ip in ips}
    assert all(v == tuned for v in at_kill.values()), f"reverted before the lease could lapse: {at_kill}"

    bound = LEASE + INTERVAL + MARGIN
    reverted: dict[str, float] = {}
    while len(reverted) < len(ips) and time.monotonic() - t0 < bound + 10:
        for ip in ips:
            if ip not in reverted and own_settings(ip) == startup[ip]:
                reverted[ip] = time.monotonic() - t0
        time.sleep(0.05)
    took = max(reverted.values(), default=float("inf"))
    print(
        f"\n[faults] operator SIGKILLed: startup GOGC/GOMEMLIMIT back on every pod after {took:.2f} s "
        f"(per pod {sorted(round(v, 2) for v in reverted.values())}; lease {LEASE} s, interval {INTERVAL} s)"
    )
    assert len(reverted) == len(ips), (
        f"not reverted after {bound + 10:.0f} s: {sorted(set(ips) - set(reverted))}"
    )
    assert took <= bound, f"reverted after {took:.1f} s; the lease is {LEASE} s"
    for ip in ips:
        state = agent_get(ip)
        assert state["lease"] is None, state["lease"]
        assert (state["gogc"], state["memoryLimitBytes"]) == startup[ip]
    time.sleep(INTERVAL)  # and it stays so: nothing writes to the agents any more
    assert {ip: own_settings(ip) for ip in ips} == startup


# ---------------------------------------------------------------------------------------------------
# 2. kube-apiserver restarted mid-cooldown, then the operator itself


def test_apiserver_restart_then_operator_restart_in_cooldown_roll_out_once(
    namespace: str, kube: Any, cluster: Cluster, make_operator: Callable[..., OperatorProc]
) -> None:
    op, rolled = envpatch_rolled_out(kube, namespace, make_operator)
    before = get_policy(kube, namespace, "web")

    down = restart_apiserver(cluster.cp, down_s=2.0)
    back = time.time()
    print(f"\n[faults] kube-apiserver down for {down:.1f} s (stop, 2 s, start, /readyz)")
    assert op.proc is not None and op.proc.poll() is None, f"the operator exited:\n{op.log_tail()}"
    t = time.monotonic()
    pol = wait_for(lambda: fresh_status(kube, namespace, back), 60, "status written after the restart")
    failed = op.log_tail(400).count("writing status")
    print(
        f"[faults] status written again {time.monotonic() - t:.1f} s after /readyz; {failed} failed meanwhile"
    )
    assert failed >= 1, "no cycle ran while the apiserver was down?"
    assert pol["status"]["observedGeneration"] == before["status"]["observedGeneration"]
    time.sleep(3 * INTERVAL)  # more cycles of the reconnected operator
    pol = assert_no_second_rollout(kube, namespace, rolled)
    assert_conditions_whole(pol)
    # The transition times are the operator's memory, not the restart's: Ready never went False.
    since = (condition(before, "Ready") or {})["lastTransitionTime"]
    assert (condition(pol, "Ready") or {})["lastTransitionTime"] == since

    # The operator restarted mid-cooldown: it rebuilds the cooldown clock from status.applied and the
    # Deployment's gctuner.io/applied annotation, and does not patch again.
    op.stop()
    restarted = time.time()
    make_operator()
    pol = wait_for(lambda: fresh_status(kube, namespace, restarted), 90, "status from the new operator")
    time.sleep(3 * INTERVAL)
    pol = assert_no_second_rollout(kube, namespace, rolled)
    assert_conditions_whole(pol)


# ---------------------------------------------------------------------------------------------------
# 3. another writer on the GCPolicy status


def test_conflicting_status_writer_does_not_cost_the_operator_its_status(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    secret = token_secret(kube, namespace)
    apps.create_namespaced_deployment(
        namespace, endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret)
    )
    ips = [p.status.pod_ip for p in wait_ready(kube, namespace, "web", 2)]
    spec = endpoint_policy(secret)
    spec["rollout"]["cooldownSeconds"] = COOLDOWN  # one applied value for the whole test
    create_policy(kube, namespace, "web", spec)
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (condition(o, "Ready") or {}).get("status") == "True"
            and o["status"]["applied"]["pods"] == 2
            and o
        ),
        90,
        "Ready=True, applied on both pods",
    )
    applied = pol["status"]["applied"]
    ready_since = (condition(pol, "Ready") or {})["lastTransitionTime"]
    wait_for(lambda: all(own_settings(ip)[0] == applied["gogc"] for ip in ips), 3 * INTERVAL, "tuned")

    def merge(status: dict[str, Any]) -> None:
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "web",
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    stale = get_policy(kube, namespace, "web")  # its resourceVersion is stale after the next write
    stale["status"]["observedGeneration"] = 0
    outcomes: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def intruder() -> None:
        moves: list[Callable[[], None]] = [
            # The whole conditions list replaced by a lying Ready (a merge patch replaces lists).
            lambda: merge(
                {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "Intruder",
                            "lastTransitionTime": now(),
                        }
                    ]
                }
            ),
            # Sections the operator owns, removed or falsified.
            lambda: merge({"applied": None, "decision": None, "observedGeneration": 0}),
            lambda: merge(
                {"recommendation": {"gogc": 999, "strategy": "x", "explanation": "x", "time": now()}}
            ),
            # A full update on a stale resourceVersion: the apiserver refuses it (409).
            lambda: custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, "web", stale
            ),
        ]
        i = 0
        while not stop.is_set():
            move = i % len(moves)
            try:
                moves[move]()
                outcomes[f"move{move}:ok"] += 1
            except client.ApiException as e:
                outcomes[f"move{move}:{e.status}"] += 1
            i += 1
            time.sleep(0.1)

    thread = threading.Thread(target=intruder, name="status-intruder", daemon=True)
    t0 = time.monotonic()
    thread.start()
    lows = []
    try:
        # Meanwhile the operator keeps tuning: the leases are renewed, every process keeps the value.
        while time.monotonic() - t0 < 20:
            lows += [ip for ip in ips if own_settings(ip)[0] != applied["gogc"]]
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
    stopped = time.time()
    print(f"\n[faults] the other writer for 20 s: {dict(sorted(outcomes.items()))}")
    assert not lows, f"pods lost the applied GOGC during the conflict: {lows}"
    assert outcomes["move0:ok"] and outcomes["move1:ok"] and outcomes["move2:ok"], outcomes
    assert outcomes["move3:409"] and not outcomes["move3:ok"], outcomes

    def whole() -> dict[str, Any] | None:
        o = fresh_status(kube, namespace, stopped)
        if o is None:
            return None
        try:
            assert_conditions_whole(o)
        except AssertionError:
            return None
        return o

    pol = wait_for(whole, 3 * INTERVAL + 5, "the operator's whole status again")

    # Another controller's own condition type (the CRD's conditions are a map keyed by type): written
    # once, right after an operator write (so the operator sees it through its watch before its next
    # write, which is all a merge patch of the status can do); the operator's later writes keep it.
    ext = {
        "type": "ExternalAudit",
        "status": "True",
        "reason": "Audited",
        "message": "written by another controller",
        "lastTransitionTime": now(),
    }

    def add_external() -> bool:
        o = get_policy(kube, namespace, "web")
        o["status"]["conditions"].append(ext)
        custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "web", o)
        return True

    last = pol["status"]["decision"]["time"]
    wait_for(
        lambda: get_policy(kube, namespace, "web")["status"]["decision"]["time"] != last,
        2 * INTERVAL + 5,
        "an operator write",
        interval=0.02,
    )
    wait_for(add_external, 10, "the other controller's condition written")
    written = time.time()
    time.sleep(3 * INTERVAL)  # two or three operator writes
    pol = wait_for(lambda: fresh_status(kube, namespace, written), 2 * INTERVAL + 5, "an operator write")
    assert_conditions_whole(pol, extra=("ExternalAudit",))
    assert condition(pol, "ExternalAudit") == ext
    s = pol["status"]
    # Nothing lost: the operator's values, its memory of the Ready transition, the processes' GOGC.
    assert s["applied"] == {**applied, "pods": 2}, (s["applied"], applied)
    assert s["recommendation"]["gogc"] != 999 and s["recommendation"]["strategy"] != "x"
    assert (condition(pol, "Ready") or {})["lastTransitionTime"] == ready_since
    assert all(own_settings(ip)[0] == applied["gogc"] for ip in ips)
    # Nothing doubled: one apply, no Warning caused by the other writer.
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy").items
    assert sum(e.count or 1 for e in events if e.reason == "GOGCApplied") == 1
    assert [e.reason for e in events if e.type == "Warning"] == []
    assert "writing status" not in operator.log_tail(400)


# ---------------------------------------------------------------------------------------------------
# 4. etcd frozen for 10 s


def test_etcd_paused_status_resumes_without_a_second_rollout(
    namespace: str, kube: Any, cluster: Cluster, make_operator: Callable[..., OperatorProc]
) -> None:
    op, rolled = envpatch_rolled_out(kube, namespace, make_operator)
    before = get_policy(kube, namespace, "web")
    with pause_etcd(cluster.cp):
        paused = time.time()
        time.sleep(10)
    resumed = time.time()
    print(f"\n[faults] etcd paused for {resumed - paused:.1f} s")
    assert op.proc is not None and op.proc.poll() is None, f"the operator exited:\n{op.log_tail()}"
    t = time.monotonic()
    wait_for(lambda: fresh_status(kube, namespace, resumed), 60, "status written after the pause")
    print(f"[faults] status written again {time.monotonic() - t:.1f} s after SIGCONT")
    # The write in flight waited for etcd (the apiserver holds it; it is not failed within 10 s).
    failed = op.log_tail(400).count("writing status")
    print(f"[faults] status writes the operator logged as failed: {failed}")
    time.sleep(3 * INTERVAL)
    pol = assert_no_second_rollout(kube, namespace, rolled)
    assert_conditions_whole(pol)
    since = (condition(before, "Ready") or {})["lastTransitionTime"]
    assert (condition(pol, "Ready") or {})["lastTransitionTime"] == since

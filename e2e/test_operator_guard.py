"""Safe Enforce on the real control plane: a change goes to one canary pod first, is judged against
the untouched pods, and is promoted or rolled back.

The harmful change is a GOMEMLIMIT of 32 MiB under a live heap of about 70 MiB, forced by bounds that
hold GOGC at 100: the GC then runs back to back on the canary. The OOM case raises GOGC to 400 on
pods whose container limit (a real cgroup v1 limit, see e2e/kubelet/memcg.py) the larger heap goal
runs through, so the kernel OOM-kills the canary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    OperatorProc,
    agent_get,
    create_policy,
    get_policy,
    ready_pods,
    token_secret,
)
from e2e.test_operator_endpoint import endpoint_deployment
from gc_tuner.cli.gobuild import repo_root

pytestmark = pytest.mark.e2e

INTERVAL = 2
EVALUATION = 12
NO_LIMIT = 9223372036854775807


def deployment(name: str, secret: str, *, live_mib: int, limit: str | None = None) -> dict[str, Any]:
    dep = endpoint_deployment(name, 3, {"WORKLOAD_QPS": "600", "WORKLOAD_LIVE_MIB": str(live_mib)}, secret)
    if limit is not None:
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        c["resources"] = {"limits": {"memory": limit}}
    return dep


def guarded_policy(secret: str, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "mode": "Enforce",
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": 8080, "tokenSecretRef": {"name": secret}},
            "leaseSeconds": 20,
            "cooldownSeconds": 0,
            "canary": {"pods": 1, "evaluationSeconds": EVALUATION},
        },
        "sampling": {"intervalSeconds": INTERVAL, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
        "qps": {"agent": {}},
    }
    spec.update(over)
    return spec


def setup(kube: Any, namespace: str, *, live_mib: int = 60, limit: str | None = None) -> list[Any]:
    secret = token_secret(kube, namespace)
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, deployment("web", secret, live_mib=live_mib, limit=limit)
    )
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 3, 120, "3 ready pods")
    return ready_pods(kube, namespace, "web")


def phase(kube: Any, namespace: str) -> str | None:
    return ((get_policy(kube, namespace, "web").get("status") or {}).get("rollout") or {}).get("phase")


def policy_events(kube: Any, namespace: str) -> list[Any]:
    core = client.CoreV1Api(kube)
    return core.list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy").items


def memory_limits(pods: list[Any]) -> dict[str, int]:
    return {p.metadata.name: int(agent_get(p.status.pod_ip)["metrics"]["/gc/gomemlimit:bytes"]) for p in pods}


def test_a_harmful_change_is_canaried_rolled_back_and_not_retried(
    namespace: str, kube: Any, kubectl: Callable[..., Any], operator: OperatorProc
) -> None:
    pods = setup(kube, namespace)
    create_policy(
        kube,
        namespace,
        "web",
        guarded_policy(
            "gctuner-token",
            bounds={"minGOGC": 100, "maxGOGC": 100},
            memoryLimit={"mode": "Fixed", "fixed": "32Mi"},
        ),
    )
    pol = wait_for(
        lambda: (
            (p := get_policy(kube, namespace, "web")).get("status", {}).get("rollout", {}).get("phase")
            == "Canary"
            and p
        ),
        60,
        "a canary",
    )
    canary = pol["status"]["rollout"]["canaryPods"]
    assert len(canary) == 1
    # The canary gets the limit, the rest do not.
    limits = wait_for(
        lambda: (m := memory_limits(pods))[canary[0]] == 32 << 20 and m, 3 * INTERVAL, "the canary's limit"
    )
    assert [v for k, v in limits.items() if k != canary[0]] == [NO_LIMIT, NO_LIMIT]
    started = time.monotonic()
    pol = wait_for(
        lambda: (p := get_policy(kube, namespace, "web"))["status"].get("lastRollback") and p,
        3 * EVALUATION,
        "a rollback",
    )
    took = time.monotonic() - started
    assert took <= EVALUATION + 2 * INTERVAL, took  # inside the evaluation, not after it
    rb = pol["status"]["lastRollback"]
    assert rb["gomemlimit"] == "32MiB" and rb["reason"] in ("gcCPU", "memoryPercentOfLimit"), rb
    # Back on its startup values (the lease was released); the others never changed.
    wait_for(
        lambda: set(memory_limits(pods).values()) == {NO_LIMIT}, 3 * INTERVAL, "every pod without a limit"
    )
    # Not retried inside the back-off.
    time.sleep(4 * INTERVAL)
    pol = get_policy(kube, namespace, "web")
    assert pol["status"]["rollout"]["phase"] == "Backoff", pol["status"]["rollout"]
    assert [h["verdict"] for h in pol["status"]["history"]] == ["Canary", "RolledBack"]
    reasons = [e.reason for e in policy_events(kube, namespace)]
    assert reasons.count("CanaryStarted") == 1 and reasons.count("RolledBack") == 1, reasons
    metrics = operator.metrics()
    assert (
        f'gctuner_rollbacks_total{{namespace="{namespace}",policy="web",reason="{rb["reason"]}"}} 1.0'
        in metrics
    )
    table = kubectl("get", "gcpol", "-n", namespace).stdout
    assert "PHASE" in table and "Backoff" in table, table
    applied = next(c for c in pol["status"]["conditions"] if c["type"] == "Applied")
    assert applied["status"] == "True" and applied["reason"] == "BackingOff", applied
    events = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.kind=GCPolicy",
        "--sort-by",
        ".lastTimestamp",
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
    ).stdout
    _keep(
        "guard-rollback.txt",
        f"rolled back {took:.1f} s after the canary was seen, evaluation {EVALUATION} s\n"
        f"$ kubectl get gcpol\n{table}\n$ kubectl get events (GCPolicy)\n{events}",
    )


def test_a_helpful_change_is_promoted_to_every_pod(namespace: str, kube: Any, operator: OperatorProc) -> None:
    pods = setup(kube, namespace, live_mib=16)
    create_policy(
        kube, namespace, "web", guarded_policy("gctuner-token", bounds={"minGOGC": 200, "maxGOGC": 200})
    )
    wait_for(lambda: phase(kube, namespace) == "Canary", 60, "a canary")
    own = {p.metadata.name: int(agent_get(p.status.pod_ip)["metrics"]["/gc/gogc:percent"]) for p in pods}
    assert sorted(own.values()) in ([100, 100, 200], [100, 100, 100])  # the canary, maybe not written yet
    wait_for(lambda: phase(kube, namespace) == "Promoted", 3 * EVALUATION, "the promotion")
    wait_for(
        lambda: all(int(agent_get(p.status.pod_ip)["metrics"]["/gc/gogc:percent"]) == 200 for p in pods),
        3 * INTERVAL,
        "GOGC 200 on every pod",
    )
    status = get_policy(kube, namespace, "web")["status"]
    assert status["applied"]["gogc"] == 200 and "lastRollback" not in status
    assert [h["verdict"] for h in status["history"]] == ["Canary", "Promoted"]


def test_an_oom_killed_canary_rolls_back_at_once(namespace: str, kube: Any, operator: OperatorProc) -> None:
    from e2e.kubelet.memcg import cgroup_root

    if cgroup_root() is None:
        pytest.skip("no writable cgroup v1 memory hierarchy: the test kubelet cannot enforce a memory limit")
    setup(kube, namespace, live_mib=40, limit="160Mi")
    create_policy(
        kube, namespace, "web", guarded_policy("gctuner-token", bounds={"minGOGC": 400, "maxGOGC": 400})
    )
    wait_for(lambda: phase(kube, namespace) == "Canary", 60, "a canary")
    started = time.monotonic()
    pol = wait_for(
        lambda: (p := get_policy(kube, namespace, "web"))["status"].get("lastRollback") and p,
        60,
        "a rollback",
    )
    rb = pol["status"]["lastRollback"]
    assert rb["reason"] == "OOMKilled", rb
    assert time.monotonic() - started < EVALUATION, "not at once"
    canary = pol["status"]["rollout"].get("canaryPods") or [rb["message"].split()[2]]
    core = client.CoreV1Api(kube)
    pod = core.read_namespaced_pod(canary[0], namespace)
    assert pod.status.container_statuses[0].last_state.terminated.reason == "OOMKilled"


def test_paused_stops_every_change_and_resuming_continues(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    pods = setup(kube, namespace, live_mib=16)
    create_policy(
        kube,
        namespace,
        "web",
        guarded_policy("gctuner-token", bounds={"minGOGC": 200, "maxGOGC": 200}, paused=True),
    )
    wait_for(lambda: phase(kube, namespace) == "Paused", 60, "Paused")
    time.sleep(3 * INTERVAL)
    pol = get_policy(kube, namespace, "web")
    applied = next(c for c in pol["status"]["conditions"] if c["type"] == "Applied")
    assert applied["status"] == "False" and applied["reason"] == "Paused", applied
    assert all(agent_get(p.status.pod_ip)["lease"] is None for p in pods)
    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        "gctuner.io", "v1alpha1", namespace, "gcpolicies", "web", {"spec": {"paused": False}}
    )
    wait_for(lambda: phase(kube, namespace) == "Canary", 30, "a canary once resumed")


def test_an_operator_restart_mid_canary_judges_it_again(
    namespace: str, kube: Any, make_operator: Callable[..., OperatorProc]
) -> None:
    op = make_operator()
    setup(kube, namespace, live_mib=16)
    spec = guarded_policy("gctuner-token", bounds={"minGOGC": 200, "maxGOGC": 200})
    spec["rollout"]["canary"]["evaluationSeconds"] = 30
    create_policy(kube, namespace, "web", spec)
    first = wait_for(
        lambda: (
            (r := get_policy(kube, namespace, "web").get("status", {}).get("rollout") or {}).get("phase")
            == "Canary"
            and r
        ),
        60,
        "a canary",
    )
    op.kill()
    time.sleep(2)
    op.start()
    again = wait_for(
        lambda: (
            (r := get_policy(kube, namespace, "web")["status"]["rollout"]).get("startedAt")
            != first["startedAt"]
            and r
        ),
        30,
        "the evaluation started again",
    )
    assert again["phase"] == "Canary" and again["canaryPods"] == first["canaryPods"]
    wait_for(lambda: phase(kube, namespace) == "Promoted", 90, "a verdict on the resumed canary")


def _keep(name: str, text: str) -> None:
    """Kept for the README's example (git-ignored; the next run overwrites it)."""
    dest = repo_root() / ".artifacts" / "e2e-logs" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(text)

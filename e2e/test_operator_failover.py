"""Failover between two operator replicas with kopf peering: the working one SIGKILLed, the standby takes
over from the GCPolicy's status, without a second rollout, and the pods' Endpoint leases never lapse.

Two `gc-tuner operator` processes (OperatorProc, as in e2e/test_operator_faults.py) share one KopfPeering
with distinct identities ($POD_ID) and priorities; the higher one works, the lower one stands by (kopf
pauses its watches: it reads no pod and writes nothing). kopf has no hand-over on a crash: the standby
resumes once the dead peer's keep-alive entry in the peering object expires, i.e. at most
`--peering-lifetime` after its last keep-alive (which kopf sends 5-10 s before expiry, at most every
second), then re-lists, starts the policy's daemon and runs a cycle at once. The takeover is the first
work of the standby's the test sees: a read of a pod (its own gctuner_samples_total) or a lease renewed
(nobody else is alive to renew it).

The leases: every replica writes under the same owner, gc-tuner/<namespace>/<policy>, so the standby
renews the dead replica's leases as its own. They hold through the takeover when each pod has more lease
left at the kill than the takeover takes; a pod has at least min(leaseSeconds, renew margin) - interval
left, the renew margin being 2 x (interval + timeout) (tuning/rollout.py renew_margin_s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from e2e.cluster.manifests import WORKLOAD_PORT
from e2e.cluster.waits import WaitTimeoutError, wait_for
from e2e.operator_support import (
    TOKEN,
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    dump,
    get_policy,
    token_secret,
    wait_ready,
)
from e2e.test_operator_endpoint import endpoint_deployment, endpoint_policy
from e2e.test_operator_faults import fresh_status
from gc_tuner.cli.gobuild import repo_root

pytestmark = pytest.mark.e2e

PEERING = "gc-tuner-failover"
ACTIVE, STANDBY = ("failover-active", 200), ("failover-standby", 100)  # (peer identity, priority)
LIFETIME = 10  # --peering-lifetime, the operator's least: the takeover waits for it
INTERVAL = 2
TIMEOUT = 10  # sampling.timeoutSeconds: a renew margin of 2 x (2 + 10) = 24 s
LEASE = 24  # not above the margin: every cycle renews, so a pod has about LEASE - INTERVAL s left at a kill
COOLDOWN = 600  # one applied value for the whole test: any later apply is a second rollout
# Re-listing the policy, pods and Deployment, starting the daemon, its first read: a busy 2-core machine.
SLACK = 6.0
TAKEOVER_BOUND = LIFETIME + SLACK
# What the test relies on: the leases outlive the slowest takeover it accepts.
assert min(LEASE, 2 * (INTERVAL + TIMEOUT)) - INTERVAL > TAKEOVER_BOUND


# ---------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(name="peering")
def peering_fixture(kubectl: Any, kube: Any, namespace: str) -> str:
    """kopf's peering CRDs (the chart's copy) and an empty KopfPeering in the test's namespace: a
    namespaced operator keeps its keep-alives there."""
    crds = repo_root() / "charts" / "gc-tuner" / "crds" / "kopf-peerings.kopf.dev.yaml"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", body
    )
    return PEERING


def peers(kube: Any, namespace: str) -> dict[str, Any]:
    """The KopfPeering's status: identity -> {priority, lifetime, lastseen}."""
    obj = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", PEERING
    )
    return dict(obj.get("status") or {})


def replica(make_operator: Callable[..., OperatorProc], who: tuple[str, int]) -> OperatorProc:
    identity, priority = who
    return make_operator(
        *("--peering", PEERING, "--priority", str(priority), "--peering-lifetime", str(LIFETIME)),
        standalone=False,
        env={"POD_ID": identity},
    )


def counter_in(metrics: str, name: str) -> float:
    """The sum of a counter's series in an operator's /metrics text (0 when it has none yet)."""
    families = text_string_to_metric_families(metrics)
    return sum(s.value for f in families for s in f.samples if s.name == name)


def counter(op: OperatorProc, name: str) -> float:
    return counter_in(op.metrics(), name)


def gogc_applied_events(kube: Any, namespace: str) -> int:
    events = client.CoreV1Api(kube).list_namespaced_event(namespace, field_selector="reason=GOGCApplied")
    return sum(e.count or 1 for e in events.items)


def lastseen(kube: Any, namespace: str, identity: str) -> float:
    """When the peer last kept itself alive, wall-clock seconds."""
    return datetime.fromisoformat(peers(kube, namespace)[identity]["lastseen"]).timestamp()


def failover_policy(secret: str) -> dict[str, Any]:
    spec = endpoint_policy(secret)
    # minGOGCChange 1: any new fit of the standby's would be applied again, unless it knows from status
    # that the dead replica made a change less than a cooldown ago.
    spec["rollout"].update(leaseSeconds=LEASE, cooldownSeconds=COOLDOWN, minGOGCChange=1)
    spec["sampling"]["timeoutSeconds"] = TIMEOUT
    return spec


def start_pair(
    kube: Any, namespace: str, make_operator: Callable[..., OperatorProc], spec: dict[str, Any]
) -> tuple[OperatorProc, OperatorProc]:
    """The higher priority first, so it is the working replica from the start (no hand-over before the
    kill); the standby then finds it in the peering object and never resumes. The policy in between:
    the active replica fills its window while the standby starts."""
    active = replica(make_operator, ACTIVE)
    wait_for(lambda: ACTIVE[0] in peers(kube, namespace), 30, "the active replica's keep-alive")
    create_policy(kube, namespace, "web", spec)
    standby = replica(make_operator, STANDBY)
    found = wait_for(lambda: len(p := peers(kube, namespace)) == 2 and p, 30, "the standby's keep-alive")
    assert {k: (v["priority"], v["lifetime"]) for k, v in found.items()} == {
        ACTIVE[0]: (ACTIVE[1], LIFETIME),
        STANDBY[0]: (STANDBY[1], LIFETIME),
    }, found
    return active, standby


def tuned_by_active(kube: Any, namespace: str, ips: list[str], active: OperatorProc) -> dict[str, Any]:
    """The Endpoint policy applied on both pods and in force in both processes; the policy."""
    try:
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
    except WaitTimeoutError as e:
        status = dump(get_policy(kube, namespace, "web").get("status"))
        raise AssertionError(f"{e}\nstatus: {status}\nactive replica:\n{active.log_tail()}") from None
    gogc = pol["status"]["applied"]["gogc"]
    assert gogc != 100, "the applied GOGC must differ from the startup one to tell a lapse"
    wait_for(lambda: all(own_gogc(ip) == gogc for ip in ips), 3 * INTERVAL, "both processes at the GOGC")
    return pol


def own_gogc(ip: str) -> int:
    return int(agent_get(ip)["metrics"]["/gc/gogc:percent"])


@dataclass
class Watched:
    """What polling the pods' agents and the standby's /metrics saw, in seconds after the kill."""

    first_read: float | None = None  # the standby's first successful read of a pod (its own counter)
    renewed: dict[str, float] = field(default_factory=dict)  # each pod's first lease renewal since
    lapses: list[str] = field(default_factory=list)  # any poll that found a pod off the applied values
    least_left: float = float("inf")  # the least lease time any pod had left
    polls: int = 0

    @property
    def takeover(self) -> float | None:
        """The standby's first work seen: a read of a pod, or a lease renewed (only it is alive)."""
        seen = [t for t in (self.first_read, *self.renewed.values()) if t is not None]
        return min(seen, default=None)

    def see(self, ip: str, doc: dict[str, Any], now: float, gogc: int, owner: str, expires: str) -> None:
        own, lease = int(doc["metrics"]["/gc/gogc:percent"]), doc["lease"]
        if own != gogc or lease is None or lease["owner"] != owner:
            self.lapses.append(f"{now:.2f} s: {ip} at GOGC {own}, lease {lease}")
            return
        self.least_left = min(self.least_left, float(lease["remainingSeconds"]))
        if ip not in self.renewed and lease["expiresAt"] != expires:
            self.renewed[ip] = now


def watch_takeover(
    standby: OperatorProc, ips: list[str], gogc: int, owner: str, t0: float, expires: dict[str, str]
) -> Watched:
    """Poll until the standby has read the pods and renewed every lease, or the bound (and some) has
    passed. `expires`: each pod's lease expiry as the dead replica left it. One HTTP client for all
    polls: a new one costs up to 0.2 s on a loaded machine, which would blur the figures."""
    w = Watched()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(timeout=5, trust_env=False) as http:
        while (now := time.monotonic() - t0) < TAKEOVER_BOUND + 10:
            for ip in ips:
                resp = http.get(f"http://{ip}:{WORKLOAD_PORT}/debug/gctuner", headers=auth)
                resp.raise_for_status()
                w.see(ip, resp.json(), now, gogc, owner, expires[ip])
            metrics = http.get(f"http://127.0.0.1:{standby.metrics_port}/metrics").text
            if w.first_read is None and counter_in(metrics, "gctuner_samples_total") > 0:
                w.first_read = time.monotonic() - t0
            w.polls += 1
            if w.first_read is not None and len(w.renewed) == len(ips):
                break
            time.sleep(0.02)
    return w


def resumed_after(standby: OperatorProc, killed_at: float) -> float | None:
    """When kopf resumed the standby, in seconds after the kill, from its log line (local time, ms)."""
    for line in standby.log_tail(400).splitlines():
        if "Resuming operations after the pause" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp > killed_at - 1:
                return stamp - killed_at
    return None


def assert_continued_without_a_rollout(
    kube: Any, namespace: str, standby: OperatorProc, before: dict[str, Any], since: float
) -> dict[str, Any]:
    """A full cycle of the standby (a recommendation from its own, refilled window, and a decision on
    it) has been written: the change the dead replica made is still the one in force; the policy."""
    pol = wait_for(lambda: fresh_status(kube, namespace, since), 30, "a decision of the standby's own")
    s = pol["status"]
    # Continued from status: the same values, the same change time, so the cooldown runs on.
    assert s["applied"] == {**before["status"]["applied"], "pods": 2}, (s["applied"], before["status"])
    assert s["decision"]["action"] == "Hold", s["decision"]
    assert s["decision"]["code"] in ("CoolingDown", "AtTarget"), s["decision"]
    assert gogc_applied_events(kube, namespace) == 1
    assert counter(standby, "gctuner_applied_changes_total") == 0
    assert (condition(pol, "Applied") or {}).get("status") == "True", condition(pol, "Applied")
    return pol


# ---------------------------------------------------------------------------------------------------


def test_standby_takes_over_a_sigkilled_replica_within_the_lifetime_no_rollout_no_lapse(
    namespace: str, kube: Any, peering: str, make_operator: Callable[..., OperatorProc]
) -> None:
    secret = token_secret(kube, namespace)
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret)
    )
    ips = [p.status.pod_ip for p in wait_ready(kube, namespace, "web", 2)]
    active, standby = start_pair(kube, namespace, make_operator, failover_policy(secret))
    before = tuned_by_active(kube, namespace, ips, active)
    gogc, owner = before["status"]["applied"]["gogc"], f"gc-tuner/{namespace}/web"
    assert counter(active, "gctuner_samples_total") > 0
    assert counter(standby, "gctuner_samples_total") == 0, "the standby read pods while paused"
    assert gogc_applied_events(kube, namespace) == 1
    time.sleep(INTERVAL)  # a cycle more: the kill lands at an arbitrary point of a cycle and a keep-alive

    t0, killed_at = time.monotonic(), time.time()
    active.kill()  # SIGKILL: no goodbye in the peering object, nobody renews its keep-alive or the leases
    expires = {ip: agent_get(ip)["lease"]["expiresAt"] for ip in ips}
    # kopf lets the standby resume once the dead peer's entry expires: lastseen + its lifetime.
    expiry = lastseen(kube, namespace, ACTIVE[0]) + LIFETIME - killed_at
    w = watch_takeover(standby, ips, gogc, owner, t0, expires)
    resumed = resumed_after(standby, killed_at)
    print(
        f"\n[failover] standby took over {w.takeover or float('nan'):.2f} s after the SIGKILL: first read "
        f"{w.first_read or float('nan'):.2f} s, leases renewed at "
        f"{sorted(round(v, 2) for v in w.renewed.values())} s; kopf resumed it at "
        f"{resumed or float('nan'):.2f} s, the dead peer's entry expired at {expiry:.2f} s (lifetime "
        f"{LIFETIME} s); least lease left {w.least_left:.1f} s of {LEASE} s; GOGC {gogc} on every pod "
        f"in all {w.polls} polls"
    )
    assert w.takeover is not None, f"no takeover in {TAKEOVER_BOUND + 10:.0f} s:\n{standby.log_tail()}"
    assert w.takeover <= TAKEOVER_BOUND, f"took over after {w.takeover:.1f} s, bound {TAKEOVER_BOUND} s"
    # Not before the entry expired: the two replicas never worked at once.
    assert w.takeover >= expiry - 0.5, (w.takeover, expiry)
    assert not w.lapses, f"leases lapsed during the takeover: {w.lapses[:5]}"
    assert len(w.renewed) == len(ips), f"the standby renewed only {sorted(w.renewed)}"

    pol = assert_continued_without_a_rollout(kube, namespace, standby, before, killed_at + w.takeover)
    assert all(own_gogc(ip) == gogc for ip in ips)
    # The standby's window starts empty: until it holds three samples it cannot recommend, and Ready is
    # False (InsufficientData) meanwhile, while the values in force stay.
    ready, since = condition(pol, "Ready") or {}, (condition(before, "Ready") or {}).get("lastTransitionTime")
    flipped = "stayed True" if ready.get("lastTransitionTime") == since else "went False and back"
    print(f"[failover] then: decision {pol['status']['decision']['code']}, Ready {flipped}")

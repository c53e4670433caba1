"""One run: the e2e control plane, fleetsim, the fake pods and policies, `gc-tuner operator`, and the
measurements over a steady window after a warm-up.

    e2e harness    etcd, kube-apiserver, controller-manager, scheduler (and the test kubelet, idle here)
    fleet-node     a Node kept Ready by this process; every fake pod is bound to it
    fleetsim       one listener per pod on 127.1.x.y, the pod's status.podIP
    gc-tuner       `gc-tuner operator --standalone --namespace NS` under its own ServiceAccount
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import LoadSampler, ProcStat, proc_stat
from bench.operator_load.fleet_objects import (
    FLOW_SCHEMA,
    NODE,
    TOKEN_SECRET,
    FleetNode,
    StatusWatch,
    admin_client,
    create_pods,
    create_policies,
    create_statefulsets,
    operator_identity,
    owned_pods,
    target_name,
    token_secret,
)
from bench.operator_load.measure import (
    LoadResult,
    Series,
    counter_delta,
    parse_series,
    policy_timing,
    request_breakdown,
)
from bench.operator_load.operator_proc import OperatorProcess

__all__ = ["Plan", "policy_spec", "run"]

NAMESPACE = "operator-load"
_APISERVER_METRICS = ("apiserver_request_total", "apiserver_flowcontrol_dispatched_requests_total")
_OPERATOR_METRICS = ("gctuner_samples_total", "gctuner_sample_errors_total")
# The resources whose apiserver_request_total is shown (every client's: the metric has no user).
_RESOURCES = ("gcpolicies", "secrets", "events", "pods", "deployments", "leases", "nodes")


@dataclass(frozen=True)
class Plan:
    policies: int
    per_policy: int
    interval_s: int
    warmup_s: float
    steady_s: float
    concurrency: int
    tolerance: float
    workdir: Path
    source: Path | None = None  # an exported commit's tree (operator/, crds/); None: the working tree
    profile: bool = False  # py-spy on the operator over the steady window


def policy_spec(plan: Plan, target: str, port: int) -> dict[str, Any]:
    """The fleet bench's policy (bench/fleet/cost.py: agent source, QPS from the agent, Enforce with
    Endpoint rollout), aimed at one StatefulSet and with the agent token a production policy names."""
    from bench.fleet.cost import policy

    spec: dict[str, Any] = policy(
        interval_s=plan.interval_s,
        window_s=20 * plan.interval_s,
        cooldown_s=300,
        concurrency=plan.concurrency,
        port=port,
        qps_source="agent",
    )["spec"]
    spec["targetRef"] = {"kind": "StatefulSet", "name": target}
    spec["rollout"]["endpoint"]["tokenSecretRef"] = {"name": TOKEN_SECRET}
    return spec


class _ProcSampler:
    """/proc of one process every second, on a thread: the largest RSS of any window is read back."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, ProcStat]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            st = proc_stat(self.pid)
            if st is not None:
                self.samples.append((time.time(), st))
            if self._stop.wait(1.0):
                return

    def max_rss(self, start: float, end: float) -> int:
        return max((st.rss_bytes for t, st in self.samples if start <= t <= end), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _apiserver_metrics(cluster: Any) -> list[Series]:
    from e2e.cluster.control_plane import admin_ssl

    ctx = admin_ssl(cluster.cp.pki)
    with urllib.request.urlopen(f"{cluster.cp.server}/metrics", context=ctx, timeout=30) as resp:
        return parse_series(resp.read().decode(), _APISERVER_METRICS)


def _operator_metrics(op: Any) -> list[Series]:
    return parse_series(op.metrics(), _OPERATOR_METRICS)


@dataclass
class _Snapshot:
    t: float
    apiserver: list[Series]
    operator: list[Series]
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> CPU seconds


def _snapshot(cluster: Any, op: Any, pids: dict[str, int]) -> _Snapshot:
    cpu = {}
    for name, pid in pids.items():
        st = proc_stat(pid)
        if st is not None:
            cpu[name] = st.cpu_seconds
    return _Snapshot(time.time(), _apiserver_metrics(cluster), _operator_metrics(op), cpu)


def _setup(plan: Plan, cluster: Any, api: Any, port: int, say: Any) -> tuple[FleetNode, Path]:
    """Namespace, CRD, the fleet node, Deployments, pods, the token Secret and the operator's identity."""
    from kubernetes import client

    from bench.fleet.cost import pod_address
    from e2e.cluster.waits import wait_for
    from gc_tuner.cli.gobuild import repo_root

    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    kubectl = [str(cluster.kubectl), f"--kubeconfig={cluster.kubeconfig}"]
    crd = (plan.source or repo_root()) / "crds" / "gcpolicies.gctuner.io.yaml"  # the measured commit's
    subprocess.run([*kubectl, "apply", "-f", str(crd)], check=True, capture_output=True)
    wait_for(lambda: _crd_established(api), 60, "the GCPolicy CRD Established")
    node = FleetNode(api, pods_capacity=plan.policies * plan.per_policy + 100)
    node.register()
    wait_for(node.ready, 60, f"node {NODE} Ready and untainted")
    token_secret(api, NAMESPACE)
    took = create_pods(api, NAMESPACE, plan.policies, plan.per_policy, port, pod_address)
    say(f"{plan.policies * plan.per_policy} pods Running on {NODE} in {took:.1f} s")
    create_statefulsets(api, NAMESPACE, plan.policies, plan.per_policy, port)
    total = plan.policies * plan.per_policy
    wait_for(lambda: owned_pods(api, NAMESPACE) == total, 120, f"{total} pods adopted by their StatefulSets")
    kubeconfig = operator_identity(
        api, NAMESPACE, cluster.cp.server, cluster.cp.pki.ca.cert, plan.workdir / "operator.kubeconfig"
    )
    return node, kubeconfig


def _crd_established(api: Any) -> bool:
    # Polled rather than `kubectl wait`, which fails at once while the CRD is not yet visible.
    from kubernetes import client

    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("gcpolicies.gctuner.io")
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def _wait_first_status(watch: StatusWatch, names: list[str], op: Any, timeout: float) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if all(watch.writes.get(n) for n in names):
            return max(watch.writes[n][0][0] for n in names)
        if op.proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {op.proc.returncode}:\n{op.log_tail()}")
        time.sleep(0.2)
    missing = [n for n in names if not watch.writes.get(n)]
    raise RuntimeError(f"no status within {timeout:.0f} s for {len(missing)} policies, e.g. {missing[:3]}")


def _hold(seconds: float, op: Any, load: LoadSampler) -> None:
    """Sleep through a phase, noting the load average, and stop early if the operator died."""
    end = time.time() + seconds
    next_note = time.time() + 15
    while time.time() < end:
        if op.proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {op.proc.returncode}:\n{op.log_tail()}")
        time.sleep(min(1.0, max(0.0, end - time.time())))
        if time.time() >= next_note:
            load.note()
            next_note += 15


def run(plan: Plan, load: LoadSampler, say: Any) -> LoadResult:
    from bench.fleet.cost import _Fleet, build_fleetsim
    from e2e.cluster.build import ensure_built
    from e2e.cluster.harness import start_cluster

    binary = build_fleetsim()
    ensure_built()
    result = LoadResult(plan.policies, plan.per_policy, plan.interval_s, tolerance=plan.tolerance)
    cluster = start_cluster(plan.workdir / "cluster")
    say(f"control plane up in {cluster.cp.started_in_s:.1f} s ({cluster.cp.server})")
    flog = (plan.workdir / "fleetsim.log").open("w")
    stops: list[Any] = [cluster.stop, flog.close]
    try:
        api = admin_client(cluster.kubeconfig)
        fleet = _Fleet(binary, plan.policies * plan.per_policy, flog)
        stops.append(fleet.stop)
        say(f"fleetsim serves {fleet.n} pods on port {fleet.port}")
        node, kubeconfig = _setup(plan, cluster, api, fleet.port, say)
        stops.append(node.stop)
        _measure(plan, cluster, api, fleet, kubeconfig, result, load, say)
        _check_after(api, node, result)
    finally:
        for stop in reversed(stops):
            stop()
    return result


def _measure(
    plan: Plan,
    cluster: Any,
    api: Any,
    fleet: Any,
    kubeconfig: Path,
    result: LoadResult,
    load: LoadSampler,
    say: Any,
) -> None:
    watch = StatusWatch(api, NAMESPACE)
    watch.start()
    op = OperatorProcess(kubeconfig, NAMESPACE, plan.workdir / "operator.log", plan.source)
    result.notes.append(f"the operator imported gc_tuner from {op.imported_from()}")
    started = time.time()
    op.start()
    assert op.proc is not None
    sampler = _ProcSampler(op.proc.pid)
    try:
        specs = [policy_spec(plan, target_name(p), fleet.port) for p in range(plan.policies)]
        names = create_policies(api, NAMESPACE, specs)
        first = _wait_first_status(watch, names, op, 120 + 2 * plan.interval_s)
        result.startup_s = first - started
        say(f"every policy has a status {result.startup_s:.1f} s after the operator started; warm-up")
        _hold(plan.warmup_s, op, load)
        pids = {"gc-tuner operator": op.proc.pid, "fleetsim": fleet.proc.pid}
        pids |= {p.name: p.pid for p in cluster.cp.procs}
        spy = _start_profile(plan, op.proc.pid) if plan.profile else None
        before = _snapshot(cluster, op, pids)
        say(f"steady window of {plan.steady_s:.0f} s")
        _hold(plan.steady_s, op, load)
        after = _snapshot(cluster, op, pids)
        end_stat = proc_stat(op.proc.pid)
        if spy is not None:
            _finish_profile(spy, plan, result)
        # Cycles report at their end: listen a little longer for those that started in the window.
        _hold(max(5.0, float(plan.interval_s)), op, load)
        _fill(result, plan, before, after, names, watch, sampler, end_stat)
    finally:
        sampler.stop()
        op.stop()
        watch.stop()
        _scan_log(plan.workdir / "operator.log", result)


def _start_profile(plan: Plan, pid: int) -> subprocess.Popen[str] | None:
    """py-spy on the operator for the steady window (--nonblocking: the operator is never paused)."""
    from bench.fleet.cost import _py_spy

    spy = _py_spy()
    if spy is None:
        return None
    raw = plan.workdir / "profile.raw"
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(int(plan.steady_s)), "--rate", "50"]
    cmd += ["--format", "raw", "--output", str(raw), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish_profile(spy: subprocess.Popen[str], plan: Plan, result: LoadResult) -> None:
    from bench.fleet.cost import hot_frames

    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        err = "py-spy did not finish"
    raw = plan.workdir / "profile.raw"
    if not raw.exists():
        result.notes.append(f"no profile: {err.strip()[-300:]}")
        return
    result.profile = hot_frames(raw, top=40)


def _fill(
    result: LoadResult,
    plan: Plan,
    before: _Snapshot,
    after: _Snapshot,
    names: list[str],
    watch: StatusWatch,
    sampler: _ProcSampler,
    end_stat: ProcStat | None,
) -> None:
    span = after.t - before.t
    result.steady_s = span
    cores = {k: (after.cpu[k] - v) / span for k, v in before.cpu.items() if k in after.cpu}
    result.cpu_cores = cores.pop("gc-tuner operator", 0.0)
    result.control_plane_cores = cores
    result.rss_mb = sampler.max_rss(before.t, after.t) / 1e6
    result.peak_rss_mb = (end_stat.hwm_bytes if end_stat else 0) / 1e6
    fs = {"flow_schema": FLOW_SCHEMA}
    if any(s.label("flow_schema") == FLOW_SCHEMA for s in after.apiserver):
        n = counter_delta(
            before.apiserver, after.apiserver, "apiserver_flowcontrol_dispatched_requests_total", fs
        )
        result.apiserver_requests, result.apiserver_rps = n, n / span
    else:
        result.notes.append(f"the apiserver reported no dispatched request for flow schema {FLOW_SCHEMA}")
    result.breakdown = request_breakdown(before.apiserver, after.apiserver, _RESOURCES)
    agent = {"source": "agent"}
    result.samples_per_s = (
        counter_delta(before.operator, after.operator, "gctuner_samples_total", agent) / span
    )
    result.sample_errors = counter_delta(before.operator, after.operator, "gctuner_sample_errors_total")
    result.timings = [
        policy_timing(n, plan.per_policy, watch.writes.get(n, []), before.t, after.t) for n in names
    ]
    if watch.errors:
        result.notes.append(f"status watch restarted {len(watch.errors)} times, last: {watch.errors[-1]}")


def _check_after(api: Any, node: FleetNode, result: LoadResult) -> None:
    """The fleet was intact all along: the node Ready, every pod still Running and Ready."""
    from kubernetes import client

    if node.errors:
        result.notes.append(f"{len(node.errors)} lease renewals of {NODE} failed, last: {node.errors[-1]}")
    if not node.ready():
        result.notes.append(f"{NODE} was not Ready (or was tainted) at the end")
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE).items
    ready = sum(
        1
        for p in pods
        if p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    )
    if ready != result.pods:
        result.notes.append(f"only {ready}/{result.pods} pods were Running and Ready at the end")


def _scan_log(log: Path, result: LoadResult) -> None:
    """Count the operator's warnings and errors; the most frequent few go to the notes."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return
    bad: dict[str, int] = {}
    for line in lines:
        for level in (" ERROR ", " WARNING ", "Traceback"):
            if level in line:
                # Drop the timestamp so the same message counts once.
                msg = line.split(level, 1)[1][:160] if level != "Traceback" else "Traceback"
                key = f"{level.strip()}: {msg}"
                bad[key] = bad.get(key, 0) + 1
    for msg, n in sorted(bad.items(), key=lambda kv: -kv[1])[:5]:
        result.notes.append(f"operator log, {n}×: {msg}")

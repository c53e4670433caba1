"""The Kubernetes side of the operator load benchmark: a node with no kubelet, fake pods on it,
their StatefulSets and GCPolicies, the operator's own identity, and a watch on the policies' status.

The pods are real Pod objects bound to `fleet-node`, a Node this module registers and keeps Ready
by renewing its Lease (without it the node lifecycle controller would mark it unreachable and evict
the pods). No kubelet runs them: their status (Running, Ready, podIP = a fleetsim listener's
127.1.x.y) is written here through the status subresource, once. The test kubelet of the e2e
harness only runs pods bound to its own node, so it never touches these.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "FLOW_SCHEMA",
    "NODE",
    "FleetNode",
    "StatusWatch",
    "admin_client",
    "create_pods",
    "create_policies",
    "create_statefulsets",
    "operator_identity",
    "owned_pods",
    "pod_name",
    "target_name",
    "token_secret",
]

NODE = "fleet-node"
SERVICE_ACCOUNT = "gc-tuner"
FLOW_SCHEMA = "gc-tuner-operator-load"
TOKEN_SECRET = "gctuner-token"
GROUP, VERSION, PLURAL = "gctuner.io", "v1alpha1", "gcpolicies"
IMAGE = "gc-tuner/fleetsim:bench"  # never pulled: no kubelet runs these pods
MEMORY_LIMIT = "1Gi"
_LEASE_RENEW_S = 10.0


def _now(micro: bool = False) -> str:
    t = dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def admin_client(kubeconfig: Path, pool: int = 16) -> Any:
    """An ApiClient with room for `pool` concurrent requests (the default pool is 4 to 10)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool
    return client.ApiClient(cfg)


def target_name(policy: int) -> str:
    return f"fleet-{policy:02d}"


def pod_name(policy: int, i: int) -> str:
    # <StatefulSet>-<ordinal>, the ordinal unpadded: the controller adopts a pod only under its own name.
    return f"{target_name(policy)}-{i}"


def operator_identity(api: Any, namespace: str, server: str, ca: Path, out: Path) -> Path:
    """A ServiceAccount for the operator, a kubeconfig with its token, cluster-admin for it, and a
    FlowSchema that puts its requests (only its) in a flow of their own: the apiserver's
    apiserver_flowcontrol_dispatched_requests_total{flow_schema=...} then counts exactly the
    operator's requests. The flow goes to the `exempt` priority level, as the admin's would, so the
    measurement adds no queueing."""
    from kubernetes import client

    core, rbac, custom = (
        client.CoreV1Api(api),
        client.RbacAuthorizationV1Api(api),
        client.CustomObjectsApi(api),
    )
    core.create_namespaced_service_account(namespace, {"metadata": {"name": SERVICE_ACCOUNT}})
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": f"{FLOW_SCHEMA}-{namespace}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [subject],
        }
    )
    custom.create_cluster_custom_object(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "flowschemas",
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": FLOW_SCHEMA},
            "spec": {
                # Before service-accounts (9000) and global-default (9900); only this subject matches.
                "matchingPrecedence": 50,
                "priorityLevelConfiguration": {"name": "exempt"},
                "rules": [
                    {
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "serviceAccount": {"name": SERVICE_ACCOUNT, "namespace": namespace},
                            }
                        ],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "clusterScope": True,
                                "namespaces": ["*"],
                            }
                        ],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        },
    )
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, namespace, {"spec": {"expirationSeconds": 6 * 3600}}
    ).status.token
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": SERVICE_ACCOUNT}}],
        "current-context": "bench",
    }
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out.chmod(0o600)
    return out


class FleetNode:
    """The Node the fake pods are bound to, kept Ready by a Lease renewed on a thread."""

    def __init__(self, api: Any, pods_capacity: int) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.leases = client.CoordinationV1Api(api)
        self.capacity = {"cpu": "64", "memory": "256Gi", "pods": str(pods_capacity)}
        self.renewals = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="fleet-node-lease", daemon=True)

    def _status(self) -> dict[str, Any]:
        now = _now()
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "the operator load benchmark keeps this node's lease",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [ready],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": NODE},
            ],
        }

    def register(self) -> None:
        node = self.core.create_node(
            {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}, "spec": {}}
        )
        # Create ignores status: it goes through the status subresource, as a kubelet writes it.
        self.core.patch_node_status(NODE, {"status": self._status()})
        self.leases.create_namespaced_lease(
            "kube-node-lease",
            {
                "metadata": {
                    "name": NODE,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": node.metadata.uid}
                    ],
                },
                "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": _now(micro=True)},
            },
        )
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(_LEASE_RENEW_S):
            try:
                self.leases.patch_namespaced_lease(
                    NODE, "kube-node-lease", {"spec": {"renewTime": _now(micro=True)}}
                )
                self.renewals += 1
            except Exception as e:  # keep trying: a missed renewal is harmless, 4 in a row are not
                self.errors.append(f"{time.strftime('%H:%M:%S')} {type(e).__name__}: {e}"[:300])

    def ready(self) -> bool:
        node = self.core.read_node(NODE)
        conds = {c.type: c.status for c in node.status.conditions or []}
        return conds.get("Ready") == "True" and not (node.spec.taints or [])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _container(port: int) -> dict[str, Any]:
    return {
        "name": "app",
        "image": IMAGE,
        "ports": [{"name": "agent", "containerPort": port}],
        "resources": {"limits": {"memory": MEMORY_LIMIT}, "requests": {"memory": MEMORY_LIMIT}},
    }


def create_statefulsets(api: Any, namespace: str, policies: int, per_policy: int, port: int) -> None:
    """One StatefulSet per policy that owns its fake pods: gc-tuner tunes the pods a workload owns
    (ownerReferences), not the pods its selector matches. Created after the pods, it adopts them (they
    are orphans named and labelled as its pods) and starts none of its own; with updateStrategy
    OnDelete it never replaces them."""
    from kubernetes import client

    apps = client.AppsV1Api(api)
    for p in range(policies):
        name = target_name(p)
        apps.create_namespaced_stateful_set(
            namespace,
            {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "replicas": per_policy,
                    "serviceName": name,
                    "podManagementPolicy": "Parallel",
                    "updateStrategy": {"type": "OnDelete"},
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [_container(port)]},
                    },
                },
            },
        )


def owned_pods(api: Any, namespace: str) -> int:
    """How many of the namespace's pods a StatefulSet owns (the controller adopts them in the background)."""
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    return sum(
        1
        for pod in pods
        if any(o.kind == "StatefulSet" and o.controller for o in pod.metadata.owner_references or [])
    )


def _pod_status(ip: str, started: str) -> dict[str, Any]:
    conds = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "conditions": [{"type": c, "status": "True", "lastTransitionTime": started} for c in conds],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "image": IMAGE,
                "imageID": IMAGE,
                "containerID": f"gctuner://{ip}",
                "state": {"running": {"startedAt": started}},
            }
        ],
    }


def create_pods(
    api: Any,
    namespace: str,
    policies: int,
    per_policy: int,
    port: int,
    address: Callable[[int], str],
    workers: int = 8,
) -> float:
    """policies × per_policy Running, Ready pods on the fleet node, pod k at address(k); returns the
    seconds it took. Each is a create and a status patch: as a kubelet reports it, after the fact."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    started = _now()

    def one(k: int) -> None:
        p, i = divmod(k, per_policy)
        name = pod_name(p, i)
        # Named and labelled as pod i of StatefulSet target_name(p), which adopts it (create_statefulsets).
        labels = {
            "app": target_name(p),
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(i),
        }
        body = {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "nodeName": NODE,
                "hostname": name,
                "subdomain": target_name(p),
                "containers": [_container(port)],
                "terminationGracePeriodSeconds": 0,
            },
        }
        core.create_namespaced_pod(namespace, body, _preload_content=False)
        status = _pod_status(address(k), started)
        core.patch_namespaced_pod_status(name, namespace, {"status": status}, _preload_content=False)

    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(policies * per_policy)))  # list(): the first error is raised here
    return time.monotonic() - t0


def token_secret(api: Any, namespace: str) -> str:
    """The agent token Secret every policy names, opted in as gc-tuner requires (fleetsim ignores it,
    but the operator reads it every cycle, as it would in production)."""
    from kubernetes import client

    token = base64.b64encode(b"operator-load-token").decode()
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": TOKEN_SECRET, "labels": {"gctuner.io/agent-token": "true"}},
            "data": {"token": token},
        },
    )
    return TOKEN_SECRET


def create_policies(api: Any, namespace: str, specs: list[dict[str, Any]]) -> list[str]:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    names = []
    for p, spec in enumerate(specs):
        name = target_name(p)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GCPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        names.append(name)
    return names


class StatusWatch:
    """Every change of every GCPolicy's status, with the time it arrived: one per operator cycle
    (each cycle's status differs from the last: at least its recommendation and decision times)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.writes: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.errors: list[str] = []
        self._last: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from kubernetes import client, watch

        custom = client.CustomObjectsApi(self.api)
        rv = ""
        while not self._stop.is_set():
            try:
                w = watch.Watch()  # type: ignore[no-untyped-call]
                # A short server timeout: the loop checks _stop between watch calls.
                for ev in w.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=rv,
                    timeout_seconds=10,
                ):
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    self._note(obj)
                    if self._stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
            except Exception as e:  # an expired resourceVersion or a dropped stream: start over
                self.errors.append(f"{type(e).__name__}: {e}"[:200])
                rv = ""
                time.sleep(0.5)

    def _note(self, obj: dict[str, Any]) -> None:
        status = obj.get("status")
        if not status:
            return
        name = obj["metadata"]["name"]
        key = json.dumps(status, sort_keys=True)
        if self._last.get(name) != key:  # metadata-only changes (kopf's annotations) are not cycles
            self._last[name] = key
            self.writes.setdefault(name, []).append((time.time(), status))

    def stop(self) -> None:
        self._stop.set()

"""The test kubelet's top level: node registration, the watch on pods bound to this node, one PodWorker
per pod, events, and what workers need from the node (images, secrets, service account tokens)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from e2e.kubelet.api import ApiClient, ApiError
from e2e.kubelet.envres import EnvError
from e2e.kubelet.images import Program, default_registry
from e2e.kubelet.ipam import IpAllocator
from e2e.kubelet.logserver import LogServer
from e2e.kubelet.node import NodeAgent
from e2e.kubelet.pods import PodWorker

__all__ = ["Kubelet", "KubeletConfig"]

Obj = dict[str, Any]
log = logging.getLogger("kubelet")
_TOKEN_SECONDS = 3600


@dataclass
class KubeletConfig:
    kubeconfig: Path
    node_name: str
    port: int
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    state_dir: Path
    version: str = "v1.36.3"
    node_ip: str = "127.0.0.1"
    ip_block_start: int = 1
    images: dict[str, str] = field(default_factory=dict)
    allocatable: dict[str, str] = field(
        default_factory=lambda: {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "50Gi"}
    )


class Kubelet:
    def __init__(self, cfg: KubeletConfig) -> None:
        self.cfg = cfg
        self.api = ApiClient(cfg.kubeconfig)
        self.node_name = cfg.node_name
        self.node_ip = cfg.node_ip
        self.state_dir = cfg.state_dir
        self.allocatable = cfg.allocatable
        self.ipam = IpAllocator(cfg.ip_block_start)
        self.registry = default_registry(cfg.images)
        self.workers: dict[str, PodWorker] = {}
        self._image_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._bg: set[asyncio.Task[Any]] = set()

    # ---- services for pod workers -------------------------------------------------------------------
    async def resolve_image(self, image: str) -> Program:
        async with self._image_lock:  # one build at a time: the machine is small
            return await asyncio.to_thread(self.registry.resolve, image)

    def fetch_for(self, ns: str) -> Any:
        async def fetch(kind: str, name: str) -> Obj | None:
            try:
                return await self.api.get(f"/api/v1/namespaces/{ns}/{kind}/{name}")
            except ApiError as e:
                if e.status == 404:
                    return None
                raise EnvError(f"reading {kind[:-1]} {ns}/{name}: {e}") from e

        return fetch

    async def service_account_env(self, worker: PodWorker) -> dict[str, str]:
        """Credentials for the pod's service account, as a KUBECONFIG file the process can load.

        A container here cannot see /var/run/secrets/kubernetes.io/serviceaccount, so the kubelet asks
        the TokenRequest API for a pod-bound token, as a real kubelet does, and writes a kubeconfig.
        """
        spec = worker.pod["spec"]
        sa = spec.get("serviceAccountName")
        # The apiserver runs without the ServiceAccount admission plugin, so a pod that names no account
        # has none (not "default"), and a token cannot be bound to it.
        if not sa or spec.get("automountServiceAccountToken") is False:
            return {}
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": _TOKEN_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": worker.name, "uid": worker.uid},
            },
        }
        try:
            tr = await self.api.create(f"/api/v1/namespaces/{worker.ns}/serviceaccounts/{sa}/token", body)
        except ApiError as e:
            raise EnvError(f'serviceaccount "{sa}" token: {e}') from e
        sa_dir = worker.dir / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(tr["status"]["token"])
        (sa_dir / "namespace").write_text(worker.ns)
        ca = self.cfg.client_ca
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {"server": self.api.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": sa, "user": {"tokenFile": str(sa_dir / "token")}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": sa, "namespace": worker.ns},
                }
            ],
            "current-context": "in-cluster",
        }
        kubeconfig = sa_dir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(cfg))
        return {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": worker.ns}

    def event(
        self,
        worker: PodWorker,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: str | None = None,
    ) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": worker.ns,
            "name": worker.name,
            "uid": worker.uid,
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{worker.name}.", "namespace": worker.ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.spawn(self._post_event(worker.ns, body))

    async def _post_event(self, ns: str, body: Obj) -> None:
        with contextlib.suppress(Exception):  # events are best effort, as in a real kubelet
            await self.api.create(f"/api/v1/namespaces/{ns}/events", body)

    def forget(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def find_pod(self, ns: str, name: str) -> PodWorker | None:
        matches = [w for w in self.workers.values() if w.ns == ns and w.name == name]
        live = [w for w in matches if not w.deleting]
        pick = live or matches
        return pick[-1] if pick else None

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # ---- pods ---------------------------------------------------------------------------------------
    def _on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if pod["metadata"].get("deletionTimestamp"):
            # Deleted before this kubelet ran it: nothing to stop, just let it go.
            self.spawn(self._force_delete(pod))
            return
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        log.info("pod %s/%s bound to %s: starting", worker.ns, worker.name, self.node_name)
        worker.start()

    async def _force_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(Exception):
            await self.api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    def _on_deleted(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None and not worker.done.is_set():
            self.spawn(worker.kill_now())

    async def _watch_pods(self) -> None:
        path = "/api/v1/pods"
        selector = {"fieldSelector": f"spec.nodeName={self.node_name}"}
        while True:
            try:
                listing = await self.api.get(path, selector)
                rv = listing["metadata"]["resourceVersion"]
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self._on_pod(pod)
                for uid in set(self.workers) - seen:
                    self._on_deleted(uid)
                while True:
                    expired = False
                    async for ev in self.api.watch(path, {**selector, "resourceVersion": rv}):
                        kind, obj = ev["type"], ev["object"]
                        if kind == "ERROR":
                            expired = True
                            break
                        rv = obj["metadata"]["resourceVersion"]
                        if kind in ("ADDED", "MODIFIED"):
                            self._on_pod(obj)
                        elif kind == "DELETED":
                            self._on_deleted(obj["metadata"]["uid"])
                    if expired:
                        break
            except (ApiError, httpx.HTTPError, KeyError) as e:
                log.warning("pod watch: %s; re-listing", e)
                await asyncio.sleep(0.5)

    # ---- main ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        server = LogServer(self.find_pod, self.cfg.tls_cert, self.cfg.tls_key, self.cfg.client_ca)
        await server.start(self.node_ip, self.cfg.port)
        node = NodeAgent(
            self.api, self.node_name, self.node_ip, self.cfg.port, self.allocatable, self.cfg.version
        )
        await node.register()
        tasks = [asyncio.create_task(node.heartbeat()), asyncio.create_task(self._watch_pods())]
        (self.state_dir / "ready").write_text("ok\n")
        log.info("test kubelet %s ready; pod IPs from 127.0.%d.0/24", self.node_name, self.ipam.block)
        await self._stop.wait()
        log.info("stopping: terminating %d pods", len(self.workers))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*(w.kill_now() for w in list(self.workers.values())), return_exceptions=True)
        await server.stop()
        await self.api.aclose()
        self.ipam.close()

"""The Node object and its heartbeats: a Ready node with InternalIP 127.0.0.1, a Lease in kube-node-lease
renewed every few seconds, and the Ready condition's heartbeat refreshed, so the node lifecycle
controller never marks the node unreachable."""

from __future__ import annotations

import asyncio
import logging
import platform
import uuid
from typing import Any

from e2e.kubelet.api import ApiClient, ApiError
from e2e.kubelet.clock import api_micro_timestamp, api_timestamp

__all__ = ["LEASE_DURATION_S", "NodeAgent"]

Obj = dict[str, Any]
log = logging.getLogger("kubelet.node")

LEASE_DURATION_S = 40
_LEASE_RENEW_S = 5.0
_STATUS_EVERY_S = 20.0


class NodeAgent:
    def __init__(
        self, api: ApiClient, name: str, ip: str, port: int, allocatable: dict[str, str], version: str
    ) -> None:
        self.api = api
        self.name = name
        self.ip = ip
        self.port = port
        self.allocatable = allocatable
        self.version = version
        self.boot_id = str(uuid.uuid4())
        self.uid = ""
        self._since = api_timestamp()

    def _status(self) -> Obj:
        now = api_timestamp()

        def cond(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._since,
            }

        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "capacity": self.allocatable,
            "allocatable": self.allocatable,
            "conditions": [
                cond(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"
                ),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
                cond("Ready", "True", "KubeletReady", "test kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.ip},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": self.boot_id.replace("-", ""),
                "systemUUID": self.boot_id,
                "bootID": self.boot_id,
                "kernelVersion": platform.release(),
                "osImage": "gc-tuner test kubelet",
                "containerRuntimeVersion": "gctuner://1.0.0",
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        }

    async def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": self._status()["nodeInfo"]["architecture"],
                },
            },
            "spec": {},
            "status": self._status(),
        }
        try:
            node = await self.api.create("/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
            node = await self.api.get(f"/api/v1/nodes/{self.name}")
        self.uid = node["metadata"]["uid"]
        await self.post_status()
        await self.renew_lease()
        log.info("node %s registered (Ready, kubelet port %d)", self.name, self.port)

    async def post_status(self) -> None:
        await self.api.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": self._status()})

    async def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": api_micro_timestamp(),
        }
        try:
            await self.api.merge_patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            await self.api.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.name,
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
                        ],
                    },
                    "spec": spec,
                },
            )

    async def heartbeat(self) -> None:
        last_status = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(_LEASE_RENEW_S)
            try:
                await self.renew_lease()
                if asyncio.get_running_loop().time() - last_status >= _STATUS_EVERY_S:
                    await self.post_status()
                    last_status = asyncio.get_running_loop().time()
            except ApiError as e:
                if e.status == 404:
                    await self.register()  # someone deleted the Node: come back like a kubelet does
                else:
                    log.warning("heartbeat failed: %s", e)
            except Exception as e:
                log.warning("heartbeat failed: %s", e)

"""One pod bound to the node: its loopback IP, its containers, its status in the apiserver, and its
graceful deletion (SIGTERM, SIGKILL after the grace period, then delete with grace 0).

A worker sees its kubelet only through NodeServices, a protocol that Kubelet (kubelet.py) implements:
kubelet.py builds on this module, so this module does not import it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Protocol

from e2e.kubelet.api import ApiClient, ApiError
from e2e.kubelet.clock import api_timestamp
from e2e.kubelet.envres import resolve_env
from e2e.kubelet.images import Program
from e2e.kubelet.ipam import IpAllocator
from e2e.kubelet.runner import ContainerRunner, ImageSource

__all__ = ["NodeServices", "PodWorker", "pod_phase"]

Obj = dict[str, Any]
log = logging.getLogger("kubelet.pods")


class NodeServices(ImageSource, Protocol):
    """What a pod worker uses of its kubelet (Kubelet implements it)."""

    api: ApiClient
    node_ip: str
    state_dir: Path
    allocatable: dict[str, str]
    ipam: IpAllocator

    def fetch_for(self, ns: str) -> Any: ...

    async def service_account_env(self, worker: PodWorker) -> dict[str, str]: ...

    def event(
        self,
        worker: PodWorker,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: str | None = None,
    ) -> None: ...

    def forget(self, worker: PodWorker) -> None: ...

    def spawn(self, coro: Any) -> None: ...


def pod_phase(
    init: list[ContainerRunner], main: list[ContainerRunner], initialized: bool, policy: str
) -> str:
    """The pod phase from its containers, the way the kubelet derives it (getPhase)."""
    if not initialized:
        failed = any(r.finished and (r.exit_code() or 0) != 0 for r in init)
        return "Failed" if failed and policy == "Never" else "Pending"
    if any(r.never_ran() for r in main):
        return "Pending"
    if any("running" in r.state for r in main):
        return "Running"
    if all(r.finished for r in main):
        return "Succeeded" if all(r.exit_code() == 0 for r in main) else "Failed"
    return "Running"


class PodWorker:
    def __init__(self, kubelet: NodeServices, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir: Path = kubelet.state_dir / "pods" / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [ContainerRunner(self, c, init=True) for c in spec.get("initContainers", [])]
        self.main = [ContainerRunner(self, c) for c in spec["containers"]]
        self.ip: str | None = None
        self._ip_released = False
        self.initialized = not self.init
        self.deleting = False
        self.gone = False
        self.start_time = api_timestamp()
        self._dirty = asyncio.Event()
        self._cond_times: dict[str, tuple[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._main_task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._last_pushed: Obj | None = None
        self.done = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.create_task(self._status_writer())
        self._main_task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        if self.pod["spec"].get("hostNetwork"):
            self.ip = self.kubelet.node_ip
        else:
            self.ip = self.kubelet.ipam.allocate()
        log.info("%s/%s: pod IP %s", self.ns, self.name, self.ip)
        self.mark_dirty()
        for runner in self.init:
            await runner.run()
            if self.deleting or runner.exit_code() != 0:
                return
        self.initialized = True
        self.mark_dirty()
        self._tasks = [asyncio.create_task(r.run()) for r in self.main]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.mark_dirty()
        # Every container is done for good (Succeeded/Failed): the address is free again, though the
        # status keeps reporting it, as a real pod's does.
        self._release_ip()

    def _release_ip(self) -> None:
        if self.ip and self.ip != self.kubelet.node_ip and not self._ip_released:
            self._ip_released = True
            self.kubelet.ipam.release(self.ip)

    def update(self, pod: Obj) -> None:
        self.pod = pod
        # An in-place resize (pods/resize) changes the containers' resources in the spec.
        by_name = {c.get("name"): c for c in pod["spec"].get("containers", [])}
        for runner in self.main:
            if runner.name in by_name:
                runner.resize(dict(by_name[runner.name].get("resources") or {}))
        if pod["metadata"].get("deletionTimestamp") and not self.deleting:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            self.deleting = True
            self.kubelet.spawn(self._delete(float(grace if grace is not None else self.grace_period())))

    def grace_period(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    async def _stop_containers(self, grace: float) -> None:
        runners = [*self.init, *self.main]
        await asyncio.gather(*(r.stop(grace) for r in runners), return_exceptions=True)
        if self._main_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._main_task, 10.0)

    async def _delete(self, grace: float) -> None:
        log.info("%s/%s: deleting (grace %.0f s)", self.ns, self.name, grace)
        await self._stop_containers(grace)
        self.mark_dirty()
        await self._flush()
        with contextlib.suppress(ApiError):
            await self.kubelet.api.delete(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        await self._finish()

    async def kill_now(self) -> None:
        """The pod is gone from the apiserver (force-deleted): stop everything at once."""
        self.gone = True
        self.deleting = True
        await self._stop_containers(0.0)
        await self._finish()

    async def _finish(self) -> None:
        if self.done.is_set():
            return
        self.gone = True
        if self._writer is not None:
            self._writer.cancel()
        self._release_ip()
        self.done.set()
        self.kubelet.forget(self)

    # ---- env ----------------------------------------------------------------------------------------
    async def container_env(self, container: Obj, program: Program) -> dict[str, str]:
        pod = _with_status(self.pod, self.ip, self.kubelet.node_ip)
        env = await resolve_env(pod, container, self.kubelet.fetch_for(self.ns), self.kubelet.allocatable)
        extra = dict(program.env)
        ports = container.get("ports", [])
        if program.listen_env and program.listen_env not in env and ports:
            extra[program.listen_env] = f"{self.ip}:{ports[0]['containerPort']}"
        extra.update(await self.kubelet.service_account_env(self))
        if program.container_file_env:
            extra[program.container_file_env] = str(self._container_file(pod, container, env))
        return {**extra, **env}

    def _container_file(self, pod: Obj, container: Obj, env: dict[str, str]) -> Path:
        """The pod (with its IP), the container's spec and its resolved env, for a program that runs
        the container in a runtime of its own (Program.container_file_env)."""
        path = self.dir / container["name"] / "container.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pod": pod, "container": container, "env": env}))
        return path

    # ---- events -------------------------------------------------------------------------------------
    def event(
        self, reason: str, message: str, *, warning: bool = False, container: str | None = None
    ) -> None:
        self.kubelet.event(self, reason, message, warning=warning, container=container)

    # ---- status -------------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty.set()

    def _condition(self, kind: str, ok: bool) -> Obj:
        status = "True" if ok else "False"
        prev = self._cond_times.get(kind)
        if prev is None or prev[0] != status:
            self._cond_times[kind] = (status, api_timestamp())
        return {
            "type": kind,
            "status": status,
            "lastTransitionTime": self._cond_times[kind][1],
            "lastProbeTime": None,
        }

    def status(self) -> Obj:
        phase = pod_phase(self.init, self.main, self.initialized, self.restart_policy)
        ready = phase == "Running" and all(r.ready for r in self.main)
        conditions = [
            self._condition("PodReadyToStartContainers", self.ip is not None),
            self._condition("Initialized", self.initialized),
            self._condition("Ready", ready),
            self._condition("ContainersReady", ready),
        ]
        conditions += [
            c for c in self.pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"
        ]
        st: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.kubelet.node_ip,
            "hostIPs": [{"ip": self.kubelet.node_ip}],
            "startTime": self.start_time,
            "containerStatuses": [r.status() for r in self.main],
        }
        if self.init:
            st["initContainerStatuses"] = [r.status() for r in self.init]
        if self.ip:
            st["podIP"] = self.ip
            st["podIPs"] = [{"ip": self.ip}]
        return st

    async def _status_writer(self) -> None:
        while not self.gone:
            await self._dirty.wait()
            self._dirty.clear()
            await self._push()
            await asyncio.sleep(0.05)  # coalesce bursts of changes into one PATCH

    async def _flush(self) -> None:
        self._dirty.clear()
        await self._push()

    async def _push(self) -> None:
        status = self.status()
        if status == self._last_pushed:
            return
        path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status"
        try:
            await self.kubelet.api.merge_patch(path, {"metadata": {"uid": self.uid}, "status": status})
            self._last_pushed = status
        except ApiError as e:
            if e.status in (404, 409):
                return  # gone or replaced by a pod of the same name: the watch will tell
            log.warning("%s/%s: status update failed: %s", self.ns, self.name, e)
            self.mark_dirty()
        except Exception as e:  # network hiccup: retry on the next round
            log.warning("%s/%s: status update failed: %s", self.ns, self.name, e)
            self.mark_dirty()
            await asyncio.sleep(0.5)


def _with_status(pod: Obj, ip: str | None, host_ip: str) -> Obj:
    # Env fieldRefs to status.podIP must see the IP even before the apiserver echoes it back.
    status = {**pod.get("status", {}), "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    return {**pod, "status": status}

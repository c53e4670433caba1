"""One container of a pod, run as a real process: resolve its image and env, start it in its own process
group with stdout/stderr piped into its log, probe it, restart it as the pod's restartPolicy says, and
stop it with SIGTERM then SIGKILL.

The runner sees its pod only through PodServices, a protocol that PodWorker (pods.py) implements:
pods.py builds on this module, so this module does not import it."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from e2e.kubelet.clock import api_timestamp
from e2e.kubelet.envres import EnvError
from e2e.kubelet.images import Program, UnknownImageError
from e2e.kubelet.logs import ContainerLog
from e2e.kubelet.memcg import MemoryCgroup, cgroup_root
from e2e.kubelet.probes import ProbeSpec, run_probe
from e2e.kubelet.quantity import parse_quantity

__all__ = ["BACKOFF_MAX_S", "ContainerRunner", "ImageSource", "PodServices", "backoff_delay"]

Obj = dict[str, Any]
log = logging.getLogger("kubelet.runner")

# Shorter than a real kubelet's 10 s..5 min so that crash-loop tests stay quick; same doubling shape.
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 20.0
_BACKOFF_RESET_S = 30.0
_PR_SET_PDEATHSIG = 1
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _die_with_kubelet() -> None:
    # A container must not outlive its kubelet, however the kubelet ends.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ImageSource(Protocol):
    """Where a container's image comes from: the kubelet's image table (Kubelet implements it)."""

    async def resolve_image(self, image: str) -> Program: ...


class PodServices(Protocol):
    """What a container runner uses of its pod (PodWorker implements it)."""

    name: str
    ns: str
    uid: str
    dir: Path
    ip: str | None
    restart_policy: str

    # Read-only, so a pod holding a fuller node interface (pods.NodeServices) still matches.
    @property
    def kubelet(self) -> ImageSource: ...

    def mark_dirty(self) -> None: ...

    def grace_period(self) -> float: ...

    def event(
        self, reason: str, message: str, *, warning: bool = False, container: str | None = None
    ) -> None: ...

    async def container_env(self, container: Obj, program: Program) -> dict[str, str]: ...


class ContainerRunner:
    def __init__(self, worker: PodServices, spec: Obj, *, init: bool = False) -> None:
        self.worker = worker
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.ready = False
        self.started = False
        self.container_id = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.runs: list[ContainerLog] = []
        self.stopping = False
        self.finished = False  # no more runs will follow (exited under the restart policy, or stopped)
        self._wake = asyncio.Event()
        self._liveness_failed = False
        self.memcg: MemoryCgroup | None = None  # the running process's, for an in-place resize
        # The resources in force (status.containerStatuses[].resources); a resize changes them.
        self.resources: Obj = dict(spec.get("resources") or {})

    # ---- status -------------------------------------------------------------------------------------
    def status(self) -> Obj:
        st: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.spec.get("image", ""),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            st["containerID"] = self.container_id
        if self.resources:
            st["resources"] = self.resources
        return st

    def resize(self, resources: Obj) -> None:
        """The pod's spec holds other resources (the pods/resize subresource): put them in force on
        the running process, as the kubelet does, and report them in the container's status. A
        memory limit the kernel refuses (usage above it) stays as it was, and so does the status."""
        if resources == self.resources:
            return
        limit = (resources.get("limits") or {}).get("memory")
        if limit is not None and self.memcg is not None and self.memcg.path.exists():
            try:
                self.memcg.set_limit(int(parse_quantity(limit)))
            except OSError as e:
                log.warning(
                    "%s/%s: resize of %s to %s deferred: %s",
                    self.worker.ns,
                    self.worker.name,
                    self.name,
                    limit,
                    e,
                )
                return
        log.info("%s/%s: %s resized in place: %s", self.worker.ns, self.worker.name, self.name, resources)
        self.resources = dict(resources)
        self.spec = {**self.spec, "resources": resources}
        self.worker.mark_dirty()

    def never_ran(self) -> bool:
        return not self.runs

    def exit_code(self) -> int | None:
        term = self.state.get("terminated")
        return None if term is None else int(term["exitCode"])

    def _set(self, state: Obj) -> None:
        self.state = state
        self.worker.mark_dirty()

    def _waiting(self, reason: str, message: str, event: str | None = None) -> None:
        """Wait in `reason`; a Warning event is posted once per distinct message, not on every retry."""
        if event is not None and self.state.get("waiting", {}).get("message") != message:
            self.worker.event("Failed", event, warning=True, container=self.name)
        self._set({"waiting": {"reason": reason, "message": message}})

    # ---- main loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        crashes = 0
        try:
            while not self.stopping:
                prepared = await self._prepare()
                if prepared is None:
                    continue  # waiting state set, retry after a pause (or stopping)
                argv, env = prepared
                start = time.monotonic()
                code = await self._run_once(argv, env)
                if self.stopping or not self._should_restart(code):
                    break
                if time.monotonic() - start > _BACKOFF_RESET_S:
                    crashes = 0
                backoff = backoff_delay(crashes)
                crashes += 1
                if backoff > 0:
                    self._waiting(
                        "CrashLoopBackOff",
                        f"back-off {backoff:.0f}s restarting failed container={self.name} "
                        f"pod={self.worker.name}_{self.worker.ns}({self.worker.uid})",
                    )
                    self.worker.event(
                        "BackOff",
                        f"Back-off restarting failed container {self.name}",
                        warning=True,
                        container=self.name,
                    )
                    await self._sleep(backoff)
                if not self.stopping:
                    self.restart_count += 1
        except Exception as e:
            # A bug here must show on the pod, not vanish with an unobserved task.
            log.exception("%s/%s: container %s failed", self.worker.ns, self.worker.name, self.name)
            self._waiting("RunContainerError", f"test kubelet error: {type(e).__name__}: {e}")
            raise
        finally:
            self.finished = True
            self.worker.mark_dirty()

    def _should_restart(self, code: int) -> bool:
        policy = self.worker.restart_policy
        if self.init:
            # An init container that failed is retried unless the pod never restarts anything.
            return code != 0 and policy != "Never"
        if policy == "Always":
            return True
        return policy == "OnFailure" and code != 0

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the container is being stopped (a back-off can be 20 s)."""
        if self.stopping:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _prepare(self) -> tuple[list[str], dict[str, str]] | None:
        image = self.spec.get("image", "")
        try:
            program = await self.worker.kubelet.resolve_image(image)
        except UnknownImageError as e:
            self._waiting("ErrImagePull", str(e), event=f"Failed to pull image {image!r}: {e}")
            await self._sleep(5.0)
            return None
        except Exception as e:  # a failed build of the mapped program is an image pull failure too
            self._waiting("ErrImagePull", f"building the program for image {image!r} failed: {e}")
            await self._sleep(5.0)
            return None
        try:
            env = await self.worker.container_env(self.spec, program)
        except EnvError as e:
            self._waiting("CreateContainerConfigError", str(e), event=f"Error: {e}")
            await self._sleep(1.0)
            return None
        return self._argv(program), env

    def _memory_cgroup(self) -> MemoryCgroup | None:
        """A memory cgroup with the container's limits.memory, where the host allows one."""
        limit = ((self.spec.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            return None
        root = cgroup_root()
        if root is None:
            log.warning(
                "%s/%s: limits.memory %s not enforced (no writable cgroup v1 memory)",
                self.worker.ns,
                self.worker.name,
                limit,
            )
            return None
        return MemoryCgroup(root, int(parse_quantity(limit)))

    def _argv(self, program: Program) -> list[str]:
        return [*program.argv, *self.spec.get("command", []), *self.spec.get("args", [])]

    async def _run_once(self, argv: list[str], env: dict[str, str]) -> int:
        run_log = ContainerLog(self.worker.dir / self.name / f"{self.restart_count}.log")
        self.runs.append(run_log)
        self.container_id = f"gctuner://{uuid.uuid4().hex}"
        base_env = {"PATH": _BASE_PATH, "HOME": str(self.worker.dir), "HOSTNAME": self.worker.name}
        memcg = self.memcg = self._memory_cgroup()

        def preexec() -> None:
            _die_with_kubelet()
            if memcg is not None:
                memcg.join_self()

        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**base_env, **env},
                cwd=str(self.worker.dir),
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as e:
            run_log.close()
            if memcg is not None:
                memcg.remove()
            message = f"failed to start {argv[0]!r}: {e}"
            self._set(
                {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": message,
                        "startedAt": api_timestamp(),
                        "finishedAt": api_timestamp(),
                        "containerID": self.container_id,
                    }
                }
            )
            self.worker.event("Failed", message, warning=True, container=self.name)
            return 128
        self.proc = proc
        if self.stopping:
            _killpg(proc.pid, signal.SIGKILL)
        started_at = api_timestamp()
        log.info(
            "%s/%s: started %s (pid %d): %s",
            self.worker.ns,
            self.worker.name,
            self.name,
            proc.pid,
            " ".join(argv),
        )
        self._liveness_failed = False
        self.ready = False
        self.started = "startupProbe" not in self.spec
        self._set({"running": {"startedAt": started_at}})
        self.worker.event("Started", f"Started container {self.name}", container=self.name)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(_pump(proc.stdout, lambda d: run_log.write("stdout", d))),
            asyncio.create_task(_pump(proc.stderr, lambda d: run_log.write("stderr", d))),
        ]
        probes = asyncio.create_task(self._probe_loop(proc))
        rc = await proc.wait()
        probes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probes
        # A grandchild that inherited the pipes must not keep the log open forever.
        _done, pending = await asyncio.wait(pumps, timeout=2.0)
        for task in pending:
            task.cancel()
        run_log.close()
        code = 128 - rc if rc < 0 else rc
        self.ready = False
        # The kernel's OOM killer ended it inside its memory limit: what the real kubelet reports.
        oom = memcg is not None and rc == -signal.SIGKILL and memcg.oom_killed()
        if memcg is not None:
            memcg.remove()
        term: Obj = {
            "exitCode": code,
            "reason": "OOMKilled" if oom else ("Completed" if code == 0 else "Error"),
            "startedAt": started_at,
            "finishedAt": api_timestamp(),
            "containerID": self.container_id,
        }
        if rc < 0:
            term["signal"] = -rc
        self.last_state = {"terminated": term}
        self._set({"terminated": term})
        log.info("%s/%s: %s exited with %d", self.worker.ns, self.worker.name, self.name, code)
        return code

    # ---- probes -------------------------------------------------------------------------------------
    async def _probe_loop(self, proc: asyncio.subprocess.Process) -> None:
        startup = self.spec.get("startupProbe")
        if startup:
            if not await self._startup(ProbeSpec.parse(startup), proc):
                return
            self.started = True
            self.worker.mark_dirty()
        tasks = []
        readiness = self.spec.get("readinessProbe")
        if readiness is None:
            self.ready = not self.init
            self.worker.mark_dirty()
        else:
            tasks.append(asyncio.create_task(self._readiness(ProbeSpec.parse(readiness))))
        liveness = self.spec.get("livenessProbe")
        if liveness is not None:
            tasks.append(asyncio.create_task(self._liveness(ProbeSpec.parse(liveness), proc)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _startup(self, spec: ProbeSpec, proc: asyncio.subprocess.Process) -> bool:
        """Probe until the startup probe passes (True) or fails failureThreshold times in a row: then
        the container is killed, to be restarted per the restart policy, as a kubelet does (False)."""
        await asyncio.sleep(spec.initial_delay)
        fails = 0
        while True:
            result = await run_probe(spec, self.spec, self.worker.ip or "127.0.0.1")
            if result.ok:
                return True
            fails += 1
            if fails >= spec.failure_threshold:
                self.worker.event(
                    "Unhealthy", f"Startup probe failed: {result.message}", warning=True, container=self.name
                )
                await self._terminate(proc, self.worker.grace_period())
                return False
            await asyncio.sleep(spec.period)

    async def _readiness(self, spec: ProbeSpec) -> None:
        await asyncio.sleep(spec.initial_delay)
        ok_streak = fail_streak = 0
        while True:
            result = await run_probe(spec, self.spec, self.worker.ip or "127.0.0.1")
            if result.ok:
                ok_streak, fail_streak = ok_streak + 1, 0
                if not self.ready and ok_streak >= spec.success_threshold:
                    self.ready = True
                    self.worker.mark_dirty()
            else:
                ok_streak, fail_streak = 0, fail_streak + 1
                if fail_streak == 1 or fail_streak % 10 == 0:
                    self.worker.event(
                        "Unhealthy",
                        f"Readiness probe failed: {result.message}",
                        warning=True,
                        container=self.name,
                    )
                if self.ready and fail_streak >= spec.failure_threshold:
                    self.ready = False
                    self.worker.mark_dirty()
            await asyncio.sleep(spec.period)

    async def _liveness(self, spec: ProbeSpec, proc: asyncio.subprocess.Process) -> None:
        await asyncio.sleep(spec.initial_delay)
        fails = 0
        while True:
            result = await run_probe(spec, self.spec, self.worker.ip or "127.0.0.1")
            fails = 0 if result.ok else fails + 1
            if fails >= spec.failure_threshold:
                self.worker.event(
                    "Unhealthy", f"Liveness probe failed: {result.message}", warning=True, container=self.name
                )
                self.worker.event(
                    "Killing",
                    f"Container {self.name} failed liveness probe, will be restarted",
                    container=self.name,
                )
                self._liveness_failed = True
                await self._terminate(proc, self.worker.grace_period())
                return
            await asyncio.sleep(spec.period)

    # ---- stopping -----------------------------------------------------------------------------------
    async def _terminate(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        if proc.returncode is not None:
            return
        _killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            _killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def stop(self, grace: float, task: Awaitable[None] | None = None) -> None:
        """Stop for good: no restart follows. SIGTERM, then SIGKILL after `grace` seconds."""
        self.stopping = True
        self._wake.set()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            self.worker.event("Killing", f"Stopping container {self.name}", container=self.name)
            await self._terminate(proc, grace)
        if task is not None:
            await task


async def _pump(stream: asyncio.StreamReader, sink: Callable[[bytes], None]) -> None:
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        sink(chunk)


def backoff_delay(crashes: int) -> float:
    """Like a kubelet: the first restart is immediate, then the delay doubles up to the cap."""
    return 0.0 if crashes == 0 else min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (crashes - 1))

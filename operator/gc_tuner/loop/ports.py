"""The small protocols behind which the loop's I/O sits, so the operator, `local` and tests plug in.

CycleIO
├── http      a shared httpx.AsyncClient (pods' agents, /metrics, /debug/vars, Prometheus)
├── env       EnvActuator: patch / restore the target's env (the operator; None locally)
├── canary    CanaryActuator: the EnvPatch canary Deployment (the operator; None locally)
├── logs      LogReader: a container's recent log lines (pods/log; None locally)
├── metrics   LoopMetrics: counters and timings (prometheus_client in the operator)
└── clock     wall-clock seconds (persisted in status, so not monotonic)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from gc_tuner.actuation.envpatch import EnvPlan
from gc_tuner.model.policy_status import AppliedNote

__all__ = ["CanaryActuator", "CycleIO", "EnvActuator", "LogReader", "LoopMetrics", "NullMetrics"]


class EnvActuator(Protocol):
    async def read(self) -> Mapping[str, Any] | None:
        """The target workload as the apiserver has it now (managedFields included); None if gone."""
        ...

    async def patch(self, desired: Mapping[str, str], note: AppliedNote) -> EnvPlan:
        """Set `desired` (GOGC/GOMEMLIMIT -> value) in the target container's env; the plan done."""
        ...

    async def restore(self) -> EnvPlan | None:
        """Put back the env recorded before gc-tuner's first change; None if nothing was recorded."""
        ...


class CanaryActuator(Protocol):
    async def ensure(self, env: Mapping[str, str], replicas: int) -> str:
        """Make the canary Deployment run `env` on `replicas` pods; what was done ("created",
        "running", "replaced", "waiting" while an old one is being deleted)."""
        ...

    async def remove(self) -> bool:
        """Delete the canary Deployment; False when there was none."""
        ...


class LogReader(Protocol):
    async def read(
        self,
        pod: str,
        container: str | None,
        *,
        since_seconds: int,
        tail_lines: int,
        max_bytes: int,
        previous: bool = False,
    ) -> Sequence[str]:
        """The lines (`previous`: of the container's run before its last restart);
        ResponseTooLargeError when they hold more than `max_bytes`."""
        ...


class LoopMetrics(Protocol):
    def sample(self, source: str) -> None: ...
    def sample_error(self, source: str, reason: str) -> None: ...
    def fit_duration(self, seconds: float) -> None: ...
    def decision(self, outcome: str) -> None: ...
    def applied_change(self, method: str) -> None: ...
    def gogc(self, namespace: str, policy: str, *, recommended: int | None, applied: int | None) -> None: ...
    def guard_verdict(self, namespace: str, policy: str, verdict: str, reason: str) -> None: ...


class NullMetrics:
    def sample(self, source: str) -> None:
        pass

    def sample_error(self, source: str, reason: str) -> None:
        pass

    def fit_duration(self, seconds: float) -> None:
        pass

    def decision(self, outcome: str) -> None:
        pass

    def applied_change(self, method: str) -> None:
        pass

    def gogc(self, namespace: str, policy: str, *, recommended: int | None, applied: int | None) -> None:
        pass

    def guard_verdict(self, namespace: str, policy: str, verdict: str, reason: str) -> None:
        pass


@dataclass
class CycleIO:
    http: httpx.AsyncClient
    env: EnvActuator | None = None
    canary: CanaryActuator | None = None
    logs: LogReader | None = None
    metrics: LoopMetrics = field(default_factory=NullMetrics)
    clock: Callable[[], float] = time.time

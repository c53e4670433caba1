"""The records one tuning cycle passes between its steps (tuning/outcome.py composes them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from gc_tuner.input.agent_doc import AgentStatus
from gc_tuner.model.policy_status import ConditionStatus
from gc_tuner.model.sample import GCCycle, RuntimeSample

__all__ = [
    "FALSE",
    "TRUE",
    "UNKNOWN",
    "AppliedState",
    "DecisionInfo",
    "FitSummary",
    "GCTraceSummary",
    "LoopEvent",
    "PodFailure",
    "PodFit",
    "PodReading",
    "PodTarget",
    "Verdict",
    "parse_rfc3339",
    "rfc3339",
]


def rfc3339(t: float) -> str:
    """Unix seconds as the Kubernetes timestamp format (UTC, whole seconds)."""
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float | None:
    try:
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class PodTarget:
    """One process to sample (a pod, or a URL given to `gc-tuner local`).

    `port` replaces every port of the policy when set: `gc-tuner local --target http://h:8080`
    reaches every source of a process that serves them all on one port.
    """

    name: str
    host: str
    ready: bool = True
    scheme: str = "http"
    port: int | None = None
    restart_count: int = 0
    memory_limit: str | None = None  # the target container's resources.limits.memory
    last_termination: str | None = None  # why the container last ended (OOMKilled, Error), if it did
    container: str | None = None  # the tuned container (its logs, restarts, limit); None locally
    canary: bool = False  # a pod of the policy's EnvPatch canary Deployment (tuning/safety.py)

    def url(self, port: int, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port or port}{path}"

    def base_url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port or port}"


@dataclass(frozen=True, slots=True)
class PodFailure:
    pod: str
    source: str  # agent | expvar | prometheus | gctrace | qps | apply | release
    reason: str  # CamelCase
    message: str


@dataclass(frozen=True, slots=True)
class PodReading:
    """What the gather step read from one pod this cycle, and what the pod's state is to remember."""

    pod: PodTarget
    sample: RuntimeSample | None = None  # every source's document merged into one
    agent: AgentStatus | None = None  # the agent's own state (its lease, the values in force)
    cycles: tuple[GCCycle, ...] = ()  # gctrace cycles not seen before
    failures: tuple[PodFailure, ...] = ()
    sources_ok: tuple[str, ...] = ()
    expvar: RuntimeSample | None = None  # the expvar document, for its PauseNs ring next cycle
    last_gc_n: int | None = None  # the newest gctrace cycle number read
    previous_read: bool = False  # the log of the run before a restart was read (its last cycles)

    @property
    def sampled(self) -> bool:
        return self.sample is not None or bool(self.cycles)


@dataclass(frozen=True, slots=True)
class PodFit:
    """One pod's fitted rates this cycle (None: not enough data, see `note`)."""

    pod: str
    qps: float | None
    heap_slope_mb_per_s: float | None
    r2: float | None
    samples: int
    note: str = ""
    sample: RuntimeSample | None = None  # the newest merged sample
    heap_span_s: float | None = None  # seconds the heap-slope fit spans (Budget's "sustained" test)


@dataclass(frozen=True, slots=True)
class FitSummary:
    """The Deployment's fit: the median over pods of each pod's fit."""

    qps: float | None
    qps_source: str
    heap_slope_mb_per_s: float | None
    r2: float | None
    samples: int
    pods: int
    window_s: float
    insufficient: str | None = None  # why there is no recommendation yet

    @property
    def complete(self) -> bool:
        return self.qps is not None and self.heap_slope_mb_per_s is not None


@dataclass(frozen=True, slots=True)
class DecisionInfo:
    action: Literal["apply", "hold"]
    gogc: int
    code: str
    reason: str
    current: int | None = None  # the GOGC the decision started from


@dataclass(frozen=True, slots=True)
class AppliedState:
    """Values gc-tuner put in force, and when (unix seconds)."""

    gogc: int | None
    gomemlimit: str | None
    method: str
    time: float
    pods: int = 0


@dataclass(frozen=True, slots=True)
class GCTraceSummary:
    cycles: int
    stw_p99_ms: float | None
    effective_gogc_median: float | None
    pods: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """A condition's value as the loop sees it."""

    status: ConditionStatus
    reason: str
    message: str = ""

    def __post_init__(self) -> None:
        # Callers may spell the status as the API does ("True"); it is kept as the enum.
        object.__setattr__(self, "status", ConditionStatus(self.status))

    @property
    def true(self) -> bool:
        return self.status is ConditionStatus.TRUE


TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class LoopEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str

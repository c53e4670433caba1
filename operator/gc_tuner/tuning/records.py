"""The records one tuning cycle passes between its steps, and to whoever runs it (operator, local, demo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from gc_tuner.model.sample import RuntimeSample

__all__ = [
    "AppliedState",
    "CycleOutcome",
    "DecisionInfo",
    "FitSummary",
    "GCTraceSummary",
    "LoopEvent",
    "PodFailure",
    "PodFit",
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

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class LoopEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(slots=True)
class CycleOutcome:
    """Everything one cycle found out; `status.build_status` turns it into the status document."""

    time: float
    mode: str  # the spec's mode
    method: str
    kill_switch: bool = False
    target_error: Verdict | None = None  # the Deployment or its container cannot be found
    pods_matched: int = 0
    pods_ready: int = 0
    pods_sampled: int = 0
    failures: list[PodFailure] = field(default_factory=list)
    pod_fits: list[PodFit] = field(default_factory=list)
    fit: FitSummary | None = None
    recommendation_gogc: int | None = None
    recommendation_explanation: str = ""
    recommendation_strategy: str = ""
    recommendation_inputs: dict[str, float | int] = field(default_factory=dict)
    gomemlimit: str | None = None
    gomemlimit_note: str = ""
    decision: DecisionInfo | None = None
    applied: AppliedState | None = None
    apply_verdict: Verdict | None = None
    leak: Verdict = field(default_factory=lambda: Verdict("Unknown", "InsufficientData"))
    gctrace: GCTraceSummary | None = None
    events: list[LoopEvent] = field(default_factory=list)

    @property
    def enforcing(self) -> bool:
        return self.mode == "Enforce" and not self.kill_switch

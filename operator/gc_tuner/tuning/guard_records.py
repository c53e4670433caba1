"""The guard's records: a trial, a rollback, the history and the back-offs, and what one guard step
decided. tuning/safety.py makes them; tuning/safety_status.py writes them to status and reads them back."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gc_tuner.logic.verdict import GuardVerdict
from gc_tuner.tuning.guard_signals import SignalLog
from gc_tuner.tuning.records import AppliedState, DecisionInfo, LoopEvent

__all__ = [
    "HISTORY_LIMIT",
    "Action",
    "Backoff",
    "GuardMemory",
    "HistoryEntry",
    "RollbackRecord",
    "SafetyState",
    "SafetyStep",
    "Trial",
]

HISTORY_LIMIT = 10

Action = Literal["pass", "start", "hold", "promote", "rollback"]


@dataclass(frozen=True, slots=True)
class Trial:
    candidate: AppliedState  # the value under evaluation; `time` is when it was first written
    good: AppliedState | None  # the value the others keep; None: their startup values
    canary: tuple[str, ...]  # the pods that got the candidate
    before_after: bool  # every pod got it; judged against the windows before `started_at`
    started_at: float  # the evaluation's start (a restart of the operator starts it again)
    until: float  # the earliest promotion
    restarts: tuple[tuple[str, int], ...] = ()  # the canary pods' restart counts at the start
    was_gogc: int | None = None  # the GOGC the pods ran before (for the cost model's expectation)
    resumed: bool = False  # restored from status after a restart: its windows are gone
    deployment: bool = False  # EnvPatch: the canary is a second Deployment of `replicas` pods
    replicas: int = 0
    ready_at: float | None = None  # EnvPatch: when the first canary pod was seen ready
    memory_safe: bool = False  # the change can only lower memory use (lowers_memory_only)


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    time: float
    gogc: int | None  # the value rolled back
    gomemlimit: str | None
    restored_gogc: int | None  # the value put back (None: the startup value)
    reason: str  # a signal's name, or PodRestarted / NoVerdict
    message: str
    p_value: float | None = None
    changed: float | None = None
    baseline: float | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    time: float
    from_gogc: int | None
    to_gogc: int | None
    reason: str
    verdict: str  # Canary, Promoted, RolledBack, Preempted, Applied


@dataclass(frozen=True, slots=True)
class Backoff:
    gogc: int | None
    until: float
    gomemlimit: str | None = None


@dataclass(slots=True)
class SafetyState:
    log: SignalLog
    trial: Trial | None = None
    backoff: list[Backoff] = field(default_factory=list)
    history: deque[HistoryEntry] = field(default_factory=lambda: deque(maxlen=HISTORY_LIMIT))
    last_rollback: RollbackRecord | None = None
    phase: str = "Steady"


@dataclass(frozen=True, slots=True)
class GuardMemory:
    """What the guard remembers after a step, frozen for status (tuning/safety_status.py)."""

    backoff: tuple[Backoff, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    last_rollback: RollbackRecord | None = None


@dataclass(frozen=True, slots=True)
class SafetyStep:
    """What the guard makes of this cycle: the decision the plan step sees, the pods' values while a
    trial runs (`split`; None: every ready pod gets the applied value), and what to remember."""

    action: Action
    decision: DecisionInfo | None
    trial: Trial | None
    phase: str
    split: Mapping[str, AppliedState | None] | None = None
    promoted: AppliedState | None = None
    rollback: RollbackRecord | None = None
    backoff: Backoff | None = None
    history: HistoryEntry | None = None
    verdict: GuardVerdict | None = None
    events: tuple[LoopEvent, ...] = ()
    memory: GuardMemory | None = None  # set by `guard` once the step is remembered

    @property
    def canary_deployment(self) -> Trial | None:
        """The trial whose canary Deployment must exist after this step (EnvPatch), if any."""
        return self.trial if self.trial is not None and self.trial.deployment else None

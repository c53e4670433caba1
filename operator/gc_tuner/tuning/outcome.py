"""What one cycle found out: the step results, each frozen, composed into one CycleOutcome.

    Gathered        gather      every pod's reading, the PromQL QPS, the failures of reading
    Fitted          fit         per-pod fits, the Deployment's median, the leak verdict, gctrace
    Recommendation  recommend   the strategy's GOGC (tuning/strategies.py)
    DecisionInfo    decide      apply or hold, and why (tuning/decide.py)
    SafetyStep      guard       the canary trial: start, judge, promote, roll back (tuning/safety.py)
    ApplyPlan       plan        the writes and the applied state they lead to (tuning/rollout.py)
    ApplyResult     apply       what the writes achieved, and the Applied verdict

No step writes into another step's record; the properties below only read them, for the status
(tuning/conditions.py), the CLI and the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.tuning.guard_records import SafetyStep
from gc_tuner.tuning.records import (
    UNKNOWN,
    AppliedState,
    DecisionInfo,
    FitSummary,
    GCTraceSummary,
    LoopEvent,
    PodFailure,
    PodFit,
    PodReading,
    Verdict,
)
from gc_tuner.tuning.rollout import ApplyPlan, ApplyResult
from gc_tuner.tuning.strategies import MemoryLimitTarget, Recommendation

__all__ = ["CycleOutcome", "Fitted", "Gathered"]


@dataclass(frozen=True, slots=True)
class Gathered:
    """The gather step: what every matched pod (and the PromQL source) answered this cycle."""

    pods_matched: int = 0
    pods_ready: int = 0
    readings: tuple[PodReading, ...] = ()
    promql: Mapping[str, float] = field(default_factory=dict)  # pod -> QPS from the policy's query
    failures: tuple[PodFailure, ...] = ()  # every pod's, then the PromQL query's

    @property
    def pods_sampled(self) -> int:
        return sum(1 for r in self.readings if r.sampled)


@dataclass(frozen=True, slots=True)
class Fitted:
    """The fit step: each pod's rates and the Deployment's median, over the windows."""

    pod_fits: tuple[PodFit, ...]
    summary: FitSummary
    leak: Verdict
    gctrace: GCTraceSummary | None = None
    screened: tuple[PodFailure, ...] = ()  # pods whose heap figures were left out (tuning/screening.py)


_NO_LEAK_DATA = Verdict(UNKNOWN, "InsufficientData")


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """Everything one cycle found out; `conditions.build_status` turns it into the status document."""

    time: float
    mode: str  # the spec's mode
    method: str
    kill_switch: bool = False
    target_error: Verdict | None = None  # the Deployment or its container cannot be found
    gathered: Gathered = field(default_factory=Gathered)
    fitted: Fitted | None = None
    memory: MemoryLimitTarget | None = None
    recommendation: Recommendation | None = None
    not_recommended: str | None = None  # why the strategy could not recommend from a complete fit
    decision: DecisionInfo | None = None
    guard: SafetyStep | None = None  # Enforce: the guard's step (tuning/safety.py)
    gc_cpu_window: float | None = None  # the worst pod's GC CPU share over its latest window
    plan: ApplyPlan | None = None
    result: ApplyResult | None = None
    failures: tuple[PodFailure, ...] = ()  # every step's, in step order
    posted: tuple[LoopEvent, ...] = ()  # the Events this cycle posts, in order

    @property
    def events(self) -> list[LoopEvent]:
        return list(self.posted)

    @property
    def enforcing(self) -> bool:
        return self.mode == "Enforce" and not self.kill_switch

    @property
    def pods_matched(self) -> int:
        return self.gathered.pods_matched

    @property
    def pods_ready(self) -> int:
        return self.gathered.pods_ready

    @property
    def pods_sampled(self) -> int:
        return self.gathered.pods_sampled

    @property
    def fit(self) -> FitSummary | None:
        return self.fitted.summary if self.fitted is not None else None

    @property
    def pod_fits(self) -> tuple[PodFit, ...]:
        return self.fitted.pod_fits if self.fitted is not None else ()

    @property
    def gctrace(self) -> GCTraceSummary | None:
        return self.fitted.gctrace if self.fitted is not None else None

    @property
    def leak(self) -> Verdict:
        """The strategy's own leak verdict when it has one (Budget), else the fit's."""
        if self.recommendation is not None and self.recommendation.leak is not None:
            return self.recommendation.leak
        return self.fitted.leak if self.fitted is not None else _NO_LEAK_DATA

    @property
    def recommendation_gogc(self) -> int | None:
        return self.recommendation.gogc if self.recommendation is not None else None

    @property
    def recommendation_inputs(self) -> Mapping[str, Any]:
        return self.recommendation.inputs if self.recommendation is not None else {}

    @property
    def gomemlimit(self) -> str | None:
        return self.memory.rendered if self.memory is not None else None

    @property
    def applied(self) -> AppliedState | None:
        return self.result.applied if self.result is not None else None

    @property
    def apply_verdict(self) -> Verdict | None:
        return self.result.verdict if self.result is not None else None

"""What gc-tuner persists about a policy, as typed models: the GCPolicy status and the applied annotation.

Both are read back after an operator restart, and "no duplicate rollout after a restart" depends on
that round trip, so one model owns each document both ways:

    PolicyStatus   the status subresource (tests/model/test_policy_status.py keeps it equal to the CRD)
    AppliedNote    the `gctuner.io/applied` annotation the EnvPatch rollout writes with the env

Strings are cut to the CRD's maxLength on the way in, so a long message can never make the apiserver
reject the whole status patch. Reading is per section and forgiving: a section that does not parse
(a hand edit) is dropped, the others are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "ANNOTATION_APPLIED",
    "AppliedNote",
    "AppliedSection",
    "BackoffEntry",
    "Condition",
    "ConditionStatus",
    "DecisionSection",
    "FitSection",
    "GCTraceSection",
    "GuardValue",
    "HistoryItem",
    "PodFailureEntry",
    "PodsSection",
    "PolicyStatus",
    "RecommendationInputs",
    "RecommendationSection",
    "RollbackSection",
    "RolloutSection",
    "SamplingSection",
]

ANNOTATION_APPLIED = "gctuner.io/applied"
_log = logging.getLogger(__name__)


class ConditionStatus(StrEnum):
    """A condition's status, as the API conventions spell it."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


def _cut(n: int) -> Callable[[Any], Any]:
    def cut(v: Any) -> Any:
        return v[:n] if isinstance(v, str) else v

    return cut


# Strings the CRD bounds at n characters; longer input is cut, not refused.
Text32 = Annotated[str, BeforeValidator(_cut(32)), Field(max_length=32)]
Text64 = Annotated[str, BeforeValidator(_cut(64)), Field(max_length=64)]
Text128 = Annotated[str, BeforeValidator(_cut(128)), Field(max_length=128)]
Text253 = Annotated[str, BeforeValidator(_cut(253)), Field(max_length=253)]
Text512 = Annotated[str, BeforeValidator(_cut(512)), Field(max_length=512)]
Text1024 = Annotated[str, BeforeValidator(_cut(1024)), Field(max_length=1024)]
Text2048 = Annotated[str, BeforeValidator(_cut(2048)), Field(max_length=2048)]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class _Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def doc(self) -> dict[str, Any]:
        """The JSON document as written to the cluster (absent optional fields are left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(_Section):
    type: Text64
    status: ConditionStatus
    reason: Text128
    message: Text2048 = ""
    last_transition_time: Timestamp
    observed_generation: int | None = Field(default=None, ge=0)


class PodFailureEntry(_Section):
    name: Text253
    reason: Text128
    message: Text512


class PodsSection(_Section):
    matched: int
    ready: int
    sampled: int
    failing: int
    failures: list[PodFailureEntry] = Field(default_factory=list, max_length=10)


class FitSection(_Section):
    qps: float
    qps_source: Text32
    heap_slope_mb_per_sec: float = Field(alias="heapSlopeMBPerSec")
    r2: float
    samples: int
    pods: int
    window_seconds: float


class RecommendationInputs(_Section):
    """The strategy's inputs, each named as in docs/strategies; a strategy fills the ones it uses."""

    qps: float | None = None
    heap_slope_mb_per_sec: float | None = Field(default=None, alias="heapSlopeMBPerSec")
    qps_factor: float | None = None
    slope_factor: float | None = None
    uncapped_gogc: float | None = Field(default=None, alias="uncappedGOGC")
    memory_limit_bytes: int | None = None
    live_bytes: int | None = None
    predicted_live_bytes: int | None = None
    stacks_bytes: int | None = None
    globals_bytes: int | None = None
    non_heap_bytes: int | None = None
    budget_bytes: int | None = None
    horizon_seconds: float | None = None
    time_to_budget_seconds: float | None = None
    # Cost (docs/cost.md): Deployment totals, c weighted by allocation, money in `currency` per month.
    alloc_mib_per_sec: float | None = Field(default=None, alias="allocMiBPerSec")
    mark_cpu_ms_per_mib: float | None = Field(default=None, alias="markCPUMsPerMiB")
    live_stacks_globals_bytes: int | None = None
    forecast_qps: float | None = Field(default=None, alias="forecastQPS")
    current_gogc: int | None = Field(default=None, alias="currentGOGC")
    fit_relative_error: float | None = None
    step_share: float | None = None
    budget_cap_gogc: float | None = Field(default=None, alias="budgetCapGOGC")
    predicted_gc_cpu_cores: float | None = Field(default=None, alias="predictedGCCPUCores")
    predicted_heap_overhead_bytes: int | None = None
    predicted_monthly_saving: float | None = None
    currency: Text32 | None = None


class RecommendationSection(_Section):
    gogc: int
    gomemlimit: Text32 | None = None
    strategy: Text32
    explanation: Text1024
    inputs: RecommendationInputs = Field(default_factory=RecommendationInputs)
    time: Timestamp


class DecisionSection(_Section):
    action: Text32
    code: Text64
    reason: Text512
    time: Timestamp


class AppliedSection(_Section):
    gogc: int | None = None
    gomemlimit: Text32 | None = None
    method: Text32
    time: Timestamp
    pods: int = 0


class SamplingSection(_Section):
    interval_seconds: int
    window_seconds: int
    lease_seconds: int | None = None
    message: Text1024 | None = None


class GCTraceSection(_Section):
    cycles: int
    stw_p99_ms: float | None = Field(default=None, alias="stwP99Ms")
    effective_gogc_median: float | None = Field(default=None, alias="effectiveGOGCMedian")
    pods: int


class GuardValue(_Section):
    """A GOGC/GOMEMLIMIT pair the guard tried or kept (None: the pods' startup value)."""

    gogc: int | None = None
    gomemlimit: Text32 | None = None


class BackoffEntry(_Section):
    gogc: int | None = None
    gomemlimit: Text32 | None = None
    until: Timestamp


class RolloutSection(_Section):
    """Safe Enforce's state (tuning/safety.py): the phase, the trial under evaluation, the back-offs."""

    phase: Text32
    candidate: GuardValue | None = None
    last_good: GuardValue | None = None
    was_gogc: int | None = Field(default=None, alias="wasGOGC")
    canary_pods: list[Text253] = Field(default_factory=list, max_length=100)
    before_after: bool = False
    started_at: Timestamp | None = None
    until: Timestamp | None = None
    backoff: list[BackoffEntry] = Field(default_factory=list, max_length=10)
    message: Text1024 | None = None


class RollbackSection(_Section):
    """The last rollback: the value, the signal that condemned it and its numbers."""

    time: Timestamp
    gogc: int | None = None
    gomemlimit: Text32 | None = None
    restored_gogc: int | None = Field(default=None, alias="restoredGOGC")
    reason: Text64
    message: Text1024
    p_value: float | None = None
    changed: float | None = None
    baseline: float | None = None


class HistoryItem(_Section):
    time: Timestamp
    from_gogc: int | None = Field(default=None, alias="fromGOGC")
    to_gogc: int | None = Field(default=None, alias="toGOGC")
    reason: Text64
    verdict: Text32


class PolicyStatus(_Section):
    """The whole status subresource of a GCPolicy."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    pods: PodsSection | None = None
    fit: FitSection | None = None
    recommendation: RecommendationSection | None = None
    decision: DecisionSection | None = None
    applied: AppliedSection | None = None
    sampling: SamplingSection | None = None
    gctrace: GCTraceSection | None = None
    rollout: RolloutSection | None = None
    last_rollback: RollbackSection | None = None
    history: list[HistoryItem] | None = Field(default=None, max_length=10)

    @classmethod
    def read(cls, doc: Mapping[str, Any] | None) -> PolicyStatus:
        """The status as stored, section by section; a section that does not parse is dropped."""
        fields = {f.alias or n: n for n, f in cls.model_fields.items()}
        kept: dict[str, Any] = {}
        for key, value in (doc or {}).items():
            name = fields.get(key)
            if name is None or value is None:
                continue
            try:
                cls.model_validate({key: value})
            except ValidationError as e:
                _log.warning(f"status.{key} is not what gc-tuner writes; ignored: {e.errors()[0]['msg']}")
                continue
            kept[key] = value
        return cls.model_validate(kept)


class AppliedNote(_Section):
    """The `gctuner.io/applied` annotation: what an EnvPatch rollout set, when, and for which policy."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    gogc: int | None = None
    gomemlimit: str | None = None
    time: Timestamp
    policy: str | None = None

    def annotation(self) -> str:
        # Keys sorted and nulls kept: the annotation reads the same whichever writer made it.
        return json.dumps(self.model_dump(by_alias=True, mode="json"), sort_keys=True)

    @classmethod
    def read(cls, raw: str | None) -> AppliedNote | None:
        """The annotation's note, or None when absent or hand-edited into something else."""
        if not raw:
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            return None

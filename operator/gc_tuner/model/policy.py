"""The GCPolicy spec as typed models: the same fields, bounds, defaults and cross-field rules as the CRD.

The apiserver validates and defaults a GCPolicy before the operator sees it, but `gc-tuner local
--policy file.yaml` reads files nobody validated, and the loop wants typed access either way. So the
CRD (crds/gcpolicies.gctuner.io.yaml) and these models state the rules twice, and
tests/model/test_policy.py walks the CRD schema to check that every default, bound and enum agrees.

Field names are the CRD's camelCase via aliases; Python code uses snake_case. No floats in spec:
formula constants are integer milli-units, converted to floats only at the strategy (tuning/strategies.py).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gc_tuner.model.quantity import MAX_INT64, quantity_value
from gc_tuner.net.transport import DEFAULT_MAX_BYTES

__all__ = [
    "FIXED_MAX_BYTES",
    "FIXED_MIN_BYTES",
    "FIXED_QUANTITY_PATTERN",
    "AgentSource",
    "Bounds",
    "BudgetSpec",
    "CanarySpec",
    "CostSpec",
    "CounterQPS",
    "EndpointSpec",
    "ExpvarSource",
    "FormulaSpec",
    "GCPolicySpec",
    "GCTraceSource",
    "GuardSpec",
    "HttpSource",
    "LatencyHistogram",
    "LeakDetection",
    "MemoryLimitSpec",
    "PolicyError",
    "PromQLQPS",
    "PrometheusSource",
    "QPSSpec",
    "RolloutSpec",
    "SamplingSpec",
    "SecretKeyRef",
    "Sources",
    "StrategySpec",
    "TargetRef",
    "parse_policy",
]

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_URL_PATH = r"^/[^\s?#]*$"
_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

# memoryLimit.fixed, stated the same way as the CRD's CEL rules on that field (tests/model/test_policy.py
# reads the three values back out of the CRD):
# - the syntax: a non-negative Kubernetes quantity whose exponent has at most 3 digits. The apiserver's
#   parser truncates an exponent to int32 (`33554432e4294967296` reads as 32Mi), so a longer one is
#   refused rather than read two different ways;
# - at least 32 MiB: the gc-tuner agent refuses a GOMEMLIMIT below that (agent/README.md, WithBounds), so
#   a smaller limit could never be applied, yet status.applied would report it;
# - at most MaxInt64 - 1 bytes: GOMEMLIMIT is an int64 byte count and MaxInt64 itself is Go's "no limit"
#   (GOMEMLIMIT=off). The apiserver caps a binary quantity above MaxInt64 (`16Ei`) to MaxInt64, so the
#   bound must sit below MaxInt64 for the CEL rule to see it.
FIXED_QUANTITY_PATTERN = r"^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,3})?$"
FIXED_MIN_BYTES = 32 << 20
FIXED_MAX_BYTES = MAX_INT64 - 1
_FIXED_QUANTITY = re.compile(FIXED_QUANTITY_PATTERN)
_FIXED_SYNTAX_MESSAGE = (
    "memoryLimit.fixed must be a quantity of bytes, e.g. 900Mi or 2Gi (a number, then Ki, Mi, Gi, Ti, "
    "Pi, Ei, k, M, G, T, P, E or an exponent of at most 3 digits)"
)
_FIXED_MIN_MESSAGE = (
    "memoryLimit.fixed must be at least 32Mi: the gc-tuner agent refuses a GOMEMLIMIT below 32 MiB, "
    "so a smaller limit could never be applied"
)
_FIXED_MAX_MESSAGE = (
    "memoryLimit.fixed must be at most 9223372036854775806 bytes (just under 8Ei): GOMEMLIMIT is an "
    "int64 and its maximum, 9223372036854775807, means no limit"
)
_NANO = 10**9


def _checked_matchers(v: dict[str, str] | None, field: str) -> dict[str, str] | None:
    """Label-equality matchers (qps.counter, guard.latency): Prometheus label names, values ≤ 256."""
    for k, val in (v or {}).items():
        if not re.match(_LABEL_NAME, k):
            raise ValueError(f"{field}.matchers keys must be Prometheus label names, got {k!r}")
        if len(val) > 256:
            raise ValueError(f"{field}.matchers[{k}] is longer than 256 characters")
    return v


def _require_order(low: int, high: int, message: str) -> None:
    """Rejects low > high: a Field bound checks one field alone, never the pair."""
    if low > high:
        raise ValueError(message)


class PolicyError(ValueError):
    """A policy document that is not a valid GCPolicy; the message names every offending field."""


class _Model(BaseModel):
    # strict: no coercion, as the CRD's types allow none. `true` or "15" is not an integer and 15 is not
    # a string; YAML's unquoted 15 is already an int, so hand-written policy files still load.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
        strict=True,
    )


class TargetRef(_Model):
    """The workload whose pods are tuned: those it owns (ownerReferences), never those its labels
    happen to match. `container` names the Go container; without it, the only container, or the
    one container whose ports include a port the policy reads or writes (tuning/containers.py)."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)
    container: str | None = Field(default=None, min_length=1, max_length=63, pattern=_DNS_LABEL)


class SecretKeyRef(_Model):
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)
    key: str = Field(default="token", min_length=1, max_length=253, pattern=_SECRET_KEY)


class EndpointSpec(_Model):
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = Field(default="/debug/gctuner", min_length=1, max_length=256, pattern=_URL_PATH)
    token_secret_ref: SecretKeyRef | None = None


class CanarySpec(_Model):
    """A change goes to `pods` pods first (or `percent` of the ready pods, rounded up, when set), and
    is judged against the untouched pods for `evaluationSeconds`. `pods: 0`: no canary; every pod
    gets the change and is judged against its own window before it. The evaluation lasts at least
    five sampling intervals, the fewest windows a verdict takes (tuning/trial_judgement.py)."""

    pods: int = Field(default=1, ge=0, le=10000)
    percent: int | None = Field(default=None, ge=1, le=100)
    evaluation_seconds: int = Field(default=300, ge=10, le=86400)


class RolloutSpec(_Model):
    method: Literal["Endpoint", "EnvPatch"] = "EnvPatch"
    endpoint: EndpointSpec | None = None
    cooldown_seconds: int = Field(default=300, ge=0, le=86400)
    min_gogc_change: int = Field(default=10, ge=0, le=1000, alias="minGOGCChange")
    lease_seconds: int = Field(default=60, ge=2, le=1800)
    canary: CanarySpec = Field(default_factory=CanarySpec)

    @model_validator(mode="after")
    def _endpoint_port(self) -> RolloutSpec:
        if self.method == "Endpoint" and (self.endpoint is None or self.endpoint.port is None):
            raise ValueError("rollout.endpoint.port is required when rollout.method is Endpoint")
        return self


class HttpSource(_Model):
    port: int = Field(ge=1, le=65535)
    path: str = Field(min_length=1, max_length=256, pattern=_URL_PATH)


class AgentSource(HttpSource):
    path: str = Field(default="/debug/gctuner", min_length=1, max_length=256, pattern=_URL_PATH)
    token_secret_ref: SecretKeyRef | None = None


class ExpvarSource(HttpSource):
    path: str = Field(default="/debug/vars", min_length=1, max_length=256, pattern=_URL_PATH)


class PrometheusSource(HttpSource):
    path: str = Field(default="/metrics", min_length=1, max_length=256, pattern=_URL_PATH)


class GCTraceSource(_Model):
    tail_lines: int = Field(default=2000, ge=10, le=100000)


class Sources(_Model):
    agent: AgentSource | None = None
    expvar: ExpvarSource | None = None
    prometheus: PrometheusSource | None = None
    gctrace: GCTraceSource | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Sources:
        if not any((self.agent, self.expvar, self.prometheus, self.gctrace)):
            raise ValueError("sampling.sources needs at least one of agent, expvar, prometheus, gctrace")
        return self


class SamplingSpec(_Model):
    interval_seconds: int = Field(default=15, ge=1, le=3600)
    window_seconds: int = Field(default=300, ge=3, le=86400)
    timeout_seconds: int = Field(default=5, ge=1, le=60)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    # The transport's own default, so `gc-tuner local` and a policy that omits the field read alike.
    max_response_kib: int = Field(default=DEFAULT_MAX_BYTES >> 10, ge=16, le=65536, alias="maxResponseKiB")
    sources: Sources

    @property
    def max_response_bytes(self) -> int:
        return self.max_response_kib * 1024

    @model_validator(mode="after")
    def _window_holds_three_samples(self) -> SamplingSpec:
        if self.window_seconds < 3 * self.interval_seconds:
            raise ValueError(
                "sampling.windowSeconds must be at least 3 × sampling.intervalSeconds "
                "(a fit needs three samples)"
            )
        return self


class CounterQPS(_Model):
    name: str = Field(min_length=1, max_length=200, pattern=_METRIC_NAME)
    matchers: dict[str, str] | None = Field(default=None, max_length=16)
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = Field(default="/metrics", min_length=1, max_length=256, pattern=_URL_PATH)

    @field_validator("matchers")
    @classmethod
    def _label_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _checked_matchers(v, "qps.counter")


class PromQLQPS(_Model):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")
    query: str = Field(min_length=1, max_length=4096)
    pod_label: str = Field(default="pod", min_length=1, max_length=128, pattern=_LABEL_NAME)


class AgentQPS(_Model):
    """The request counter the application registers with the agent (agent.WithRequestCounter):
    read in the same GET as the runtime figures, so no /metrics request per pod."""


class QPSSpec(_Model):
    counter: CounterQPS | None = None
    promql: PromQLQPS | None = None
    agent: AgentQPS | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> QPSSpec:
        if [self.counter, self.promql, self.agent].count(None) != 2:
            raise ValueError("qps needs exactly one of qps.counter, qps.promql or qps.agent")
        return self


class FormulaSpec(_Model):
    """The article's formula constants in milli-units (see logic/formula.py for the formula)."""

    base_gogc: int = Field(default=100, ge=1, le=10000, alias="baseGOGC")
    qps_pivot_milli: int = Field(default=500_000, ge=0, le=1_000_000_000_000)
    qps_scale_milli: int = Field(default=2_000_000, ge=1, le=1_000_000_000_000)
    qps_factor_min_milli: int = Field(default=500, ge=1, le=100_000)
    qps_factor_max_milli: int = Field(default=2000, ge=1, le=100_000)
    slope_coefficient_milli: int = Field(default=200, ge=0, le=1_000_000)
    slope_factor_min_milli: int = Field(default=300, ge=1, le=1000)

    @model_validator(mode="after")
    def _factor_order(self) -> FormulaSpec:
        _require_order(
            self.qps_factor_min_milli,
            self.qps_factor_max_milli,
            "strategy.formula.qpsFactorMinMilli must be <= qpsFactorMaxMilli",
        )
        return self


class BudgetSpec(_Model):
    """The Budget strategy's knobs (logic/budget.py). The budget is memoryLimit's GOMEMLIMIT."""

    horizon_seconds: int | None = Field(default=None, ge=0, le=86400)  # None: rollout.cooldownSeconds
    min_non_heap_mib: int = Field(default=16, ge=0, le=1_048_576, alias="minNonHeapMiB")
    leak_min_span_seconds: int = Field(default=60, ge=0, le=86400)
    leak_max_time_to_budget_seconds: int = Field(default=3600, ge=0, le=604800)


class CostSpec(_Model):
    """The Cost strategy's prices and knobs (logic/cost_model.py, docs/cost.md). Prices are integer
    milli-units of `currency`; the defaults are AWS Fargate's Linux/x86 on-demand prices in us-east-1
    ($0.04048 per vCPU-hour, $0.004445 per GB-hour), rounded to whole milli-dollars."""

    cpu_per_core_hour_milli: int = Field(default=40, ge=1, le=1_000_000_000)
    memory_per_gib_hour_milli: int = Field(default=4, ge=1, le=1_000_000_000, alias="memoryPerGiBHourMilli")
    currency: str = Field(default="USD", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    horizon_seconds: int | None = Field(default=None, ge=0, le=86400)  # None: rollout.cooldownSeconds
    max_fit_error_percent: int = Field(default=10, ge=1, le=1000)


class StrategySpec(_Model):
    # A new strategy is one more Literal value plus its own optional sub-object next to `formula`.
    type: Literal["Formula", "Budget", "Cost"] = "Formula"
    formula: FormulaSpec = Field(default_factory=FormulaSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    cost: CostSpec = Field(default_factory=CostSpec)


class Bounds(_Model):
    min_gogc: int = Field(default=25, ge=1, le=10000, alias="minGOGC")
    max_gogc: int = Field(default=200, ge=1, le=10000, alias="maxGOGC")

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        _require_order(self.min_gogc, self.max_gogc, "bounds.minGOGC must be <= bounds.maxGOGC")
        return self


class MemoryLimitSpec(_Model):
    mode: Literal["Off", "FromContainerLimit", "Fixed"] = "Off"
    percent: int = Field(default=90, ge=50, le=100)
    fixed: str | None = Field(default=None, max_length=32)

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `Off` as false; a policy file written by hand means "Off".
        return "Off" if v is False else v

    @field_validator("fixed")
    @classmethod
    def _quantity(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not _FIXED_QUANTITY.match(v):
            raise ValueError(f"{_FIXED_SYNTAX_MESSAGE}; got {v!r}")
        value = _apiserver_quantity(v)
        if value < FIXED_MIN_BYTES:
            raise ValueError(f"{_FIXED_MIN_MESSAGE}; got {v!r}")
        if value > FIXED_MAX_BYTES:
            raise ValueError(f"{_FIXED_MAX_MESSAGE}; got {v!r}")
        return v

    @model_validator(mode="after")
    def _fixed_needs_value(self) -> MemoryLimitSpec:
        if self.mode == "Fixed" and self.fixed is None:
            raise ValueError("memoryLimit.fixed is required when memoryLimit.mode is Fixed")
        return self


class LeakDetection(_Model):
    min_heap_slope_milli_mb_per_second: int = Field(
        default=100, ge=0, le=10_000_000, alias="minHeapSlopeMilliMBPerSecond"
    )
    min_r2_milli: int = Field(default=800, ge=0, le=1000, alias="minR2Milli")


class LatencyHistogram(_Model):
    """A request-latency histogram: read from each pod (`histogram`, client_golang `<name>_bucket`
    series, summed over those carrying every label in `matchers`) or from Prometheus (`promql`, an
    instant query returning each pod's cumulative bucket counts by its pod label and `le`)."""

    histogram: str | None = Field(default=None, min_length=1, max_length=200, pattern=_METRIC_NAME)
    promql: PromQLQPS | None = None
    matchers: dict[str, str] | None = Field(default=None, max_length=16)
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = Field(default="/metrics", min_length=1, max_length=256, pattern=_URL_PATH)

    @field_validator("matchers")
    @classmethod
    def _label_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _checked_matchers(v, "guard.latency")

    @model_validator(mode="after")
    def _one_source(self) -> LatencyHistogram:
        if (self.histogram is None) == (self.promql is None):
            raise ValueError("guard.latency needs exactly one of histogram or promql")
        return self


class GuardSpec(_Model):
    """When a change counts as a regression, and what a rolled-back value waits before it is tried
    again. The GC CPU rise is counted beyond the GC's cost model: GC CPU ∝ 1/GOGC while GOMEMLIMIT
    does not bind, so GOGC 100 -> 50 is expected to double it and only the rest counts."""

    enabled: bool = True
    max_gc_cpu_increase_percent: int = Field(default=25, ge=0, le=10000, alias="maxGCCPUIncreasePercent")
    max_pause_p99_increase_percent: int = Field(
        default=50, ge=0, le=10000, alias="maxPauseP99IncreasePercent"
    )
    max_latency_p99_increase_percent: int = Field(
        default=20, ge=0, le=10000, alias="maxLatencyP99IncreasePercent"
    )
    max_memory_percent_of_limit: int = Field(default=95, ge=1, le=100)
    backoff_seconds: int = Field(default=3600, ge=0, le=604800)
    latency: LatencyHistogram | None = None


class GCPolicySpec(_Model):
    target_ref: TargetRef
    mode: Literal["DryRun", "Enforce"] = "DryRun"
    paused: bool = False
    guard: GuardSpec = Field(default_factory=GuardSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    sampling: SamplingSpec
    qps: QPSSpec
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    bounds: Bounds = Field(default_factory=Bounds)
    memory_limit: MemoryLimitSpec = Field(default_factory=MemoryLimitSpec)
    leak_detection: LeakDetection = Field(default_factory=LeakDetection)

    @model_validator(mode="after")
    def _cross_field(self) -> GCPolicySpec:
        if self.strategy.type == "Budget" and self.memory_limit.mode == "Off":
            raise ValueError(
                "strategy.type Budget needs memoryLimit.mode FromContainerLimit or Fixed: "
                "the memory limit it sets is the budget"
            )
        if self.qps.agent is not None and self.sampling.sources.agent is None:
            raise ValueError(
                "qps.agent needs sampling.sources.agent: the counter is read from the agent's GET"
            )
        lat = self.guard.latency
        if (
            lat is not None
            and lat.histogram is not None
            and lat.port is None
            and self.sampling.sources.prometheus is None
        ):
            raise ValueError(
                "guard.latency.port is required unless sampling.sources.prometheus is set "
                "(the histogram is then read from that port)"
            )
        c = self.qps.counter
        if c is not None and c.port is None and self.sampling.sources.prometheus is None:
            raise ValueError(
                "qps.counter.port is required unless sampling.sources.prometheus is set "
                "(the counter is then read from that /metrics)"
            )
        if (
            self.mode == "Enforce"
            and self.rollout.method == "Endpoint"
            and self.rollout.lease_seconds <= self.sampling.interval_seconds
        ):
            raise ValueError(
                "rollout.leaseSeconds must be greater than sampling.intervalSeconds, "
                "or the lease lapses between renewals"
            )
        return self

    def to_crd(self) -> dict[str, Any]:
        """The spec as the apiserver would store it (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _apiserver_quantity(q: str) -> Fraction:
    """The value the apiserver's CEL `quantity(q)` compares: exact, a non-zero value rounded up to a
    whole nano (resource.ParseQuantity does). `q` matches FIXED_QUANTITY_PATTERN, so its exponent is
    within ±999 and the arithmetic stays small; never a float, so never inf or OverflowError."""
    value = quantity_value(q, max_exponent=999)
    if value > 0:
        value = Fraction(-(-value * _NANO // 1), _NANO)
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    """`spec.<path>`, or `spec` itself for a rule across its fields."""
    return ".".join(["spec", *(str(p) for p in loc)])


def parse_policy(doc: Any) -> GCPolicySpec:
    """A GCPolicy spec from a whole object (`apiVersion`/`kind`/`spec`) or a bare spec mapping.

    Errors become one PolicyError whose message names each offending field as `spec.<path>`.
    """
    if not isinstance(doc, dict):
        raise PolicyError(f"a GCPolicy must be a mapping, got {type(doc).__name__}")
    if "spec" in doc or "kind" in doc:
        kind = doc.get("kind")
        if kind not in (None, "GCPolicy"):
            raise PolicyError(f"kind: expected GCPolicy, got {kind!r}")
        api = doc.get("apiVersion")
        if api not in (None, "gctuner.io/v1alpha1"):
            raise PolicyError(f"apiVersion: expected gctuner.io/v1alpha1, got {api!r}")
        doc = doc.get("spec")
        if not isinstance(doc, dict):
            raise PolicyError("spec: required, and must be a mapping")
    try:
        return GCPolicySpec.model_validate(doc)
    except ValidationError as e:
        lines = [f"{_loc(err['loc'])}: {err['msg']}" for err in e.errors()]
        raise PolicyError("invalid GCPolicy:\n  " + "\n  ".join(lines)) from None

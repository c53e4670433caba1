"""The operator's own Prometheus metrics (prometheus_client), fed by the loop through LoopMetrics.

gctuner_samples_total{source}                    successful reads of a source
gctuner_sample_errors_total{source,reason}       failed reads, by the error tree's reason
gctuner_fit_duration_seconds                     time of the fit step of one cycle
gctuner_decisions_total{outcome}                 apply / hold
gctuner_applied_changes_total{method}            changes put in force (Endpoint, EnvPatch)
gctuner_recommended_gogc{namespace,policy}       the latest recommendation
gctuner_applied_gogc{namespace,policy}           the value gc-tuner holds in force (absent in DryRun)
gctuner_policy_qps{namespace,policy}             fitted request rate (tuning/signals.py)
gctuner_policy_heap_slope_mb_per_second{...}     fitted live-heap growth
gctuner_policy_stw_pause_p99_seconds{...}        the worst pod's stop-the-world pause p99
gctuner_policy_gc_cpu_fraction{...}              the worst pod's GC share of its CPU since it started, 0..1
gctuner_policy_gc_cpu_window_fraction{...}       the worst pod's GC share of its CPU over its latest window
                                                 (GC edge to GC edge, tuning/guard_signals.py), 0..1
gctuner_canary_verdicts_total{namespace,policy,verdict}   guard trials ended: Promoted, RolledBack, Preempted
gctuner_rollbacks_total{namespace,policy,reason}          rollbacks, by the signal or event behind them
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from gc_tuner.tuning.signals import PolicySignals

__all__ = ["OperatorMetrics"]


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.samples = Counter(
            "gctuner_samples", "Successful reads of a pod source.", ["source"], registry=reg
        )
        self.sample_errors = Counter(
            "gctuner_sample_errors",
            "Failed reads of a pod source, by reason.",
            ["source", "reason"],
            registry=reg,
        )
        self.fit_seconds = Histogram(
            "gctuner_fit_duration_seconds",
            "Duration of the fit step of one cycle.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=reg,
        )
        self.decisions = Counter(
            "gctuner_decisions", "Decisions of the decide step, by outcome.", ["outcome"], registry=reg
        )
        self.applied = Counter(
            "gctuner_applied_changes", "Changes put in force, by method.", ["method"], registry=reg
        )
        self.recommended_gogc = Gauge(
            "gctuner_recommended_gogc", "The latest recommended GOGC.", ["namespace", "policy"], registry=reg
        )
        self.applied_gogc = Gauge(
            "gctuner_applied_gogc", "The GOGC gc-tuner holds in force.", ["namespace", "policy"], registry=reg
        )
        # Per-policy signals behind the recommendation, for the chart's dashboard and alerts.
        self.signal_gauges = {
            attr: Gauge(name, doc, ["namespace", "policy"], registry=reg)
            for attr, name, doc in (
                ("qps", "gctuner_policy_qps", "Fitted request rate."),
                ("heap_slope_mb_per_s", "gctuner_policy_heap_slope_mb_per_second", "Live-heap growth, MB/s."),
                ("stw_pause_p99_s", "gctuner_policy_stw_pause_p99_seconds", "Worst pod's STW pause p99."),
                ("gc_cpu_fraction", "gctuner_policy_gc_cpu_fraction", "Worst pod's GC share of CPU, 0..1."),
                (
                    "gc_cpu_window_fraction",
                    "gctuner_policy_gc_cpu_window_fraction",
                    "Worst pod's GC share of CPU over its latest window, 0..1.",
                ),
            )
        }
        self.canary_verdicts = Counter(
            "gctuner_canary_verdicts",
            "Guard trials ended, by verdict (Promoted, RolledBack).",
            ["namespace", "policy", "verdict"],
            registry=reg,
        )
        self.rollbacks = Counter(
            "gctuner_rollbacks",
            "Changes rolled back, by the signal or event behind them.",
            ["namespace", "policy", "reason"],
            registry=reg,
        )

    def sample(self, source: str) -> None:
        self.samples.labels(source).inc()

    def sample_error(self, source: str, reason: str) -> None:
        self.sample_errors.labels(source, reason).inc()

    def fit_duration(self, seconds: float) -> None:
        self.fit_seconds.observe(seconds)

    def decision(self, outcome: str) -> None:
        self.decisions.labels(outcome).inc()

    def applied_change(self, method: str) -> None:
        self.applied.labels(method).inc()

    def gogc(self, namespace: str, policy: str, *, recommended: int | None, applied: int | None) -> None:
        for gauge, value in ((self.recommended_gogc, recommended), (self.applied_gogc, applied)):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, policy)
            else:
                gauge.labels(namespace, policy).set(value)

    def guard_verdict(self, namespace: str, policy: str, verdict: str, reason: str) -> None:
        self.canary_verdicts.labels(namespace, policy, verdict).inc()
        if verdict == "RolledBack":
            self.rollbacks.labels(namespace, policy, reason).inc()

    def signals(self, namespace: str, policy: str, signals: PolicySignals | None) -> None:
        for attr, gauge in self.signal_gauges.items():
            value = getattr(signals, attr) if signals is not None else None
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, policy)
            else:
                gauge.labels(namespace, policy).set(value)

    def forget(self, namespace: str, policy: str) -> None:
        self.gogc(namespace, policy, recommended=None, applied=None)
        self.signals(namespace, policy, None)

"""The gather step: read every source of every pod, concurrently, into one merged sample per pod.

Pods are read at most `sampling.maxConcurrency` at a time, each request bounded by
`sampling.timeoutSeconds`. Every failure is kept per pod and source with the error tree's CamelCase
reason; whatever the other sources of that pod returned is still used.

Merging: each RuntimeSample field comes from the first source that has it, in the order agent
(exact runtime/metrics), Prometheus, expvar (its live heap is an estimate). The request counter
comes from the policy's counter, or with `qps.agent` from the agent's own `requestsTotal`. All of
one pod's documents share one timestamp: the midpoint of their fetches, so a counter's rate is not
skewed by the time the other sources took.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gc_tuner.input.agent_doc import AgentStatus
from gc_tuner.input.fetch import fetch_agent, fetch_counter, fetch_expvar, fetch_prometheus
from gc_tuner.input.gctrace import GCTraceParser
from gc_tuner.input.promql import fetch_promql
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.model.sample import GCCycle, RuntimeSample
from gc_tuner.net.errors import FetchTimeoutError, SourceError
from gc_tuner.tuning.records import PodFailure, PodTarget
from gc_tuner.tuning.state import PodState, PolicyState

__all__ = ["PodReading", "gather", "merge_samples", "read_promql"]

T = TypeVar("T")

_PRIORITY = {"agent": 0, "prometheus": 1, "expvar": 2, "gctrace": 3}
_SKIP = {"t", "source", "live_heap_estimated", "new_pauses_s"}
_NO_AGENT_COUNTER = (
    "the agent serves no requestsTotal: qps.agent needs the application to register its request "
    "counter with agent.WithRequestCounter"
)


@dataclass(slots=True)
class PodReading:
    pod: PodTarget
    sample: RuntimeSample | None = None
    agent: AgentStatus | None = None
    cycles: list[GCCycle] = field(default_factory=list)
    failures: list[PodFailure] = field(default_factory=list)
    sources_ok: list[str] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return self.sample is not None or bool(self.cycles)


def merge_samples(samples: Sequence[RuntimeSample]) -> RuntimeSample:
    """One sample from several sources of the same pod at the same time (see the module doc)."""
    ordered = sorted(samples, key=lambda s: _PRIORITY.get(s.source, 9))
    base = ordered[0]
    updates: dict[str, Any] = {}
    for f in dataclasses.fields(RuntimeSample):
        if f.name in _SKIP or getattr(base, f.name) is not None:
            continue
        for s in ordered[1:]:
            v = getattr(s, f.name)
            if v is not None:
                updates[f.name] = v
                if f.name == "live_heap_bytes":
                    updates["live_heap_estimated"] = s.live_heap_estimated
                break
    if not base.new_pauses_s:
        for s in ordered[1:]:
            if s.new_pauses_s:
                updates["new_pauses_s"] = s.new_pauses_s
                break
    return dataclasses.replace(base, **updates) if updates else base


async def _bounded(what: Awaitable[T], seconds: float, url: str) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await what
    except TimeoutError:
        raise FetchTimeoutError(url, f"no answer within {seconds:g}s") from None


def _counter_fetch(spec: GCPolicySpec, pod: PodTarget) -> tuple[str | None, bool]:
    """(URL of the counter's own /metrics, or None when it is the Prometheus source's document)."""
    c = spec.qps.counter
    if c is None:
        return None, False
    prom = spec.sampling.sources.prometheus
    if c.port is None or (prom is not None and prom.port == c.port and prom.path == c.path):
        return None, True
    return pod.url(c.port, c.path), False


async def _read_pod(
    pod: PodTarget, spec: GCPolicySpec, ps: PodState, io: CycleIO, token: str | None
) -> PodReading:
    src = spec.sampling.sources
    timeout = float(spec.sampling.timeout_seconds)
    reading = PodReading(pod)
    c = spec.qps.counter
    matchers = dict(c.matchers or {}) if c is not None else None
    counter_url, counter_in_prom = _counter_fetch(spec, pod)
    prom_counter = c.name if c is not None and counter_in_prom else None

    async def run(name: str, url: str, fn: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
        try:
            return name, await _bounded(fn(), timeout, url)
        except SourceError as err:
            return name, err

    # Phase 1: the sources that need nothing from each other, concurrently; one timestamp for all.
    t0 = io.clock()
    t = t0
    calls: list[Awaitable[tuple[str, Any]]] = []
    if src.agent is not None:
        a = src.agent
        calls.append(
            run(
                "agent",
                pod.url(a.port, a.path),
                lambda: fetch_agent(io.http, pod.base_url(a.port), a.path, token, timeout=timeout),
            )
        )
    if src.prometheus is not None:
        purl = pod.url(src.prometheus.port, src.prometheus.path)
        calls.append(
            run(
                "prometheus",
                purl,
                lambda: fetch_prometheus(
                    io.http,
                    purl,
                    t=t,
                    counter=prom_counter,
                    matchers=matchers if prom_counter else None,
                    timeout=timeout,
                ),
            )
        )
    if counter_url is not None and c is not None:
        curl = counter_url
        calls.append(
            run(
                "qps",
                curl,
                lambda: fetch_counter(io.http, curl, c.name, matchers=matchers, timeout=timeout),
            )
        )
    results = dict(await asyncio.gather(*calls))
    t = (t0 + io.clock()) / 2
    # Phase 2: expvar has no GOGC of its own, and its live-heap estimate needs one.
    if src.expvar is not None:
        known = results.get("agent")
        gogc = known[1].gogc if isinstance(known, tuple) else None
        eurl = pod.url(src.expvar.port, src.expvar.path)
        name, doc = await run(
            "expvar",
            eurl,
            lambda: fetch_expvar(io.http, eurl, t=t, previous=ps.last_expvar, gogc=gogc, timeout=timeout),
        )
        results[name] = doc

    parts: list[RuntimeSample] = []
    qps_total: float | None = None
    counter_doc: RuntimeSample | None = None
    for name, got in results.items():
        if isinstance(got, SourceError):
            reading.failures.append(PodFailure(pod.name, name, got.reason, _message(got)))
            io.metrics.sample_error(name, got.reason)
            continue
        io.metrics.sample(name)
        reading.sources_ok.append(name)
        if name == "agent":
            sample, reading.agent = got
            parts.append(dataclasses.replace(sample, t=t))
            if spec.qps.agent is not None and sample.requests_total is None:
                reading.failures.append(PodFailure(pod.name, "qps", "MalformedData", _NO_AGENT_COUNTER))
                io.metrics.sample_error("qps", "MalformedData")
        elif name == "qps":
            # Only the request counter: the runtime series come from the sources the policy chose.
            qps_total = got
            counter_doc = RuntimeSample(t=t, source="prometheus", requests_total=qps_total)
        else:
            sample = dataclasses.replace(got, t=t)
            if name == "expvar":
                ps.last_expvar = sample
            parts.append(sample)
    if counter_doc is not None:
        parts.append(counter_doc)
    if parts:
        merged = merge_samples(parts)
        if "qps" in reading.sources_ok:
            merged = dataclasses.replace(merged, requests_total=qps_total)
        reading.sample = merged
    if src.gctrace is not None:
        await _read_trace(pod, spec, ps, io, reading)
    return reading


async def _read_trace(
    pod: PodTarget, spec: GCPolicySpec, ps: PodState, io: CycleIO, reading: PodReading
) -> None:
    gt = spec.sampling.sources.gctrace
    if gt is None or io.logs is None:
        return
    # Read a little more than one interval back; cycles already seen are skipped by number.
    since = 2 * spec.sampling.interval_seconds + spec.sampling.timeout_seconds
    try:
        lines = await _bounded(
            io.logs.read(pod.name, spec.target_ref.container, since_seconds=since, tail_lines=gt.tail_lines),
            float(spec.sampling.timeout_seconds),
            f"pods/{pod.name}/log",
        )
    except SourceError as err:
        reading.failures.append(PodFailure(pod.name, "gctrace", err.reason, _message(err)))
        io.metrics.sample_error("gctrace", err.reason)
        return
    parser = GCTraceParser()
    cycles = [c for c in parser.parse(lines) if c.n > ps.last_gc_n]
    if cycles:
        ps.last_gc_n = cycles[-1].n
    reading.cycles = cycles
    reading.sources_ok.append("gctrace")
    io.metrics.sample("gctrace")


async def gather(
    spec: GCPolicySpec, pods: Sequence[PodTarget], state: PolicyState, io: CycleIO, *, token: str | None
) -> list[PodReading]:
    """Read every pod (bounded concurrency); windows are fed by the caller."""
    sem = asyncio.Semaphore(spec.sampling.max_concurrency)
    now = io.clock()

    async def one(pod: PodTarget) -> PodReading:
        ps = state.pod(pod.name, now=now, restart_count=pod.restart_count)
        async with sem:
            return await _read_pod(pod, spec, ps, io, token)

    return list(await asyncio.gather(*(one(p) for p in pods)))


async def read_promql(
    spec: GCPolicySpec, io: CycleIO, pods: Sequence[PodTarget]
) -> tuple[dict[str, float], str | None]:
    """Per-pod QPS from the policy's PromQL query: ({pod: qps}, error reason or None)."""
    q = spec.qps.promql
    if q is None:
        return {}, None
    try:
        values = await fetch_promql(
            io.http, q.url, q.query, pod_label=q.pod_label, timeout=float(spec.sampling.timeout_seconds)
        )
    except SourceError as err:
        io.metrics.sample_error("promql", err.reason)
        return {}, f"{err.reason}: {_message(err)}"
    io.metrics.sample("promql")
    if None in values and len(values) == 1:
        return {p.name: values[None] for p in pods}, None
    return {k: v for k, v in values.items() if k is not None}, None


def _message(e: SourceError) -> str:
    return str(getattr(e, "message", None) or e)

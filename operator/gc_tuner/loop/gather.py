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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gc_tuner.input.agent_doc import AgentStatus, fetch_agent
from gc_tuner.input.expvar import fetch_expvar
from gc_tuner.input.gctrace import GCTraceParser
from gc_tuner.input.prometheus import fetch_counter, fetch_histogram, fetch_prometheus
from gc_tuner.input.promql import parse_promql_buckets, parse_promql_vector, query_promql
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec, PromQLQPS
from gc_tuner.model.sample import GCCycle, RuntimeSample
from gc_tuner.net.errors import SourceError
from gc_tuner.net.transport import time_bound
from gc_tuner.tuning.containers import not_go
from gc_tuner.tuning.log_tail import tail_overflow
from gc_tuner.tuning.outcome import Gathered
from gc_tuner.tuning.records import PodFailure, PodReading, PodTarget
from gc_tuner.tuning.state import PodState, ReadsInFlight

__all__ = ["PodReading", "cycle_budget", "gather", "merge_samples", "read_promql"]

T = TypeVar("T")

_PRIORITY = {"agent": 0, "prometheus": 1, "expvar": 2, "gctrace": 3}
_SKIP = {"t", "source", "live_heap_estimated", "new_pauses_s"}
_NO_AGENT_COUNTER = (
    "the agent serves no requestsTotal: qps.agent needs the application to register its request "
    "counter with agent.WithRequestCounter"
)


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


def _counter_fetch(spec: GCPolicySpec, pod: PodTarget) -> tuple[str | None, bool]:
    """(URL of the counter's own /metrics, or None when it is the Prometheus source's document)."""
    c = spec.qps.counter
    if c is None:
        return None, False
    prom = spec.sampling.sources.prometheus
    if c.port is None or (prom is not None and prom.port == c.port and prom.path == c.path):
        return None, True
    return pod.url(c.port, c.path), False


_ORDER = ("agent", "prometheus", "qps", "latency", "expvar")  # the order failures and metrics are reported in


@dataclass(slots=True)
class _Docs:
    """One pod's documents this cycle; a source that failed is None here and its error in `errors`."""

    agent: tuple[RuntimeSample, AgentStatus] | None = None
    prometheus: RuntimeSample | None = None
    qps: float | None = None
    latency: tuple[tuple[float, float], ...] | None = None
    expvar: RuntimeSample | None = None
    read: set[str] = field(default_factory=set)
    errors: dict[str, SourceError] = field(default_factory=dict)

    async def attempt(self, source: str, what: Awaitable[T]) -> T | None:
        """The document, or None with the error kept (each reader bounds its own time)."""
        try:
            doc = await what
        except SourceError as err:
            self.errors[source] = err
            return None
        self.read.add(source)
        return doc

    def outcomes(self) -> list[tuple[str, SourceError | None]]:
        return [(k, self.errors.get(k)) for k in _ORDER if k in self.read or k in self.errors]


async def _read_documents(
    pod: PodTarget, spec: GCPolicySpec, ps: PodState, io: CycleIO, token: str | None
) -> tuple[_Docs, float]:
    """Every HTTP source of one pod, and the one timestamp they share."""
    src, c = spec.sampling.sources, spec.qps.counter
    timeout, limit = float(spec.sampling.timeout_seconds), spec.sampling.max_response_bytes
    matchers = dict(c.matchers or {}) if c is not None else None
    counter_url, counter_in_prom = _counter_fetch(spec, pod)
    prom_counter = c.name if c is not None and counter_in_prom else None
    docs = _Docs()
    # Phase 1: the sources that need nothing from each other, concurrently; one timestamp for all.
    t0 = io.clock()

    async def agent() -> None:
        if (a := src.agent) is not None:
            get = fetch_agent(io.http, pod.base_url(a.port), a.path, token, timeout=timeout, max_bytes=limit)
            docs.agent = await docs.attempt("agent", get)

    async def prometheus() -> None:
        if (p := src.prometheus) is not None:
            url = pod.url(p.port, p.path)
            m = matchers if prom_counter else None
            get = fetch_prometheus(
                io.http, url, t=t0, counter=prom_counter, matchers=m, timeout=timeout, max_bytes=limit
            )
            docs.prometheus = await docs.attempt("prometheus", get)

    async def counter() -> None:
        if counter_url is not None and c is not None:
            get = fetch_counter(
                io.http, counter_url, c.name, matchers=matchers, timeout=timeout, max_bytes=limit
            )
            docs.qps = await docs.attempt("qps", get)

    async def latency() -> None:
        # The guard's latency histogram: one more GET of /metrics, read for that histogram alone.
        lat = spec.guard.latency
        if lat is not None and lat.histogram is not None and _guarded(spec):
            port = lat.port if lat.port is not None else (src.prometheus.port if src.prometheus else None)
            if port is not None:
                get = fetch_histogram(
                    io.http,
                    pod.url(port, lat.path),
                    lat.histogram,
                    matchers=lat.matchers,
                    timeout=timeout,
                    max_bytes=limit,
                )
                docs.latency = await docs.attempt("latency", get)

    await asyncio.gather(agent(), prometheus(), counter(), latency())
    t = (t0 + io.clock()) / 2
    # Phase 2: expvar has no GOGC of its own, and its live-heap estimate needs one.
    if (e := src.expvar) is not None:
        gogc = docs.agent[1].gogc if docs.agent is not None else None
        url = pod.url(e.port, e.path)
        get = fetch_expvar(
            io.http, url, t=t, previous=ps.last_expvar, gogc=gogc, timeout=timeout, max_bytes=limit
        )
        docs.expvar = await docs.attempt("expvar", get)
    return docs, t


def _merge_documents(pod: PodTarget, spec: GCPolicySpec, docs: _Docs, t: float, io: CycleIO) -> PodReading:
    """One pod's documents as one reading: the merged sample, the agent's state, the failures."""
    failures: list[PodFailure] = []
    ok: list[str] = []
    for name, err in docs.outcomes():
        if err is not None:
            failures.append(PodFailure(pod.name, name, err.reason, _message(err)))
            io.metrics.sample_error(name, err.reason)
        else:
            io.metrics.sample(name)
            ok.append(name)
    parts: list[RuntimeSample] = []
    agent = None
    if docs.agent is not None:
        sample, agent = docs.agent
        parts.append(dataclasses.replace(sample, t=t))
        if spec.qps.agent is not None and sample.requests_total is None:
            failures.append(PodFailure(pod.name, "qps", "MalformedData", _NO_AGENT_COUNTER))
            io.metrics.sample_error("qps", "MalformedData")
    if docs.prometheus is not None:
        parts.append(dataclasses.replace(docs.prometheus, t=t))
    expvar = dataclasses.replace(docs.expvar, t=t) if docs.expvar is not None else None
    if expvar is not None:
        parts.append(expvar)
    qps = docs.qps
    if qps is not None:
        # Only the request counter: the runtime series come from the sources the policy chose.
        parts.append(RuntimeSample(t=t, source="prometheus", requests_total=qps))
    merged = merge_samples(parts) if parts else None
    if merged is not None and qps is not None:
        merged = dataclasses.replace(merged, requests_total=qps)
    if merged is not None and docs.latency is not None:
        merged = dataclasses.replace(merged, latency_buckets=docs.latency)
    return PodReading(pod, merged, agent, failures=tuple(failures), sources_ok=tuple(ok), expvar=expvar)


async def _read_pod(
    pod: PodTarget, spec: GCPolicySpec, ps: PodState, io: CycleIO, token: str | None
) -> PodReading:
    docs, t = await _read_documents(pod, spec, ps, io, token)
    reading = _merge_documents(pod, spec, docs, t, io)
    if spec.sampling.sources.gctrace is not None:
        reading = await _read_trace(pod, spec, ps, io, reading)
    why = not_go(reading, traced_before=ps.last_gc_n > 0)
    if why is None:
        return reading
    # Nothing Go-shaped answered: not sampled, so never written (the planner writes only pods read).
    io.metrics.sample_error("sampling", "NotGo")
    failure = PodFailure(pod.name, "sampling", "NotGo", why)
    return dataclasses.replace(reading, sample=None, failures=(*reading.failures, failure))


async def _read_log(
    pod: PodTarget, spec: GCPolicySpec, io: CycleIO, *, since: int, previous: bool = False
) -> Sequence[str]:
    gt, logs = spec.sampling.sources.gctrace, io.logs
    assert gt is not None and logs is not None
    # The container is named: the apiserver refuses pods/log of a pod with several without one.
    return await logs.read(
        pod.name,
        pod.container or spec.target_ref.container,
        since_seconds=since,
        tail_lines=gt.tail_lines,
        max_bytes=spec.sampling.max_response_bytes,
        previous=previous,
    )


async def _read_trace(
    pod: PodTarget, spec: GCPolicySpec, ps: PodState, io: CycleIO, reading: PodReading
) -> PodReading:
    """gctrace lines from pods/log. After a restart (a new restartCount), the log of the run that
    ended is read first (`previous`), so the cycles between the last read and the crash count."""
    gt = spec.sampling.sources.gctrace
    if gt is None or io.logs is None:
        return reading
    # Read a little more than one interval back; cycles already seen are skipped by number.
    since = 2 * spec.sampling.interval_seconds + spec.sampling.timeout_seconds
    failures = reading.failures
    earlier: tuple[GCCycle, ...] = ()
    if ps.previous_run_gc_n is not None:
        # Tried once: a failure is reported and the current run is read all the same.
        try:
            async with time_bound(f"pods/{pod.name}/log", float(spec.sampling.timeout_seconds)):
                old = await _read_log(pod, spec, io, since=spec.sampling.window_seconds, previous=True)
            earlier = tuple(c for c in GCTraceParser().parse(old) if c.n > ps.previous_run_gc_n)
            io.metrics.sample("gctrace-previous")
        except SourceError as err:
            io.metrics.sample_error("gctrace-previous", err.reason)
            failures = (
                *failures,
                PodFailure(pod.name, "gctrace", err.reason, f"previous run: {_message(err)}"),
            )
    try:
        async with time_bound(f"pods/{pod.name}/log", float(spec.sampling.timeout_seconds)):
            lines = await _read_log(pod, spec, io, since=since)
    except SourceError as err:
        io.metrics.sample_error("gctrace", err.reason)
        failure = PodFailure(pod.name, "gctrace", err.reason, _message(err))
        return dataclasses.replace(
            reading,
            cycles=earlier,
            previous_read=ps.previous_run_gc_n is not None,
            failures=(*failures, failure),
        )
    cycles = tuple(c for c in GCTraceParser().parse(lines) if c.n > ps.last_gc_n)
    io.metrics.sample("gctrace")
    lost = tail_overflow(ps.last_gc_n, cycles, len(lines), gt.tail_lines, since)
    if lost is not None:
        io.metrics.sample_error("gctrace", "TailLinesOverflow")
        failures = (*failures, PodFailure(pod.name, "gctrace", "TailLinesOverflow", lost))
    return dataclasses.replace(
        reading,
        cycles=(*earlier, *cycles),
        last_gc_n=cycles[-1].n if cycles else None,
        previous_read=ps.previous_run_gc_n is not None,
        sources_ok=(*reading.sources_ok, "gctrace"),
        failures=failures,
    )


def cycle_budget(spec: GCPolicySpec) -> float:
    """Seconds a cycle waits for its reads: nine tenths of the interval, so a pod that hangs (up to
    `timeoutSeconds` per request, three requests in a row) does not stretch every pod's interval,
    but never under 3 s (or the timeout, if shorter), so a loaded machine does not make pods late.
    """
    s = spec.sampling
    return max(0.9 * s.interval_seconds, min(3.0, float(s.timeout_seconds)))


async def gather(
    spec: GCPolicySpec,
    states: Mapping[str, PodState],
    pods: Sequence[PodTarget],
    io: CycleIO,
    *,
    token: str | None,
    reads: ReadsInFlight,
) -> Gathered:
    """The gather step: read every pod (bounded concurrency) and the PromQL source. Nothing read is
    stored: each pod's state is only read here (e.g. the newest gctrace cycle seen), and the caller
    feeds the windows from the readings. A read that outlasts `cycle_budget` is reported late and
    left running in `reads`; its reading counts in a later cycle."""
    slots = reads.slots_for(spec.sampling.max_concurrency)

    async def one(pod: PodTarget) -> PodReading:
        async with slots:
            return await _read_pod(pod, spec, states[pod.name], io, token)

    tasks: dict[str, asyncio.Task[PodReading]] = {}
    carried = {p.name for p in pods if p.name in reads.tasks}
    for p in pods:  # a read still running from an earlier cycle is waited for, not started again
        task = reads.tasks.pop(p.name) if p.name in carried else None
        tasks[p.name] = task if task is not None else asyncio.create_task(one(p))
    budget = cycle_budget(spec)
    if tasks:
        await asyncio.wait(tasks.values(), timeout=budget)
    readings = []
    for p in pods:
        task = tasks[p.name]
        if task.done():
            readings.append(task.result())
            continue
        reads.tasks[p.name] = task
        if p.name not in carried:  # late once is load, not a fault: no failure (and no Event) yet
            readings.append(PodReading(p))
            continue
        late = (
            f"no complete answer within two cycles ({budget:g}s each); still reading, it counts when it comes"
        )
        readings.append(PodReading(p, failures=(PodFailure(p.name, "sampling", "SlowRead", late),)))
    promql, promql_failure = await read_promql(spec, io, pods)
    readings, latency_failure = await _latency_from_promql(spec, io, readings)
    failures = [f for r in readings for f in r.failures]
    extra = [f for f in (promql_failure, latency_failure) if f is not None]
    return Gathered(
        pods_matched=len(pods),
        pods_ready=sum(1 for p in pods if p.ready),
        readings=tuple(readings),
        promql=promql,
        failures=(*failures, *extra),
    )


def _guarded(spec: GCPolicySpec) -> bool:
    return spec.mode == "Enforce" and spec.guard.enabled


async def _latency_from_promql(
    spec: GCPolicySpec, io: CycleIO, readings: list[PodReading]
) -> tuple[list[PodReading], PodFailure | None]:
    """guard.latency.promql: one query per cycle for every pod's buckets, put on each pod's sample
    (the guard's windows take their deltas, as for buckets read from the pod)."""
    lat = spec.guard.latency
    if lat is None or lat.promql is None or not _guarded(spec):
        return readings, None
    buckets, failure = await _ask_prometheus(spec, io, "latency", lat.promql, parse_promql_buckets)
    if buckets is None:
        return readings, failure
    out = []
    for r in readings:
        b = buckets.get(r.pod.name)
        if r.sample is not None and b is not None:
            r = dataclasses.replace(r, sample=dataclasses.replace(r.sample, latency_buckets=b))
        out.append(r)
    return out, None


async def read_promql(
    spec: GCPolicySpec, io: CycleIO, pods: Sequence[PodTarget]
) -> tuple[dict[str, float], PodFailure | None]:
    """Per-pod QPS from the policy's PromQL query: ({pod: qps}, the failure or None)."""
    q = spec.qps.promql
    if q is None:
        return {}, None
    values, failure = await _ask_prometheus(spec, io, "promql", q, parse_promql_vector)
    if values is None:
        return {}, failure
    if None in values and len(values) == 1:
        return {p.name: values[None] for p in pods}, None
    return {k: v for k, v in values.items() if k is not None}, None


async def _ask_prometheus(
    spec: GCPolicySpec, io: CycleIO, source: str, q: PromQLQPS, parse: Callable[[Any, str], T]
) -> tuple[T | None, PodFailure | None]:
    """One instant query of the policy's, parsed; a failure is counted and returned, never raised."""
    try:
        doc = await query_promql(
            io.http,
            q.url,
            q.query,
            timeout=float(spec.sampling.timeout_seconds),
            max_bytes=spec.sampling.max_response_bytes,
        )
        value = parse(doc, q.pod_label)
    except SourceError as err:
        io.metrics.sample_error(source, err.reason)
        return None, PodFailure("-", source, err.reason, f"{err.reason}: {_message(err)}")
    io.metrics.sample(source)
    return value, None


def _message(e: SourceError) -> str:
    return str(getattr(e, "message", None) or e)

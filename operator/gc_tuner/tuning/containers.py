"""Which container of a pod gc-tuner tunes: the one the policy names, or the one its sources reach.

A pod can hold more than the Go process: a service-mesh proxy injected first, a log shipper. Writing
GOGC into the proxy's env, reading its logs, or taking its memory limit for GOMEMLIMIT would tune
the wrong process, so the container is chosen, never assumed to be the first:

    1. spec.targetRef.container, when set (ContainerNotFound when the template has no such container)
    2. the only container, when there is one
    3. the one container whose declared ports hold a port the policy reads or writes (its sources,
       the Endpoint, the QPS counter, the latency histogram)
    4. otherwise nothing: AmbiguousContainer, naming the containers, and the policy says which to set

A chosen container must also be a Go process: one whose sources answer without anything Go-shaped
(no go_ series, no agent, no gctrace line) is reported NotGo and never written to (`not_go`).

Pure: template containers in, a choice out (tests/tuning/test_containers.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodReading

__all__ = ["ContainerChoice", "choose_container", "container_ports", "not_go", "source_ports"]

# What a sample holds besides the Go runtime's own figures: a request counter or a latency
# histogram is not Go-shaped (any exporter serves one).
_NOT_RUNTIME = frozenset(
    {"t", "source", "live_heap_estimated", "new_pauses_s", "requests_total", "latency_buckets"}
)
_HTTP_SOURCES = ("agent", "prometheus", "expvar")


@dataclass(frozen=True, slots=True)
class ContainerChoice:
    """The chosen container's name, or (name None) the reason and message of the refusal."""

    name: str | None
    reason: str = ""
    message: str = ""


def source_ports(spec: GCPolicySpec) -> frozenset[int]:
    """Every port the policy reads from or writes to in a pod."""
    src = spec.sampling.sources
    ports = {s.port for s in (src.agent, src.prometheus, src.expvar) if s is not None}
    if spec.rollout.endpoint is not None and spec.rollout.endpoint.port is not None:
        ports.add(spec.rollout.endpoint.port)
    if spec.qps.counter is not None and spec.qps.counter.port is not None:
        ports.add(spec.qps.counter.port)
    if spec.guard.latency is not None and spec.guard.latency.port is not None:
        ports.add(spec.guard.latency.port)
    return frozenset(ports)


def container_ports(containers: Sequence[Mapping[str, Any]]) -> list[tuple[str, frozenset[int]]]:
    """(name, declared containerPorts) of each container of a pod spec or template, in order."""
    out = []
    for c in containers:
        ports = frozenset(
            int(p["containerPort"])
            for p in c.get("ports") or []
            if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)
        )
        out.append((str(c.get("name")), ports))
    return out


def choose_container(
    containers: Sequence[tuple[str, frozenset[int]]],
    explicit: str | None,
    ports: Collection[int],
    *,
    owner: str,
) -> ContainerChoice:
    """The container to tune (see the module doc); `owner` names the workload in messages."""
    names = [n for n, _ in containers]
    listed = ", ".join(names)
    if not names:
        return ContainerChoice(None, "ContainerNotFound", f"{owner} has no containers")
    if explicit is not None:
        if explicit in names:
            return ContainerChoice(explicit)
        return ContainerChoice(
            None, "ContainerNotFound", f"{owner} has no container {explicit!r} (it has: {listed})"
        )
    if len(names) == 1:
        return ContainerChoice(names[0])
    wanted = set(ports)
    serving = [n for n, declared in containers if declared & wanted]
    if len(serving) == 1:
        return ContainerChoice(serving[0])
    shown = ", ".join(str(p) for p in sorted(wanted)) or "none"
    why = (
        f"{', '.join(serving)} all declare one of them"
        if serving
        else "none of them declares one in its ports"
    )
    return ContainerChoice(
        None,
        "AmbiguousContainer",
        f"{owner} has containers {listed}; the policy's ports ({shown}) do not name one: {why}. "
        "Set spec.targetRef.container; nothing is read or written until then",
    )


def _go_figures(sample: RuntimeSample | None) -> bool:
    if sample is None:
        return False
    return any(
        getattr(sample, f.name) is not None for f in dataclasses.fields(sample) if f.name not in _NOT_RUNTIME
    )


def not_go(reading: PodReading, *, traced_before: bool) -> str | None:
    """Why this pod's container is not a Go process, or None.

    Only an answer counts: a source that failed says nothing either way, and gctrace alone cannot
    tell a quiet Go process (no GC in the interval) from another program, so at least one HTTP
    source must have answered, and no source (nor an earlier gctrace line) anything Go-shaped.
    """
    answered = [s for s in reading.sources_ok if s in _HTTP_SOURCES]
    if not answered or reading.agent is not None or reading.cycles or traced_before:
        return None
    if _go_figures(reading.sample) or _go_figures(reading.expvar):
        return None
    where = f"container {reading.pod.container}" if reading.pod.container else "the process"
    return (
        f"{where} answered {', '.join(answered)} without any Go runtime figure (no go_ series, no "
        "agent, no gctrace line): gc-tuner tunes Go processes only and writes nothing to it"
    )

"""parse_expvar on real /debug/vars documents of a running Go program, and on every way one can break."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc_tuner.input.expvar import PAUSE_RING, new_pauses, parse_expvar, pause_quantile
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.errors import SourceFormatError
from tests.input.goprogs import build, system_toolchain

GOGC = 200  # not the default, so an estimate that ignored the `gogc` argument would be off by far

# Fuzzing checks correctness, not speed (bench/ measures speed): no per-example deadline.
FUZZ = settings(deadline=None)


class Server:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def vars(self) -> bytes:
        r = self.client.get("/debug/vars")
        r.raise_for_status()
        return r.content

    def gc(self, n: int) -> None:
        self.client.get("/gc", params={"n": n}).raise_for_status()

    def truth(self) -> dict[str, int]:
        r = self.client.get("/truth")
        r.raise_for_status()
        return dict(r.json())


@contextlib.contextmanager
def serve(gogc: str) -> Iterator[Server]:
    binary = build("expvarsrv", system_toolchain())
    env = {**os.environ, "GOGC": gogc}
    env.pop("GOMEMLIMIT", None)
    proc = subprocess.Popen([str(binary), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        addr = proc.stdout.readline().decode().strip()
        assert addr.startswith("127.0.0.1:"), addr
        with httpx.Client(base_url=f"http://{addr}", timeout=30) as client:
            yield Server(client)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve(str(GOGC)) as s:
        yield s


@pytest.fixture(scope="module")
def real_doc(server: Server) -> dict[str, Any]:
    return dict(json.loads(server.vars()))


@pytest.mark.go
def test_a_real_document_against_runtime_metrics(server: Server) -> None:
    server.gc(1)  # a quiet moment right after a cycle: NextGC and the live heap belong together
    raw = server.vars()
    truth = server.truth()
    mem = json.loads(raw)["memstats"]
    s = parse_expvar(raw, t=1.0, gogc=GOGC)
    assert s.source == "expvar" and s.t == 1.0
    assert s.gc_cycles == mem["NumGC"] == truth["/gc/cycles/total:gc-cycles"]
    assert s.forced_gc_cycles == mem["NumForcedGC"] == truth["/gc/cycles/forced:gc-cycles"]
    assert s.heap_goal_bytes == mem["NextGC"] == truth["/gc/heap/goal:bytes"]
    assert s.heap_alloc_bytes == mem["HeapAlloc"] and s.total_memory_bytes == mem["Sys"]
    assert s.gc_cpu_fraction == mem["GCCPUFraction"]
    assert s.heap_allocs_bytes_total == mem["TotalAlloc"] and s.heap_released_bytes == mem["HeapReleased"]
    # goal = live + (live + stacks + globals) * GOGC/100, so goal / (1 + GOGC/100) overstates the live
    # heap by exactly the roots' share: (stacks + globals) * GOGC / (100 + GOGC), give or take rounding.
    live = truth["/gc/heap/live:bytes"]
    roots = truth["/gc/scan/stack:bytes"] + truth["/gc/scan/globals:bytes"]
    assert s.live_heap_estimated and s.live_heap_bytes is not None
    assert abs(s.live_heap_bytes - live - roots * GOGC / (100 + GOGC)) <= 2
    assert s.gogc is None  # expvar cannot tell; the estimate used the caller's value


@pytest.mark.go
def test_pauses_new_since_the_previous_sample(server: Server) -> None:
    raw = server.vars()
    first, before = parse_expvar(raw, t=1.0), json.loads(raw)["memstats"]
    server.gc(5)
    raw = server.vars()
    after = json.loads(raw)["memstats"]
    s = parse_expvar(raw, t=2.0, previous=first)
    assert first.gc_cycles is not None and s.gc_cycles == first.gc_cycles + 5
    assert len(s.new_pauses_s) == 5
    # the same five pauses PauseTotalNs grew by, oldest first as in the ring
    assert round(sum(s.new_pauses_s) * 1e9) == after["PauseTotalNs"] - before["PauseTotalNs"]
    newest = after["PauseNs"][(after["NumGC"] + 255) % 256]
    assert s.new_pauses_s[-1] == newest / 1e9
    assert s.pause_max_s == max(s.new_pauses_s) == s.pause_p99_s
    assert s.pause_p50_s == sorted(s.new_pauses_s)[2]


@pytest.mark.go
def test_more_new_cycles_than_the_ring_holds(server: Server) -> None:
    previous = parse_expvar(server.vars(), t=1.0)
    server.gc(PAUSE_RING + 44)
    raw = server.vars()
    mem = json.loads(raw)["memstats"]
    s = parse_expvar(raw, t=2.0, previous=previous)
    assert len(s.new_pauses_s) == PAUSE_RING  # the 44 oldest were overwritten
    start = mem["NumGC"] % PAUSE_RING  # the oldest surviving entry
    chronological = mem["PauseNs"][start:] + mem["PauseNs"][:start]
    assert s.new_pauses_s == tuple(ns / 1e9 for ns in chronological)


@pytest.mark.go
def test_a_restart_or_first_sample_counts_every_pause_the_ring_holds(server: Server) -> None:
    raw = server.vars()
    num_gc = json.loads(raw)["memstats"]["NumGC"]
    before_restart = RuntimeSample(t=0.0, source="expvar", gc_cycles=num_gc + 1000)
    restarted = parse_expvar(raw, t=1.0, previous=before_restart)
    first = parse_expvar(raw, t=1.0)
    assert len(restarted.new_pauses_s) == len(first.new_pauses_s) == min(num_gc, PAUSE_RING)
    same = parse_expvar(raw, t=2.0, previous=first)
    assert same.new_pauses_s == () and same.pause_max_s is None and same.pause_p99_s is None


@pytest.mark.go
def test_gc_off_has_no_goal_and_no_estimate() -> None:
    with serve("off") as off:
        raw = off.vars()
    mem = json.loads(raw)["memstats"]
    assert mem["NextGC"] > 1 << 62  # the runtime's "no goal" with GC off and no memory limit
    s = parse_expvar(raw, t=0.0)
    assert s.heap_goal_bytes is None and s.live_heap_bytes is None and not s.live_heap_estimated
    assert s.gc_cycles == mem["NumGC"] >= 1  # the program's own runtime.GC() still runs


def test_ring_index_arithmetic() -> None:
    ring = list(range(PAUSE_RING))  # entry i holds the pause of cycle i+1 (mod 256)
    assert new_pauses(ring, 300, 297) == (41, 42, 43)  # newest at (300 + 255) % 256 = 43
    assert new_pauses(ring, 3, None) == (0, 1, 2)
    assert new_pauses(ring, 0, None) == ()
    assert new_pauses(ring, 1000, 1) == tuple(ring[1000 % 256 :] + ring[: 1000 % 256])
    assert new_pauses(ring, 5, 9) == (0, 1, 2, 3, 4)  # NumGC dropped: a new process


def test_pause_quantile_is_nearest_rank() -> None:
    assert pause_quantile([], 0.99) is None
    assert pause_quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert pause_quantile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert pause_quantile([float(i) for i in range(1, 201)], 0.99) == 198.0


def test_gogc_off_and_no_cycle_give_no_estimate() -> None:
    mem = {"NumGC": 0, "NumForcedGC": 0, "NextGC": 4 << 20, "HeapAlloc": 1, "Sys": 2,
           "GCCPUFraction": 0, "PauseNs": [0] * PAUSE_RING}
    assert parse_expvar({"memstats": mem}, t=0.0).live_heap_bytes is None
    mem["NumGC"] = 1
    assert parse_expvar({"memstats": mem}, t=0.0).live_heap_bytes == 2 << 20
    assert parse_expvar({"memstats": mem}, t=0.0, gogc=-1).live_heap_bytes is None
    assert parse_expvar({"memstats": mem}, t=0.0, gogc=0).live_heap_bytes == 4 << 20


def _mutated(doc: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()

BREAKAGES: list[tuple[tuple[str | int, ...], object, str]] = [
    (("memstats",), _DELETE, "memstats"),
    (("memstats",), [1, 2], "memstats"),
    (("memstats", "NumGC"), _DELETE, "memstats.NumGC"),
    (("memstats", "NumGC"), "12", "memstats.NumGC"),
    (("memstats", "NumGC"), -1, "memstats.NumGC"),
    (("memstats", "NumGC"), 1.5, "memstats.NumGC"),
    (("memstats", "NumGC"), True, "memstats.NumGC"),
    (("memstats", "NextGC"), None, "memstats.NextGC"),
    (("memstats", "HeapAlloc"), {"x": 1}, "memstats.HeapAlloc"),
    (("memstats", "Sys"), _DELETE, "memstats.Sys"),
    (("memstats", "NumForcedGC"), 10**9, "memstats.NumForcedGC"),
    (("memstats", "GCCPUFraction"), math.nan, "memstats.GCCPUFraction"),
    (("memstats", "GCCPUFraction"), -0.5, "memstats.GCCPUFraction"),
    (("memstats", "GCCPUFraction"), "0.1", "memstats.GCCPUFraction"),
    (("memstats", "GCCPUFraction"), 10**400, "memstats.GCCPUFraction"),  # beyond float64
    (("memstats", "PauseNs"), _DELETE, "memstats.PauseNs"),
    (("memstats", "PauseNs"), [0] * 255, "memstats.PauseNs"),
    (("memstats", "PauseNs"), "0" * 256, "memstats.PauseNs"),
    (("memstats", "PauseNs", 3), -1, "memstats.PauseNs[3]"),
    (("memstats", "PauseNs", 200), "7", "memstats.PauseNs[200]"),
    (("memstats", "TotalAlloc"), "many", "memstats.TotalAlloc"),
]


@pytest.mark.go
@pytest.mark.parametrize(
    ("path", "value", "field"), BREAKAGES, ids=[f"{f}={v!r:.12}" for _, v, f in BREAKAGES]
)
def test_a_broken_real_document_names_the_field(
    real_doc: dict[str, Any], path: tuple[str | int, ...], value: object, field: str
) -> None:
    broken = _mutated(real_doc, path, value)
    for form in (broken, json.dumps(broken), json.dumps(broken).encode()):
        with pytest.raises(SourceFormatError) as e:
            parse_expvar(form, t=0.0)
        assert e.value.source == "expvar" and e.value.field == field, e.value


@pytest.mark.parametrize(
    "doc",
    [b"", b"{", b"not json", b"\xff\xfe\x00garbage", b"[]", b"42", b'"memstats"', b"[" * 100_000, "{\ud800}"],
    ids=["empty", "truncated", "text", "binary", "array", "number", "string", "deep", "lone-surrogate"],
)
def test_not_a_document(doc: bytes | str) -> None:
    with pytest.raises(SourceFormatError) as e:
        parse_expvar(doc, t=0.0)
    assert e.value.field == "<document>"


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_the_typed_error(doc: bytes) -> None:
    with contextlib.suppress(SourceFormatError):
        parse_expvar(doc, t=0.0)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**300, 10**400)  # beyond float64
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), _json, max_size=5) | _json)
def test_arbitrary_json_raises_only_the_typed_error(doc: object) -> None:
    with contextlib.suppress(SourceFormatError):
        parse_expvar(json.dumps(doc), t=0.0)


@pytest.mark.go
@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(
    st.sampled_from(["NumGC", "NumForcedGC", "NextGC", "HeapAlloc", "Sys", "GCCPUFraction", "PauseNs"]),
    _json,
    st.integers(0, 10**6) | st.none(),
)
def test_real_document_with_any_field_value(
    real_doc: dict[str, Any], key: str, value: object, previous_cycles: int | None
) -> None:
    doc = _mutated(real_doc, ("memstats", key), value)
    previous = None
    if previous_cycles is not None:
        previous = RuntimeSample(t=0, source="expvar", gc_cycles=previous_cycles)
    try:
        s = parse_expvar(doc, t=0.0, previous=previous)
    except SourceFormatError as e:
        assert e.field.startswith(f"memstats.{key}") or e.field == "memstats.NumForcedGC"
    else:
        assert len(s.new_pauses_s) <= PAUSE_RING

"""parse_agent against the shape documented in agent/README.md; every malformation names its field.

The documents a real agent serves are parsed in tests/integration (built from the Go workload);
here one hand-written document of that shape is broken one field at a time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.cli.gobuild import repo_root
from gc_tuner.input.agent_doc import NO_LIMIT, AgentSettings, parse_agent, parse_lease, parse_settings
from gc_tuner.net.errors import SourceFormatError


def readme_json_examples() -> list[dict[str, Any]]:
    """The JSON examples of agent/README.md, in order: GET body, POST body, POST and DELETE answers."""
    text = (repo_root() / "agent" / "README.md").read_text()
    return [json.loads(block) for block in re.findall(r"^```json\n(.*?)^```", text, re.M | re.S)]


def _doc() -> dict[str, Any]:
    return {
        "goVersion": "go1.26.8",
        "gomaxprocs": 2,
        "gogc": 150,
        "memoryLimitBytes": 268435456,
        "startup": {"gogc": 100, "memoryLimitBytes": NO_LIMIT},
        "lease": {
            "owner": "gc-tuner/ns/p",
            "expiresAt": "2030-01-02T03:04:35.123456789Z",
            "remainingSeconds": 29.5,
        },
        "bounds": {"minGOGC": 10, "maxGOGC": 1000, "minMemoryLimitBytes": 33554432, "maxLeaseSeconds": 1800},
        "writesEnabled": True,
        "metrics": {
            "/cpu/classes/gc/mark/idle:cpu-seconds": 0.5,
            "/cpu/classes/gc/total:cpu-seconds": 2.5,
            "/cpu/classes/total:cpu-seconds": 100.0,
            "/gc/cycles/forced:gc-cycles": 1,
            "/gc/cycles/total:gc-cycles": 42,
            "/gc/gogc:percent": 150,
            "/gc/gomemlimit:bytes": 268435456,
            "/gc/heap/allocs:bytes": 123456789012,
            "/gc/heap/goal:bytes": 80000000,
            "/gc/heap/live:bytes": 34550560,
            "/gc/limiter/last-enabled:gc-cycle": 0,
            "/gc/scan/globals:bytes": 251594,
            "/gc/scan/stack:bytes": 15592,
            "/memory/classes/heap/objects:bytes": 50000000,
            "/memory/classes/heap/released:bytes": 2555904,
            "/memory/classes/total:bytes": 90000000,
        },
        "pauses": {"count": 84, "p50Seconds": 9.8e-05, "p99Seconds": 0.000262144, "maxSeconds": 0.0005},
    }


def test_maps_every_field() -> None:
    sample, status = parse_agent(_doc(), t=1000.0)
    assert (sample.t, sample.source) == (1000.0, "agent")
    assert sample.gc_cycles == 42 and sample.forced_gc_cycles == 1
    assert sample.live_heap_bytes == 34550560 and not sample.live_heap_estimated
    assert sample.heap_goal_bytes == 80000000
    assert sample.heap_alloc_bytes == 50000000
    assert (sample.stacks_bytes, sample.globals_bytes) == (15592, 251594)
    assert sample.total_memory_bytes == 90000000
    assert sample.heap_allocs_bytes_total == 123456789012
    assert sample.heap_released_bytes == 2555904
    assert sample.limiter_last_enabled_cycle == 0
    assert (sample.gogc, sample.memory_limit_bytes) == (150, 268435456)
    assert sample.gc_cpu_seconds == pytest.approx(2.0)  # idle marking excluded
    assert sample.total_cpu_seconds == 100.0
    assert sample.gc_cpu_fraction == pytest.approx(0.02)
    assert (sample.pause_p50_s, sample.pause_p99_s, sample.pause_max_s) == (9.8e-05, 0.000262144, 0.0005)
    assert (sample.go_version, sample.gomaxprocs) == ("go1.26.8", 2)

    assert status.current == AgentSettings(150, 268435456)
    assert status.startup == AgentSettings(100, None)  # MaxInt64 means no limit
    assert status.lease is not None
    assert status.lease.owner == "gc-tuner/ns/p"
    assert status.lease.expires_at == datetime(2030, 1, 2, 3, 4, 35, 123456, tzinfo=UTC)
    assert status.lease.remaining_seconds == 29.5
    assert status.bounds.min_gogc == 10 and status.bounds.max_lease_seconds == 1800
    assert status.writes_enabled is True
    assert (status.gogc, status.memory_limit_bytes) == (150, 268435456)


def test_the_readme_get_example_parses() -> None:
    # The parser follows agent/README.md; a field renamed on one side only fails here.
    [get] = [doc for doc in readme_json_examples() if "goVersion" in doc]
    sample, status = parse_agent(get, t=0.0)
    assert (sample.gogc, status.startup) == (150, AgentSettings(100, None))
    assert status.lease is not None and status.lease.owner == "gc-tuner/default/checkout"
    assert sample.live_heap_bytes == get["metrics"]["/gc/heap/live:bytes"]
    assert sample.pause_p99_s == get["pauses"]["p99Seconds"]
    assert sample.pause_buckets == tuple((b, c) for b, c in get["pauses"]["buckets"])
    assert sample.requests_total == get["requestsTotal"]


def test_the_registered_request_counter_is_the_samples_requests_total() -> None:
    doc = _doc()
    assert parse_agent(doc, t=0.0)[0].requests_total is None  # no counter registered: no key
    doc["requestsTotal"] = 123456
    assert parse_agent(doc, t=0.0)[0].requests_total == 123456.0
    doc["requestsTotal"] = None  # null reads as absent, as every optional field does
    assert parse_agent(doc, t=0.0)[0].requests_total is None


def test_gogc_off_no_lease_and_no_pauses() -> None:
    doc = _doc()
    doc["gogc"], doc["memoryLimitBytes"], doc["lease"] = -1, NO_LIMIT, None
    doc["pauses"] = {"count": 0, "p50Seconds": None, "p99Seconds": None, "maxSeconds": None}
    sample, status = parse_agent(doc, t=0.0)
    assert sample.gogc is None and sample.memory_limit_bytes is None
    assert status.lease is None
    assert sample.pause_p99_s is None


def test_metrics_an_older_go_lacks_are_none() -> None:
    doc = _doc()
    for name in ("/gc/heap/live:bytes", "/cpu/classes/gc/mark/idle:cpu-seconds", "/gc/scan/stack:bytes"):
        del doc["metrics"][name]
    doc["metrics"]["/some/future:metric"] = 7  # unknown names are ignored
    sample, _ = parse_agent(doc, t=0.0)
    assert sample.live_heap_bytes is None and sample.stacks_bytes is None
    assert sample.gc_cpu_seconds is None and sample.gc_cpu_fraction is None
    assert sample.gc_cycles == 42


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("|")
    cur = doc
    for p in parents:
        cur = cur[p]
    if value is _DELETE:
        del cur[last]
    else:
        cur[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("goVersion", _DELETE, "goVersion"),
        ("goVersion", 126, "goVersion"),
        ("gomaxprocs", 0, "gomaxprocs"),
        ("gomaxprocs", 2.5, "gomaxprocs"),
        ("gogc", "100", "gogc"),
        ("gogc", -2, "gogc"),
        ("gogc", True, "gogc"),
        ("memoryLimitBytes", -1, "memoryLimitBytes"),
        ("memoryLimitBytes", 1 << 63, "memoryLimitBytes"),
        ("startup", None, "startup"),
        ("startup|gogc", None, "startup.gogc"),
        ("lease|owner", "", "lease.owner"),
        ("lease|expiresAt", "tomorrow", "lease.expiresAt"),
        ("lease|expiresAt", "2030-01-02T03:04:35", "lease.expiresAt"),
        ("lease|remainingSeconds", "29", "lease.remainingSeconds"),
        ("lease", [], "lease"),
        ("bounds", _DELETE, "bounds"),
        ("bounds|maxLeaseSeconds", 0, "bounds.maxLeaseSeconds"),
        ("writesEnabled", "yes", "writesEnabled"),
        ("requestsTotal", -1, "requestsTotal"),
        ("requestsTotal", 1.5, "requestsTotal"),
        ("requestsTotal", "12", "requestsTotal"),
        ("requestsTotal", True, "requestsTotal"),
        ("metrics", [], "metrics"),
        ("metrics|/gc/heap/live:bytes", -5, "metrics./gc/heap/live:bytes"),
        ("metrics|/gc/heap/live:bytes", 1.5, "metrics./gc/heap/live:bytes"),
        ("metrics|/gc/cycles/total:gc-cycles", None, "metrics./gc/cycles/total:gc-cycles"),
        ("metrics|/cpu/classes/total:cpu-seconds", "1", "metrics./cpu/classes/total:cpu-seconds"),
        ("metrics|/cpu/classes/gc/total:cpu-seconds", -1.0, "metrics./cpu/classes/gc/total:cpu-seconds"),
        ("pauses", None, "pauses"),
        ("pauses|count", _DELETE, "pauses.count"),
        ("pauses|p99Seconds", -0.1, "pauses.p99Seconds"),
        ("pauses|p50Seconds", "fast", "pauses.p50Seconds"),
        ("pauses|maxSeconds", float("inf"), "pauses.maxSeconds"),
        ("pauses|buckets", {"0.001": 3}, "pauses.buckets"),
        ("pauses|buckets", [[0.001, 3]] * 129, "pauses.buckets"),
        ("pauses|buckets", [[0.001]], "pauses.buckets[0]"),
        ("pauses|buckets", [[0.001, -1]], "pauses.buckets[0]"),
        ("pauses|buckets", [[0.001, 1], ["0.002", 1]], "pauses.buckets[1]"),
        ("pauses|buckets", [[0.002, 1], [0.001, 1]], "pauses.buckets[1]"),
        ("pauses|buckets", [[float("nan"), 1]], "pauses.buckets[0]"),
        ("pauses|buckets", [[0.001, True]], "pauses.buckets[0]"),
        pytest.param("lease|remainingSeconds", 10**400, "lease.remainingSeconds", id="beyond-float64"),
        ("metrics|/cpu/classes/total:cpu-seconds", float("nan"), "metrics./cpu/classes/total:cpu-seconds"),
    ],
)
def test_malformed_field_is_named(path: str, value: Any, field: str) -> None:
    doc = _doc()
    _set(doc, path, value)
    with pytest.raises(SourceFormatError) as exc:
        parse_agent(doc, t=0.0)
    assert (exc.value.source, exc.value.field) == ("agent", field)


@pytest.mark.parametrize("doc", [None, [], "text", 42])
def test_body_must_be_an_object(doc: object) -> None:
    with pytest.raises(SourceFormatError) as exc:
        parse_agent(doc, t=0.0)
    assert exc.value.field == "body"


def test_settings_and_lease_helpers() -> None:
    assert parse_settings({"gogc": 0, "memoryLimitBytes": 0}, "new") == AgentSettings(0, 0)
    assert parse_lease(None, "lease") is None
    with pytest.raises(SourceFormatError) as exc:
        parse_settings({"gogc": 100}, "previous")
    assert exc.value.field == "previous.memoryLimitBytes"


def test_input_is_not_modified() -> None:
    doc = _doc()
    before = copy.deepcopy(doc)
    parse_agent(doc, t=0.0)
    assert doc == before


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**300, 10**400)  # beyond float64
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def _paths(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _paths(v, prefix + k + "|")
    return out


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(_paths(_doc())), _json), min_size=1, max_size=3))
def test_any_damage_raises_only_the_typed_error_naming_it(changes: list[tuple[str, Any]]) -> None:
    doc = _doc()
    damaged = []
    for path, value in changes:
        with contextlib.suppress(KeyError, TypeError):  # a parent replaced by an earlier change
            _set(doc, path, value)
            damaged.append(path.replace("|", "."))
    try:
        parse_agent(doc, t=0.0)
    except SourceFormatError as e:
        f = e.field
        assert any(f == d or f.startswith(d + ".") or d.startswith(f + ".") for d in damaged), (f, damaged)


@settings(deadline=None)
@given(_json)
def test_arbitrary_json_raises_only_the_typed_error(doc: object) -> None:
    with pytest.raises(SourceFormatError):
        parse_agent(doc, t=0.0)

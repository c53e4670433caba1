"""Pure parts of the test kubelet: quantities, $(VAR) expansion, field refs, back-off, pod IPs, log lines."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import pytest

from e2e.kubelet.envres import EnvError, expand, field_value, resource_value
from e2e.kubelet.images import Program, Registry, UnknownImageError
from e2e.kubelet.ipam import IpAllocator
from e2e.kubelet.logs import ContainerLog, format_ts, parse_ts
from e2e.kubelet.quantity import parse_quantity, scaled_ceil
from e2e.kubelet.runner import BACKOFF_MAX_S, backoff_delay


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512Mi", Fraction(512 * 2**20)),
        ("1G", Fraction(10**9)),
        ("250m", Fraction(1, 4)),
        ("1.5", Fraction(3, 2)),
        ("2e3", Fraction(2000)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "12Q", "Mi", "1.2.3", "--1"])
def test_parse_quantity_rejects_garbage_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid resource quantity"):
        parse_quantity(bad)


def test_scaled_ceil_rounds_up_to_whole_divisors() -> None:
    assert scaled_ceil(parse_quantity("1.5Mi"), parse_quantity("1Mi")) == 2
    assert scaled_ceil(parse_quantity("250m"), Fraction(1)) == 1


def test_expand_like_the_kubelet() -> None:
    env = {"A": "x"}
    assert expand("$(A)-$(B)-$$(A)-$$", env) == "x-$(B)-$(A)-$"


def _pod() -> dict[str, object]:
    return {
        "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node",
            "containers": [
                {"name": "c", "resources": {"limits": {"memory": "300Mi", "cpu": "1500m"}}},
                {"name": "bare"},
            ],
        },
        "status": {"podIP": "127.0.1.2", "podIPs": [{"ip": "127.0.1.2"}], "hostIP": "127.0.0.1"},
    }


def test_field_refs() -> None:
    pod = _pod()
    assert field_value(pod, "metadata.name") == "p"
    assert field_value(pod, "status.podIP") == "127.0.1.2"
    assert field_value(pod, "metadata.labels['app']") == "web"
    with pytest.raises(EnvError, match=r"unsupported fieldRef fieldPath 'spec\.bogus'"):
        field_value(pod, "spec.bogus")


def test_resource_field_refs_use_divisor_and_fall_back_to_node_allocatable() -> None:
    pod = _pod()
    c, bare = pod["spec"]["containers"]  # type: ignore[index]
    alloc = {"memory": "16Gi", "cpu": "8"}
    assert resource_value(pod, c, {"resource": "limits.memory", "divisor": "1Mi"}, alloc) == "300"
    assert resource_value(pod, c, {"resource": "limits.memory"}, alloc) == str(300 * 2**20)
    assert resource_value(pod, c, {"resource": "limits.memory", "divisor": "0"}, alloc) == str(300 * 2**20)
    assert resource_value(pod, c, {"resource": "limits.cpu"}, alloc) == "2"
    assert resource_value(pod, c, {"resource": "limits.cpu", "divisor": "1m"}, alloc) == "1500"
    assert resource_value(pod, bare, {"resource": "limits.memory", "divisor": "1Gi"}, alloc) == "16"
    with pytest.raises(EnvError, match=r"unsupported resourceFieldRef resource 'limits\.gpu'"):
        resource_value(pod, c, {"resource": "limits.gpu"}, alloc)


def test_backoff_starts_immediate_then_doubles_to_a_cap() -> None:
    delays = [backoff_delay(n) for n in range(8)]
    assert delays[:4] == [0.0, 1.0, 2.0, 4.0]
    assert delays[-1] == BACKOFF_MAX_S and sorted(delays) == delays


def test_ip_allocator_reuses_released_ips_and_blocks_are_exclusive(tmp_path: Path) -> None:
    a = IpAllocator(lock_dir=tmp_path)
    b = IpAllocator(lock_dir=tmp_path)
    try:
        assert a.block != b.block  # two kubelets on one machine never share addresses
        first, second = a.allocate(), a.allocate()
        assert (first, second) == (f"127.0.{a.block}.2", f"127.0.{a.block}.3")
        a.release(first)
        assert a.allocate() == first
        assert b.allocate() == f"127.0.{b.block}.2"
    finally:
        a.close()
        b.close()
    c = IpAllocator(lock_dir=tmp_path)  # closed blocks are free again
    assert c.block == a.block
    c.close()


def test_registry_maps_patterns_and_names_known_ones_for_unknown_images() -> None:
    reg = Registry()
    reg.register("gc-tuner/x:*", lambda _img: Program(("/bin/true",)))
    assert reg.resolve("gc-tuner/x:dev").argv == ("/bin/true",)
    with pytest.raises(UnknownImageError, match=r'image "nginx:1" is not known .*gc-tuner/x:\*'):
        reg.resolve("nginx:1")


async def test_container_log_reads_tails_and_follows(tmp_path: Path) -> None:
    log = ContainerLog(tmp_path / "0.log")
    log.write("stdout", b"one\ntw")
    log.write("stdout", b"o\n")
    log.write("stderr", b"three\n")
    lines, offset = log.read()
    assert [(ln.stream, ln.text) for ln in lines] == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "three"),
    ]
    assert [ln.text for ln in log.read(tail=1)[0]] == ["three"]
    got: list[str] = []

    async def follow() -> None:
        async for line in log.follow(offset):
            got.append(line.text)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    log.write("stdout", b"four\nfive-without-newline")
    log.close()
    await asyncio.wait_for(task, 2)
    assert got == ["four", "five-without-newline"]
    assert lines[0].render(True).startswith(lines[0].ts.encode() + b" one")


def test_timestamps_round_trip_with_nanoseconds() -> None:
    ts = format_ts(1_700_000_000_123_456_789)
    assert ts == "2023-11-14T22:13:20.123456789Z"
    assert parse_ts(ts).microsecond == 123456

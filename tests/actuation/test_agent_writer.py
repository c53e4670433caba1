"""The agent writer's own checks and the parsing of write responses.

The requests themselves (201/401/403/409/422, lease expiry, release) run against the real Go agent
in tests/integration/test_workload_agent.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gc_tuner.actuation.agent import _result, apply
from gc_tuner.input.agent import NO_LIMIT, AgentSettings
from gc_tuner.input.errors import SourceFormatError


def _ok() -> dict[str, Any]:
    return {
        "previous": {"gogc": 100, "memoryLimitBytes": NO_LIMIT},
        "new": {"gogc": 50, "memoryLimitBytes": 268435456},
        "lease": {"owner": "op", "expiresAt": "2030-01-01T00:00:30Z", "remainingSeconds": 30},
        "released": False,
    }


def test_result_parses_previous_new_and_lease() -> None:
    r = _result(_ok())
    assert r.previous == AgentSettings(100, None)
    assert r.new == AgentSettings(50, 268435456)
    assert r.lease is not None and r.lease.owner == "op"
    assert r.released is False


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("previous"), "previous"),
        (lambda d: d["new"].pop("gogc"), "new.gogc"),
        (lambda d: d.update(lease={"owner": "op"}), "lease.expiresAt"),
        (lambda d: d.update(released="no"), "released"),
    ],
)
def test_malformed_result_names_the_field(mutate: Any, field: str) -> None:
    doc = _ok()
    mutate(doc)
    with pytest.raises(SourceFormatError) as exc:
        _result(doc)
    assert exc.value.field == field


def test_result_must_be_an_object() -> None:
    with pytest.raises(SourceFormatError):
        _result([])


async def test_a_lease_shorter_than_a_second_is_refused_before_any_request() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="lease_seconds"):
            # port 9 (discard) on loopback: never contacted, the check comes first
            await apply(
                client,
                "http://127.0.0.1:9",
                gogc=100,
                memory_limit_bytes=None,
                lease_seconds=0,
                owner="op",
                token="t",
            )

"""When the act step may skip a pod's write: our values, our lease, and enough lease left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gc_tuner.input.agent_doc import AgentBounds, AgentLease, AgentSettings, AgentStatus
from gc_tuner.model.policy import parse_policy
from gc_tuner.tuning.rollout import lease_in_force, renew_margin_s

OWNER = "gc-tuner/ns/policy"


def status(
    *, gogc: int | None = 80, limit: int | None = 512 << 20, owner: str | None = OWNER, left: float = 50.0
) -> AgentStatus:
    lease = None if owner is None else AgentLease(owner, datetime.now(UTC), left)
    return AgentStatus(
        go_version="go1.26.8",
        gomaxprocs=2,
        current=AgentSettings(gogc, limit),
        startup=AgentSettings(100, None),
        lease=lease,
        bounds=AgentBounds(10, 1000, 1 << 20, 3600),
        writes_enabled=True,
    )


def in_force(
    st: AgentStatus | None,
    *,
    gogc: int | None = 80,
    limit: int | None = 512 << 20,
    read_at: float = 100.0,
    now: float = 101.0,
    margin: float = 40.0,
) -> bool:
    return lease_in_force(
        st, owner=OWNER, gogc=gogc, memory_limit_bytes=limit, read_at=read_at, now=now, margin_s=margin
    )


def test_our_values_under_our_lease_with_time_left_need_no_write() -> None:
    assert in_force(status())
    assert in_force(status(limit=123), limit=None)  # a write that leaves the limit alone


@pytest.mark.parametrize(
    ("st", "kw"),
    [
        (None, {}),  # no agent reading this cycle
        (status(owner=None), {}),  # no lease: the startup values may be back any moment
        (status(owner="someone-else"), {}),
        (status(gogc=100), {}),
        (status(gogc=None), {}),  # GOGC=off in force
        (status(limit=256 << 20), {}),
        (status(left=41.5), {"now": 102.0}),  # 41.5 s at the read, 39.5 s now: under the 40 s margin
        (status(left=40.0), {"now": 100.0}),  # exactly the margin is not more than it
    ],
)
def test_anything_else_gets_written(st: AgentStatus | None, kw: dict[str, float]) -> None:
    assert not in_force(st, **kw)


def test_margin_covers_a_late_next_cycle_and_its_write() -> None:
    spec = parse_policy(
        {
            "targetRef": {"kind": "Deployment", "name": "api"},
            "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
            "sampling": {"intervalSeconds": 15, "timeoutSeconds": 5, "sources": {"agent": {"port": 8080}}},
        }
    )
    assert renew_margin_s(spec) == 40.0

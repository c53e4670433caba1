"""Hypothesis at the HTTP boundary with a real pod beside the hostile one.

test_http_fuzz.py runs whole Enforce cycles against two generated pods; here one of the two is a real
Go process (the reference workload with the gc-tuner agent, started once for the module), so that
what a hostile pod sends is checked against what it must not do to a healthy neighbour on the same
HTTP client: cookies, pooled connections, a read that outlasts the cycle, memory, a fit it poisons.

Each example runs STEPS Enforce cycles (bounds 50..150, Endpoint) on the test's clock against the
generated pod (test_http_fuzz.pod_scripts) and the real one. Properties, every example:
1. the loop never raises (and the fake pod saw no mistake of the test's own);
2. the real pod is sampled every cycle: its reading has a sample and no failure at all;
3. every POST to the real pod carries a GOGC within the bounds and a GOMEMLIMIT that is None with
   memoryLimit Off, else whole bytes between the agent's 32 MiB minimum and the container's limit,
   and the real agent accepts it (200): its own validation is the well-formedness check;
4. the hostile pod gets no POST in a cycle whose reading of it has no sample (never written blind);
5. tracemalloc's peak over the whole run, loop and client included, stays under LOOP_MEMORY_BOUND.

Profiles as in test_http_fuzz.py: short by default; GC_TUNER_FUZZ=long (GC_TUNER_FUZZ_EXAMPLES=<n>).
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from gc_tuner.actuation.agent_writer import release
from gc_tuner.loop.ports import CycleIO
from gc_tuner.loop.standalone import LOCAL_OWNER, LocalLoop, parse_target
from gc_tuner.model.sample import MiB
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import PodTarget
from tests.input.test_http_fuzz import _LONG as LONG
from tests.input.test_http_fuzz import (
    MEMORY_BOUND,
    STEPS,
    Agent,
    FakePod,
    PodScript,
    check_posts,
    examples,
    pod_scripts,
    policy,
    responder,
    wire,
)
from tests.integration.workload import Workload, workload_binary

# A long hand run outlasts pytest-timeout's 600 s per test (pyproject.toml): no timeout then.
pytestmark = [pytest.mark.go, *([pytest.mark.timeout(0)] if LONG else [])]

TOKEN = "tok"
CONTAINER_LIMIT, CONTAINER_LIMIT_BYTES = "512Mi", 512 * MiB
AGENT_MIN_LIMIT = 32 * MiB  # the agent's minMemoryLimitBytes (agent/README.md)

# Property 2 of test_http_fuzz.py bounds one read at 64 KiB by MEMORY_BOUND (twice the costliest
# parse). A cycle reads at most four documents at once (two pods, agent and /metrics each), and the
# run also holds the loop, its windows and the client: twice the one-read bound. Runs peak under
# 1 MiB typically and at 8.7 MiB at most (JSON nested 5000 deep, within 64 KiB); a loop that held a
# hostile answer past the byte limit (bodies of 8 MiB, gzip bombs of 64 MiB) would cross it.
LOOP_MEMORY_BOUND = 2 * MEMORY_BOUND

# The cycle waits min(3 s, timeoutSeconds) for its reads (loop/gather.py, cycle_budget). Parsing
# the real pod's /metrics (56 KiB, 560 lines) costs about 0.45 s under tracemalloc on a loaded
# 2-CPU machine, so the 1 s of test_http_fuzz.py's policy would report it late (unsampled) for
# reasons of the test's own; 3 s costs nothing when the pods answer, and no generated answer
# stalls (pod_scripts draws none).
TIMEOUT_S = 3


@pytest.fixture(scope="module")
def real() -> Iterator[Workload]:
    env = {
        "WORKLOAD_LOAD": "steady",
        "WORKLOAD_QPS": "300",
        "WORKLOAD_LIVE_MIB": "8",
        "GC_TUNER_TOKEN": TOKEN,
    }
    with Workload(workload_binary(), "127.0.0.14", env) as w:
        yield w


@pytest.fixture(scope="module")
def hostile() -> Iterator[FakePod]:
    p = FakePod("127.0.0.15")
    try:
        yield p
    finally:
        p.close()


@dataclass
class Post:
    target: str  # host:port
    body: dict[str, Any]
    status: int | None = None  # None: no answer (the connection failed)


@dataclass
class Run:
    cycles: list[tuple[CycleOutcome, list[Post]]] = field(default_factory=list)
    peak: int = 0


def _recorder(posts: list[Post]) -> dict[str, list[Any]]:
    """httpx event hooks keeping every POST the loop sends, with the status it got."""
    by_request: dict[int, Post] = {}

    async def on_request(request: httpx.Request) -> None:
        if request.method == "POST":
            post = Post(f"{request.url.host}:{request.url.port}", json.loads(request.content))
            by_request[id(request)] = post
            posts.append(post)

    async def on_response(response: httpx.Response) -> None:
        if (post := by_request.pop(id(response.request), None)) is not None:
            post.status = response.status_code

    return {"request": [on_request], "response": [on_response]}


def run_cycles(
    spec: Any, targets: list[PodTarget], clock: list[float], step: list[int], real_url: str
) -> Run:
    """STEPS cycles a second apart on the test's clock, under tracemalloc; each with its POSTs."""
    run, posts = Run(), []

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False, event_hooks=_recorder(posts)) as http:
            loop = LocalLoop(spec, targets, http, token=TOKEN)
            loop.io = CycleIO(http=http, clock=lambda: clock[0])
            try:
                for k in range(STEPS):
                    step[0], before = k, len(posts)
                    outcome, _ = await loop.step()
                    run.cycles.append((outcome, posts[before:]))
                    clock[0] += 1.0
            finally:
                loop.state.reads.cancel()
                # Each example starts from the real agent's startup values: a lease left from the
                # last one would hold its GOGC in force, and the loop would have nothing to write.
                await release(http, real_url, owner=LOCAL_OWNER, token=TOKEN)

    tracemalloc.start()
    try:
        asyncio.run(go())
        run.peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return run


def check_real_post(post: Post, memory: str) -> None:
    check_posts([post.body])  # GOGC within 50..150, the owner, a positive lease
    limit = post.body["memoryLimitBytes"]
    if memory == "Off":
        assert limit is None, post
    else:
        assert type(limit) is int and AGENT_MIN_LIMIT <= limit <= CONTAINER_LIMIT_BYTES, post
    assert post.status == 200, post


def check_run(
    run: Run, real: PodTarget, hostile: PodTarget, memory: str, note: Callable[[str], None] = event
) -> None:
    for k, (outcome, posts) in enumerate(run.cycles):
        readings = {r.pod.name: r for r in outcome.gathered.readings}
        mine = readings[real.name]
        assert mine.sample is not None and not mine.failures, (k, mine.failures)
        for post in posts:
            if post.target == real.name:
                check_real_post(post, memory)
        blind = readings[hostile.name].sample is None
        note(f"hostile read failed in a cycle: {blind}")
        if blind:
            assert not [p for p in posts if p.target == hostile.name], (k, posts)
    writes = sum(p.target == real.name for _, posts in run.cycles for p in posts)
    note(f"POSTs to the real pod per run: {min(writes, 3)}{'+' if writes >= 3 else ''}")
    assert run.peak < LOOP_MEMORY_BOUND, f"peak {run.peak / MiB:.1f} MiB"


# As test_http_fuzz's _POLICIES, with limits the real pod's documents fit in: its /metrics is about
# 56 KiB, so a counter policy reads 64 KiB; the agent's document is 1 KiB.
_POLICIES = st.builds(
    lambda qps, mem, strategy, kib: (
        qps,
        mem,
        "Formula" if mem == "Off" else strategy,
        64 if qps == "counter" else kib,
    ),
    st.sampled_from(["agent", "counter"]),
    st.sampled_from(["Off", "Fixed", "FromContainerLimit"]),
    st.sampled_from(["Formula", "Budget"]),
    st.sampled_from([16, 64]),
)


def _warm(script: PodScript) -> None:
    """Compress (and cache) every drawn answer before tracemalloc starts: the fake pod's own
    gzip work is the test's, not the loop's."""
    for answer in (*script.get, *script.metrics, *script.post):
        if answer is not None and not isinstance(answer, list):
            for _ in wire(answer):
                pass


@examples(8)
@given(
    choice=_POLICIES,
    script=pod_scripts(),
    qps=st.sampled_from([0.0, 500.0, 1e6]),
    live=st.sampled_from([0, 64 << 20, 2 << 30]),
)
def test_loop_with_a_real_pod_beside_a_generated_one(
    real: Workload,
    hostile: FakePod,
    choice: tuple[str, str, str, int],
    script: PodScript,
    qps: float,
    live: int,
) -> None:
    qps_mode, memory, strategy, kib = choice
    spec = policy(qps=qps_mode, memory=memory, strategy=strategy, max_kib=kib, timeout=TIMEOUT_S)
    clock, step = [1_800_000_000.0], [0]
    _warm(script)
    hostile.requests.clear()
    hostile.heads.clear()
    hostile.respond = responder(Agent(clock, qps, live, started=clock[0]), script, step)
    targets = [
        parse_target(real.base_url, memory_limit=CONTAINER_LIMIT),
        parse_target(hostile.url, memory_limit=CONTAINER_LIMIT),
    ]
    run = run_cycles(spec, targets, clock, step, real.base_url)
    assert not hostile.errors, hostile.errors
    check_run(run, targets[0], targets[1], memory)


def test_the_real_pod_is_written_within_bounds(real: Workload, hostile: FakePod) -> None:
    """The property above is not vacuous: beside a healthy fake pod, the real one is tuned."""
    spec = policy(qps="agent", memory="FromContainerLimit", strategy="Formula", max_kib=64, timeout=TIMEOUT_S)
    clock, step = [1_800_000_000.0], [0]
    healthy = PodScript(get=(None,) * STEPS, metrics=(None,) * STEPS, post=(None,) * STEPS)
    hostile.respond = responder(Agent(clock, 500.0, 64 << 20, started=clock[0]), healthy, step)
    targets = [
        parse_target(real.base_url, memory_limit=CONTAINER_LIMIT),
        parse_target(hostile.url, memory_limit=CONTAINER_LIMIT),
    ]
    run = run_cycles(spec, targets, clock, step, real.base_url)
    check_run(run, targets[0], targets[1], "FromContainerLimit", note=lambda _: None)
    real_posts = [p for _, posts in run.cycles for p in posts if p.target == targets[0].name]
    assert real_posts and all(p.status == 200 for p in real_posts), real_posts  # the agent took them
    doc = httpx.get(
        f"{real.base_url}/debug/gctuner", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()
    assert (doc["gogc"], doc["lease"]) == (100, None)  # released: the next run starts afresh

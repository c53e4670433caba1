"""The agent writer's own checks and the parsing of write responses.

The requests themselves (200/401/403/409/422, lease expiry, release) run against the real Go agent
in tests/integration/test_workload.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from gc_tuner.actuation.agent_writer import _result, apply
from gc_tuner.input.agent_doc import NO_LIMIT, AgentSettings
from gc_tuner.net.errors import SourceFormatError
from tests.input.test_agent_parser import readme_json_examples


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


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with agent/README.md's POST answer and keeps what it was sent."""

    answer: ClassVar[bytes] = b""
    seen: ClassVar[list[tuple[str, str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_apply_sends_and_parses_what_the_readme_documents() -> None:
    examples = readme_json_examples()
    [request] = [doc for doc in examples if "leaseSeconds" in doc]
    post_answer, delete_answer = (doc for doc in examples if "previous" in doc)
    handler = type("R", (_Recorder,), {"answer": json.dumps(post_answer).encode(), "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        async with httpx.AsyncClient() as client:
            res = await apply(
                client,
                f"http://127.0.0.1:{srv.server_address[1]}/",
                gogc=request["gogc"],
                memory_limit_bytes=request["memoryLimitBytes"],
                lease_seconds=request["leaseSeconds"],
                owner=request["owner"],
                token=None,
            )
    finally:
        srv.shutdown()
        srv.server_close()
    assert handler.seen == [("/debug/gctuner", "application/json", request)]
    assert res.new == AgentSettings(150, 536870912) and res.lease is not None
    released = _result(delete_answer)
    assert released.released and released.lease is None and released.new == AgentSettings(100, None)


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

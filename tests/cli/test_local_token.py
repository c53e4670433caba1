"""`gc-tuner local`'s bearer token: surrounding whitespace stripped, control characters refused.

Regression: a GC_TUNER_TOKEN with a trailing newline (`$(cat token)` from a file written by `echo`, an
env file) made every request fail with httpx's LocalProtocolError ("Illegal header value").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner, Result

from gc_tuner.cli.main import main


class _Recorder(BaseHTTPRequestHandler):
    """Answers 404 to everything and records the Authorization header of each request."""

    seen: ClassVar[list[str | None]] = []  # replaced per server by the fixture's subclass

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def local(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["local", "--target", url, "--cycles", "1", *args], env=env)


def test_a_token_with_a_trailing_newline_from_the_environment_is_stripped(
    server: tuple[str, list[str | None]],
) -> None:
    url, seen = server
    r = local(url, env={"GC_TUNER_TOKEN": "secret\n"})
    assert r.exit_code == 0, r.output
    assert "LocalProtocolError" not in r.output and "Illegal header" not in r.output
    assert "Bearer secret" in seen  # the agent read went out, with the token as meant


def test_a_token_option_with_surrounding_whitespace_is_stripped(server: tuple[str, list[str | None]]) -> None:
    url, seen = server
    r = local(url, "--token", "  secret\r\n")
    assert r.exit_code == 0, r.output
    assert "Bearer secret" in seen


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        ((), {"GC_TUNER_TOKEN": "sec\nret"}, "GC_TUNER_TOKEN"),
        (("--token", "sec\x00ret"), None, "--token"),
        (("--token", "sec\tret"), None, "--token"),
        (("--token", "s\u00e9cret"), None, "--token"),
    ],
    ids=["env-inner-newline", "option-nul", "option-tab", "option-non-ascii"],
)
def test_a_token_that_cannot_be_a_header_exits_2_naming_its_source(
    server: tuple[str, list[str | None]], args: tuple[str, ...], env: dict[str, str] | None, source: str
) -> None:
    url, seen = server
    r = local(url, *args, env=env)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert r.stderr.startswith(f"Error: {source}: the token contains")
    assert seen == []  # refused before any request


def test_a_token_file_is_checked_too(server: tuple[str, list[str | None]], tmp_path: Path) -> None:
    url, seen = server
    ok = tmp_path / "token"
    ok.write_text("secret\n")
    assert local(url, "--token-file", str(ok)).exit_code == 0 and "Bearer secret" in seen
    bad = tmp_path / "bad"
    bad.write_bytes(b"sec\x01ret\n")
    r = local(url, "--token-file", str(bad))
    assert r.exit_code == 2 and r.stderr.startswith(f"Error: --token-file {bad}: the token contains")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    r = local(url, "--token-file", str(binary))
    assert r.exit_code == 2 and "cannot read the token" in r.stderr

"""Container probes (httpGet, tcpSocket), run against the pod's own loopback IP as a kubelet would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ProbeResult", "ProbeSpec", "run_probe"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class ProbeSpec:
    raw: Obj
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def parse(cls, raw: Obj) -> ProbeSpec:
        return cls(
            raw=raw,
            initial_delay=float(raw.get("initialDelaySeconds", 0)),
            period=float(raw.get("periodSeconds", 10)),
            timeout=float(raw.get("timeoutSeconds", 1)),
            success_threshold=int(raw.get("successThreshold", 1)),
            failure_threshold=int(raw.get("failureThreshold", 3)),
        )


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""


def _port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe names port {port!r}, which container {container['name']!r} does not declare")


async def run_probe(spec: ProbeSpec, container: Obj, pod_ip: str) -> ProbeResult:
    raw = spec.raw
    try:
        if "httpGet" in raw:
            return await _http(raw["httpGet"], container, pod_ip, spec.timeout)
        if "tcpSocket" in raw:
            return await _tcp(raw["tcpSocket"], container, pod_ip, spec.timeout)
    except ValueError as e:
        return ProbeResult(False, str(e))
    kinds = sorted(k for k in raw if k in ("exec", "grpc"))
    return ProbeResult(False, f"probe type {kinds or sorted(raw)} is not supported by the test kubelet")


async def _http(get: Obj, container: Obj, pod_ip: str, timeout: float) -> ProbeResult:
    host = get.get("host") or pod_ip
    scheme = str(get.get("scheme", "HTTP")).lower()
    port = _port(get["port"], container)
    path = get.get("path", "/")
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
    try:
        async with httpx.AsyncClient(verify=False, timeout=timeout) as client:
            resp = await client.get(url, headers=headers)
    except httpx.HTTPError as e:
        return ProbeResult(False, f"Get {url!r}: {type(e).__name__}: {e}")
    if 200 <= resp.status_code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status_code}")


async def _tcp(sock: Obj, container: Obj, pod_ip: str, timeout: float) -> ProbeResult:
    host = sock.get("host") or pod_ip
    port = _port(sock["port"], container)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return ProbeResult(False, f"dial tcp {host}:{port}: {e}")
    writer.close()
    return ProbeResult(True)

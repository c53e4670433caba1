"""A small async client for the few kube-apiserver calls the kubelet makes, over httpx with the client
cert from a kubeconfig. Kept separate from the `kubernetes` package because that one is synchronous and
the kubelet runs everything on one asyncio loop (so that every child is spawned by the main thread,
which PR_SET_PDEATHSIG needs)."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["ApiClient", "ApiError", "Obj"]

Obj = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


def _ssl_from_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    cfg = yaml.safe_load(path.read_text())
    ctx_name = cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    sslctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    sslctx.load_cert_chain(user["client-certificate"], user["client-key"])
    return str(cluster["server"]), sslctx


class ApiClient:
    def __init__(self, kubeconfig: Path) -> None:
        self.server, self.ssl = _ssl_from_kubeconfig(kubeconfig)
        self._http = httpx.AsyncClient(
            base_url=self.server, verify=self.ssl, timeout=httpx.Timeout(30.0, read=60.0)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Obj | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        resp = await self._http.request(
            method,
            path,
            params=params,
            content=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, method, path, resp.text)
        return resp.json() if resp.content else {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        return await self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def delete(self, path: str, body: Obj | None = None) -> Obj:
        return await self.request("DELETE", path, body=body)

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[Obj]:
        """Yield watch events until the server closes the stream (the caller re-lists on 410 Gone)."""
        q = {**params, "watch": "1", "allowWatchBookmarks": "true"}
        timeout = httpx.Timeout(30.0, read=None)
        async with self._http.stream("GET", path, params=q, timeout=timeout) as resp:
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, "WATCH", path, (await resp.aread()).decode())
            async for line in resp.aiter_lines():
                if line.strip():
                    yield json.loads(line)

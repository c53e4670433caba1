"""The kubelet's HTTPS endpoint the apiserver calls for `kubectl logs` / the pods/log API:
GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&sinceTime=
&timestamps=&previous=&limitBytes=. Clients must present a cert signed by the cluster CA (the
apiserver's --kubelet-client-certificate)."""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from e2e.kubelet.logs import ContainerLog, parse_ts

if TYPE_CHECKING:
    from e2e.kubelet.pods import PodWorker

__all__ = ["LogRequestError", "LogServer", "pick_log"]

FindPod = Callable[[str, str], "PodWorker | None"]


class LogRequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _flag(q: dict[str, str], name: str) -> bool:
    return q.get(name, "false").lower() in ("true", "1")


def pick_log(worker: PodWorker | None, ns: str, pod: str, container: str, previous: bool) -> ContainerLog:
    if worker is None:
        raise LogRequestError(404, f'pod "{pod}" in namespace "{ns}" not found on this node')
    runner = next((r for r in [*worker.init, *worker.main] if r.name == container), None)
    if runner is None:
        raise LogRequestError(400, f'container "{container}" is not valid for pod "{pod}"')
    if previous:
        if len(runner.runs) < 2:
            raise LogRequestError(
                400, f'previous terminated container "{container}" in pod "{pod}" not found'
            )
        return runner.runs[-2]
    if not runner.runs:
        reason = runner.state.get("waiting", {}).get("reason", "ContainerCreating")
        raise LogRequestError(400, f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
    return runner.runs[-1]


class LogServer:
    def __init__(self, find: FindPod, cert: Path, key: Path, client_ca: Path) -> None:
        self._find = find
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
        self._ssl.load_cert_chain(str(cert), str(key))
        self._ssl.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=self._ssl).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _req: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, req: web.Request) -> web.StreamResponse:
        ns, pod, container = req.match_info["ns"], req.match_info["pod"], req.match_info["container"]
        q = dict(req.query)
        try:
            log = pick_log(self._find(ns, pod), ns, pod, container, _flag(q, "previous"))
            since: dt.datetime | None = None
            if q.get("sinceSeconds"):
                since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(q["sinceSeconds"]))
            elif q.get("sinceTime"):
                since = parse_ts(q["sinceTime"])
            tail = int(q["tailLines"]) if q.get("tailLines") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        except LogRequestError as e:
            return web.Response(status=e.status, text=str(e))
        except ValueError as e:
            return web.Response(status=400, text=f"bad log request: {e}")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(req)
        # ConnectionError: the client went away (kubectl logs -f interrupted): nothing left to do.
        with contextlib.suppress(ConnectionError):
            await self._stream(resp, log, since, tail, limit, _flag(q, "timestamps"), _flag(q, "follow"))
        return resp

    async def _stream(
        self,
        resp: web.StreamResponse,
        log: ContainerLog,
        since: dt.datetime | None,
        tail: int | None,
        limit: int | None,
        timestamps: bool,
        follow: bool,
    ) -> None:
        sent = 0
        lines, offset = log.read(since, tail)
        for line in lines:
            data = line.render(timestamps)
            if limit is not None and sent + len(data) > limit:
                await resp.write(data[: limit - sent])
                return
            await resp.write(data)
            sent += len(data)
        if follow:
            async for line in log.follow(offset):
                data = line.render(timestamps)
                if limit is not None and sent + len(data) > limit:
                    await resp.write(data[: limit - sent])
                    return
                await resp.write(data)
                sent += len(data)
        await resp.write_eof()

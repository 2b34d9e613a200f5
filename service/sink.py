"""A local stand-in for Kameleoon's Segment endpoint, for offline development and tests.

It takes ``POST <path>`` (events) and ``GET <path>/getapikey`` (credential
checks), keeps every request it received, and prints each as one JSON line
when ``echo`` is on. The apiKey in the authorization header is never printed.

Replies follow a script, so tests and callers can rehearse failures: push
:class:`Reply` objects (a status, headers, a delay, or a dropped connection)
onto ``sink.script``; once it is empty every request gets ``sink.default``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from aiohttp import web

SHOWN_HEADERS = ("authorization", "x-segment-settings", "content-type")


@dataclass
class Reply:
    status: int = 200
    body: str = '{"status":"ok"}'
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict  # lower-case names; every header as sent
    body: str
    status: int | None = None  # what the sink answered; None while unanswered, or when the connection was dropped

    def json(self):
        return json.loads(self.body)

    def shown(self) -> dict:
        """What the sink prints: the apiKey replaced by a fingerprint."""
        headers = {name: self.headers[name] for name in SHOWN_HEADERS if name in self.headers}
        if "authorization" in headers:
            digest = hashlib.sha256(headers["authorization"].encode()).hexdigest()[:8]
            headers["authorization"] = f"Basic <apiKey sha256:{digest}>"
        line = {"method": self.method, "path": self.path, "headers": headers}
        if self.query:
            line["query_keys"] = sorted({part.split("=", 1)[0] for part in self.query.split("&")})
        if self.body:
            try:
                line["body"] = json.loads(self.body)
            except ValueError:
                line["body_text"] = self.body
        return line


class KameleoonSink:
    def __init__(self, path: str = "/segmentio", echo: TextIO | None = None):
        self.path = "/" + path.strip("/")
        self.echo = echo
        self.received: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        app.router.add_get(self.path + "/getapikey", self._handle_getapikey)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> KameleoonSink:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` requests have arrived; return them all."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return list(self.received)

    async def _record(self, request: web.Request) -> Received:
        body = await request.text()
        received = Received(
            request.method,
            request.path,
            request.rel_url.raw_query_string,
            {name.lower(): value for name, value in request.headers.items()},
            body,
        )
        self.received.append(received)
        if self.echo is not None:
            print(json.dumps(received.shown(), ensure_ascii=False), file=self.echo, flush=True)
        async with self.arrived:
            self.arrived.notify_all()
        return received

    async def _reply(self, request: web.Request, received: Received | None = None) -> web.StreamResponse:
        reply = self.script.popleft() if self.script else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            request.transport.abort()
            raise asyncio.CancelledError
        if received is not None:
            received.status = reply.status
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers, content_type="application/json")

    def accepted(self) -> list[Received]:
        """The events the sink answered with a 2xx: what Kameleoon would have taken."""
        return [r for r in self.received if r.method == "POST" and r.status is not None and 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = await self._record(request)
        return await self._reply(request, received)

    async def _handle_getapikey(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.script:
            return await self._reply(request)
        if request.query.get("id") and request.query.get("secret"):
            return web.Response(status=200, text='{"status":"ok"}', content_type="application/json")
        return web.Response(status=401, text='{"error":"unknown api key"}', content_type="application/json")


async def run_sink(host: str, port: int, path: str = "/segmentio") -> None:
    """Run a sink until cancelled, printing what arrives on stdout."""
    sink = await KameleoonSink(path, echo=sys.stdout).start(host, port)
    print(f"# Kameleoon sink listening on {sink.url}", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()

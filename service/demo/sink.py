"""A local stand-in for Kameleoon's Segment endpoint, for offline development and tests.

It takes ``POST <path>`` (events) and ``GET <path>/getapikey`` (credential
checks), keeps every request it received, and prints each as one JSON line
when ``echo`` is on. The apiKey in the authorization header is never printed.

Replies follow a script, so tests and callers can rehearse failures: push
:class:`Reply` objects (a status, headers, a delay, a hold until an event is
set, or a dropped connection) onto ``sink.script``; once it is empty every
request gets ``sink.default``. Each :class:`Received` says when it arrived,
when it was answered, or when the caller gave up on it (monotonic clock), so
tests can see what the service did: how long it waited between attempts,
which attempts it cancelled, how many requests it had in flight at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from aiohttp import web

SHOWN_HEADERS = ("authorization", "x-segment-settings", "content-type")


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = '{"status":"ok"}'  # bytes go out as they are (an answer need not be UTF-8)
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    hold: asyncio.Event | None = None  # answer only once this is set (after ``delay``)


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict  # lower-case names; every header as sent
    body: str
    arrived: float = 0.0  # time.monotonic() once the whole request was read
    answered: float | None = None  # time.monotonic() when the sink began its answer
    header_names: tuple = ()  # every header's name as it came on the wire: its case, in order
    abandoned: float | None = None  # time.monotonic() when the caller closed the connection before an answer
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
        self.choose = None  # when set, choose(received) picks the reply to a POST (None: the script or default)
        self.arrived = asyncio.Condition()  # notified whenever a request arrives, is answered or is abandoned
        self.in_flight = 0  # requests being handled: arrived, neither answered nor abandoned yet
        self.most_in_flight = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def open_connections(self) -> int:
        """Connections callers hold open to the sink now (kept alive between requests, too)."""
        return len(self._runner.server.connections) if self._runner is not None and self._runner.server else 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        app.router.add_get(self.path + "/getapikey", self._handle_getapikey)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> KameleoonSink:
        # handler_cancellation: a caller closing its connection cancels the handler, which records it as abandoned.
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, handler_cancellation=True)
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
        await self.wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    async def wait_until(self, predicate, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever a request arrives, is answered or abandoned."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(predicate), timeout)

    async def _changed(self) -> None:
        async with self.arrived:
            self.arrived.notify_all()

    async def _record(self, request: web.Request) -> Received:
        body = await request.text()
        received = Received(
            request.method,
            request.path,
            request.rel_url.raw_query_string,
            {name.lower(): value for name, value in request.headers.items()},
            body,
            arrived=time.monotonic(),
            header_names=tuple(name.decode("latin-1") for name, _ in request.raw_headers),
        )
        self.received.append(received)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.echo is not None:
            print(json.dumps(received.shown(), ensure_ascii=False), file=self.echo, flush=True)
        await self._changed()
        return received

    async def _reply(self, request: web.Request, received: Received, reply: Reply) -> web.StreamResponse:
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.hold is not None:
                await reply.hold.wait()
        except asyncio.CancelledError:
            received.abandoned = time.monotonic()
            self.in_flight -= 1
            await asyncio.shield(self._changed())
            raise
        self.in_flight -= 1
        if reply.drop:
            request.transport.abort()
            raise asyncio.CancelledError
        received.answered = time.monotonic()
        received.status = reply.status
        await self._changed()
        if isinstance(reply.body, bytes):
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers, content_type="application/json")
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers, content_type="application/json")

    def accepted(self) -> list[Received]:
        """The events the sink answered with a 2xx: what Kameleoon would have taken."""
        return [r for r in self.received if r.method == "POST" and r.status is not None and 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = await self._record(request)
        reply = self.choose(received) if self.choose is not None else None
        if reply is None:
            reply = self.script.popleft() if self.script else self.default
        return await self._reply(request, received, reply)

    async def _handle_getapikey(self, request: web.Request) -> web.StreamResponse:
        received = await self._record(request)
        if self.script:
            return await self._reply(request, received, self.script.popleft())
        if request.query.get("id") and request.query.get("secret"):
            return await self._reply(request, received, Reply())
        return await self._reply(request, received, Reply(status=401, body='{"error":"unknown api key"}'))


async def run_sink(host: str, port: int, path: str = "/segmentio") -> None:
    """Run a sink until cancelled, printing what arrives on stdout."""
    sink = await KameleoonSink(path, echo=sys.stdout).start(host, port)
    print(f"# Kameleoon sink listening on {sink.url}", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()

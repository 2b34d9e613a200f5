"""Segment's HTTP Tracking API, a second way into the same pipeline (KAMELEOON_HTTP_LISTEN).

Services instrumented with Segment's libraries (analytics-python, analytics-node, analytics.js, ...)
send here unchanged, their host set to this server. Routes: ``POST /v1/track|identify|page|screen|
group|alias`` (the path sets ``type``), ``/v1/batch`` and ``/v1/import``, and analytics.js' short
paths ``/v1/t|i|p|s|g|a|b``.

- Auth as the libraries send it: ``Authorization: Basic base64(writeKey:)`` (or without the colon),
  else ``writeKey`` in the body; one of KAMELEOON_WRITE_KEYS, compared in constant time. Else 401.
- Bodies: JSON sent as ``application/json`` or ``text/plain`` (analytics.js), ``Content-Encoding:
  gzip`` accepted. Segment's limits: 32 KB per event, 500 KB per request (after gzip), 2,500 events
  per batch; past them, invalid JSON, a body that is no object, text that is not UTF-8 or a body
  sent slower than READ_TIMEOUT_S: 400 with ``{"success": false, "code", "message"}`` naming it.
- A batch's ``context`` and ``integrations`` merge into each item (the item's keys win), its
  ``sentAt`` into items without one; each item carries its own ``type``.
- Segment's own ingest checks, here only (gRPC keeps its rules): an event with neither ``userId``
  nor ``anonymousId``, or a track without ``event``, is dropped and counted (discard reasons
  ``no_user_anon_id``, ``event_not_defined``); one a mapping refuses is dropped as
  ``invalid_event`` with a log line naming the field. The request still answers 200.
- Queued delivery always: 200 ``{"success": true}`` only once every accepted event is committed to
  the outbox. Outbox full: 429 with Retry-After; outbox unreachable: 503 (the libraries retry both;
  the messageId window makes a retried event a duplicate, not a second delivery).

One log line per request (``event: "http"``), and ``kameleoon_http_requests_total{route, status}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from service import jsonwire
from service.api.pipeline import Pipeline, targets
from service.config import Config
from service.errors import CallError, InvalidArgument, OutboxFull, OutboxUnavailable
from service.ops import logs
from service.workspace.model import Source, Workspace

log = structlog.get_logger("kameleoon.http")

SINGLE = {
    "track": "track",
    "identify": "identify",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
BATCH = frozenset({"batch", "import", "b"})
MAX_EVENT_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
READ_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5
NO_USER = "no_user_anon_id"
NO_EVENT = "event_not_defined"
INVALID = "invalid_event"


class Refused(Exception):
    """The request as a whole is refused with ``status`` and Segment's error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


class TrackingApi:
    """``workspace()``: the sources in force; a write key opens its source (KAMELEOON_WRITE_KEYS the one
    source of the KAMELEOON_* variables, without a workspace file)."""

    def __init__(self, config: Config, pipeline: Pipeline, metrics, workspace: Callable[[], Workspace]):
        self._config = config
        self._pipeline = pipeline
        self._metrics = metrics
        self._workspace = workspace

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1)
        app.router.add_post("/v1/{route}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        route = request.match_info["route"]
        fields: dict = {"route": route}
        status = 200
        try:
            if route not in SINGLE and route not in BATCH:
                raise Refused(404, "not_found", f"no route /v1/{route}: track, identify, page, screen, group, alias, batch, import")
            body = await self._body(request)
            source = self._authenticate(request, body)
            events = self._events(route, body)
            fields["events"] = len(events)
            if self._workspace().from_file:
                fields["source"] = source.name
            await self._accept(events, source, fields)
            return web.json_response({"success": True})
        except Refused as exc:
            status = exc.status
            fields.update(code=exc.code, error=str(exc))
            return web.json_response({"success": False, "code": exc.code, "message": str(exc)}, status=exc.status, headers=exc.headers)
        finally:
            self._metrics.http_request(route if route in SINGLE or route in BATCH else "other", status)
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            logs.logger("kameleoon.http").info("http", api="http", status=status, duration_ms=duration_ms, **fields)

    # -- the request -------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict:
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            raise Refused(400, "too_large", f"the request is {request.content_length} bytes, more than the limit of {MAX_REQUEST_BYTES}")
        try:
            raw = await asyncio.wait_for(self._read(request), READ_TIMEOUT_S)
        except TimeoutError:
            raise Refused(400, "timeout", f"the body did not arrive within {READ_TIMEOUT_S:g} s") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "bad_encoding", "the body is not UTF-8 text") from None
        try:
            body = jsonwire.loads(text)
        except (ValueError, RecursionError) as exc:
            raise Refused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Refused(400, "invalid_json", f"the body must be a JSON object, got {type(body).__name__}")
        return body

    async def _read(self, request: web.Request) -> bytes:
        """The body, decompressed by aiohttp as it arrives (Content-Encoding: gzip), counted as it grows: a
        small body that inflates past the limit is refused without being inflated whole."""
        chunks, size = [], 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > MAX_REQUEST_BYTES:
                    raise Refused(400, "too_large", f"the request is more than the limit of {MAX_REQUEST_BYTES} bytes (once decompressed)")
                chunks.append(chunk)
        except (ContentEncodingError, RequestPayloadError, web.HTTPBadRequest) as exc:
            raise Refused(400, "bad_encoding", f"the body cannot be decompressed ({exc})") from None
        return b"".join(chunks)

    def _authenticate(self, request: web.Request, body: dict) -> Source:
        """The source of the write key in the Authorization header (Basic base64(writeKey:)), else the body's writeKey."""
        key = None
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                key = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
            except (binascii.Error, ValueError):
                key = None
        if not key and isinstance(body.get("writeKey"), str):
            key = body["writeKey"]
        source = self._workspace().source_of(key)
        if source is None:
            raise Refused(401, "unauthorized", "missing or unknown write key: send Authorization: Basic base64(<write key>:), or writeKey")
        return source

    def _events(self, route: str, body: dict) -> list[dict]:
        if route in SINGLE:
            event = {key: value for key, value in body.items() if key != "writeKey"}
            event["type"] = SINGLE[route]
            self._check_size(event, "the event")
            return [event]
        items = body.get("batch")
        if not isinstance(items, list):
            raise Refused(400, "invalid_batch", "a batch needs batch: a list of events")
        if len(items) > MAX_BATCH_EVENTS:
            raise Refused(400, "too_many_events", f"the batch holds {len(items)} events, more than the limit of {MAX_BATCH_EVENTS}")
        shared = {key: body[key] for key in ("context", "integrations") if isinstance(body.get(key), dict)}
        sent_at = body.get("sentAt")
        events = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not item["type"]:
                raise Refused(400, "invalid_batch", f"batch[{index}] must be an event object with its own type")
            for key, value in shared.items():
                own = item.get(key)
                item[key] = {**value, **own} if isinstance(own, dict) else own if key in item else dict(value)
            if sent_at is not None and "sentAt" not in item:
                item["sentAt"] = sent_at
            self._check_size(item, f"batch[{index}]")
            events.append(item)
        return events

    @staticmethod
    def _check_size(event: dict, name: str) -> None:
        size = len(jsonwire.dumps(event))
        if size > MAX_EVENT_BYTES:
            raise Refused(400, "event_too_large", f"{name} is {size} bytes, more than the limit of {MAX_EVENT_BYTES} per event")

    # -- into the pipeline ---------------------------------------------------------

    async def _accept(self, events: list[dict], source: Source, fields: dict) -> None:
        """Segment's ingest checks, then every event committed to the outbox (queued delivery); Refused when
        the outbox cannot take them."""
        kept = []
        for event in events:
            reason = NO_USER if not (event.get("userId") or event.get("anonymousId")) else ""
            if not reason and event.get("type") == "track" and not event.get("event"):
                reason = NO_EVENT
            if reason:
                self._dropped(fields, reason)
                self._pipeline.refused(source, event, reason.upper())
            else:
                kept.append(event)
        if not kept:
            return
        try:
            where = targets(source, None, self._config)
        except CallError as exc:
            raise Refused(500, "not_configured", str(exc)) from None
        outcomes = await self._pipeline.queue_events([(event, where) for event in kept])
        queued = 0
        for event, outcome in zip(kept, outcomes):
            if isinstance(outcome, OutboxFull):
                raise Refused(429, "outbox_full", f"{outcome}", {"Retry-After": str(RETRY_AFTER_S)})
            if isinstance(outcome, OutboxUnavailable):
                raise Refused(503, "outbox_unavailable", f"{outcome}", {"Retry-After": "1"})
            if isinstance(outcome, InvalidArgument):
                self._dropped(fields, INVALID)
                log.info("event dropped", api="http", reason=INVALID, message_id=event.get("messageId"), field=outcome.field, error=str(outcome))
            elif isinstance(outcome, CallError):
                raise Refused(500, "internal", str(outcome))
            else:
                queued += sum(1 for _, done, _ in outcome.results if done.queued)
        fields["queued"] = queued

    def _dropped(self, fields: dict, reason: str) -> None:
        self._metrics.discarded_event(reason)
        fields["dropped"] = fields.get("dropped", 0) + 1

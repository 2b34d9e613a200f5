"""A small Python client for the kameleoon-destination gRPC service.

It sits on top of the generated stub and owns one channel. What it adds:
Kameleoon settings given once and put on every request that carries none, a
default deadline on every call, a bearer token on every call, gRPC's own
retries of ``UNAVAILABLE``, and keyword helpers that take plain dicts and
datetimes::

    from datetime import datetime, timezone
    from kameleoon.destination.client import KameleoonDestinationClient

    async with KameleoonDestinationClient(
        "dns:///kameleoon-destination.analytics.svc.cluster.local:50051",
        api_key=API_KEY, sitecode="0123456789", token=TOKEN, timeout=5,
    ) as client:
        response = await client.log_event(
            event="Order Completed", properties={"revenue": 42},
            kameleoon_visitor_code="vc-1", timestamp=datetime.now(timezone.utc),
        )
        print(response.http_status, response.attempts, response.message_id)
        await client.send({"type": "page", "name": "Home", "timestamp": "2026-11-28T10:00:00Z"})

Keyword arguments of ``log_event``, ``identify``, ``page`` and ``group`` are the
proto fields in snake_case. ``properties``, ``traits`` and ``context`` take
dicts; ``settings`` takes a dict or :class:`Settings`; ``timestamp`` takes an
aware ``datetime`` (sent as UTC, ``2026-11-28T10:00:00.000Z``) or a string;
``message_id`` defaults to a fresh uuid4, so a retried call carries the same id
and the server does not deliver it twice. A request message may be passed
instead of (or as well as) keywords.

``delivery`` ("sync", "queued" or None for the server's default) is accepted by
every event call (on ``send_batch`` it applies to the whole batch): a queued call
is answered once the server has stored the event in its outbox.

Every method also takes ``timeout`` (seconds; ``None`` for no deadline; on
``send_stream`` it bounds the whole stream) and ``metadata``.

Errors: a failed call raises ``grpc.aio.AioRpcError`` (``grpc.RpcError`` from
the sync client) unchanged; ``.code()`` and ``.details()`` say what went wrong
(see docs/api.md's error table). Nothing is wrapped.

Retries: a call answered ``UNAVAILABLE`` is retried by gRPC itself, up to
``retries`` attempts in all (gRPC caps this at 5; ``retries=1`` turns retries
off), with exponential backoff, within the same deadline. The server already
retries Kameleoon over HTTP, so this covers a replica going away or Kameleoon
being down for longer than the server's own attempts.

Load balancing: a ``dns:///`` target (a headless Kubernetes Service) gets
``round_robin`` over every address the name resolves to.

``KameleoonDestinationSyncClient`` has the same methods except ``send_stream``,
over a blocking channel.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc

__all__ = ["KameleoonDestinationClient", "KameleoonDestinationSyncClient", "service_config", "rfc3339"]

SERVICE = "kameleoon.destination.v1.KameleoonDestination"
INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
BACKOFF_MULTIPLIER = 2

_DEFAULT: Any = object()  # "no timeout given": use the client's


def service_config(target: str, retries: int) -> dict:
    """The channel's service config: retries of UNAVAILABLE; round_robin for dns:/// targets."""
    method: dict[str, Any] = {"name": [{"service": SERVICE}]}
    if retries > 1:  # gRPC refuses a retryPolicy with maxAttempts < 2
        method["retryPolicy"] = {
            "maxAttempts": retries,
            "initialBackoff": f"{INITIAL_BACKOFF_S}s",
            "maxBackoff": f"{MAX_BACKOFF_S}s",
            "backoffMultiplier": BACKOFF_MULTIPLIER,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    config: dict[str, Any] = {"methodConfig": [method]}
    if target.startswith("dns:///"):
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    return config


def rfc3339(value: datetime | str) -> str:
    """A string as is; an aware datetime as UTC with milliseconds: 2026-11-28T10:00:00.000Z."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp: a naive datetime is ambiguous; give it a tzinfo (e.g. timezone.utc)")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _settings(value: pb.Settings | Mapping[str, str] | None) -> pb.Settings | None:
    if value is None or isinstance(value, pb.Settings):
        return value
    return pb.Settings(**value)


DELIVERY_MODES = {"sync": pb.DELIVERY_MODE_SYNC, "queued": pb.DELIVERY_MODE_QUEUED}


def _delivery(value: str | int | None) -> int:
    """``"sync"``, ``"queued"``, a DeliveryMode value, or None (the server's default)."""
    if value is None:
        return pb.DELIVERY_MODE_UNSPECIFIED
    if isinstance(value, str):
        try:
            return DELIVERY_MODES[value.lower()]
        except KeyError:
            raise ValueError(f"delivery must be 'sync' or 'queued', got {value!r}") from None
    if value not in pb.DeliveryMode.values():
        raise ValueError(f"delivery must be 'sync' or 'queued', got {value!r}")
    return value


def _event_json(event: Mapping[str, Any] | str) -> str:
    if isinstance(event, str):
        return event
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class _Base:
    """Request building and call options, shared by the async and the sync client."""

    _stub: Any

    def __init__(
        self,
        target: str,
        api_key: str | None,
        sitecode: str | None,
        timeout: float | None,
        retries: int,
        token: str | None,
        channel_options: Sequence[tuple[str, Any]],
    ):
        self.target = target
        self.timeout = timeout
        self.settings = pb.Settings(api_key=api_key or "", sitecode=sitecode or "") if api_key or sitecode else None
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        options = {
            "grpc.enable_retries": 1,
            "grpc.service_config": json.dumps(service_config(target, retries)),
        }
        options.update(dict(channel_options))  # the caller's options win
        self._options = list(options.items())

    def _call(self, timeout: Any, metadata: Sequence[tuple[str, str]] | None) -> dict:
        return {"timeout": self.timeout if timeout is _DEFAULT else timeout, "metadata": self._metadata + tuple(metadata or ())}

    def _with_settings(self, request: Any, settings: Any = None) -> Any:
        settings = _settings(settings) or self.settings
        if settings is not None and not request.HasField("settings"):
            request.settings.CopyFrom(settings)
        return request

    def _typed(self, cls: type, request: Any, fields: dict) -> Any:
        message = cls()
        if request is not None:
            message.CopyFrom(request)  # never change the caller's message
        for name, value in fields.items():
            if value is None:
                continue
            if name == "timestamp":
                value = rfc3339(value)
            elif name == "delivery":
                value = _delivery(value)
            elif name == "settings":
                value = _settings(value)
            target = getattr(message, name)
            if isinstance(target, struct_pb2.Struct):
                target.Clear()
                if isinstance(value, struct_pb2.Struct):
                    target.CopyFrom(value)
                else:
                    target.update(value)
            elif name == "settings":
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        if not message.message_id:
            message.message_id = str(uuid.uuid4())
        return self._with_settings(message)

    def _send_request(
        self, event: pb.SendRequest | Mapping[str, Any] | str, settings: Any = None, delivery: str | int | None = None
    ) -> pb.SendRequest:
        if isinstance(event, pb.SendRequest):
            request = pb.SendRequest()
            request.CopyFrom(event)
        else:
            request = pb.SendRequest(event_json=_event_json(event))
        if delivery is not None:
            request.delivery = _delivery(delivery)
        return self._with_settings(request, settings)

    # The calls. On the async client each returns an awaitable call (``await`` it for the response).

    def log_event(
        self,
        request: pb.LogEventRequest | None = None,
        /,
        *,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ):
        """Kameleoon "Log Event". Fields: settings, anonymous_id, user_id, event, type, properties,
        kameleoon_visitor_code, timestamp, context, message_id. Returns an ActionResponse."""
        return self._stub.LogEvent(self._typed(pb.LogEventRequest, request, fields), **self._call(timeout, metadata))

    def identify(
        self,
        request: pb.IdentifyEventRequest | None = None,
        /,
        *,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ):
        """Kameleoon "Identify Event". Fields: settings, anonymous_id, user_id, type, traits,
        kameleoon_visitor_code, timestamp, message_id. Returns an ActionResponse."""
        return self._stub.IdentifyEvent(self._typed(pb.IdentifyEventRequest, request, fields), **self._call(timeout, metadata))

    def page(
        self,
        request: pb.PageEventRequest | None = None,
        /,
        *,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ):
        """Kameleoon "Page Event". Fields: settings, anonymous_id, user_id, type, properties,
        kameleoon_visitor_code, name, context, timestamp, message_id. Returns an ActionResponse."""
        return self._stub.PageEvent(self._typed(pb.PageEventRequest, request, fields), **self._call(timeout, metadata))

    def group(
        self,
        request: pb.GroupEventRequest | None = None,
        /,
        *,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ):
        """Kameleoon "Group Event". Fields: settings, anonymous_id, user_id, type, group_id, traits,
        kameleoon_visitor_code, timestamp, message_id. Returns an ActionResponse."""
        return self._stub.GroupEvent(self._typed(pb.GroupEventRequest, request, fields), **self._call(timeout, metadata))

    def send(
        self,
        event: Mapping[str, Any] | str,
        *,
        settings: Any = None,
        delivery: str | int | None = None,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
    ):
        """One raw Segment event (a dict, or JSON text sent as is). Returns a SendResponse.
        ``delivery``: "sync", "queued" (answered once stored in the outbox) or None (the server's default)."""
        return self._stub.Send(self._send_request(event, settings, delivery), **self._call(timeout, metadata))

    def send_batch(
        self,
        events: Iterable[Mapping[str, Any] | str],
        *,
        settings: Any = None,
        delivery: str | int | None = None,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
    ):
        """Many raw events in one call. Returns a SendBatchResponse: one SendResponse per event, in order,
        each with its own ``status``. ``delivery`` applies to the whole batch."""
        request = pb.SendBatchRequest(requests=[self._send_request(event) for event in events], delivery=_delivery(delivery))
        self._with_settings(request, settings)
        return self._stub.SendBatch(request, **self._call(timeout, metadata))

    def test_authentication(self, *, settings: Any = None, timeout: Any = _DEFAULT, metadata: Sequence[tuple[str, str]] | None = None):
        """Check the credentials (the client's, or ``settings``). Returns a TestAuthenticationResponse."""
        request = self._with_settings(pb.TestAuthenticationRequest(), settings)
        return self._stub.TestAuthentication(request, **self._call(timeout, metadata))


class KameleoonDestinationClient(_Base):
    """Async client owning one ``grpc.aio`` channel; use as ``async with ... as client``.

    Calls raise ``grpc.aio.AioRpcError`` on failure. ``client.stub`` is the generated
    stub on the same channel, for anything the helpers do not cover.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        sitecode: str | None = None,
        timeout: float | None = 10.0,
        retries: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ):
        super().__init__(target, api_key, sitecode, timeout, retries, token, channel_options)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(target, credentials, options=self._options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=self._options)
        self.stub = self._stub = pb_grpc.KameleoonDestinationStub(self.channel)

    async def __aenter__(self) -> KameleoonDestinationClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        await self.channel.close(grace)

    async def send_stream(
        self,
        events: AsyncIterable[Mapping[str, Any] | str] | Iterable[Mapping[str, Any] | str],
        *,
        settings: Any = None,
        delivery: str | int | None = None,
        timeout: Any = _DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> AsyncIterator[pb.SendResponse]:
        """Raw events as a stream: yields one SendResponse per event, in order, each with its ``status``.
        ``timeout`` bounds the whole stream (pass ``None`` for a long-lived one)."""

        async def requests() -> AsyncIterator[pb.SendRequest]:
            if isinstance(events, AsyncIterable):
                async for event in events:
                    yield self._send_request(event, settings, delivery)
            else:
                for event in events:
                    yield self._send_request(event, settings, delivery)

        call = self._stub.SendStream(requests(), **self._call(timeout, metadata))
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()  # a no-op once the call has ended; stops it when the caller breaks out early


class KameleoonDestinationSyncClient(_Base):
    """Blocking client over a plain channel (``with ... as client``); no ``send_stream``.
    Calls raise ``grpc.RpcError`` (with ``.code()`` and ``.details()``) on failure."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        sitecode: str | None = None,
        timeout: float | None = 10.0,
        retries: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ):
        super().__init__(target, api_key, sitecode, timeout, retries, token, channel_options)
        if credentials is not None:
            self.channel = grpc.secure_channel(target, credentials, options=self._options)
        else:
            self.channel = grpc.insecure_channel(target, options=self._options)
        self.stub = self._stub = pb_grpc.KameleoonDestinationStub(self.channel)

    def __enter__(self) -> KameleoonDestinationSyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

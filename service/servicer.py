"""The gRPC servicer: thin. Each RPC turns its request into a payload, hands it
to the action and the delivery client, and turns the outcome into a response
or a status (errors.CallError -> gRPC code in :func:`_abort`, the one place).
One log line per RPC.
"""

from __future__ import annotations

import asyncio
import time
import grpc
import structlog

from service import credentials, jsonwire
from service.actions import ACTIONS, Action
from service.api import destination_pb2 as pb
from service.api import destination_pb2_grpc as pb_grpc
from service.config import SITECODE_LENGTH, Config
from service.delivery import KameleoonClient
from service.errors import CallError, DeliveryError, InvalidArgument, abort

log = structlog.get_logger("kameleoon.rpc")


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return asyncio.get_running_loop().time() + remaining


class Servicer(pb_grpc.KameleoonDestinationServicer):
    def __init__(self, config: Config, client: KameleoonClient):
        self._config = config
        self._client = client

    # -- typed actions -------------------------------------------------------

    async def deliver(self, action: Action, payload: dict, creds: credentials.Credentials, deadline: float | None):
        """Validate a payload, build Segment's body and post it. Returns delivery.Delivered."""
        body = jsonwire.dumps(action.body(action.validate(payload)))
        return await self._client.post(body, creds, deadline)

    async def _typed(self, action: Action, request, context: grpc.aio.ServicerContext) -> pb.ActionResponse:
        fields = {"action": action.slug, "message_id": request.message_id or None}
        async with _rpc_log(action.title.replace(" ", ""), fields):
            try:
                creds = credentials.resolve(request.settings if request.HasField("settings") else None, self._config)
                delivered = await self.deliver(action, action.payload_of(request), creds, _deadline(context))
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            fields.update(http_status=delivered.http_status, attempts=delivered.attempts)
            return pb.ActionResponse(http_status=delivered.http_status, attempts=delivered.attempts, message_id=request.message_id)

    async def LogEvent(self, request, context):
        return await self._typed(ACTIONS["logEvent"], request, context)

    async def IdentifyEvent(self, request, context):
        return await self._typed(ACTIONS["identify"], request, context)

    async def PageEvent(self, request, context):
        return await self._typed(ACTIONS["page"], request, context)

    async def GroupEvent(self, request, context):
        return await self._typed(ACTIONS["group"], request, context)

    # -- credentials ---------------------------------------------------------

    async def TestAuthentication(self, request, context):
        fields: dict = {}
        async with _rpc_log("TestAuthentication", fields):
            settings = request.settings if request.HasField("settings") else None
            try:
                creds = credentials.resolve(settings, self._config)
                entries = credentials.api_key_entries(creds.api_key)
                delivered = await self._client.check_api_key(entries, _deadline(context))
            except (InvalidArgument, DeliveryError) as exc:
                if isinstance(exc, DeliveryError) and exc.http_status == 0:
                    _record_failure(fields, exc)
                    await abort(context, exc)
                fields.update(ok=False, http_status=getattr(exc, "http_status", 0))
                return pb.TestAuthenticationResponse(ok=False, message=_auth_message(exc))
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            fields.update(ok=True, http_status=delivered.http_status, attempts=delivered.attempts)
            return pb.TestAuthenticationResponse(ok=True, message=f"Kameleoon accepted the apiKey (HTTP {delivered.http_status})")


def _auth_message(exc: CallError) -> str:
    if isinstance(exc, InvalidArgument) and exc.field == "settings.sitecode":
        return f"Invalid project sitecode: it must be {SITECODE_LENGTH} characters. Please check your sitecode"
    return str(exc)


def _record_failure(fields: dict, exc: CallError) -> None:
    fields["code"] = exc.code.name
    fields["error"] = str(exc)
    if isinstance(exc, DeliveryError):
        fields.update(http_status=exc.http_status, attempts=exc.attempts)


class _rpc_log:
    """Writes the one log line of an RPC when it ends, however it ends."""

    def __init__(self, method: str, fields: dict):
        self._method = method
        self._fields = fields

    async def __aenter__(self):
        self._start = time.perf_counter()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        fields = self._fields
        if exc_type is asyncio.CancelledError:
            fields.setdefault("code", "CANCELLED")
        elif exc_type is not None and "code" not in fields:
            fields["code"] = "INTERNAL"
            log.error("rpc failed", method=self._method, exc_info=(exc_type, exc, tb))
        fields.setdefault("code", "OK")
        duration_ms = round((time.perf_counter() - self._start) * 1000, 3)
        log.info("rpc", method=self._method, duration_ms=duration_ms, **fields)


__all__ = ["Servicer"]

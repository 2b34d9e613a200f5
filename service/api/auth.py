"""Who may call the gRPC port: write keys (a workspace's sources), operators' tokens (KAMELEOON_ADMIN_TOKENS),
and the bearer tokens of deployments without a workspace (KAMELEOON_AUTH_TOKENS).

A refused call ends with UNAUTHENTICATED (or PERMISSION_DENIED for a write key on an operator's RPC)
before any handler runs, so nothing is sent. Health checks stay open for load balancers and probes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import Any

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
ADMIN_PREFIX = ("/kameleoon.destination.v1.OutboxAdmin/", "/kameleoon.destination.v1.DeliveryOverview/")  # operators' services
REFLECTION_PREFIX = "/grpc.reflection."


def credential_of(metadata) -> str | None:
    """The token or write key a call presents: ``authorization: Bearer <it>``, or ``Basic base64(<it>:)`` as
    Segment's libraries send a write key (the colon may be missing); None when there is none."""
    for key, value in metadata or ():
        if key != "authorization" or not isinstance(value, str):
            continue
        scheme = value[:7].lower()
        if scheme == "bearer ":
            return value[7:].strip() or None
        if scheme[:6] == "basic ":
            try:
                return base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0] or None
            except (binascii.Error, ValueError):
                return None
    return None


def _deny_unary(code: grpc.StatusCode, message: str, refused):
    async def deny(request, context):
        refused()
        await context.abort(code, message)

    return deny


def _deny_stream(code: grpc.StatusCode, message: str, refused):
    async def deny(request_iterator, context):
        refused()
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    return deny


def _one_of(offered: str | None, tokens: tuple[bytes, ...]) -> bool:
    return offered is not None and any(hmac.compare_digest(offered.encode(), token) for token in tokens)


class CallerInterceptor(grpc.aio.ServerInterceptor):
    """Who may call what, before any handler runs; ``metrics`` counts the refusals (kameleoon_rpc_total).

    - Health checks: open, for load balancers and probes.
    - OutboxAdmin and DeliveryOverview (operators): a token of KAMELEOON_ADMIN_TOKENS when set, or with a workspace
      (PERMISSION_DENIED for a write key, UNAUTHENTICATED otherwise); without either, as below.
    - Everything else: with a workspace file, a write key of one of its sources (reflection also takes an
      admin token); without one, a token of KAMELEOON_AUTH_TOKENS when set; else open.
    """

    def __init__(self, auth_tokens: tuple[str, ...], admin_tokens: tuple[str, ...], workspace: Callable[[], Any], metrics=None):
        self._auth = tuple(token.encode() for token in auth_tokens)
        self._admin = tuple(token.encode() for token in admin_tokens)
        self._workspace = workspace
        self._metrics = metrics

    def needed(self) -> bool:
        """Whether any call can be refused (else the interceptor is left out of the chain)."""
        return bool(self._auth or self._admin or self._workspace().from_file)

    def _verdict(self, method: str, metadata) -> tuple[grpc.StatusCode, str] | None:
        """None: let it through; else the code and message refusing it."""
        if method.startswith(OPEN_PREFIXES):
            return None
        workspace = self._workspace()
        offered = credential_of(metadata)
        if method.startswith(ADMIN_PREFIX) and (self._admin or workspace.from_file):
            if _one_of(offered, self._admin):
                return None
            if workspace.source_of(offered) is not None:
                return grpc.StatusCode.PERMISSION_DENIED, "a write key does not open operators' RPCs: send a token of KAMELEOON_ADMIN_TOKENS"
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid operator token: send 'authorization: Bearer <a token of KAMELEOON_ADMIN_TOKENS>'",
            )
        if workspace.from_file:
            if workspace.source_of(offered) is not None or (method.startswith(REFLECTION_PREFIX) and _one_of(offered, self._admin)):
                return None
            return grpc.StatusCode.UNAUTHENTICATED, "missing or unknown write key: send 'authorization: Bearer <write key>' metadata"
        if self._auth and not _one_of(offered, self._auth):
            return grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token: send 'authorization: Bearer <token>' metadata"
        return None

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        verdict = None if handler is None else self._verdict(details.method, details.invocation_metadata)
        if verdict is None:
            return handler
        code, message = verdict
        method = details.method.rsplit("/", 1)[-1]

        def refused() -> None:
            if self._metrics is not None:
                self._metrics.rpc_refused(method, code.name)

        kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream(code, message, refused), **kwargs)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny_unary(code, message, refused), **kwargs)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny_stream(code, message, refused), **kwargs)
        return grpc.unary_unary_rpc_method_handler(_deny_unary(code, message, refused), **kwargs)

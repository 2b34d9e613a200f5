"""Bearer-token authentication on the gRPC port (KAMELEOON_AUTH_TOKENS).

A call without ``authorization: Bearer <one of the tokens>`` metadata ends
with UNAUTHENTICATED before any handler runs, so nothing is sent. Health
checks stay open for load balancers and probes.
"""

from __future__ import annotations

import hmac

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny_unary(message: str, refused):
    async def deny(request, context):
        refused()
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return deny


def _deny_stream(message: str, refused):
    async def deny(request_iterator, context):
        refused()
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    return deny


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid token; ``metrics`` counts the refusals (kameleoon_rpc_total)."""

    def __init__(self, tokens: tuple[str, ...], metrics=None):
        self._tokens = tuple(token.encode() for token in tokens)
        self._metrics = metrics

    def _allowed(self, metadata) -> bool:
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
                offered = value[7:].strip().encode()
                return any(hmac.compare_digest(offered, token) for token in self._tokens)
        return False

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES) or self._allowed(details.invocation_metadata):
            return handler
        message = "missing or invalid bearer token: send 'authorization: Bearer <token>' metadata"
        method = details.method.rsplit("/", 1)[-1]

        def refused() -> None:
            if self._metrics is not None:
                self._metrics.rpc_refused(method, grpc.StatusCode.UNAUTHENTICATED.name)

        kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream(message, refused), **kwargs)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny_unary(message, refused), **kwargs)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny_stream(message, refused), **kwargs)
        return grpc.unary_unary_rpc_method_handler(_deny_unary(message, refused), **kwargs)

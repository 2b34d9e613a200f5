"""Method handlers whose request decoding cannot end a call with UNKNOWN, and that count calls.

grpcio answers a request that fails to decode (for example a Struct nested
deeper than protobuf's recursion limit) with UNKNOWN and an internal message.
These handlers decode requests themselves and answer such a request with
INVALID_ARGUMENT instead. They are built from the service descriptor, so the
generated stubs stay untouched.
"""

from __future__ import annotations

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import ServiceDescriptor

from service.errors import InvalidArgument, abort
from service.ops.metrics import NoMetrics


class Undecodable:
    """Stands for a request message that failed to decode."""

    def __init__(self, type_name: str, reason: str):
        self.error = InvalidArgument(
            f"the {type_name} message cannot be decoded ({reason}); objects nested more than about 30 levels deep "
            "do not fit a protobuf Struct: send such events with Send as JSON"
        )


def _decoder(cls):
    def decode(data: bytes):
        try:
            return cls.FromString(data)
        except message.DecodeError as exc:
            return Undecodable(cls.DESCRIPTOR.name, str(exc).rsplit(":", 1)[-1].strip())

    return decode


def _unary(behaviour, name: str, metrics):
    """The method's behaviour, an undecodable request answered INVALID_ARGUMENT, the call counted."""

    async def handle(request, context):
        metrics.rpc_started(name)
        exc = None
        try:
            if isinstance(request, Undecodable):
                await abort(context, request.error)
            return await behaviour(request, context)
        except BaseException as error:
            exc = error
            raise
        finally:
            metrics.rpc_finished(name, context, exc)

    return handle


def _stream(behaviour, name: str, metrics):
    async def handle(request_iterator, context):
        metrics.rpc_started(name)
        exc = None
        try:
            async for response in behaviour(request_iterator, context):
                yield response
        except BaseException as error:
            exc = error
            raise
        finally:
            metrics.rpc_finished(name, context, exc)

    return handle


def handlers(service: ServiceDescriptor, servicer, metrics=None) -> grpc.GenericRpcHandler:
    """A generic handler serving every method of ``service`` from ``servicer``, counting calls in ``metrics``."""
    metrics = metrics or NoMetrics()
    methods = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name)
        kwargs = {"request_deserializer": _decoder(request_cls), "response_serializer": response_cls.SerializeToString}
        if method.client_streaming and method.server_streaming:
            methods[method.name] = grpc.stream_stream_rpc_method_handler(_stream(behaviour, method.name, metrics), **kwargs)
        elif method.client_streaming or method.server_streaming:
            raise NotImplementedError(f"{method.full_name}: only unary and bidirectional methods are served")
        else:
            methods[method.name] = grpc.unary_unary_rpc_method_handler(_unary(behaviour, method.name, metrics), **kwargs)
    return grpc.method_handlers_generic_handler(service.full_name, methods)

"""The one error tree of the service, and its mapping to gRPC status codes.

    DestinationError
    ├── ConfigError                  bad start-up configuration (names the key)
    │   ├── SubscriptionError        bad subscriptions file (names the subscription)
    │   ├── OutboxOpenError          the outbox cannot be opened (names the file or store)
    │   └── FilterError              bad filters file (names the filter and the problem)
    ├── MappingError                 a mapping directive or trigger that cannot be compiled
    │   └── TriggerError             a subscription trigger that does not parse
    ├── FQLError                     a destination filter's condition that does not compile (has a position)
    ├── FilterEvaluationError        a filter condition that throws on an event, as tsub would: the event is dropped
    └── CallError                    anything that ends an RPC; each has a gRPC code
        ├── InvalidArgument          bad input, names the field; nothing was sent
        ├── MissingSetting           no apiKey/sitecode in the request nor the config
        ├── Unauthenticated          bearer token or write key missing or wrong on the gRPC port
        ├── SettingsRefused          request settings where the caller's source forbids them
        ├── Overloaded               too much work in flight; retry later
        │   └── OutboxFull           KAMELEOON_OUTBOX_MAX_PENDING events wait already; nothing stored
        ├── OutboxUnavailable        the outbox cannot be written (disk full, read-only, ...); nothing stored
        └── DeliveryError            Kameleoon did not take the event
            ├── Rejected             400, 404, 413, 422 and other 4xx: not retried
            ├── KameleoonUnauthorized 401
            ├── KameleoonForbidden   403
            ├── UpstreamUnimplemented 501
            ├── Unavailable          retryable failures after the last attempt, other odd answers
            └── DeadlineExceeded     the caller's deadline ran out first

Lower-level exceptions (aiohttp, json, ...) are caught where they happen and
re-raised as one of these with ``raise ... from exc``; the servicer turns a
CallError into a gRPC status in one place, :func:`to_status`.
Messages never contain the apiKey or its decoded secret.
"""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

MAX_UPSTREAM_TEXT = 300


class DestinationError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(DestinationError):
    """Start-up configuration is wrong; the message names the setting."""


class SubscriptionError(ConfigError):
    """The subscriptions file is wrong; the message names the subscription."""


class OutboxOpenError(ConfigError):
    """The outbox cannot be opened or used at start-up; the message names the file or store."""


class FilterError(ConfigError):
    """The filters file is wrong; the message names the filter and the problem."""


class FQLError(DestinationError):
    """Destination-filter FQL that does not compile; ``offset`` is where (UTF-16 units into the text)."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


class FilterEvaluationError(DestinationError):
    """A filter condition that cannot be evaluated on an event (where Segment's tsub throws)."""


class MappingError(DestinationError):
    """A mapping (Segment mapping-kit directives) that cannot be compiled or resolved."""


class TriggerError(MappingError):
    """A subscription trigger (Segment's FQL) that does not parse."""


class CallError(DestinationError):
    """An error that ends an RPC with ``code``."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def details(self) -> list:
        """Extra google.rpc detail messages for the status."""
        return []


class InvalidArgument(CallError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def details(self) -> list:
        if not self.field:
            return []
        violation = error_details_pb2.BadRequest.FieldViolation(field=self.field, description=str(self))
        return [error_details_pb2.BadRequest(field_violations=[violation])]


class MissingSetting(CallError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(CallError):
    code = grpc.StatusCode.UNAUTHENTICATED


class SettingsRefused(CallError):
    """The caller's source does not let requests carry their own settings (allow_request_settings: false)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Overloaded(CallError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutboxFull(Overloaded):
    """Queued delivery refused: the outbox holds KAMELEOON_OUTBOX_MAX_PENDING undelivered events."""


class OutboxUnavailable(CallError):
    """The outbox could not commit (or read): nothing was accepted."""

    code = grpc.StatusCode.UNAVAILABLE


class DeliveryError(CallError):
    """Kameleoon did not accept the event."""

    def __init__(self, message: str, *, http_status: int = 0, attempts: int = 0):
        super().__init__(message)
        self.http_status = http_status
        self.attempts = attempts


class Rejected(DeliveryError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class KameleoonUnauthorized(DeliveryError):
    code = grpc.StatusCode.UNAUTHENTICATED


class KameleoonForbidden(DeliveryError):
    code = grpc.StatusCode.PERMISSION_DENIED


class UpstreamUnimplemented(DeliveryError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(DeliveryError):
    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, http_status: int = 0, attempts: int = 0, retry_after: float | None = None):
        super().__init__(message, http_status=http_status, attempts=attempts)
        self.retry_after = retry_after

    def details(self) -> list:
        if self.retry_after is None:
            return []
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after * 1e9))
        return [error_details_pb2.RetryInfo(retry_delay=delay)]


class DeadlineExceeded(DeliveryError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def for_http_status(status: int, text: str, attempts: int) -> DeliveryError:
    """The error for a final, non-2xx answer from Kameleoon."""
    answer = truncate(text)
    if status == 401:
        return KameleoonUnauthorized(
            f"Kameleoon refused the credentials (HTTP 401): check the apiKey. {answer}".rstrip(),
            http_status=status,
            attempts=attempts,
        )
    if status == 403:
        return KameleoonForbidden(
            f"Kameleoon denied access (HTTP 403): check that the apiKey may write to this sitecode. {answer}".rstrip(),
            http_status=status,
            attempts=attempts,
        )
    if status == 501:
        return UpstreamUnimplemented(
            f"Kameleoon does not implement this request (HTTP 501). {answer}".rstrip(), http_status=status, attempts=attempts
        )
    if not 400 <= status < 500:
        return Unavailable(f"Kameleoon gave an unexpected answer (HTTP {status}). {answer}".rstrip(), http_status=status, attempts=attempts)
    return Rejected(
        f"Kameleoon rejected the event (HTTP {status}): the request was not accepted and will not be retried. {answer}".rstrip(),
        http_status=status,
        attempts=attempts,
    )


def truncate(text: str, limit: int = MAX_UPSTREAM_TEXT) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"Kameleoon answered: {text}"


def status_of(exc: CallError) -> status_pb2.Status:
    """The google.rpc.Status of ``exc``, as carried per event in batches and streams and in trailers."""
    status = status_pb2.Status(code=exc.code.value[0], message=str(exc))
    for detail in exc.details():
        status.details.add().Pack(detail)
    return status


OK_STATUS = status_pb2.Status(code=code_pb2.OK)


async def abort(context: grpc.aio.ServicerContext, exc: CallError) -> None:
    """End an RPC with ``exc``: the one place a CallError becomes a gRPC status (details included)."""
    status = status_of(exc)
    await context.abort(exc.code, status.message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))

"""The gRPC servicer: thin. Each RPC turns its request into a payload or a raw
event, hands it to the pipeline, and turns the outcome into a response or a
status (a CallError becomes a gRPC code in :func:`service.errors.abort`, the
one place). One log line per RPC.

Each request is delivered in its own ``delivery`` mode, else its batch's, else
the server's (KAMELEOON_DELIVERY): sync posts during the call; queued answers
once the rendered request is committed to the outbox.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable

import grpc
import structlog

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.auth import credential_of
from service.api.decoding import Undecodable
from service.api.pipeline import Outcome, Pipeline, Target, targets
from service.api.preview import Previewer
from service.config import SITECODE_LENGTH, Config
from service.delivery import credentials
from service.delivery.client import Delivered
from service.errors import OK_STATUS, CallError, DeliveryError, InvalidArgument, Unauthenticated, abort, status_of
from service.ingest import message_id_of, parse_event
from service.ops import logs
from service.routing.actions import ACTIONS, Action
from service.routing.mapping.jsvalue import well_formed
from service.workspace.model import Source, Workspace

log = structlog.get_logger("kameleoon.rpc")


def _deadline(context: grpc.aio.ServicerContext, loop: asyncio.AbstractEventLoop) -> float | None:
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return loop.time() + remaining


def _result(subscription, done, instance) -> pb.SubscriptionResult:
    """The SubscriptionResult of a delivery (Delivered) or a queued event (Queued). Those of deliveries are
    made only when a response's shape is new (_send_response keeps one response per shape)."""
    return pb.SubscriptionResult(subscription=subscription.name, action=subscription.action.slug, destination=instance.name, **_result_fields(done))


def _settings(request):
    return request.settings if request.HasField("settings") else None


QUEUED = pb.DELIVERY_MODE_QUEUED


def _result_fields(done) -> dict:
    """What a delivery (Delivered) or a queued event (Queued) says in a response."""
    return {
        "http_status": done.http_status,
        "attempts": done.attempts,
        "duplicate": done.duplicate,
        "queued": done.queued,
        "outbox_id": done.outbox_id,
    }


class Servicer(pb_grpc.KameleoonDestinationServicer):
    """``workspace()``: the sources and instances in force (a reload replaces them between calls)."""

    def __init__(self, config: Config, pipeline: Pipeline, workspace: Callable[[], Workspace]):
        self._config = config
        self._pipeline = pipeline
        self._workspace = workspace
        self._client = pipeline.client
        self._previewer = Previewer(pipeline, pipeline.metrics)
        self._loop = asyncio.get_running_loop()  # once: each get_running_loop() is a getpid() system call
        self._default_mode = QUEUED if config.delivery == "queued" else pb.DELIVERY_MODE_SYNC
        # One typed RPC per action, named after its request message (LogEventRequest -> LogEvent):
        # a new action needs no code here.
        for action in ACTIONS.values():
            setattr(self, action.rpc, functools.partial(self._typed, action))

    def _queued(self, request, batch_mode: int = 0) -> bool:
        return (request.delivery or batch_mode or self._default_mode) == QUEUED

    def _source(self, context: grpc.aio.ServicerContext) -> Source:
        """The caller's source: the write key it presents, with a workspace file; else the one source."""
        workspace = self._workspace()
        if not workspace.from_file:
            return workspace.default
        source = workspace.source_of(credential_of(context.invocation_metadata()))
        if source is None:
            raise Unauthenticated("missing or unknown write key: send 'authorization: Bearer <write key>' metadata")
        return source

    # -- typed actions -------------------------------------------------------

    async def _typed(self, action: Action, request, context: grpc.aio.ServicerContext) -> pb.ActionResponse:
        fields = {"action": action.slug, "message_id": request.message_id or None}
        with _rpc_log(action.rpc, fields):
            try:
                source = self._source(context)
                where = targets(source, _settings(request), self._config)
                if self._queued(request):
                    results = await self._pipeline.queue_payload(action, action.payload_of(request), where)
                else:
                    results = await self._pipeline.deliver_payload(action, action.payload_of(request), where, _deadline(context, self._loop))
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            if not results:  # the source has no enabled instance: sent nowhere
                fields.update(source=source.name)
                return pb.ActionResponse(message_id=request.message_id)
            _, done = results[0]
            result = _result_fields(done)
            fields.update(http_status=done.http_status, attempts=done.attempts, duplicate=done.duplicate)
            if done.filtered_by:
                fields["filtered_by"] = done.filtered_by
            if done.discard_reason:
                fields["discard_reason"] = done.discard_reason
            if result["queued"]:
                fields.update(queued=True, outbox_id=result["outbox_id"])
            response = pb.ActionResponse(message_id=request.message_id, filtered_by=done.filtered_by, discard_reason=done.discard_reason, **result)
            if not results[0][0].implicit:  # a workspace's instances: each one's own result, and the log line names them
                fields.update(source=source.name, destinations=[instance.name for instance, _ in results])
                for instance, each in results:
                    response.results.add(action=action.slug, destination=instance.name, discard_reason=each.discard_reason, **_result_fields(each))
            return response

    # -- raw events ----------------------------------------------------------

    def _prepare(self, request, batch_settings, source: Source) -> tuple[dict, list[Target]]:
        """A raw event and where it goes; raises CallError. ``batch_settings`` fill in when the event carries none."""
        try:
            event = parse_event(request.event_json, self._config.max_event_bytes)
        except InvalidArgument as exc:
            self._pipeline.refused(source, request.event_json, error=str(exc))
            raise
        return event, targets(source, _settings(request) or batch_settings, self._config)

    async def _send_one(self, request, batch_settings, source: Source, deadline: float | None, batch_mode: int = 0) -> Outcome:
        """One raw event, sync or queued; raises CallError."""
        event, where = self._prepare(request, batch_settings, source)
        if self._queued(request, batch_mode):
            [outcome] = await self._pipeline.queue_events([(event, where)])
            if isinstance(outcome, CallError):
                raise outcome
            return outcome
        return await self._pipeline.send_event(event, where, deadline)

    async def _send_logged(
        self, method: str, request, batch_settings, source: Source, deadline, tally: dict, batch_mode: int = 0, into: pb.SendResponse | None = None
    ) -> pb.SendResponse:
        """One raw event of a batch or stream: its own status, never an exception; a log line when it failed.
        The response is written into ``into`` (a batch's own entry) when given."""
        if isinstance(request, Undecodable):
            return _failed(method, request, request.error, tally, into)
        try:
            outcome = await self._send_one(request, batch_settings, source, deadline, batch_mode)
        except CallError as exc:
            return _failed(method, request, exc, tally, into)
        _tally(tally, outcome)
        return _send_response(outcome, into)

    async def _queue_batch(self, method: str, items: list, batch_settings, source: Source, responses: list, tally: dict) -> None:
        """The queued events of a batch: each prepared alone, all committed in one transaction."""
        prepared = []
        for index, request in items:
            try:
                prepared.append((index, request, *self._prepare(request, batch_settings, source)))
            except CallError as exc:
                _failed(method, request, exc, tally, responses[index])
        outcomes = await self._pipeline.queue_events([(event, where) for _, _, event, where in prepared])
        for (index, request, _, _), outcome in zip(prepared, outcomes):
            if isinstance(outcome, CallError):
                _failed(method, request, outcome, tally, responses[index])
            else:
                _send_response(outcome, responses[index])
                _tally(tally, outcome)

    async def Send(self, request, context):
        fields: dict = {}
        with _rpc_log("Send", fields):
            try:
                outcome = await self._send_one(request, None, self._source(context), _deadline(context, self._loop))
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            _record_results(fields, outcome)
            return _send_response(outcome)

    async def SendBatch(self, request, context):
        fields: dict = {"events": len(request.requests), "delivered": 0, "queued": 0, "failed": 0}
        with _rpc_log("SendBatch", fields):
            if len(request.requests) > self._config.max_batch:
                exc = InvalidArgument(
                    f"requests holds {len(request.requests)} events, more than the limit of {self._config.max_batch} "
                    "(KAMELEOON_MAX_BATCH): split the batch",
                    field="requests",
                )
                _record_failure(fields, exc)
                await abort(context, exc)
            try:
                source = self._source(context)
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            _name_source(fields, source)
            batch_settings = _settings(request)
            deadline = _deadline(context, self._loop)
            batch = pb.SendBatchResponse()
            add = batch.responses.add
            responses = [add() for _ in range(len(request.requests))]  # filled in place: no copy of each into the batch
            queued, sync = [], []
            for item in enumerate(request.requests):
                (queued if self._queued(item[1], request.delivery) else sync).append(item)
            if queued:
                await self._queue_batch("SendBatch", queued, batch_settings, source, responses, fields)
            pending = iter(sync)

            async def worker() -> None:  # batch_concurrency of these share the events
                for index, item in pending:
                    await self._send_logged("SendBatch", item, batch_settings, source, deadline, fields, request.delivery, responses[index])

            await asyncio.gather(*(worker() for _ in range(min(self._config.batch_concurrency, len(sync)))))
            return batch

    async def SendStream(self, request_iterator, context):
        """One response per request, in order; at most ``stream_window`` events in flight (backpressure)."""
        deadline = _deadline(context, self._loop)
        fields: dict = {"events": 0, "delivered": 0, "queued": 0, "failed": 0}
        window = _InOrder(self._config.stream_window, self._loop)
        try:
            source = self._source(context)
        except CallError as exc:
            _record_failure(fields, exc)
            with _rpc_log("SendStream", fields):
                await abort(context, exc)
        _name_source(fields, source)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await window.room()  # backpressure: stop reading while the window is full
                    fields["events"] += 1
                    window.put(self._loop.create_task(self._send_logged("SendStream", request, None, source, deadline, fields)))
            finally:
                window.close()

        with _rpc_log("SendStream", fields):
            reader = self._loop.create_task(read())
            try:
                while (task := await window.head()) is not None:
                    response = await task
                    window.pop()
                    yield response
                await reader
            finally:
                reader.cancel()
                for task in window.tasks:
                    task.cancel()

    # -- the event tester ----------------------------------------------------

    async def Preview(self, request, context):
        fields: dict = {"send": request.send}
        with _rpc_log("Preview", fields):
            try:
                event = parse_event(request.event_json, self._config.max_event_bytes)
                source = self._source(context)
                where = targets(source, _settings(request), self._config)
                response = await self._previewer.preview(event, where, request.send, request.skip_filters, _deadline(context, self._loop))
            except CallError as exc:
                _record_failure(fields, exc)
                await abort(context, exc)
            fields.update(message_id=response.message_id, matched=sum(len(d.requests) for d in response.destinations))
            _name_source(fields, source)
            return response

    # -- credentials ---------------------------------------------------------

    async def TestAuthentication(self, request, context):
        fields: dict = {}
        with _rpc_log("TestAuthentication", fields):
            try:
                creds = self._credentials_to_test(request, context)
                entries = credentials.api_key_entries(creds.api_key)
                delivered = await self._client.check_api_key(entries, _deadline(context, self._loop))
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

    def _credentials_to_test(self, request, context) -> credentials.Credentials:
        """The request's settings, else its source's first instance's credentials (the server's without a workspace)."""
        settings = _settings(request)
        source = self._source(context)
        if settings is None and source.instances and source.instances[0].credentials is not None:
            return source.instances[0].credentials
        return credentials.resolve(settings, self._config)


_RESPONSES: dict[tuple, pb.SendResponse] = {}


def _send_response(outcome: Outcome, into: pb.SendResponse | None = None) -> pb.SendResponse:
    """The response of a handled event, written into ``into`` (a batch's entry) or a new message. Responses
    of deliveries differ only by messageId: each shape is built once and copied (one copy in C)."""
    response = pb.SendResponse() if into is None else into
    shape = _shape(outcome)
    # The cache's own lines are not mutated (make mutate): a miss builds an equal response again.
    template = _RESPONSES.get(shape) if shape is not None else None  # pragma: no mutate
    if template is None:
        template = pb.SendResponse(
            results=[_result(sub, done, instance) for sub, done, instance in outcome.results],
            status=OK_STATUS,
            filtered_by=outcome.filtered_by,
            discard_reason=outcome.discard_reason,
        )
        for instance, reason, _ in outcome.discards:  # a workspace's instances that sent nothing: each says why
            if not instance.implicit:
                template.results.add(destination=instance.name, discard_reason=reason)
        if shape is not None and len(_RESPONSES) < 4096:  # pragma: no mutate
            _RESPONSES[shape] = template  # pragma: no mutate
    response.CopyFrom(template)
    response.message_id = well_formed(outcome.message_id)
    return response


def _shape(outcome: Outcome) -> tuple | None:
    """What a response says besides the messageId; None for a queued event (its outbox_id is its own)."""
    shape: list[object] = [outcome.filtered_by, outcome.discard_reason]
    for sub, done, instance in outcome.results:
        if type(done) is not Delivered:
            return None
        shape.append((sub.name, sub.action.slug, done.http_status, done.attempts, done.duplicate, instance.name))
    for instance, reason, _ in outcome.discards:
        shape.append((instance.name, reason, instance.implicit))
    return tuple(shape)


def _tally(tally: dict, outcome: Outcome) -> None:
    for _, done, _ in outcome.results:
        if done.queued:
            tally["queued"] += 1
        elif not done.duplicate:
            tally["delivered"] += 1
    if outcome.filtered_by:
        tally["filtered"] = tally.get("filtered", 0) + 1
    if outcome.discard_reason:
        tally["discarded"] = tally.get("discarded", 0) + 1


def _failed(method: str, request, exc: CallError, tally: dict, into: pb.SendResponse | None = None) -> pb.SendResponse:
    """The response of one event of a batch or stream that failed (into ``into`` when given), and its log line."""
    tally["failed"] += 1
    message_id = "" if isinstance(request, Undecodable) else _message_id_hint(request)
    fields = {"message_id": message_id or None}
    _record_failure(fields, exc)
    log.info("event failed", method=method, **fields)
    response = pb.SendResponse() if into is None else into
    response.message_id = well_formed(message_id)
    response.status.CopyFrom(status_of(exc))
    return response


def _message_id_hint(request) -> str:
    """The messageId of an event that failed, when its JSON still says it."""
    try:
        return message_id_of(parse_event(request.event_json))
    except CallError:
        return ""


def _name_source(fields: dict, source: Source) -> None:
    """A batch's or a stream's log line names a workspace's source (without one, there is only the default)."""
    if source.instances and not source.instances[0].implicit:
        fields["source"] = source.name


def _record_results(fields: dict, outcome: Outcome) -> None:
    """The log line's fields of a Send: what its response says, read from the outcome (not the message's fields)."""
    results = outcome.results
    fields["message_id"] = outcome.message_id or None
    fields["matched"] = [sub.action.slug for sub, _, _ in results]
    fields["http_status"] = [done.http_status for _, done, _ in results]
    fields["attempts"] = sum(done.attempts for _, done, _ in results)
    if any(done.queued for _, done, _ in results):
        fields["outbox_id"] = [done.outbox_id for _, done, _ in results]
    if results and not results[0][2].implicit or outcome.discards and not outcome.discards[0][0].implicit:
        fields["source"] = (results[0][2] if results else outcome.discards[0][0]).source
        fields["destinations"] = [instance.name for _, _, instance in results]
    if outcome.filtered_by:
        fields["filtered_by"] = outcome.filtered_by
    if outcome.discard_reason:
        fields["discard_reason"] = outcome.discard_reason


def _auth_message(exc: CallError) -> str:
    if isinstance(exc, InvalidArgument) and exc.field == "settings.sitecode":
        return f"Invalid project sitecode: it must be {SITECODE_LENGTH} characters. Please check your sitecode"
    return str(exc)


def _record_failure(fields: dict, exc: CallError) -> None:
    fields["code"] = exc.code.name
    fields["error"] = str(exc)
    if isinstance(exc, DeliveryError):
        fields.update(http_status=exc.http_status, attempts=exc.attempts)


class _InOrder:
    """A stream's deliveries in the order their requests came, at most ``size`` unanswered. The reader
    waits while it is full, the writer while it is empty; a future is made only to wait."""

    __slots__ = ("tasks", "_size", "_loop", "_closed", "_room", "_ready")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop):
        self.tasks: collections.deque[asyncio.Task] = collections.deque()
        self._size = size
        self._loop = loop
        self._closed = False
        self._room: asyncio.Future | None = None
        self._ready: asyncio.Future | None = None

    async def room(self) -> None:
        while len(self.tasks) >= self._size:
            self._room = self._loop.create_future()
            await self._room

    def put(self, task: asyncio.Task) -> None:
        self.tasks.append(task)
        _wake(self._ready)
        self._ready = None

    def close(self) -> None:
        self._closed = True
        _wake(self._ready)
        self._ready = None

    async def head(self) -> asyncio.Task | None:
        """The oldest unanswered delivery; None once the reader is done and all are answered."""
        while not self.tasks:
            if self._closed:
                return None
            self._ready = self._loop.create_future()
            await self._ready
        return self.tasks[0]

    def pop(self) -> None:
        self.tasks.popleft()
        _wake(self._room)
        self._room = None


def _wake(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _rpc_log:
    """Writes the one log line of an RPC when it ends, however it ends."""

    __slots__ = ("_method", "_fields", "_start")

    def __init__(self, method: str, fields: dict):
        self._method = method
        self._fields = fields

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, exc_type, exc, tb) -> None:
        fields = self._fields
        if exc_type is asyncio.CancelledError:
            fields.setdefault("code", "CANCELLED")
        elif exc_type is not None and "code" not in fields:
            fields["code"] = "INTERNAL"
            log.error("rpc failed", method=self._method, exc_info=(exc_type, exc, tb))
        fields.setdefault("code", "OK")
        duration_ms = round((time.perf_counter() - self._start) * 1000, 3)
        logs.logger("kameleoon.rpc").info("rpc", method=self._method, duration_ms=duration_ms, **fields)


__all__ = ["Servicer"]

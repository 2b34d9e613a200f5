import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_MODE_UNSPECIFIED: _ClassVar[DeliveryMode]
    DELIVERY_MODE_SYNC: _ClassVar[DeliveryMode]
    DELIVERY_MODE_QUEUED: _ClassVar[DeliveryMode]
DELIVERY_MODE_UNSPECIFIED: DeliveryMode
DELIVERY_MODE_SYNC: DeliveryMode
DELIVERY_MODE_QUEUED: DeliveryMode

class Settings(_message.Message):
    __slots__ = ("api_key", "sitecode")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SITECODE_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    sitecode: str
    def __init__(self, api_key: _Optional[str] = ..., sitecode: _Optional[str] = ...) -> None: ...

class LogEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "event", "type", "properties", "kameleoon_visitor_code", "timestamp", "context", "message_id", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    event: str
    type: str
    properties: _struct_pb2.Struct
    kameleoon_visitor_code: str
    timestamp: str
    context: _struct_pb2.Struct
    message_id: str
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., event: _Optional[str] = ..., type: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., message_id: _Optional[str] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class IdentifyEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "traits", "kameleoon_visitor_code", "timestamp", "message_id", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    type: str
    traits: _struct_pb2.Struct
    kameleoon_visitor_code: str
    timestamp: str
    message_id: str
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class PageEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "properties", "kameleoon_visitor_code", "name", "context", "timestamp", "message_id", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    type: str
    properties: _struct_pb2.Struct
    kameleoon_visitor_code: str
    name: str
    context: _struct_pb2.Struct
    timestamp: str
    message_id: str
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., name: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class GroupEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "group_id", "traits", "kameleoon_visitor_code", "timestamp", "message_id", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    type: str
    group_id: str
    traits: _struct_pb2.Struct
    kameleoon_visitor_code: str
    timestamp: str
    message_id: str
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., group_id: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class ActionResponse(_message.Message):
    __slots__ = ("http_status", "attempts", "message_id", "duplicate", "queued", "outbox_id", "filtered_by", "discard_reason", "results")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERED_BY_FIELD_NUMBER: _ClassVar[int]
    DISCARD_REASON_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    attempts: int
    message_id: str
    duplicate: bool
    queued: bool
    outbox_id: str
    filtered_by: str
    discard_reason: str
    results: _containers.RepeatedCompositeFieldContainer[SubscriptionResult]
    def __init__(self, http_status: _Optional[int] = ..., attempts: _Optional[int] = ..., message_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., queued: _Optional[bool] = ..., outbox_id: _Optional[str] = ..., filtered_by: _Optional[str] = ..., discard_reason: _Optional[str] = ..., results: _Optional[_Iterable[_Union[SubscriptionResult, _Mapping]]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("settings", "event_json", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    event_json: str
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., event_json: _Optional[str] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class SubscriptionResult(_message.Message):
    __slots__ = ("subscription", "action", "http_status", "attempts", "duplicate", "queued", "outbox_id", "destination", "discard_reason")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DISCARD_REASON_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    action: str
    http_status: int
    attempts: int
    duplicate: bool
    queued: bool
    outbox_id: str
    destination: str
    discard_reason: str
    def __init__(self, subscription: _Optional[str] = ..., action: _Optional[str] = ..., http_status: _Optional[int] = ..., attempts: _Optional[int] = ..., duplicate: _Optional[bool] = ..., queued: _Optional[bool] = ..., outbox_id: _Optional[str] = ..., destination: _Optional[str] = ..., discard_reason: _Optional[str] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "results", "status", "filtered_by", "discard_reason")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILTERED_BY_FIELD_NUMBER: _ClassVar[int]
    DISCARD_REASON_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    results: _containers.RepeatedCompositeFieldContainer[SubscriptionResult]
    status: _status_pb2.Status
    filtered_by: str
    discard_reason: str
    def __init__(self, message_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[SubscriptionResult, _Mapping]]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., filtered_by: _Optional[str] = ..., discard_reason: _Optional[str] = ...) -> None: ...

class SendBatchRequest(_message.Message):
    __slots__ = ("settings", "requests", "delivery")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    requests: _containers.RepeatedCompositeFieldContainer[SendRequest]
    delivery: DeliveryMode
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., requests: _Optional[_Iterable[_Union[SendRequest, _Mapping]]] = ..., delivery: _Optional[_Union[DeliveryMode, str]] = ...) -> None: ...

class SendBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[SendResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[SendResponse, _Mapping]]] = ...) -> None: ...

class TestAuthenticationRequest(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ...) -> None: ...

class TestAuthenticationResponse(_message.Message):
    __slots__ = ("ok", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class PreviewRequest(_message.Message):
    __slots__ = ("event_json", "settings", "send", "skip_filters")
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    SKIP_FILTERS_FIELD_NUMBER: _ClassVar[int]
    event_json: str
    settings: Settings
    send: bool
    skip_filters: bool
    def __init__(self, event_json: _Optional[str] = ..., settings: _Optional[_Union[Settings, _Mapping]] = ..., send: _Optional[bool] = ..., skip_filters: _Optional[bool] = ...) -> None: ...

class PreviewStage(_message.Message):
    __slots__ = ("stage", "name", "verdict", "detail")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    stage: str
    name: str
    verdict: str
    detail: str
    def __init__(self, stage: _Optional[str] = ..., name: _Optional[str] = ..., verdict: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class PreviewHeader(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class PreviewAnswer(_message.Message):
    __slots__ = ("http_status", "body", "attempts", "error")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    body: str
    attempts: int
    error: str
    def __init__(self, http_status: _Optional[int] = ..., body: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class PreviewedRequest(_message.Message):
    __slots__ = ("subscription", "action", "method", "url", "headers", "body", "error", "error_field", "answer")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    action: str
    method: str
    url: str
    headers: _containers.RepeatedCompositeFieldContainer[PreviewHeader]
    body: str
    error: str
    error_field: str
    answer: PreviewAnswer
    def __init__(self, subscription: _Optional[str] = ..., action: _Optional[str] = ..., method: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[PreviewHeader, _Mapping]]] = ..., body: _Optional[str] = ..., error: _Optional[str] = ..., error_field: _Optional[str] = ..., answer: _Optional[_Union[PreviewAnswer, _Mapping]] = ...) -> None: ...

class DestinationPreview(_message.Message):
    __slots__ = ("destination", "stages", "requests", "discard_reason")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DISCARD_REASON_FIELD_NUMBER: _ClassVar[int]
    destination: str
    stages: _containers.RepeatedCompositeFieldContainer[PreviewStage]
    requests: _containers.RepeatedCompositeFieldContainer[PreviewedRequest]
    discard_reason: str
    def __init__(self, destination: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[PreviewStage, _Mapping]]] = ..., requests: _Optional[_Iterable[_Union[PreviewedRequest, _Mapping]]] = ..., discard_reason: _Optional[str] = ...) -> None: ...

class PreviewResponse(_message.Message):
    __slots__ = ("message_id", "stages", "destinations", "event_json")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    stages: _containers.RepeatedCompositeFieldContainer[PreviewStage]
    destinations: _containers.RepeatedCompositeFieldContainer[DestinationPreview]
    event_json: str
    def __init__(self, message_id: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[PreviewStage, _Mapping]]] = ..., destinations: _Optional[_Iterable[_Union[DestinationPreview, _Mapping]]] = ..., event_json: _Optional[str] = ...) -> None: ...

class GetDeliveryOverviewRequest(_message.Message):
    __slots__ = ("window", "to")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    window: str
    to: _timestamp_pb2.Timestamp
    def __init__(self, window: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., **kwargs) -> None: ...

class ReasonCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DestinationOverview(_message.Message):
    __slots__ = ("source", "destination", "received", "discarded", "failed", "retrying", "delivered")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RETRYING_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    received: int
    discarded: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    failed: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    retrying: int
    delivered: int
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ..., received: _Optional[int] = ..., discarded: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., retrying: _Optional[int] = ..., delivered: _Optional[int] = ...) -> None: ...

class DeliveryOverviewResponse(_message.Message):
    __slots__ = ("to", "destinations")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    destinations: _containers.RepeatedCompositeFieldContainer[DestinationOverview]
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destinations: _Optional[_Iterable[_Union[DestinationOverview, _Mapping]]] = ..., **kwargs) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ("reason", "source", "destination")
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    reason: str
    source: str
    destination: str
    def __init__(self, reason: _Optional[str] = ..., source: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class DeliverySample(_message.Message):
    __slots__ = ("source", "destination", "reason", "at", "message_id", "event", "request", "http_status", "response", "attempts")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    reason: str
    at: _timestamp_pb2.Timestamp
    message_id: str
    event: str
    request: str
    http_status: int
    response: str
    attempts: int
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[str] = ..., event: _Optional[str] = ..., request: _Optional[str] = ..., http_status: _Optional[int] = ..., response: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class ListSamplesResponse(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[DeliverySample]
    def __init__(self, samples: _Optional[_Iterable[_Union[DeliverySample, _Mapping]]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class EventFate(_message.Message):
    __slots__ = ("state", "source", "destination", "route", "action", "id", "attempts", "at", "last_http_status", "last_error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    state: str
    source: str
    destination: str
    route: str
    action: str
    id: str
    attempts: int
    at: _timestamp_pb2.Timestamp
    last_http_status: int
    last_error: str
    def __init__(self, state: _Optional[str] = ..., source: _Optional[str] = ..., destination: _Optional[str] = ..., route: _Optional[str] = ..., action: _Optional[str] = ..., id: _Optional[str] = ..., attempts: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_http_status: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ("message_id", "fates")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    FATES_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    fates: _containers.RepeatedCompositeFieldContainer[EventFate]
    def __init__(self, message_id: _Optional[str] = ..., fates: _Optional[_Iterable[_Union[EventFate, _Mapping]]] = ...) -> None: ...

class GetOutboxStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActionOutboxStats(_message.Message):
    __slots__ = ("action", "pending", "in_flight", "dead")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    action: str
    pending: int
    in_flight: int
    dead: int
    def __init__(self, action: _Optional[str] = ..., pending: _Optional[int] = ..., in_flight: _Optional[int] = ..., dead: _Optional[int] = ...) -> None: ...

class OutboxStats(_message.Message):
    __slots__ = ("pending", "in_flight", "dead", "oldest_pending_age_s", "actions", "location")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_S_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    pending: int
    in_flight: int
    dead: int
    oldest_pending_age_s: float
    actions: _containers.RepeatedCompositeFieldContainer[ActionOutboxStats]
    location: str
    def __init__(self, pending: _Optional[int] = ..., in_flight: _Optional[int] = ..., dead: _Optional[int] = ..., oldest_pending_age_s: _Optional[float] = ..., actions: _Optional[_Iterable[_Union[ActionOutboxStats, _Mapping]]] = ..., location: _Optional[str] = ...) -> None: ...

class DeadLetterFilter(_message.Message):
    __slots__ = ("ids", "action", "http_status", "has_http_status", "since", "until")
    IDS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    HAS_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    action: str
    http_status: int
    has_http_status: bool
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., action: _Optional[str] = ..., http_status: _Optional[int] = ..., has_http_status: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "message_id", "action", "route", "sitecode", "attempts", "accepted_at", "first_attempt_at", "last_attempt_at", "dead_at", "last_http_status", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SITECODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    message_id: str
    action: str
    route: str
    sitecode: str
    attempts: int
    accepted_at: _timestamp_pb2.Timestamp
    first_attempt_at: _timestamp_pb2.Timestamp
    last_attempt_at: _timestamp_pb2.Timestamp
    dead_at: _timestamp_pb2.Timestamp
    last_http_status: int
    last_error: str
    def __init__(self, id: _Optional[str] = ..., message_id: _Optional[str] = ..., action: _Optional[str] = ..., route: _Optional[str] = ..., sitecode: _Optional[str] = ..., attempts: _Optional[int] = ..., accepted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_http_status: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RetryDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "all")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    all: bool
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., all: _Optional[bool] = ...) -> None: ...

class RetryDeadLettersResponse(_message.Message):
    __slots__ = ("retried",)
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    retried: int
    def __init__(self, retried: _Optional[int] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "all")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    all: bool
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., all: _Optional[bool] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

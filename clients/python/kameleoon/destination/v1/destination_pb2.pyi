from google.protobuf import struct_pb2 as _struct_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Settings(_message.Message):
    __slots__ = ("api_key", "sitecode")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SITECODE_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    sitecode: str
    def __init__(self, api_key: _Optional[str] = ..., sitecode: _Optional[str] = ...) -> None: ...

class LogEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "event", "type", "properties", "kameleoon_visitor_code", "timestamp", "context", "message_id")
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
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., event: _Optional[str] = ..., type: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., message_id: _Optional[str] = ...) -> None: ...

class IdentifyEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "traits", "kameleoon_visitor_code", "timestamp", "message_id")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    type: str
    traits: _struct_pb2.Struct
    kameleoon_visitor_code: str
    timestamp: str
    message_id: str
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class PageEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "properties", "kameleoon_visitor_code", "name", "context", "timestamp", "message_id")
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
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., name: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class GroupEventRequest(_message.Message):
    __slots__ = ("settings", "anonymous_id", "user_id", "type", "group_id", "traits", "kameleoon_visitor_code", "timestamp", "message_id")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    KAMELEOON_VISITOR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    anonymous_id: str
    user_id: str
    type: str
    group_id: str
    traits: _struct_pb2.Struct
    kameleoon_visitor_code: str
    timestamp: str
    message_id: str
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., user_id: _Optional[str] = ..., type: _Optional[str] = ..., group_id: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., kameleoon_visitor_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class ActionResponse(_message.Message):
    __slots__ = ("http_status", "attempts", "message_id", "duplicate", "filtered_by")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    FILTERED_BY_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    attempts: int
    message_id: str
    duplicate: bool
    filtered_by: str
    def __init__(self, http_status: _Optional[int] = ..., attempts: _Optional[int] = ..., message_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., filtered_by: _Optional[str] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("settings", "event_json")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    event_json: str
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., event_json: _Optional[str] = ...) -> None: ...

class SubscriptionResult(_message.Message):
    __slots__ = ("subscription", "action", "http_status", "attempts", "duplicate")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    action: str
    http_status: int
    attempts: int
    duplicate: bool
    def __init__(self, subscription: _Optional[str] = ..., action: _Optional[str] = ..., http_status: _Optional[int] = ..., attempts: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "results", "status", "filtered_by")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILTERED_BY_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    results: _containers.RepeatedCompositeFieldContainer[SubscriptionResult]
    status: _status_pb2.Status
    filtered_by: str
    def __init__(self, message_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[SubscriptionResult, _Mapping]]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., filtered_by: _Optional[str] = ...) -> None: ...

class SendBatchRequest(_message.Message):
    __slots__ = ("settings", "requests")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    settings: Settings
    requests: _containers.RepeatedCompositeFieldContainer[SendRequest]
    def __init__(self, settings: _Optional[_Union[Settings, _Mapping]] = ..., requests: _Optional[_Iterable[_Union[SendRequest, _Mapping]]] = ...) -> None: ...

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

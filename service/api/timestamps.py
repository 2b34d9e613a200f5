"""Protobuf Timestamps and the epoch seconds the stores keep."""

from __future__ import annotations

from google.protobuf import timestamp_pb2


def timestamp_seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def timestamp_of(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp

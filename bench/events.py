"""Deterministic Segment-spec events, and the wire forms every driver sends.

One seeded generator makes a pool of realistic track / page / identify /
group events (each with timestamp and messageId). From that pool:

- ``send_request_parts``: a ``SendRequest`` (settings + event JSON) as bytes,
  split around the messageId so a driver can give every call a fresh one
  without re-encoding anything;
- ``typed_request_parts``: the typed request (LogEvent, PageEvent,
  IdentifyEvent or GroupEvent) as bytes, with the messageId appended per call
  (protobuf keeps the last value of a repeated scalar field);
- ``service_body_parts``: the very body the service sends for the event (made
  by the service's own code before timing), for the HTTP floor.

Every call gets a unique messageId (``<base>-<n>``) so that a service that
remembers delivered ids can never skip work in the benchmark.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

API_KEY = base64.b64encode(json.dumps({"id": "bench", "secret": "bench"}, separators=(",", ":")).encode()).decode()
SITECODE = "0123456789"
SETTINGS = {"apiKey": API_KEY, "sitecode": SITECODE}

# The share of each event type in the pool (track-heavy, as real traffic is).
MIX = (("track", 60), ("page", 20), ("identify", 12), ("group", 8))

EVENT_NAMES = (
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Order Completed",
    "Coupon Applied",
    "Signed Up",
    "Signed In",
    "Experiment Viewed",
    "Video Playback Started",
    "Search Performed",
)
PAGE_NAMES = ("Home", "Pricing", "Product", "Checkout", "Blog Post", "Docs", "Search Results")
CATEGORIES = ("Shoes", "Apparel", "Accessories", "Electronics", "Books", "Garden")
LOCALES = ("fr-FR", "en-US", "en-GB", "de-DE", "es-ES", "ja-JP")
PLANS = ("free", "starter", "pro", "enterprise")
INDUSTRIES = ("Retail", "Technology", "Finance", "Media", "Travel")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
PATHS = ("/", "/pricing", "/products/trail-runner", "/cart", "/checkout", "/blog/ab-testing-101", "/search")
BASE_TIME = datetime(2024, 6, 1, tzinfo=UTC)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _hex(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _context(r: random.Random) -> dict:
    path = r.choice(PATHS)
    ctx = {
        "ip": f"203.0.113.{r.randint(1, 254)}",
        "locale": r.choice(LOCALES),
        "userAgent": r.choice(USER_AGENTS),
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": path,
            "referrer": r.choice(("", "https://www.google.com/", "https://news.example.org/")),
            "search": "",
            "title": "Example Store",
            "url": f"https://shop.example.com{path}",
        },
        "timezone": r.choice(("Europe/Paris", "America/New_York", "Asia/Tokyo")),
    }
    if r.random() < 0.3:
        ctx["campaign"] = {"name": "summer-sale", "source": "newsletter", "medium": "email"}
    return ctx


def make_event(r: random.Random, kind: str, n: int) -> dict:
    """One event of type ``kind``; its messageId is ``bench-<n>`` (drivers suffix it per call)."""
    when = BASE_TIME + timedelta(seconds=r.randint(0, 30 * 86400), milliseconds=r.randint(0, 999))
    ts = _iso(when)
    visitor = f"{_hex(r, 16)}" if r.random() < 0.6 else None
    event: dict = {"type": kind, "anonymousId": f"anon-{_hex(r, 16)}"}
    if r.random() < 0.7:
        event["userId"] = f"user-{r.randint(1, 99999)}"
    if kind == "track":
        event["event"] = r.choice(EVENT_NAMES)
        props = {
            "product_id": f"sku-{r.randint(10000, 99999)}",
            "name": f"Trail Runner {r.randint(1, 9)}",
            "category": r.choice(CATEGORIES),
            "price": round(r.uniform(5, 300), 2),
            "quantity": r.randint(1, 4),
            "currency": "EUR",
        }
        if r.random() < 0.3:
            props["products"] = [
                {"product_id": f"sku-{r.randint(10000, 99999)}", "price": round(r.uniform(5, 90), 2), "quantity": r.randint(1, 3)}
                for _ in range(r.randint(1, 3))
            ]
            props["revenue"] = round(r.uniform(10, 500), 2)
        if visitor:
            props["kameleoonVisitorCode"] = visitor
        event["properties"] = props
    elif kind == "page":
        path = r.choice(PATHS)
        event["name"] = r.choice(PAGE_NAMES)
        props = {"path": path, "referrer": "", "search": "", "title": "Example Store", "url": f"https://shop.example.com{path}"}
        if visitor:
            props["kameleoonVisitorCode"] = visitor
        event["properties"] = props
    elif kind == "identify":
        uid = r.randint(1, 99999)
        traits = {
            "email": f"user{uid}@example.com",
            "firstName": r.choice(("Ada", "Grace", "Alan", "Edsger", "Barbara")),
            "plan": r.choice(PLANS),
            "logins": r.randint(0, 400),
            "createdAt": _iso(when - timedelta(days=r.randint(1, 900))),
        }
        if visitor:
            traits["kameleoonVisitorCode"] = visitor
        event["traits"] = traits
    elif kind == "group":
        event["groupId"] = f"grp-{r.randint(1, 5000)}"
        traits = {"name": f"Acme {r.randint(1, 999)}", "industry": r.choice(INDUSTRIES), "employees": r.randint(1, 20000), "plan": r.choice(PLANS)}
        if visitor:
            traits["kameleoonVisitorCode"] = visitor
        event["traits"] = traits
    else:
        raise ValueError(kind)
    event["context"] = _context(r)
    event["integrations"] = {}
    event["originalTimestamp"] = ts
    event["sentAt"] = ts
    event["receivedAt"] = ts
    event["timestamp"] = ts
    event["channel"] = "server"
    event["version"] = 2
    event["messageId"] = f"bench-{n:06d}"  # kept last: drivers append "-<call number>" to it
    return event


def make_events(count: int, seed: int = 20240601) -> list[dict]:
    """``count`` events, deterministic for a seed, in the proportions of MIX."""
    r = random.Random(seed)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    return [make_event(r, r.choice(kinds), n) for n in range(count)]


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- protobuf wire helpers (hand-encoded so the load generator does no protobuf work per call) --


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(data)) + data


def settings_bytes() -> bytes:
    from kameleoon.destination.v1 import destination_pb2 as pb

    return pb.Settings(api_key=API_KEY, sitecode=SITECODE).SerializeToString()


def event_json_parts(event: dict) -> tuple[str, str]:
    """The event's JSON split around its messageId value: prefix + id + suffix."""
    text = dumps(event)
    marker = f'"messageId":"{event["messageId"]}"'
    at = text.rindex(marker) + len('"messageId":"')
    return text[:at], text[at + len(event["messageId"]) :]


def send_request_parts(event: dict, with_settings: bool = True) -> tuple[bytes, bytes, bytes]:
    """(head, json_prefix, json_suffix): a SendRequest is head + field-2 header + prefix + id + suffix.

    The id must be ASCII so its byte length is its character length.
    """
    prefix, suffix = event_json_parts(event)
    head = length_delimited(1, settings_bytes()) if with_settings else b""
    return head, prefix.encode(), suffix.encode()


def send_request(parts: tuple[bytes, bytes, bytes], message_id: str) -> bytes:
    head, prefix, suffix = parts
    mid = message_id.encode()
    body = prefix + mid + suffix
    return head + b"\x12" + varint(len(body)) + body


# Typed requests: field number of message_id in each request message.
MESSAGE_ID_FIELD = {"LogEvent": 10, "IdentifyEvent": 8, "PageEvent": 10, "GroupEvent": 9}
TYPED_METHOD = {"track": "LogEvent", "identify": "IdentifyEvent", "page": "PageEvent", "group": "GroupEvent"}


def typed_request_parts(event: dict) -> tuple[str, bytes, bytes]:
    """(method name, request bytes without messageId, message_id tag byte)."""
    from google.protobuf import struct_pb2

    from kameleoon.destination.v1 import destination_pb2 as pb

    def struct(value: dict | None):
        if value is None:
            return None
        s = struct_pb2.Struct()
        s.update(value)
        return s

    kind = event["type"]
    method = TYPED_METHOD[kind]
    settings = pb.Settings(api_key=API_KEY, sitecode=SITECODE)
    common = dict(
        settings=settings, anonymous_id=event.get("anonymousId", ""), user_id=event.get("userId", ""), type=kind, timestamp=event["timestamp"]
    )
    if kind in ("track", "page"):
        props = dict(event.get("properties") or {})
        visitor = props.pop("kameleoonVisitorCode", "")
        extra = dict(properties=struct(props), context=struct(event.get("context")), kameleoon_visitor_code=visitor)
        if kind == "track":
            request = pb.LogEventRequest(**common, event=event["event"], **extra)
        else:
            request = pb.PageEventRequest(**common, name=event.get("name", ""), **extra)
    else:
        traits = dict(event.get("traits") or {})
        visitor = traits.pop("kameleoonVisitorCode", "")
        if kind == "identify":
            request = pb.IdentifyEventRequest(**common, traits=struct(traits), kameleoon_visitor_code=visitor)
        else:
            request = pb.GroupEventRequest(**common, group_id=event["groupId"], traits=struct(traits), kameleoon_visitor_code=visitor)
    return method, request.SerializeToString(), varint(MESSAGE_ID_FIELD[method] << 3 | 2)


def typed_request(parts: tuple[str, bytes, bytes], message_id: str) -> bytes:
    _, data, tag = parts
    mid = message_id.encode()
    return data + tag + varint(len(mid)) + mid


def service_body_parts(events: list[dict]) -> list[tuple[bytes, bytes]]:
    """The body the service sends for each event (its own presets, mapping and serialiser, from this
    checkout), split around the messageId like :func:`event_json_parts`: prefix + id + suffix.

    Every event of the pool matches exactly one preset; the HTTP floor posts these bodies.
    """
    from service.routing.router import Router
    from service.routing.subscriptions import load

    router = Router(load(None))
    parts = []
    for event in events:
        [planned] = router.plan(event)
        body = planned.body
        marker = b'"messageId":"' + event["messageId"].encode() + b'"'
        at = body.rindex(marker) + len(b'"messageId":"')
        parts.append((body[:at], body[at + len(event["messageId"]) :]))
    return parts


def service_body(parts: tuple[bytes, bytes], message_id: str) -> bytes:
    return parts[0] + message_id.encode() + parts[1]


def kameleoon_headers() -> dict:
    """The header lines the service sends (service.delivery.credentials), for the bench's settings."""
    from service.delivery.credentials import Credentials

    return dict(Credentials(API_KEY, SITECODE).headers())

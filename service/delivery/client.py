"""Delivery to Kameleoon: the only module that speaks HTTP.

One shared aiohttp session with a bounded, keep-alive connection pool. Each
event is POSTed to the configured endpoint; connection errors, timeouts, 408,
423, 429 and 5xx (but 501) are retried with exponential backoff and full
jitter, honouring Retry-After, up to ``max_attempts`` attempts and never past
the caller's deadline. Final answers become errors of service.errors.

An attempt first takes a ticket of its sitecode's gate (service.delivery.concurrency: an adaptive
limit by default, KAMELEOON_CONCURRENCY a number fixes one for all): the time it waits for one is
kameleoon_pool_wait_seconds; its round trip and Kameleoon's back-pressure then tune the limit, and a
Retry-After pauses that sitecode alone. Per request nothing is
built that could be built once: the URL, the headers of a sitecode and apiKey
(service.delivery.credentials), the session-wide timeout (a per-request one only when
the caller's deadline is nearer), the header lines aiohttp adds (_SegmentRequest).
Events are POSTed below ClientSession.request (``_post``): aiohttp's own request,
connection pool, writer and parser, without the session's per-request work this
client never needs; redirects and traced requests (KAMELEOON_TRACING) go through
the session.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import hdrs
from yarl import URL

from service.config import USER_AGENT, Config
from service.delivery.concurrency import Gate, Limit
from service.delivery.credentials import Credentials
from service.errors import DeadlineExceeded, DeliveryError, Unavailable, for_http_status, truncate
from service.ops.metrics import NoMetrics

log = structlog.get_logger("kameleoon.delivery")

RETRYABLE_STATUS = frozenset({408, 423, 429}) | (frozenset(range(500, 600)) - {501})
# Do not start an attempt with less time than this left before the deadline.
MIN_ATTEMPT_S = 0.05
# End an attempt this long before the caller's deadline, so the caller gets our DEADLINE_EXCEEDED
# (attempts, why) and the log line and metrics say so, rather than racing gRPC's own cancellation.
DEADLINE_RESERVE_S = 0.05
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Kameleoon's back-pressure: these answers (and no answer at all) lower the sitecode's concurrency limit.
BACK_PRESSURE_STATUS = frozenset({429, 503})
# Gates whose limits the metrics show, by sitecode; more sitecodes than this are delivered alike, not shown.
SHOWN_GATES = 100
# The connection's own timeouts: none, the attempt's total timeout covers connecting too (as the session's did).
_CONNECT_TIMEOUT = aiohttp.ClientTimeout()


def longest_post_s(config: Config) -> float:
    """How long one ``post`` takes at the most without a deadline: every attempt timing out, every
    backoff at its ceiling (a longer Retry-After is not waited for). Waiting for a pool slot is not
    counted: it has no bound of its own."""
    return config.max_attempts * config.timeout_s + (config.max_attempts - 1) * config.backoff_max_s


@dataclass(frozen=True)
class Delivered:
    http_status: int
    attempts: int
    duplicate: bool = False  # already delivered within the idempotency window: not sent again
    filtered_by: str = ""  # the destination filter that dropped the event: nothing sent
    discard_reason: str = ""  # why nothing was sent (Segment's Delivery Overview words)
    # Answered during the call, never in the outbox: what a Queued (service.outbox.accept) says otherwise.
    queued: ClassVar[bool] = False
    outbox_id: ClassVar[str] = ""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _SegmentRequest(aiohttp.ClientRequest):
    """aiohttp's request, adding ``Accept: */*`` alone: no ``Accept-Encoding`` (Segment's client asks
    for no compression on this route, and decompressing costs CPU). The session's
    ``skip_auto_headers`` would say the same but builds a header set per request."""

    DEFAULT_HEADERS = {hdrs.ACCEPT: "*/*"}


_DELIVERED: dict[tuple[int, int], Delivered] = {}


def _delivered(http_status: int, attempts: int) -> Delivered:
    """Delivered(http_status, attempts), made once per pair (they are immutable)."""
    found = _DELIVERED.get((http_status, attempts))  # pragma: no mutate: a miss makes an equal one again
    if found is None:
        found = _DELIVERED[(http_status, attempts)] = Delivered(http_status, attempts)
    return found


class _Expiry:
    """An attempt's timeout, as asyncio.timeout() keeps it (cancel the task when it fires; that cancellation,
    and only that one, becomes TimeoutError) for a fifth of its instructions: a timer and this callback,
    no async context manager and its states."""

    __slots__ = ("task", "cancelling", "fired")

    def __init__(self, task: asyncio.Task | None):
        self.task = task
        self.cancelling = task.cancelling()
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()

    def ended_it(self) -> bool:
        """Whether the CancelledError being handled is this timeout's (not also a cancellation from elsewhere)."""
        return self.fired and self.task.uncancel() <= self.cancelling


class _Retryable(Exception):
    def __init__(self, reason: str, http_status: int = 0, retry_after: float | None = None, timed_out: bool = False):
        super().__init__(reason)
        self.http_status = http_status
        self.retry_after = retry_after
        self.timed_out = timed_out


class KameleoonClient:
    """Posts events to Kameleoon. ``async with`` it, or call start() and close()."""

    def __init__(self, config: Config, metrics=None, trace_configs: tuple = ()):
        self._config = config
        self._metrics = metrics or NoMetrics()
        self._trace_configs = list(trace_configs)
        self._endpoint = URL(config.base_url)
        self._session: aiohttp.ClientSession | None = None
        # KAMELEOON_CONCURRENCY a number (or the deprecated KAMELEOON_POOL_SIZE): one fixed gate for every
        # sitecode, as the fixed pool was. Adaptive: a gate per sitecode, each up to KAMELEOON_MAX_CONCURRENCY.
        self._fixed = config.fixed_concurrency()
        self._shared = Gate(Limit(self._fixed, fixed=True), config.rate_limit) if self._fixed else None
        self._gates: dict[str, Gate] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connector: aiohttp.TCPConnector | None = None

    async def start(self) -> None:
        # Not mutated (make mutate): the pool's own slots bound the requests in flight, and keep-alive and
        # DNS cache times show only on a clock (tests/MUTANTS.md).
        pool = self._fixed or self._config.max_concurrency
        connector = aiohttp.TCPConnector(limit=pool, keepalive_timeout=60, ttl_dns_cache=300)  # pragma: no mutate
        self._connector = connector
        self._loop = asyncio.get_running_loop()  # once: each get_running_loop() is a getpid() system call
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
            # Like Segment's fetch: no cookies kept, no compression asked for; both also cost CPU per request.
            # Every request names its content-type and user-agent, so aiohttp adds neither.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            request_class=_SegmentRequest,
            trace_configs=self._trace_configs or None,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> KameleoonClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def endpoint(self) -> str:
        """The URL events are posted to (KAMELEOON_BASE_URL)."""
        return str(self._endpoint)

    async def post(
        self,
        body: bytes,
        credentials: Credentials,
        deadline: float | None = None,
        action: str = "",
        max_attempts: int | None = None,
        answer: list[str] | None = None,
    ) -> Delivered:
        """Deliver one JSON body; ``deadline`` is an absolute ``loop.time()`` or None; ``action`` labels metrics.

        ``max_attempts`` overrides KAMELEOON_MAX_ATTEMPTS (the outbox posts once and schedules its own retries:
        a retryable failure then raises Unavailable with Kameleoon's Retry-After, if any). ``answer``, when
        given, gets the text of Kameleoon's final answer (a preview shows it).
        """
        started = time.perf_counter()
        http_status = 0  # no answer: refused, timed out, or the call was cancelled (its deadline passed)
        gate = self._shared or self._gates.get(credentials.sitecode) or self._gate(credentials.sitecode)
        try:
            delivered = await self._send("POST", self._endpoint, credentials.headers(), body, deadline, action, gate, max_attempts, answer)
            http_status = delivered.http_status
            return delivered
        except DeliveryError as exc:
            http_status = exc.http_status
            raise
        finally:
            self._metrics.delivered(action, http_status, time.perf_counter() - started)

    async def check_api_key(self, entries: list[tuple[str, str]], deadline: float | None = None) -> Delivered:
        """Segment's credential test: GET <endpoint>/getapikey?<entries>, values URL-encoded."""
        query = "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in entries)
        url = URL(f"{self._config.base_url}/getapikey?{query}", encoded=True)
        return await self._send("GET", url, {"user-agent": USER_AGENT}, None, deadline, "getapikey", self._shared or self._gate(""))

    def _gate(self, sitecode: str) -> Gate:
        """The adaptive gate of ``sitecode``, made on its first request."""
        gate = self._gates.get(sitecode)
        if gate is None:
            gate = self._gates[sitecode] = Gate(Limit(self._config.max_concurrency), self._config.rate_limit, sitecode)
        return gate

    def concurrency(self) -> list[tuple[str, int, int, float | None]]:
        """(sitecode, limit, in flight, round-trip estimate in seconds) of the gates, for the metrics."""
        if self._shared is not None:
            limit = self._shared.limit
            return [("", limit.limit, limit.in_flight, limit.rtt)]
        return [(sitecode, gate.limit.limit, gate.limit.in_flight, gate.limit.rtt) for sitecode, gate in list(self._gates.items())[:SHOWN_GATES]]

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict,
        body: bytes | None,
        deadline: float | None,
        action: str,
        gate: Gate,
        max_attempts: int | None = None,
        answer: list[str] | None = None,
    ) -> Delivered:
        assert self._session is not None, "KameleoonClient.start() was not awaited"
        loop = self._loop
        max_attempts = max_attempts or self._config.max_attempts
        attempts = 0
        while True:
            if gate.paused_until:  # Kameleoon asked this sitecode to wait (Retry-After): no request before then
                await self._paused(gate, deadline, attempts)
            attempts += 1
            timeout = self._config.timeout_s
            bound_by_deadline = False
            if deadline is not None:
                left = deadline - DEADLINE_RESERVE_S - loop.time()
                if left <= 0:
                    raise DeadlineExceeded(f"the call's deadline passed after {attempts - 1} attempt(s)", attempts=attempts - 1)
                if left < timeout:
                    timeout, bound_by_deadline = left, True
            try:
                status, text = await self._attempt(method, url, headers, body, timeout if bound_by_deadline else None, gate)
            except _Retryable as exc:
                self._metrics.attempt(action, "retryable", attempts, exc.http_status)
                if bound_by_deadline and exc.timed_out:
                    raise DeadlineExceeded(
                        f"the call's deadline passed while Kameleoon was answering (attempt {attempts})", attempts=attempts
                    ) from None
                delay = self._backoff(attempts, exc.retry_after)
                give_up = attempts >= max_attempts or delay is None
                # delay is a number below: give_up otherwise
                if not give_up and deadline is not None and loop.time() + delay + MIN_ATTEMPT_S >= deadline - DEADLINE_RESERVE_S:  # type: ignore[operator]
                    give_up = True
                log.debug("attempt failed", method=method, attempt=attempts, reason=str(exc), http_status=exc.http_status)
                if give_up:
                    raise Unavailable(
                        f"Kameleoon is unavailable: {exc} after {attempts} attempt(s)",
                        http_status=exc.http_status,
                        attempts=attempts,
                        retry_after=exc.retry_after,
                    ) from None
                await asyncio.sleep(delay)  # type: ignore[arg-type]
                continue
            self._metrics.attempt(action, "ok" if 200 <= status < 300 else "final", attempts, status)
            if answer is not None:
                answer.append(text)
            if 200 <= status < 300:
                return _delivered(status, attempts)
            raise for_http_status(status, text, attempts)

    async def _paused(self, gate: Gate, deadline: float | None, attempts: int) -> None:
        """Wait out the sitecode's pause when it ends in time (before the deadline, within KAMELEOON_BACKOFF_MAX_S
        as a Retry-After would be); else Unavailable with what is left of it, nothing sent."""
        loop = self._loop
        left = gate.paused_until - loop.time()
        if left <= 0:
            gate.paused_until = 0.0
            return
        if left > self._config.backoff_max_s or (deadline is not None and loop.time() + left + MIN_ATTEMPT_S >= deadline - DEADLINE_RESERVE_S):
            raise Unavailable(
                f"Kameleoon asked to wait {left:.3g} s more before the next request of this sitecode (Retry-After)",
                http_status=0,
                attempts=attempts,
                retry_after=left,
            )
        await asyncio.sleep(left)

    async def _attempt(self, method: str, url: URL, headers: dict, body: bytes | None, timeout: float | None, gate: Gate) -> tuple[int, str]:
        """One request once its gate lets it go; ``timeout`` None: the session's (timeout_s). Its round trip
        and Kameleoon's back-pressure (429, 503, no answer) go back into the gate's limit."""
        loop = self._loop
        if gate.take_now():
            self._metrics.pool_wait(0.0)
        else:
            waiting = time.perf_counter()
            await gate.wait()
            self._metrics.pool_wait(time.perf_counter() - waiting)
        sent = loop.time()
        rtt: float | None = None
        pushed_back = False  # 429, 503, no answer (a timeout, a connection error); not a cancelled call
        try:
            if method == hdrs.METH_POST and not self._trace_configs:
                response, raw = await self._post(url, headers, body, self._config.timeout_s if timeout is None else timeout)
            else:
                response, raw = await self._request(method, url, headers, body, timeout)
            status = response.status
            rtt = loop.time() - sent
            pushed_back = status in BACK_PRESSURE_STATUS
            if status in RETRYABLE_STATUS:
                reason = f"HTTP {status}"
                answer = truncate(raw.decode("utf-8", "replace"))
                if answer:
                    reason = f"{reason} ({answer})"
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                if retry_after and pushed_back:
                    gate.pause(loop.time() + retry_after)
                raise _Retryable(reason, status, retry_after)
            return status, raw.decode("utf-8", "replace")
        except TimeoutError:
            pushed_back = True
            seconds = self._config.timeout_s if timeout is None else timeout
            raise _Retryable(f"no answer within {seconds:.3g} s", timed_out=True) from None
        except (aiohttp.ClientError, OSError) as exc:  # OSError: what ClientSession would have wrapped as ClientOSError
            pushed_back = True
            raise _Retryable(f"connection error ({type(exc).__name__})") from None
        finally:
            gate.give(rtt, pushed_back, loop.time())

    async def _request(self, method: str, url: URL, headers: dict, body: bytes | None, timeout: float | None) -> tuple[aiohttp.ClientResponse, bytes]:
        """One request through ClientSession (redirects, trace hooks); ``timeout`` None: the session's."""
        options: dict[str, Any] = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=timeout)}
        async with self._session.request(method, url, headers=headers, data=body, **options) as response:
            return response, await response.read()

    async def _post(self, url: URL, headers: dict, body: bytes | None, timeout: float) -> tuple[aiohttp.ClientResponse, bytes]:
        """One POST on the session's pool, below ClientSession.request: aiohttp's own request, connector,
        writer and parser, without the per-request work this client never needs (headers merged
        with session defaults, cookies, proxies, auth, trace hooks, a redirect loop): about a fifth
        of aiohttp's instructions per request. The request on the wire is the one ClientSession
        sends; a redirect (rare) is followed by ClientSession as before."""
        request = _SegmentRequest(
            hdrs.METH_POST,
            url,
            headers=headers,
            data=body,
            response_class=aiohttp.ClientResponse,
            # As ClientSession passes them; left out or None, aiohttp takes the same (not mutated: tests/MUTANTS.md).
            loop=self._loop,  # pragma: no mutate
            session=self._session,  # pragma: no mutate
        )
        loop = self._loop
        expiry = _Expiry(asyncio.current_task(loop))
        timer = loop.call_at(loop.time() + timeout, expiry)
        try:
            connection = await self._connector.connect(request, [], _CONNECT_TIMEOUT)
            try:
                connection.protocol.set_response_params(read_until_eof=True, auto_decompress=False)
                response = await request.send(connection)
                await response.start(connection)
            except BaseException:
                connection.close()
                raise
            raw = await response.read()  # a failed read closes the connection itself
        except asyncio.CancelledError:
            if expiry.ended_it():
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()
        response.release()
        if response.status in _REDIRECTS and hdrs.LOCATION in response.headers:
            return await self._redirected(response, url, headers, body, timeout)
        return response, raw

    async def _redirected(
        self, response: aiohttp.ClientResponse, url: URL, headers: dict, body: bytes | None, timeout: float
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """The request a redirect asks for, made as ClientSession (and fetch) makes it: 301/302/303 turn the
        POST into a GET without body, another origin gets no Authorization; later redirects the session follows."""
        target = URL(response.headers[hdrs.LOCATION])
        if not target.is_absolute():
            target = url.join(target)
        method = hdrs.METH_POST
        if response.status in (301, 302, 303):
            method, body = hdrs.METH_GET, None
        if target.origin() != url.origin():
            headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
        return await self._request(method, target, headers, body, timeout)

    def _backoff(self, attempts: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None when Retry-After asks for longer than we wait."""
        cap = self._config.backoff_max_s
        if retry_after is not None:
            return retry_after if retry_after <= cap else None
        return random.uniform(0, min(cap, self._config.backoff_base_s * 2 ** (attempts - 1)))


__all__ = ["Delivered", "DeliveryError", "KameleoonClient", "longest_post_s", "retry_after_seconds"]

"""A cheap Kameleoon stand-in: answers every request with 200, does nothing else.

A raw asyncio protocol (uvloop when importable) with a minimal HTTP/1.1
keep-alive parser: it finds the end of the headers, skips the body
(Content-Length or chunked) and writes one canned response. It counts the
requests it answered; ``GET /__stats`` returns the counters as JSON (that is
how the benchmark checks that every event really reached "Kameleoon"), with
the header lines of one POST in 64 (names, and values but Host and
Content-Length) counted by kind, so the report can show that the HTTP floor
puts the same header lines on the wire as the service.

``--delay-ms N`` answers every POST N ms after it arrived (Kameleoon across
the internet): a client's throughput then follows its connections / N.
``--capacity N`` answers at most N POSTs at once (with the delay) and 429 at once
beyond, counted in ``rejected`` (a rate-limited Kameleoon); ``GET /__capacity?n=K``
changes it while running (0: no limit).

Run: ``python -m bench.standin [--port 0] [--delay-ms 0]``; prints ``PORT <n>``
once listening and stops on SIGTERM / SIGINT or when its parent process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bench.common import run, until_stopped

RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'
TOO_MANY = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
MAX_HEAD = 64 * 1024
SAMPLE_EVERY = 64  # one POST in this many has its header lines recorded
VARYING = (b"host:", b"content-length:")  # header values that differ between clients for no reason of theirs

STATS: dict = {"requests": 0, "posts": 0, "rejected": 0, "body_bytes": 0, "connections": 0, "open": 0, "heads": {}}
DELAY_S = 0.0
CAPACITY = [0]  # POSTs answered at once at most (0: no limit); beyond, 429
ANSWERING = [0]  # POSTs being answered now


def _chunked_end(buf: bytearray, start: int) -> int:
    """Index just past a complete chunked body starting at ``start``, or -1 if incomplete."""
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)  # trailers, if any, end with an empty line
            return -1 if end < 0 else end + 4
        pos += size + 2
        if pos > len(buf):
            return -1


def _record_head(raw: bytes) -> None:
    """Count the request line and header lines of one request (Host and Content-Length without their values)."""
    request_line, *rest = raw.split(b"\r\n")
    lines = [request_line.decode("latin-1")]
    for line in rest:
        lower = line.lower()
        lines.append(line.split(b":", 1)[0].lower().decode() + ":" if lower.startswith(VARYING) else line.decode("latin-1"))
    key = "\n".join(lines)
    STATS["heads"][key] = STATS["heads"].get(key, 0) + 1


class StandIn(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = bytearray()
        STATS["connections"] += 1
        STATS["open"] += 1

    def connection_lost(self, exc) -> None:
        STATS["open"] -= 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while buf:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_HEAD:
                    self.transport.close()
                return
            raw_head = bytes(buf[:head_end])
            head = raw_head.lower()
            start = head_end + 4
            close = b"\nconnection: close" in head
            at = head.find(b"\ncontent-length:")
            if at >= 0:
                eol = head.find(b"\r", at + 16)
                end = start + int(head[at + 16 : eol if eol > 0 else None])
                if end > len(buf):
                    return
            elif b"\ntransfer-encoding: chunked" in head:
                end = _chunked_end(buf, start)
                if end < 0:
                    return
            else:
                end = start
            STATS["requests"] += 1
            if head.startswith(b"post ") and CAPACITY[0] and ANSWERING[0] >= CAPACITY[0]:
                STATS["rejected"] += 1
                self.transport.write(TOO_MANY)
            elif head.startswith(b"post "):
                STATS["posts"] += 1
                STATS["body_bytes"] += end - start
                if STATS["posts"] % SAMPLE_EVERY == 1:
                    _record_head(raw_head)
                if DELAY_S:
                    ANSWERING[0] += 1
                    asyncio.get_running_loop().call_later(DELAY_S, self._answer, close)
                    del buf[:end]
                    if close:
                        return
                    continue
                self.transport.write(RESPONSE)
            elif head.startswith(b"get /__capacity?n="):
                CAPACITY[0] = int(head.split(b" ", 2)[1].split(b"=", 1)[1])
                self.transport.write(RESPONSE)
            elif head.startswith(b"get /__stats"):
                text = json.dumps(STATS).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            else:
                self.transport.write(RESPONSE)
            del buf[:end]
            if close:
                self.transport.close()
                return

    def _answer(self, close: bool) -> None:
        ANSWERING[0] -= 1
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)
            if close:
                self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StandIn, host, port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await until_stopped()
    server.close()


def main(argv: list[str] | None = None) -> int:
    global DELAY_S
    parser = argparse.ArgumentParser(prog="python -m bench.standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer every POST this long after it arrived")
    parser.add_argument("--capacity", type=int, default=0, help="POSTs answered at once at most; 429 beyond (0: no limit)")
    args = parser.parse_args(argv)
    DELAY_S = args.delay_ms / 1000
    CAPACITY[0] = args.capacity
    run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

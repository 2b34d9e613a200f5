"""``kameleoon-destination outbox stats | dead-letters | retry | purge``: the operator RPCs, on the store itself.

They open the same outbox as the service (KAMELEOON_OUTBOX, else the default
location, or ``--outbox``), so they work with the service running or not (SQLite
lets several processes share the file). ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime

from service.config import Config
from service.errors import ConfigError, DestinationError, InvalidArgument
from service.outbox import create, default_url
from service.outbox.base import DeadLetter, DeadLetterFilter, Outbox


def add_parser(commands) -> None:
    """The ``outbox`` command and its four subcommands."""
    outbox = commands.add_parser("outbox", help="look at and act on the queued-delivery outbox (stats, dead letters)")
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--outbox", help="the outbox URL (default: KAMELEOON_OUTBOX, else the default location)")
    common.add_argument("--json", action="store_true", help="print one JSON object")
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--id", action="append", default=[], dest="ids", help="a dead letter's id (repeat for more)")
    chooser.add_argument("--action", help="only this action (logEvent, identify, page, group)")
    chooser.add_argument("--http-status", type=int, help="only this last HTTP status (0: no answer)")
    chooser.add_argument("--since", type=_when, help="dead since this time (ISO 8601 or epoch seconds)")
    chooser.add_argument("--until", type=_when, help="dead before this time (ISO 8601 or epoch seconds)")
    actions.add_parser("stats", parents=[common], help="pending, in flight, dead, oldest pending age, by action")
    listing = actions.add_parser("dead-letters", parents=[common, chooser], help="list dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--page-token", help="next_page_token of the previous page")
    for name, what in (("retry", "put dead letters back to pending, with a fresh retry window"), ("purge", "delete dead letters for good")):
        acting = actions.add_parser(name, parents=[common, chooser], help=what)
        acting.add_argument("--all", action="store_true", help="every dead letter (needed when no filter is given)")


def _when(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ISO 8601 or epoch seconds, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _store(args, config: Config) -> Outbox:
    url = args.outbox or config.outbox or default_url()
    if url.startswith("sqlite:///"):
        from service.outbox.sqlite import path_of

        if not os.path.exists(path_of(url)):
            raise ConfigError(f"no outbox file at {os.path.abspath(path_of(url))} (set KAMELEOON_OUTBOX or --outbox)")
    try:
        return create(url)
    except ValueError as exc:
        raise ConfigError(f"--outbox / KAMELEOON_OUTBOX: {exc}") from None


def _filter(args) -> DeadLetterFilter:
    return DeadLetterFilter(tuple(args.ids), args.action, args.http_status, args.since, args.until)


def _letter(letter: DeadLetter) -> dict:
    shown = asdict(letter)
    for key in ("accepted_at", "first_attempt_at", "last_attempt_at", "dead_at"):
        shown[key] = _iso(shown[key])
    return shown


async def run(args, config: Config) -> int:
    store = _store(args, config)
    await store.open()
    try:
        result = await _run(args, config, store)
    except DestinationError as exc:
        print(f"kameleoon-destination: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print(args.outbox_command, result)
    return 0


async def _run(args, config: Config, store: Outbox) -> dict:
    now = time.time()
    command = args.outbox_command
    if command == "stats":
        stats = await store.stats(now=now)
        return {
            "location": store.location,
            "pending": stats.pending,
            "in_flight": stats.in_flight,
            "dead": stats.dead,
            "oldest_pending_age_s": round(stats.oldest_pending_age_s, 3),
            "by_action": {action: asdict(entry) for action, entry in sorted(stats.by_action.items())},
        }
    where = _filter(args)
    if command == "dead-letters":
        letters, cursor = await store.list_dead_letters(where, limit=max(1, args.limit), cursor=args.page_token)
        return {"dead_letters": [_letter(d) for d in letters], "next_page_token": cursor}
    if where.is_empty() and not args.all:
        raise InvalidArgument(f"outbox {command}: name --id or a filter, or give --all to act on every dead letter")
    if command == "retry":
        return {"retried": await store.retry_dead_letters(where, now=now, window_s=config.retry_window_s)}
    return {"purged": await store.purge_dead_letters(where)}


def _print(command: str, result: dict) -> None:
    if command == "stats":
        print(f"outbox {result['location']}")
        print(
            f"pending {result['pending']}, in flight {result['in_flight']}, dead {result['dead']}, oldest pending {result['oldest_pending_age_s']} s"
        )
        for action, entry in result["by_action"].items():
            print(f"  {action}: pending {entry['pending']}, in flight {entry['in_flight']}, dead {entry['dead']}")
    elif command == "dead-letters":
        for d in result["dead_letters"]:
            print(
                f"{d['id']}\t{d['dead_at']}\t{d['action']}\t{d['message_id'] or '-'}\tattempts {d['attempts']}\t"
                f"HTTP {d['last_http_status'] or '-'}\t{d['last_error']}"
            )
        if result["next_page_token"]:
            print(f"(more: --page-token {result['next_page_token']})")
        elif not result["dead_letters"]:
            print("no dead letters")
    else:
        print(f"{command}: {next(iter(result.values()))} dead letter(s)")

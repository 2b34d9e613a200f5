"""The operator's page as HTML: plain functions from data to text. Every value that came from an event, a
caller or a configuration file goes through ``e()`` (html.escape): a ``<script>`` in a property is shown as
text, and the CSP (service.api.page.access) would refuse to run it anyway."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from html import escape
from urllib.parse import urlencode

WINDOW_NAMES = {"10m": "10 min", "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "14d": "14 days"}


def e(value) -> str:
    return escape(str(value), quote=True)


def when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(text: str | bytes) -> str:
    """JSON indented for reading (any other text as it is), escaped."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        raw = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    return e(raw)


def page(title: str, body: str, current: str = "", signed_in: bool = False) -> str:
    links = [("/", "Overview"), ("/outbox", "Outbox"), ("/config", "Configuration")]
    nav = "".join(f'<a href="{href}"{" class=current" if href == current else ""}>{name}</a>' for href, name in links)
    if signed_in:
        nav += '<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{e(title)} · kameleoon-destination</title><link rel="stylesheet" href="/assets/page.css"></head>'
        f"<body><header><strong>kameleoon-destination</strong><nav>{nav}</nav></header><main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


def _change(now: int, before: int) -> str:
    """The change against the previous period of the same length."""
    if not before:
        return '<span class="change">new</span>' if now else ""
    delta = (now - before) * 100 / before
    sign = "up" if delta > 0 else "down" if delta < 0 else "same"
    return f'<span class="change {sign}">{delta:+.0f}%</span>'


def _count(value: int, received: int, percent: bool) -> str:
    if percent:
        return f"{value * 100 / received:.1f}%" if received else "-"
    return f"{value:,}"


def _reasons(counts, source: str, destination: str, received: int, percent: bool) -> str:
    items = []
    for each in counts:
        query = urlencode({"source": source, "destination": destination})
        items.append(
            f'<li><a href="/reasons/{e(each.reason)}?{e(query)}">{e(each.reason)}</a> <span class="n">{_count(each.count, received, percent)}</span></li>'
        )
    return f"<ul class=reasons>{''.join(items)}</ul>" if items else ""


def overview(window: str, percent: bool, since: float, until: float, funnels: list, previous: dict) -> str:
    """Each instance's funnel over the window; ``previous``: (source, destination) -> the previous period's funnel."""
    choices = " ".join(
        f'<a href="/?{e(urlencode({"window": name, "show": "percent" if percent else "counts"}))}"{" class=current" if name == window else ""}>{label}</a>'
        for name, label in WINDOW_NAMES.items()
    )
    other = "counts" if percent else "percent"
    toggle = f'<a href="/?{e(urlencode({"window": window, "show": other}))}">show {other}</a>'
    head = f'<p class="window">{choices} · {toggle}</p><p class="span">From {when(since)} to {when(until)}; changes against the {e(WINDOW_NAMES[window])} before.</p>'
    if not funnels:
        return head + "<p>No events in this window.</p>"
    rows = []
    for shown in funnels:
        before = previous.get((shown.source, shown.destination))
        received = shown.received
        discarded = sum(each.count for each in shown.discarded)
        failed = sum(each.count for each in shown.failed)
        was = (before.received, before.delivered) if before is not None else (0, 0)
        rows.append(
            "<tr>"
            f'<th scope="row">{e(shown.source)} / {e(shown.destination)}</th>'
            f'<td class="received">{received:,} {_change(received, was[0])}</td>'
            f'<td class="discarded">{_count(discarded, received, percent)}{_reasons(shown.discarded, shown.source, shown.destination, received, percent)}</td>'
            f'<td class="failed">{_count(failed, received, percent)}{_reasons(shown.failed, shown.source, shown.destination, received, percent)}</td>'
            f'<td class="retrying">{_count(shown.retrying, received, percent)}</td>'
            f'<td class="delivered">{_count(shown.delivered, received, percent)} {_change(shown.delivered, was[1])}</td>'
            "</tr>"
        )
    table = (
        '<table class="funnel"><thead><tr><th>source / destination</th><th>received</th><th>discarded</th><th>failed</th>'
        f"<th>retrying</th><th>delivered</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return head + table


def samples(reason: str, source: str, destination: str, found: Iterable) -> str:
    where = " / ".join(part for part in (source, destination) if part) or "every instance"
    cards = []
    for sample in found:
        answer = f"HTTP {sample.http_status}" if sample.http_status else "no answer"
        response = (
            f"<p>{e(answer)} after {sample.attempts} attempt(s)</p><pre>{e(sample.response)}</pre>"
            if sample.http_status or sample.response or sample.attempts
            else "<p>not sent</p>"
        )
        cards.append(
            '<section class="sample">'
            f"<h2>{e(when(sample.at))} · {e(sample.source)} / {e(sample.destination)} · messageId <code>{e(sample.message_id or '-')}</code></h2>"
            '<div class="columns">'
            f"<div><h3>You sent</h3><pre>{pretty(sample.event) if sample.event else '(not kept: a queued event)'}</pre></div>"
            f"<div><h3>Request to Kameleoon</h3><pre>{_request(sample.request)}</pre></div>"
            f"<div><h3>Response</h3>{response}</div>"
            "</div></section>"
        )
    body = "".join(cards) or "<p>No samples of this reason (samples are kept 7 days by default; KAMELEOON_SAMPLES=off keeps none).</p>"
    return f'<p><a href="/">← overview</a> · {e(where)}</p>{body}'


def _request(text: str) -> str:
    if not text:
        return "(nothing was sent)"
    head, _, body = text.partition("\n\n")
    return e(head) + "\n\n" + pretty(body)


def outbox(location: str, stats, letters: list, bodies: dict) -> str:
    if stats is None:
        return "<p>This service has no outbox (KAMELEOON_OUTBOX unset, synchronous delivery): nothing waits, nothing is dead-lettered.</p>"
    age = f"{stats.oldest_pending_age_s:,.0f} s" if stats.oldest_pending_age_s else "-"
    summary = (
        f'<table class="stats"><tr><th>pending</th><td>{stats.pending:,}</td></tr><tr><th>in flight</th><td>{stats.in_flight:,}</td></tr>'
        f"<tr><th>oldest pending</th><td>{age}</td></tr><tr><th>dead letters</th><td>{stats.dead:,}</td></tr></table>"
        f"<p>Outbox: <code>{e(location)}</code></p>"
    )
    by_status: dict[str, int] = {}
    for letter in letters:
        name = f"HTTP {letter.last_http_status}" if letter.last_http_status else "no answer"
        by_status[name] = by_status.get(name, 0) + 1
    reasons = "".join(f"<li>{e(name)} <span class=n>{count}</span></li>" for name, count in sorted(by_status.items()))
    items = []
    for letter in letters:
        items.append(
            "<details><summary>"
            f"#{e(letter.id)} · {e(letter.action)} · messageId <code>{e(letter.message_id)}</code> · {e(when(letter.dead_at))} · "
            f"HTTP {letter.last_http_status or '-'} after {letter.attempts} attempt(s)</summary>"
            f"<p>Route <code>{e(letter.route)}</code>, sitecode <code>{e(letter.sitecode)}</code>. Last error:</p><pre>{e(letter.last_error)}</pre>"
            f"<p>Body sent to Kameleoon:</p><pre>{pretty(bodies.get(letter.id, b''))}</pre></details>"
        )
    dead = (
        f"<h2>Dead letters by last answer</h2><ul class=reasons>{reasons}</ul><h2>Dead letters (the oldest {len(letters)})</h2>{''.join(items)}"
        if letters
        else "<p>No dead letters.</p>"
    )
    return summary + dead + "<p>Retries and purges: <code>kameleoon-destination outbox</code> or the OutboxAdmin RPCs.</p>"


def configuration(settings: list[tuple[str, str]], versions: dict[str, str], sources: list, server_sitecode: str) -> str:
    rows = "".join(f"<tr><th>{e(name)}</th><td><code>{e(value)}</code></td></tr>" for name, value in settings)
    rows += "".join(f"<tr><th>version of {e(name)}</th><td><code>{e(version)}</code></td></tr>" for name, version in sorted(versions.items()))
    parts = [f'<table class="stats">{rows}</table>']
    for source in sources:
        parts.append(f"<h2>Source {e(source.name)}</h2>")
        for instance in source.instances:
            sitecode = instance.credentials.sitecode if instance.credentials is not None else f"{server_sitecode} (KAMELEOON_SITECODE)"
            filters, subscriptions = instance.router.current()
            consent = ", ".join(instance.consent.categories) or "none"
            subs = "".join(f"<li><strong>{e(s.name)}</strong> → {e(s.action.slug)} <code>{e(s.subscribe)}</code></li>" for s in subscriptions)
            flts = "".join(
                f"<li><strong>{e(f.title)}</strong>{'' if f.enabled else ' (disabled)'} <code>{e(f.condition)}</code></li>" for f in filters.filters
            )
            parts.append(
                f'<section class="instance"><h3>{e(instance.name)}{"" if instance.enabled else " (disabled)"}</h3>'
                f"<p>Sitecode <code>{e(sitecode)}</code>; consent categories: {e(consent)}.</p>"
                f"<h4>Subscriptions</h4><ul>{subs or '<li>none</li>'}</ul><h4>Filters</h4><ul>{flts or '<li>none</li>'}</ul></section>"
            )
    return "".join(parts) + "<p>Secrets (apiKeys, write keys, tokens) are never shown.</p>"


def login(failed: bool) -> str:
    error = '<p class="error">That is not an operator token.</p>' if failed else ""
    return (
        f"{error}<form method=post action=/login class=login><label>Operator token (KAMELEOON_ADMIN_TOKENS)"
        '<input type="password" name="token" autocomplete="current-password" required autofocus></label>'
        '<button type="submit">Sign in</button></form>'
    )

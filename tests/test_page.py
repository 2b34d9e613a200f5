"""The operator's page (KAMELEOON_ADMIN_LISTEN) over HTTP through a real server and the stand-in: who may read
it, what every answer's headers say, the overview's counts equal the RPC's, a reason's samples, the outbox, the
configuration without a secret, and an event's markup shown as text. (tests/test_page_browser.py drives it in
a real browser.)"""

from __future__ import annotations

import json
import re

import aiohttp
import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.config import from_env
from service.demo.sink import Reply
from service.errors import ConfigError
from tests.conftest import API_KEY, SITECODE, eventually

TOKEN = "adm-page-7c1f"
SECRET = "demo-secret"  # inside API_KEY
SCRIPT = "<script>document.title='owned'</script>"


def send(message_id: str, delivery: int = 0, **fields) -> pb.SendRequest:
    event = {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": message_id, **fields}
    return pb.SendRequest(event_json=json.dumps(event), delivery=delivery)


@pytest.fixture
def filters_file(tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps([{"title": "No <b>test</b> events", "enabled": True, "if": 'event = "Test"', "actions": [{"type": "DROP"}]}]))
    return str(path)


@pytest.fixture
async def page(start_service, sink, tmp_path, filters_file):
    """(app, stub, base URL): a service with the page, admin tokens, an outbox and a filter; events delivered,
    filtered (one carrying a script) and dead-lettered (400)."""
    sink.choose = lambda received: Reply(400, '{"error":"bad"}') if received.json()["messageId"] == "m-dead" else Reply()
    app, stub = await start_service(
        api_key=API_KEY,
        sitecode=SITECODE,
        admin_tokens=(TOKEN,),
        admin_listen=("127.0.0.1", 0),
        outbox=f"sqlite:///{tmp_path}/outbox.db",
        filters=filters_file,
    )
    await stub.Send(send("m-ok"), timeout=10)
    await stub.Send(send("m-script", event="Test", properties={"note": SCRIPT}), timeout=10)
    await stub.Send(send("m-dead", pb.DELIVERY_MODE_QUEUED), timeout=10)
    await sink.wait_until(lambda: any(r.json()["messageId"] == "m-dead" for r in sink.received))
    return app, stub, f"http://127.0.0.1:{app.page_port}"


async def get(url: str, token: str | None = TOKEN, headers: dict | None = None, cookies: dict | None = None) -> tuple[int, str, dict]:
    sent = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    async with aiohttp.ClientSession(cookies=cookies) as session:
        async with session.get(url, headers=sent, allow_redirects=False) as answer:
            return answer.status, await answer.text(), dict(answer.headers)


async def test_without_a_token_or_session_nothing_is_shown(page):
    _, _, url = page
    for path in ("/", "/reasons/HTTP_400", "/outbox", "/config"):
        status, text, _ = await get(url + path, token=None)
        assert status == 401 and "m-ok" not in text
        status, _, headers = await get(url + path, token="wrong")
        assert status == 401
        status, _, headers = await get(url + path, token=None, headers={"Accept": "text/html"})
        assert status == 303 and headers["Location"] == "/login"


async def test_signing_in_sets_a_strict_session_cookie_and_signing_out_ends_it(page):
    _, _, url = page
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # unsafe: a jar that takes an IP's cookies
        async with session.post(url + "/login", data={"token": "wrong"}, allow_redirects=False) as answer:
            assert answer.status == 401 and "not an operator token" in await answer.text()
        async with session.post(url + "/login", data={"token": TOKEN}, allow_redirects=False) as answer:
            assert answer.status == 303
            cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie and TOKEN not in cookie
        async with session.get(url + "/") as answer:
            assert answer.status == 200 and "Delivery overview" in await answer.text()
        async with session.post(url + "/logout", allow_redirects=False) as answer:
            assert answer.status == 303
        async with session.get(url + "/", allow_redirects=False) as answer:
            assert answer.status == 401
    forged = {"kd_session": "9999999999.0000"}
    status, _, _ = await get(url + "/", token=None, cookies=forged)
    assert status == 401


async def test_every_answer_carries_a_strict_content_security_policy(page):
    _, _, url = page
    for path, token in (("/", TOKEN), ("/login", None), ("/assets/page.css", None), ("/", None), ("/reasons/X", TOKEN)):
        _, _, headers = await get(url + path, token=token)
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"


def numbers(text: str, cell: str) -> list[str]:
    return re.findall(rf'<td class="{cell}">([\d,.%-]+)', text)


async def test_the_overview_shows_the_rpcs_counts(page):
    app, _, url = page
    overview = pb_grpc.DeliveryOverviewStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
    token = (("authorization", f"Bearer {TOKEN}"),)

    answers = []

    async def settled():  # the 400 became a dead letter: nothing moves any more
        answers[:] = [await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(window="1h"), metadata=token, timeout=10)]
        return "DEAD_LETTER" in str(answers[0])

    await eventually(settled, what="m-dead counted as a dead letter")
    [shown] = answers[0].destinations
    status, text, _ = await get(url + "/?window=1h")
    assert status == 200
    assert numbers(text, "failed") == [str(sum(r.count for r in shown.failed))] == ["1"]
    assert numbers(text, "received") == [str(shown.received)] == ["3"]
    assert numbers(text, "delivered") == [str(shown.delivered)] == ["1"]
    assert numbers(text, "discarded") == [str(sum(r.count for r in shown.discarded))] == ["1"]
    assert '<a href="/reasons/FILTERED_BY_RULES?source=default&amp;destination=default">FILTERED_BY_RULES</a>' in text
    status, percent, _ = await get(url + "/?window=1h&show=percent")
    assert numbers(percent, "delivered") == ["33.3%"]
    status, _, _ = await get(url + "/?window=3h")
    assert status == 400


async def test_a_reasons_samples_show_an_events_markup_as_text(page):
    _, _, url = page
    status, text, _ = await get(url + "/reasons/FILTERED_BY_RULES?source=default&destination=default")
    assert status == 200 and "m-script" in text
    assert SCRIPT not in text and "&lt;script&gt;document.title=&#x27;owned&#x27;&lt;/script&gt;" in text
    assert "<h3>You sent</h3>" in text and "<h3>Request to Kameleoon</h3>" in text and "<h3>Response</h3>" in text


async def test_the_outbox_page_shows_dead_letters_with_their_payload(page, sink):
    app, _, url = page

    async def dead() -> str:
        status, text, _ = await get(url + "/outbox")
        assert status == 200
        return text

    shown = []

    async def listed():
        shown[:] = [await dead()]
        return "m-dead" in shown[0]

    await eventually(listed, what="m-dead on the outbox page")
    text = shown[0]
    assert "m-dead" in text and "HTTP 400 <span class=n>1</span>" in text
    [sent] = [r for r in sink.received if r.json()["messageId"] == "m-dead"]
    assert json.loads(sent.body)["messageId"] == "m-dead" and "&quot;messageId&quot;: &quot;m-dead&quot;" in text


async def test_the_configuration_page_names_no_secret(page):
    _, _, url = page
    status, text, _ = await get(url + "/config")
    assert status == 200
    assert "Track Calls" in text and "No &lt;b&gt;test&lt;/b&gt; events" in text and SITECODE in text
    assert API_KEY not in text and SECRET not in text and TOKEN not in text


async def test_a_page_beyond_loopback_needs_admin_tokens(start_service, monkeypatch):
    with pytest.raises(ConfigError, match="KAMELEOON_ADMIN_TOKENS"):
        from_env({"KAMELEOON_ADMIN_LISTEN": "0.0.0.0:8080"})
    assert from_env({"KAMELEOON_ADMIN_LISTEN": "0.0.0.0:8080", "KAMELEOON_ADMIN_TOKENS": "t"}).admin_listen == ("0.0.0.0", 8080)
    assert from_env({"KAMELEOON_ADMIN_LISTEN": "[::1]:8080"}).admin_listen == ("::1", 8080)
    with pytest.raises(ConfigError, match="loopback"):
        await start_service(admin_listen=("0.0.0.0", 0))


async def test_without_tokens_the_loopback_page_is_open(start_service, sink):
    app, stub = await start_service(api_key=API_KEY, sitecode=SITECODE, admin_listen=("127.0.0.1", 0))
    await stub.Send(send("m-1"), timeout=10)
    status, text, _ = await get(f"http://127.0.0.1:{app.page_port}/", token=None)
    assert status == 200 and numbers(text, "received") == ["1"] and "Log out" not in text
    status, text, _ = await get(f"http://127.0.0.1:{app.page_port}/outbox", token=None)
    assert status == 200 and "has no outbox" in text


def test_a_session_cookie_is_the_servers_own_for_its_lifetime_only():
    """Access on its own, by a clock of its own: the cookie's expiry is signed (a longer one is refused), it
    ends at its expiry, and its attributes hold over TLS."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from service.api.page.access import COOKIE, SESSION_S, Access

    now = [T0 := 1_800_000_000.0]
    access = Access((TOKEN,), secure=True, clock=lambda: now[0])
    response = web.Response()
    access.log_in(response)
    morsel = response.cookies[COOKIE]
    assert (morsel["max-age"], morsel["path"], morsel["httponly"], morsel["samesite"], morsel["secure"]) == (
        str(SESSION_S),
        "/",
        True,
        "Strict",
        True,
    )

    def allowed(cookie: str, header: str = "") -> bool:
        headers = {"Cookie": f"{COOKIE}={cookie}", **({"Authorization": header} if header else {})}
        return access.allowed(make_mocked_request("GET", "/", headers=headers))

    value = morsel.value
    expires, _, signature = value.partition(".")
    assert allowed(value)
    assert not allowed(f"{int(expires) + 3600}.{signature}")  # a later expiry under the same signature
    assert not allowed(f"{expires}.{signature[:-1]}0" if signature[-1] != "0" else f"{expires}.{signature[:-1]}1")
    now[0] = T0 + SESSION_S - 1
    assert allowed(value)
    now[0] = T0 + SESSION_S
    assert not allowed(value)
    assert allowed("", header=f"Bearer {TOKEN}") and allowed("", header=f"bearer {TOKEN}") and not allowed("", header="Bearer nope")
    assert not Access((TOKEN,), secure=True).allowed(
        make_mocked_request("GET", "/", headers={"Cookie": f"{COOKIE}={value}"})
    )  # another process's key
    gone = web.Response()
    access.log_out(gone)
    assert gone.cookies[COOKIE]["path"] == "/" and gone.cookies[COOKIE]["max-age"] == "0"

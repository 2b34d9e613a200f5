"""The operator's page's routes. Each handler reads what the operators' RPCs read and renders it (views)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from service.api.overview_admin import WINDOWS, funnel
from service.api.page import views
from service.api.page.access import Access, headers
from service.api.page.assets import CSS
from service.config import Config
from service.config.values import is_loopback
from service.errors import ConfigError
from service.ops.overview import Recorder, Sample
from service.outbox.base import DeadLetterFilter, Outbox

DEAD_LETTERS_SHOWN = 100
FAILED_SIGN_IN_DELAY_S = 1.0


class OperatorPage:
    """``versions``: each configuration's version in force (the reloader's)."""

    def __init__(self, config: Config, recorder: Recorder, outbox: Outbox | None, workspace: Callable, versions: Callable[[], dict]):
        self._config = config
        self._recorder = recorder
        self._outbox = outbox
        self._workspace = workspace
        self._versions = versions
        self.access = Access(config.admin_tokens, secure=bool(config.tls_cert))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[headers, self._guard])
        app.router.add_get("/", self.overview)
        app.router.add_get("/reasons/{reason}", self.reason)
        app.router.add_get("/outbox", self.outbox)
        app.router.add_get("/config", self.configuration)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.log_in)
        app.router.add_post("/logout", self.log_out)
        app.router.add_get("/assets/page.css", self.stylesheet)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if request.path in ("/login", "/assets/page.css") or self.access.allowed(request):
            return await handler(request)
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="send 'Authorization: Bearer <a token of KAMELEOON_ADMIN_TOKENS>', or sign in at /login")

    def _html(self, title: str, body: str, current: str = "", status: int = 200) -> web.Response:
        text = views.page(title, body, current, signed_in=not self.access.open)
        return web.Response(text=text, content_type="text/html", status=status)

    # -- pages ---------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        window = request.query.get("window", "1h")
        if window not in WINDOWS:
            raise web.HTTPBadRequest(text=f"window must be one of {', '.join(WINDOWS)}")
        percent = request.query.get("show") == "percent"
        now = time.time()
        until = (now // 60 + 1) * 60  # this minute included, as GetDeliveryOverview counts
        since = now - WINDOWS[window]
        length = until - since
        await self._recorder.flush()
        store = self._recorder.store
        funnels = funnel(await store.overview(since, until))
        previous = {(f.source, f.destination): f for f in funnel(await store.overview(since - length, since))}
        return self._html("Delivery overview", views.overview(window, percent, since, until, funnels, previous), "/")

    async def reason(self, request: web.Request) -> web.Response:
        reason = request.match_info["reason"]
        source, destination = request.query.get("source", ""), request.query.get("destination", "")
        await self._recorder.flush()
        found = [Sample(*row) for row in await self._recorder.store.samples(reason, source, destination)]
        return self._html(reason, views.samples(reason, source, destination, found), "/")

    async def outbox(self, request: web.Request) -> web.Response:
        if self._outbox is None:
            return self._html("Outbox", views.outbox("", None, [], {}), "/outbox")
        stats = await self._outbox.stats(now=time.time())
        letters, _ = await self._outbox.list_dead_letters(DeadLetterFilter(), limit=DEAD_LETTERS_SHOWN)
        bodies = await self._outbox.dead_letter_bodies([letter.id for letter in letters])
        return self._html("Outbox", views.outbox(self._outbox.location, stats, letters, bodies), "/outbox")

    async def configuration(self, request: web.Request) -> web.Response:
        config = self._config
        settings = [
            ("delivery", config.delivery),
            ("Kameleoon endpoint", config.base_url),
            ("outbox", self._outbox.location if self._outbox is not None else "none"),
            ("samples", f"{config.samples}, kept {config.sample_retention_s:,.0f} s"),
        ]
        body = views.configuration(settings, self._versions(), list(self._workspace().sources), config.sitecode or "none")
        return self._html("Configuration in force", body, "/config")

    # -- signing in ------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        return self._html("Sign in", views.login(failed=False))

    async def log_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if self.access.open or (isinstance(token, str) and self.access.is_token(token)):
            response = web.HTTPSeeOther("/")
            self.access.log_in(response)
            raise response
        await asyncio.sleep(FAILED_SIGN_IN_DELAY_S)  # guessing tokens goes at a second a try per connection
        return self._html("Sign in", views.login(failed=True), status=401)

    async def log_out(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        self.access.log_out(response)
        raise response

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(text=CSS, content_type="text/css")


async def serve_page(page: OperatorPage, config: Config) -> tuple[web.AppRunner, int]:
    """The page on KAMELEOON_ADMIN_LISTEN (over TLS with the service's certificate when it has one); the runner
    and the port bound. Refuses a non-loopback address without admin tokens."""
    assert config.admin_listen is not None
    host, port = config.admin_listen
    if page.access.open and not is_loopback(host):
        raise ConfigError(f"KAMELEOON_ADMIN_LISTEN={host}:{port} is not a loopback address: set KAMELEOON_ADMIN_TOKENS")
    context = None
    if config.tls_cert and config.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls_cert, config.tls_key)
    runner = web.AppRunner(page.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port} (KAMELEOON_ADMIN_LISTEN): {exc.strerror}") from None
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

"""Who may read the operator's page, and the headers every answer carries.

With KAMELEOON_ADMIN_TOKENS: ``Authorization: Bearer <token>``, or the session cookie the login form sets
after a token was typed (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS; signed with a key made at
start-up, so a restart logs everyone out; SESSION_S long). Without tokens, the page listens on loopback only
(start-up refuses anything else) and anyone who can reach it may read it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from aiohttp import web

COOKIE = "kd_session"
SESSION_S = 12 * 3600
HEADERS = {
    # No script at all; styles and images from the page's own origin only; forms post to it only.
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Access:
    def __init__(self, tokens: tuple[str, ...], secure: bool, clock=time.time):
        self._tokens = tuple(token.encode() for token in tokens)
        self._key = os.urandom(32)
        self._secure = secure
        self._clock = clock

    @property
    def open(self) -> bool:
        """No tokens: anyone who reaches the (loopback) port may read."""
        return not self._tokens

    def is_token(self, offered: str) -> bool:
        return any(hmac.compare_digest(offered.encode(), token) for token in self._tokens)

    def _signature(self, expires: str) -> str:
        return hmac.new(self._key, expires.encode(), hashlib.sha256).hexdigest()

    def allowed(self, request: web.Request) -> bool:
        if self.open:
            return True
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and self.is_token(header[7:].strip()):
            return True
        expires, _, signature = request.cookies.get(COOKIE, "").partition(".")
        return expires.isdigit() and int(expires) > self._clock() and hmac.compare_digest(signature.encode(), self._signature(expires).encode())

    def log_in(self, response: web.StreamResponse) -> None:
        expires = str(int(self._clock() + SESSION_S))
        response.set_cookie(
            COOKIE, f"{expires}.{self._signature(expires)}", max_age=SESSION_S, path="/", httponly=True, samesite="Strict", secure=self._secure
        )

    def log_out(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")


@web.middleware
async def headers(request: web.Request, handler):
    """The security headers, on every answer (errors included)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    return response

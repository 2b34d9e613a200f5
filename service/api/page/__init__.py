"""The operator's page (KAMELEOON_ADMIN_LISTEN): the delivery overview, a reason's samples, the outbox and the
configuration in force, in a browser, read-only, served by ``aiohttp.web`` in the service's own loop.

- ``app``: the routes; each handler reads what the RPCs read (the recorder's store, the outbox, the
  workspace) and hands it to ``views``.
- ``views``: the HTML, server-rendered; everything from events and configuration escaped.
- ``access``: who may read it (an admin token as a bearer token, or the session cookie the login form
  sets; without tokens, loopback only) and the headers every answer carries (a strict CSP: no script).
- ``assets``: the stylesheet, the one file the pages load.
"""

from service.api.page.app import OperatorPage, serve_page

__all__ = ["OperatorPage", "serve_page"]

"""``kameleoon-destination outbox ...`` as an operator runs it, on an outbox file."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from service.outbox import create
from service.outbox.base import Dead
from tests.outbox.test_store_contract import event
from tests.test_cli import SCRIPT

pytestmark = pytest.mark.skipif(not os.path.exists(SCRIPT), reason="console script is installed by `make install`")


async def outbox(db, *args: str) -> tuple[int, str, str]:
    """``kameleoon-destination outbox *args`` on the file ``db`` (or the outbox URL ``db``)."""
    url = db if str(db).startswith("postgresql://") else f"sqlite:///{db}"
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        "outbox",
        *args,
        env={**os.environ, "KAMELEOON_OUTBOX": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_stats_dead_letters_retry_and_purge_from_the_command_line(outbox_url):
    db = outbox_url.removeprefix("sqlite:///")
    store = create(outbox_url)
    await store.open()
    now = time.time()
    await store.enqueue(
        [event(n, "identify" if n == 2 else "logEvent") for n in range(5)], now=now - 60, window_s=3600, idempotency_window_s=3600, max_pending=0
    )
    claimed = await store.claim(3, now=now, lease_s=30)
    await store.mark_dead([Dead(c.id, c.lease, 400 if c.action == "logEvent" else 503, f"no {c.message_id}") for c in claimed], now=now)
    await store.close()

    code, out, err = await outbox(db, "stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert {k: stats[k] for k in ("pending", "in_flight", "dead")} == {"pending": 2, "in_flight": 0, "dead": 3}
    assert stats["oldest_pending_age_s"] >= 60 and stats["by_action"]["identify"]["dead"] == 1

    code, out, _ = await outbox(db, "dead-letters", "--json", "--action", "logEvent")
    letters = json.loads(out)["dead_letters"]
    assert [(d["message_id"], d["last_http_status"], d["attempts"]) for d in letters] == [("m-0", 400, 1), ("m-1", 400, 1)]
    assert letters[0]["dead_at"].startswith(time.strftime("%Y-", time.gmtime(now)))
    code, out, _ = await outbox(db, "dead-letters")  # human form
    assert code == 0 and "m-2" in out and "HTTP 503" in out

    code, _, err = await outbox(db, "retry")  # no filter and no --all: refused
    assert code == 1 and "--all" in err
    code, out, _ = await outbox(db, "retry", "--json", "--id", letters[0]["id"])
    assert json.loads(out) == {"retried": 1}
    code, out, _ = await outbox(db, "purge", "--json", "--http-status", "503")
    assert json.loads(out) == {"purged": 1}
    code, out, _ = await outbox(db, "stats", "--json")
    assert {k: json.loads(out)[k] for k in ("pending", "dead")} == {"pending": 3, "dead": 1}


async def test_a_missing_outbox_file_is_an_error_naming_it(tmp_path):
    code, _, err = await outbox(tmp_path / "nope.db", "stats")
    assert code == 2 and str(tmp_path / "nope.db") in err
    assert not (tmp_path / "nope.db").exists()

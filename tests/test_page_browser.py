"""The operator's page in a real headless browser (Debian's chromium through chromedriver, driven by Selenium):
sign in, read the funnel after events were delivered, discarded and dead-lettered through a real server and the
stand-in, open a reason and find its sample, and see that a <script> inside an event never runs. A screenshot of
each page is saved in the test's temporary directory (and, with KAMELEOON_SCREENSHOTS=DIR, the overview's in DIR:
`make screenshot` makes docs/operator-page.png that way)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.demo.sink import Reply
from tests.conftest import API_KEY, SITECODE, eventually

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOKEN = "adm-browser-41d2"
SCRIPT = "<script>document.title='owned';window.owned=1</script><img src=x onerror=\"window.owned=2\">"


def browser_or_skip(tmp_path: pathlib.Path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = "chromium and chromium-driver are not installed: apt-get install chromium chromium-driver"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Headless as root, and nothing of Chromium's own traffic (this machine's network is closed).
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def send(message_id: str, delivery: int = 0, **fields) -> pb.SendRequest:
    event = {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": message_id, **fields}
    return pb.SendRequest(event_json=json.dumps(event), delivery=delivery)


async def test_an_operator_signs_in_reads_the_funnel_and_a_reasons_samples(start_service, sink, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"title": "No test events", "enabled": True, "if": 'event = "Test"', "actions": [{"type": "DROP"}]}]))
    sink.choose = lambda received: Reply(400, '{"error":"bad"}') if received.json()["messageId"].startswith("m-dead") else Reply()
    app, stub = await start_service(
        api_key=API_KEY,
        sitecode=SITECODE,
        admin_tokens=(TOKEN,),
        admin_listen=("127.0.0.1", 0),
        outbox=f"sqlite:///{tmp_path}/outbox.db",
        filters=str(filters),
    )
    for n in range(6):
        await stub.Send(send(f"m-ok-{n}"), timeout=10)
    await stub.Send(send("m-script", event="Test", properties={"note": SCRIPT}), timeout=10)
    await stub.Send(pb.SendRequest(event_json=json.dumps({"type": "alias", "userId": "u-1", "previousId": "a", "messageId": "m-alias"})), timeout=10)
    await stub.Send(send("m-dead", pb.DELIVERY_MODE_QUEUED), timeout=10)
    overview = pb_grpc.DeliveryOverviewStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
    answers = []

    async def settled():
        answer = await overview.GetDeliveryOverview(pb.GetDeliveryOverviewRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
        answers[:] = [answer]
        return "DEAD_LETTER" in str(answer)

    await eventually(settled, what="m-dead counted as a dead letter")
    [expected] = answers[0].destinations

    url = f"http://127.0.0.1:{app.page_port}"
    driver = await asyncio.to_thread(browser_or_skip, tmp_path)

    def drive() -> dict:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def arrive(title: str) -> None:  # a click starts a navigation; wait until that page is the one shown
            WebDriverWait(driver, 20).until(lambda d: d.title.startswith(title))

        seen: dict = {}
        try:
            driver.get(url + "/")
            seen["login_url"] = driver.current_url
            driver.find_element(By.NAME, "token").send_keys(TOKEN)
            driver.find_element(By.CSS_SELECTOR, "form.login button").click()
            arrive("Delivery overview")
            seen["title"] = driver.title
            row = driver.find_element(By.CSS_SELECTOR, "table.funnel tbody tr")
            seen["funnel"] = {
                cell: row.find_element(By.CSS_SELECTOR, f"td.{cell}").text.split()[0] for cell in ("received", "discarded", "failed", "delivered")
            }
            driver.save_screenshot(str(tmp_path / "overview.png"))
            driver.find_element(By.LINK_TEXT, "FILTERED_BY_RULES").click()
            arrive("FILTERED_BY_RULES")
            seen["reason_title"] = driver.title
            seen["sample"] = driver.find_element(By.CSS_SELECTOR, "section.sample").text
            seen["owned"] = driver.execute_script("return window.owned === undefined ? null : window.owned")
            seen["images"] = len(driver.find_elements(By.CSS_SELECTOR, "main img"))
            driver.save_screenshot(str(tmp_path / "reason.png"))
            driver.find_element(By.LINK_TEXT, "Outbox").click()
            arrive("Outbox")
            seen["outbox"] = driver.find_element(By.TAG_NAME, "main").text
            driver.save_screenshot(str(tmp_path / "outbox.png"))
            driver.find_element(By.LINK_TEXT, "Configuration").click()
            arrive("Configuration")
            seen["config"] = driver.find_element(By.TAG_NAME, "main").text
            driver.save_screenshot(str(tmp_path / "config.png"))
            driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
            arrive("Sign in")
            seen["after_logout"] = driver.current_url
            driver.get(url + "/config")
            seen["after_logout_config"] = driver.current_url
        finally:
            driver.quit()
        return seen

    seen = await asyncio.to_thread(drive)
    assert seen["login_url"] == url + "/login"
    assert seen["title"] == "Delivery overview · kameleoon-destination"
    assert (
        seen["funnel"]
        == {
            "received": str(expected.received),
            "discarded": str(sum(r.count for r in expected.discarded)),
            "failed": str(sum(r.count for r in expected.failed)),
            "delivered": str(expected.delivered),
        }
        == {"received": "9", "discarded": "2", "failed": "1", "delivered": "6"}
    )
    assert seen["reason_title"] == "FILTERED_BY_RULES · kameleoon-destination"
    assert "m-script" in seen["sample"] and "<script>document.title='owned'" in seen["sample"]  # shown as text
    assert seen["owned"] is None and seen["images"] == 0  # neither the script nor the image's handler ran
    assert "m-dead" in seen["outbox"] and "HTTP 400" in seen["outbox"]
    assert "Track Calls" in seen["config"] and API_KEY not in seen["config"] and TOKEN not in seen["config"]
    assert seen["after_logout"] == url + "/login" and seen["after_logout_config"] == url + "/login"
    for name in ("overview", "reason", "outbox", "config"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    if os.environ.get("KAMELEOON_SCREENSHOTS"):
        shutil.copy(tmp_path / "overview.png", pathlib.Path(os.environ["KAMELEOON_SCREENSHOTS"]) / "operator-page.png")

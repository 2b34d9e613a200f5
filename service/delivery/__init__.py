"""Delivery: the only stage that speaks HTTP to Kameleoon.

    client.py        KameleoonClient: one aiohttp session, retries with backoff, errors by HTTP status
    credentials.py   which apiKey and sitecode a call uses, and the headers they make
    idempotency.py   a messageId delivered is not sent again within a window (the key, in-memory stores)
    sync.py          SyncDelivery: one body posted during the call, once per messageId, in-flight limit

Interface: ``SyncDelivery.deliver(key, body, credentials, deadline, action) -> Delivered``, and
``KameleoonClient.post`` for the outbox's deliverer. The last stage: Kameleoon comes next.
"""

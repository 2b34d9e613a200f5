"""What the outbox stores instead of an apiKey, and the words an operator reads when it cannot be had
back: a dead letter's reason, a refused call's message, start-up's complaint about KAMELEOON_OUTBOX_KEY."""

from __future__ import annotations

import base64

import pytest

from service.config.values import outbox_key as parse_key
from service.delivery.credentials import Credentials
from service.errors import MissingSetting
from service.outbox.sealing import Sealer, Unsealable
from tests.conftest import API_KEY, SITECODE

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CREDENTIALS = Credentials(API_KEY, SITECODE)


def unsealable(sealer: Sealer, reference: str) -> str:
    with pytest.raises(Unsealable) as raised:
        sealer.credentials(reference, SITECODE)
    return str(raised.value)


def test_an_own_api_key_comes_back_only_under_the_key_it_was_sealed_with():
    reference = Sealer(KEY, None).reference(CREDENTIALS)
    assert reference.startswith("aesgcm1:") and API_KEY not in reference
    assert Sealer(KEY, None).credentials(reference, SITECODE) == CREDENTIALS
    assert unsealable(Sealer(OTHER_KEY, None), reference) == (
        "the event's apiKey cannot be decrypted: KAMELEOON_OUTBOX_KEY is not the key it was stored with"
    )
    assert unsealable(Sealer(None, None), reference) == "the event's apiKey is encrypted and KAMELEOON_OUTBOX_KEY is not set"


def test_the_servers_api_key_is_stored_by_name_and_needed_at_delivery():
    assert Sealer(KEY, API_KEY).reference(CREDENTIALS) == "server"
    assert Sealer(None, API_KEY).credentials("server", SITECODE) == CREDENTIALS
    assert unsealable(Sealer(KEY, None), "server") == "the event uses the server's apiKey and KAMELEOON_API_KEY is not set"
    assert unsealable(Sealer(KEY, API_KEY), "rot13:nccxrl") == "unknown credentials reference"


def test_an_own_api_key_without_an_outbox_key_is_refused_naming_both_settings():
    with pytest.raises(MissingSetting) as raised:
        Sealer(None, None).reference(CREDENTIALS)
    assert str(raised.value) == (
        "queued delivery of a request carrying its own apiKey needs KAMELEOON_OUTBOX_KEY on the server "
        "(base64 of 32 bytes) to store the apiKey encrypted; or use the server's KAMELEOON_API_KEY"
    )


def test_the_outbox_key_is_strict_base64_of_32_bytes():
    text = base64.b64encode(KEY).decode()
    assert parse_key(f" {text}\n") == KEY
    for bad, message in (
        (text[:10] + "!" + text[10:], "must be base64 of 32 random bytes (openssl rand -base64 32)"),  # lenient base64 would skip the "!"
        (base64.b64encode(bytes(31)).decode(), "must be base64 of 32 bytes, got 31 bytes"),
        (base64.b64encode(bytes(33)).decode(), "must be base64 of 32 bytes, got 33 bytes"),
    ):
        with pytest.raises(ValueError) as raised:
            parse_key(bad)
        assert str(raised.value) == message

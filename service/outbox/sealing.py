"""Credentials references: what the outbox stores instead of an apiKey.

An event that uses the server's own apiKey (KAMELEOON_API_KEY) stores the
reference ``"server"``: the key in force when it is delivered is used. An event
carrying its own apiKey stores it sealed with AES-GCM (``cryptography``) under
KAMELEOON_OUTBOX_KEY (base64 of 32 bytes): ``aesgcm1:<base64url(nonce | ciphertext)>``.
The sitecode is not secret and is stored as is.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.delivery.credentials import Credentials
from service.errors import MissingSetting

SERVER = "server"
PREFIX = "aesgcm1:"
INSTANCE = "instance:"  # + "<source>/<instance>": the apiKey the workspace gives that instance when delivered
NONCE_BYTES = 12
AAD = b"kameleoon-destination outbox apiKey"


class Unsealable(Exception):
    """A stored reference cannot give an apiKey back (no key, another key, no server apiKey)."""


class Sealer:
    """``instances(source, name)``: the credentials of a workspace's instance now (None: no longer there)."""

    def __init__(self, key: bytes | None, server_api_key: str | None, instances: Callable[[str, str], Credentials | None] | None = None):
        self._aead = AESGCM(key) if key else None
        self._server_api_key = server_api_key
        self._instances = instances or (lambda source, name: None)

    @staticmethod
    def instance_reference(source: str, name: str) -> str:
        """What to store for an event of a workspace's instance: its name, never its apiKey."""
        return f"{INSTANCE}{source}/{name}"

    def reference(self, credentials: Credentials) -> str:
        """What to store for ``credentials``; MissingSetting when a request's own apiKey cannot be sealed."""
        if self._server_api_key and credentials.api_key == self._server_api_key:
            return SERVER
        if self._aead is None:
            raise MissingSetting(
                "queued delivery of a request carrying its own apiKey needs KAMELEOON_OUTBOX_KEY on the server "
                "(base64 of 32 bytes) to store the apiKey encrypted; or use the server's KAMELEOON_API_KEY"
            )
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, credentials.api_key.encode(), AAD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def credentials(self, reference: str, sitecode: str) -> Credentials:
        """The credentials a stored event is delivered with; Unsealable when they cannot be had."""
        if reference.startswith(INSTANCE):
            source, _, name = reference[len(INSTANCE) :].partition("/")
            found = self._instances(source, name)
            if found is None:
                raise Unsealable(f"the destination instance {name!r} of source {source!r} is no longer in the workspace (KAMELEOON_WORKSPACE)")
            return found
        if reference == SERVER:
            if not self._server_api_key:
                raise Unsealable("the event uses the server's apiKey and KAMELEOON_API_KEY is not set")
            return Credentials(self._server_api_key, sitecode)
        if not reference.startswith(PREFIX):
            raise Unsealable("unknown credentials reference")
        if self._aead is None:
            raise Unsealable("the event's apiKey is encrypted and KAMELEOON_OUTBOX_KEY is not set")
        try:
            raw = base64.urlsafe_b64decode(reference[len(PREFIX) :])
            api_key = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], AAD).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise Unsealable("the event's apiKey cannot be decrypted: KAMELEOON_OUTBOX_KEY is not the key it was stored with") from None
        return Credentials(api_key, sitecode)

"""Sealed content: a memory's text encrypted under its own key (crypto-shredding).

The log is append-only and hash-chained, so text in it can never be removed. A
memory's content therefore enters it sealed: the writer encrypts the text with
the memory's key (issued by the service, kept only in its keystore, never in
NATS) and puts this string in the Automerge change::

    sealed:1:<key id>:<base64url(nonce || ciphertext)>

XChaCha20-Poly1305 with the memory id as associated data, so sealed text cannot
be moved to another memory. Destroying the key (``swarm forget --erase``) makes
every copy of the text in the log, the snapshots and the replays unreadable at
once. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import os
import re
import secrets

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from swarm.errors import Rejected

__all__ = [
    "PREFIX",
    "SealError",
    "is_sealed",
    "key_id_of",
    "new_key",
    "new_key_id",
    "seal",
    "unseal",
]

PREFIX = "sealed:1:"
KEY_BYTES = 32
_NONCE_BYTES = 24
_SEALED = re.compile(r"^sealed:1:([A-Za-z0-9_-]{16,64}):([A-Za-z0-9_-]+)$")


class SealError(Rejected):
    """Sealed content that cannot be opened: unknown or erased key, or altered bytes."""

    check = "sealed"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_key_id() -> str:
    """A random key id (it names nothing: no time, no memory, no subject)."""
    return secrets.token_urlsafe(16)


def is_sealed(content: str) -> bool:
    return content.startswith(PREFIX)


def key_id_of(content: str) -> str | None:
    """The key id of sealed content; None for plain text. SealError if malformed."""
    if not content.startswith(PREFIX):
        return None
    found = _SEALED.match(content)
    if found is None:
        raise SealError("sealed content is malformed (expected sealed:1:<key id>:<data>)")
    return found.group(1)


def seal(text: str, *, key_id: str, key: bytes, memory_id: str) -> str:
    """``text`` sealed under ``key`` for memory ``memory_id``."""
    nonce = os.urandom(_NONCE_BYTES)
    box = crypto_aead_xchacha20poly1305_ietf_encrypt(text.encode(), memory_id.encode(), nonce, key)
    data = base64.urlsafe_b64encode(nonce + box).rstrip(b"=").decode()
    return f"{PREFIX}{key_id}:{data}"


def unseal(content: str, *, key: bytes, memory_id: str) -> str:
    """The text of sealed ``content``. SealError if it does not open with ``key``."""
    found = _SEALED.match(content)
    if found is None:
        raise SealError("sealed content is malformed (expected sealed:1:<key id>:<data>)")
    data = found.group(2)
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        text = crypto_aead_xchacha20poly1305_ietf_decrypt(
            raw[_NONCE_BYTES:], memory_id.encode(), raw[:_NONCE_BYTES], key
        )
        return text.decode()
    except (ValueError, CryptoError, UnicodeDecodeError):
        raise SealError(
            f"sealed content of memory {memory_id} does not open with key {found.group(1)} "
            "(altered, or sealed for another memory)"
        ) from None

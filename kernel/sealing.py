"""Seal personal values under a per-subject data key (crypto-shredding), and wrap those keys.

A sealed value is `s1:<nonce>:<ciphertext>` (url-safe base64, no padding): AES-256-GCM under
the subject's 32-byte data key, with the subject id and the field name as associated data, so
a ciphertext moved to another subject or another field does not open. Deleting the data key
makes every value sealed under it unreadable at once, wherever copies of it live.

`p0:<text>` is the legacy form: a value written before sealing existed, upcast from an old
event. It opens as is, with or without a key; such values are only as private as the log.

Data keys are stored wrapped under a key-encryption key derived from a secret in settings, so
a dump of the database alone does not open the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kernel.exceptions import PropstreamError

SEALED = "s1:"
LEGACY = "p0:"
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_WRAPPED = b"w1"


class SealError(PropstreamError):
    """A sealed value or wrapped key does not open: wrong key, subject or field, or tampered."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(subject: str, field: str) -> bytes:
    return f"{subject}\x00{field}".encode()


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def legacy(text: str) -> str:
    """The legacy (plaintext) form of a value written before sealing existed."""
    return LEGACY + text


def seal(data_key: bytes, *, subject: str, field: str, text: str) -> str:
    """Return `text` sealed under `data_key` for this subject and field."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(nonce, text.encode(), _aad(subject, field))
    return f"{SEALED}{_b64(nonce)}:{_b64(sealed)}"


def open_sealed(data_key: bytes | None, *, subject: str, field: str, value: str) -> str | None:
    """Return the text of a sealed (or legacy) value; None when the key is gone (forgotten).

    Raises SealError when a key is given and the value does not open under it.
    """
    if value.startswith(LEGACY):
        return value[len(LEGACY):]
    if not value.startswith(SEALED):
        raise SealError(f"not a sealed value (field {field})")
    if data_key is None:
        return None
    try:
        nonce, sealed = (_unb64(part) for part in value[len(SEALED):].split(":", 1))
        return AESGCM(data_key).decrypt(nonce, sealed, _aad(subject, field)).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise SealError(f"sealed {field} of {subject} does not open") from exc


class KeyWrapper:
    """Wrap and unwrap data keys under a key-encryption key derived from a secret."""

    def __init__(self, secret: str) -> None:
        kek = hashlib.sha256(b"propstream data-key wrap\x00" + secret.encode()).digest()
        self._aead = AESGCM(kek)

    def wrap(self, data_key: bytes, *, subject: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _WRAPPED + nonce + self._aead.encrypt(nonce, data_key, _aad(subject, "data-key"))

    def unwrap(self, wrapped: bytes, *, subject: str) -> bytes:
        if wrapped[:2] != _WRAPPED:
            raise SealError(f"the data key of {subject} is not a wrapped key")
        nonce, sealed = wrapped[2:2 + _NONCE_BYTES], wrapped[2 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(subject, "data-key"))
        except InvalidTag as exc:
            raise SealError(f"the data key of {subject} does not unwrap "
                            "(wrong PROPSTREAM_DATA_KEY_SECRET?)") from exc

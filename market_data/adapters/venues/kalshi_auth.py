"""Kalshi's signed handshake: RSA-PSS (SHA-256, MGF1-SHA-256, salt = digest length) over
timestamp-in-ms + method + path (no query string), base64, in three KALSHI-ACCESS-* headers."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from market_data.exceptions import MarketDataError


class KalshiSigner:
    def __init__(self, key_id: str, private_key_pem: bytes, *, url: str,
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise MarketDataError("the Kalshi private key must be an RSA key (PEM)")
        self.key_id = key_id
        self.key = key
        self.path = urlsplit(url).path
        self.clock_ms = clock_ms

    def message(self, timestamp_ms: str) -> bytes:
        return f"{timestamp_ms}GET{self.path}".encode()

    def headers(self) -> dict[str, str]:
        timestamp = str(self.clock_ms())
        signature = self.key.sign(
            self.message(timestamp),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
        return {"KALSHI-ACCESS-KEY": self.key_id,
                "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
                "KALSHI-ACCESS-TIMESTAMP": timestamp}

"""The Kalshi handshake headers verify against the public key, over the path alone."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from market_data.adapters.venues.kalshi_auth import KalshiSigner
from market_data.exceptions import MarketDataError

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def test_headers_carry_a_pss_signature_of_timestamp_get_and_path() -> None:
    signer = KalshiSigner("key-1", PEM, url="wss://host/trade-api/ws/v2?x=1",
                          clock_ms=lambda: 1703123456789)
    headers = signer.headers()
    assert headers["KALSHI-ACCESS-KEY"] == "key-1"
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1703123456789"
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"])
    KEY.public_key().verify(signature, b"1703123456789GET/trade-api/ws/v2", PSS,
                            hashes.SHA256())
    with pytest.raises(InvalidSignature):
        KEY.public_key().verify(signature, b"1703123456789GET/trade-api/ws/v2?x=1", PSS,
                                hashes.SHA256())


def test_a_key_that_is_not_rsa_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(MarketDataError, match="RSA"):
        KalshiSigner("k", other, url="wss://host/trade-api/ws/v2")

"""Access tokens (JWT), rotating refresh tokens with reuse detection, and API keys.

Pure: the clock, ids and random secrets are passed in (`new_secret`, `new_api_key_id` are the
only helpers that draw randomness). A refused token is an outcome value with a reason, not an
exception. Only SHA-256 hashes of refresh tokens and API keys are meant to be stored: both
carry 256 random bits, so a fast hash is enough (no guessing attack to slow down).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import jwt
from pydantic import SecretStr

from schemas.identity import Role

ACCESS_TOKEN_TTL = timedelta(minutes=15)
REFRESH_FAMILY_TTL = timedelta(days=30)
ALGORITHM = "HS256"
_CLAIMS = ("sub", "role", "exp", "iat", "jti")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")


def new_secret() -> str:
    """Return 256 random bits, URL-safe: the secret part of a refresh token or an API key."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Return the SHA-256 (hex) of a token: what is stored instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_secret(secret: str) -> None:
    if not _SECRET_RE.fullmatch(secret):
        raise ValueError("a token secret must be 32-128 URL-safe characters (use new_secret())")


# Access tokens --------------------------------------------------------------------------------

AccessTokenProblem = Literal["malformed", "algorithm-not-allowed", "bad-signature",
                             "claims-invalid", "expired", "issued-in-future"]


@dataclass(frozen=True, kw_only=True)
class AccessClaims:
    sub: str
    role: Role
    iat: datetime
    exp: datetime
    jti: str


@dataclass(frozen=True)
class AccessTokenRejected:
    reason: AccessTokenProblem


def signing_key(secret: SecretStr, purpose: str = "access-token/v1") -> bytes:
    """Derive a 32-byte key for one purpose from `Settings.secret_key`.

    Derived rather than used as is: the key is full length whatever the secret's length, and
    another use of the secret never shares a key with access tokens.
    """
    return hmac.new(secret.get_secret_value().encode(), f"propstream/{purpose}".encode(),
                    hashlib.sha256).digest()


class AccessTokens:
    """Issue and verify short-lived HS256 access tokens; any other `alg` is refused."""

    def __init__(self, *, secret: SecretStr, ttl: timedelta = ACCESS_TOKEN_TTL,
                 algorithm: str = ALGORITHM, leeway: timedelta = timedelta(0)) -> None:
        if not algorithm.startswith("HS"):
            raise ValueError("only HMAC algorithms (HS256/384/512) are supported")
        self._key = signing_key(secret)
        self.ttl = ttl
        self.algorithm = algorithm
        self.leeway = leeway

    def issue(self, *, subject: str, role: Role, now: datetime, jti: uuid.UUID) -> str:
        """Return a signed token for `subject` valid from `now` for the TTL."""
        iat = int(now.timestamp())
        claims = {"sub": subject, "role": role, "iat": iat,
                  "exp": iat + int(self.ttl.total_seconds()), "jti": str(jti)}
        return jwt.encode(claims, self._key, algorithm=self.algorithm)

    def verify(self, token: str, *, now: datetime) -> AccessClaims | AccessTokenRejected:
        """Return the claims of a valid token, or why it is refused."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return AccessTokenRejected("malformed")
        # Checked before the signature: `none` and algorithm confusion never reach a verifier.
        if header.get("alg") != self.algorithm:
            return AccessTokenRejected("algorithm-not-allowed")
        try:
            # Time checks are ours, against the injected clock, not PyJWT's time.time().
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=[self.algorithm],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": list(_CLAIMS)})
        except jwt.InvalidSignatureError:
            return AccessTokenRejected("bad-signature")
        except jwt.MissingRequiredClaimError:
            return AccessTokenRejected("claims-invalid")
        except jwt.InvalidTokenError:
            return AccessTokenRejected("malformed")
        parsed = _parse_claims(claims)
        if parsed is None:
            return AccessTokenRejected("claims-invalid")
        if now >= parsed.exp + self.leeway:
            return AccessTokenRejected("expired")
        if parsed.iat > now + self.leeway:
            return AccessTokenRejected("issued-in-future")
        return parsed


def _parse_claims(claims: dict[str, Any]) -> AccessClaims | None:
    sub, role, exp, iat, jti = (claims[name] for name in _CLAIMS)
    if (not isinstance(sub, str) or not sub or role not in get_args(Role)
            or type(iat) is not int or type(exp) is not int or not isinstance(jti, str)):
        return None
    try:
        return AccessClaims(sub=sub, role=role, jti=jti,
                            iat=datetime.fromtimestamp(iat, UTC),
                            exp=datetime.fromtimestamp(exp, UTC))
    except (OverflowError, OSError, ValueError):
        return None


# Refresh tokens -------------------------------------------------------------------------------

_REFRESH_PREFIX = "rt1"


@dataclass(frozen=True, kw_only=True)
class RefreshFamily:
    """One login's chain of refresh tokens; only the newest token's hash is kept."""

    family_id: uuid.UUID
    user_id: str
    current_hash: str
    generation: int
    revoked: bool
    expires_at: datetime


@dataclass(frozen=True)
class Rotated:
    token: str
    family: RefreshFamily


@dataclass(frozen=True)
class TokenReused:
    """An older token of the family came back: it leaked, so the whole family is revoked."""

    family: RefreshFamily


RefreshProblem = Literal["malformed", "wrong-family", "revoked", "expired", "unknown-token"]


@dataclass(frozen=True)
class RefreshRejected:
    reason: RefreshProblem


def _refresh_token(family_id: uuid.UUID, generation: int, secret: str) -> str:
    _check_secret(secret)
    return f"{_REFRESH_PREFIX}.{family_id.hex}.{generation}.{secret}"


def parse_refresh_token(token: str) -> tuple[uuid.UUID, int] | None:
    """Return the family id (to load the family by) and generation a token claims, or None."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _REFRESH_PREFIX or not parts[2].isdigit():
        return None
    try:
        return uuid.UUID(hex=parts[1]), int(parts[2])
    except ValueError:
        return None


def start_family(*, family_id: uuid.UUID, user_id: str, secret: str, now: datetime,
                 ttl: timedelta = REFRESH_FAMILY_TTL) -> tuple[str, RefreshFamily]:
    """Return the first refresh token of a login and the family to store."""
    token = _refresh_token(family_id, 1, secret)
    return token, RefreshFamily(family_id=family_id, user_id=user_id,
                                current_hash=token_hash(token), generation=1, revoked=False,
                                expires_at=now + ttl)


def rotate(family: RefreshFamily, presented: str, *, new_secret: str,
           now: datetime) -> Rotated | TokenReused | RefreshRejected:
    """Exchange the newest refresh token for the next; an older one revokes the family.

    The family's lifetime is absolute: rotating does not extend `expires_at`.
    """
    claimed = parse_refresh_token(presented)
    if claimed is None:
        return RefreshRejected("malformed")
    family_id, generation = claimed
    if family_id != family.family_id:
        return RefreshRejected("wrong-family")
    if family.revoked:
        return RefreshRejected("revoked")
    if now >= family.expires_at:
        return RefreshRejected("expired")
    if hmac.compare_digest(token_hash(presented), family.current_hash):
        token = _refresh_token(family.family_id, family.generation + 1, new_secret)
        return Rotated(token, replace(family, current_hash=token_hash(token),
                                      generation=family.generation + 1))
    if generation < family.generation:
        return TokenReused(replace(family, revoked=True))
    # Not the newest and not an older generation: a guess, not a leak. Revoking here would let
    # anyone who learnt a family id log its owner out, so it is only refused.
    return RefreshRejected("unknown-token")


def revoke(family: RefreshFamily) -> RefreshFamily:
    """Return the family revoked (logout)."""
    return replace(family, revoked=True)


# API keys -------------------------------------------------------------------------------------

_API_KEY_PREFIX = "psk"
_KEY_ID_RE = re.compile(r"[0-9a-f]{12}")
_SCOPE_RE = re.compile(r"[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)?")


def new_api_key_id() -> str:
    """Return a fresh public key id: shown in listings, used to look the key up."""
    return secrets.token_hex(6)


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """What is stored of an API key: never the secret, only the hash of the whole key."""

    key_id: str
    owner: str
    key_hash: str
    scopes: frozenset[str]
    revoked: bool = False

    @property
    def display_prefix(self) -> str:
        return f"{_API_KEY_PREFIX}_{self.key_id}_"


ApiKeyProblem = Literal["malformed", "wrong-key", "bad-secret", "revoked", "scope-missing"]


@dataclass(frozen=True)
class ApiKeyAccepted:
    key_id: str
    owner: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class ApiKeyRejected:
    reason: ApiKeyProblem


def generate_api_key(*, key_id: str, secret: str, owner: str,
                     scopes: frozenset[str]) -> tuple[str, ApiKey]:
    """Return the key to show once (`psk_<key id>_<secret>`) and the record to store."""
    _check_secret(secret)
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError("an API key id is 12 lower-case hex characters (use new_api_key_id())")
    bad = sorted(s for s in scopes if not _SCOPE_RE.fullmatch(s))
    if not scopes or bad:
        raise ValueError(f"an API key needs scopes like 'reports:read'; refused: {bad}")
    key = f"{_API_KEY_PREFIX}_{key_id}_{secret}"
    return key, ApiKey(key_id=key_id, owner=owner, key_hash=token_hash(key), scopes=scopes)


def parse_api_key_id(presented: str) -> str | None:
    """Return the key id a presented key claims (to load its record by), or None."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != _API_KEY_PREFIX or not _KEY_ID_RE.fullmatch(parts[1]):
        return None
    return parts[1]


def verify_api_key(record: ApiKey, presented: str, *,
                   scope: str | None = None) -> ApiKeyAccepted | ApiKeyRejected:
    """Return the key's identity when it is this record's key (and grants `scope`, if given)."""
    key_id = parse_api_key_id(presented)
    if key_id is None:
        return ApiKeyRejected("malformed")
    if key_id != record.key_id:
        return ApiKeyRejected("wrong-key")
    if not hmac.compare_digest(token_hash(presented), record.key_hash):
        return ApiKeyRejected("bad-secret")
    if record.revoked:
        return ApiKeyRejected("revoked")
    if scope is not None and scope not in record.scopes:
        return ApiKeyRejected("scope-missing")
    return ApiKeyAccepted(key_id=record.key_id, owner=record.owner, scopes=record.scopes)

"""Issue 9 point 6 on the real platform: cheap ways to deny service are closed.

Each client binds its own loopback address (127.0.0.0/8), so per-IP buckets of one test
never meet another's.
"""

from __future__ import annotations

import secrets

import httpx

from kernel.tokens import new_secret
from tests.security.conftest import Platform, Who

PROBLEM_JSON = "application/problem+json"


def _client(platform: Platform, ip: str, *, base: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=base or platform.core, timeout=30,
                        transport=httpx.HTTPTransport(local_address=ip))


def test_one_address_guessing_a_password_cannot_lock_the_owner_out(platform: Platform) -> None:
    owner = platform.user("trader", name="lockout")
    wrong = {"email": owner.email, "password": "not the Passw0rd at all"}
    with _client(platform, "127.0.0.50") as attacker:
        statuses = []
        for _ in range(30):
            statuses.append(attacker.post("/auth/login", json=wrong).status_code)
            if statuses[-1] == 429:
                break
        assert statuses[-1] == 429, statuses
        assert set(statuses[:-1]) == {401}
        # It stays locked out itself, even with the right password...
        still = attacker.post("/auth/login", json={**wrong, "password": owner.password})
        assert still.status_code == 429
        assert still.headers["content-type"].startswith(PROBLEM_JSON)
    # ...while the owner, from another address, gets in.
    with _client(platform, "127.0.0.51") as own:
        r = own.post("/auth/login", json={"email": owner.email, "password": owner.password})
    assert r.status_code == 200, r.text


def test_unknown_api_keys_are_throttled_per_address_and_valid_keys_elsewhere_still_work(
        platform: Platform, people: dict[str, Who]) -> None:
    with _client(platform, "127.0.0.52") as c:
        statuses = [c.get("/me", headers={"X-API-Key": f"psk_{secrets.token_hex(6)}_"
                                                        f"{new_secret()}"}).status_code
                    for _ in range(40)]
        assert set(statuses) == {401, 429}, statuses
        assert statuses.index(429) <= platform.settings.api_key_miss_burst
        assert set(statuses[statuses.index(429):]) == {429}
        # The address's lookups are spent: any key from it waits for the refill (no key can
        # be told from an unknown one without the query this saves).
        assert c.get("/me", headers=people["analyst-key[reports:read]"].headers
                     ).status_code == 429
    with _client(platform, "127.0.0.53") as other:
        valid = other.get("/me", headers=people["analyst-key[reports:read]"].headers)
        assert valid.status_code == 200, valid.text
        r = other.get("/me", headers={"X-API-Key": f"psk_{secrets.token_hex(6)}_{new_secret()}"})
        assert r.status_code == 401


def test_udf_quotes_are_bounded_per_call_and_rate_limited(platform: Platform) -> None:
    many = ",".join(f"SYM{i}-USD" for i in range(21))
    with _client(platform, "127.0.0.54", base=platform.market) as c:
        r = c.get("/udf/quotes", params={"symbols": many})
        assert r.status_code == 200 and r.json()["s"] == "error", r.text
        assert "at most 20" in r.json()["errmsg"]
        statuses = [c.get("/udf/quotes", params={"symbols": "BTC-USD"}).status_code
                    for _ in range(40)]
    assert 429 in statuses, statuses
    assert set(statuses) == {200, 429}
    limited = statuses.index(429)
    assert limited <= platform.settings.udf_quotes_burst


def test_a_loop_over_a_list_route_is_refused_after_the_read_burst(platform: Platform) -> None:
    """Every core list is a bounded page, and a caller looping over one meets the read bucket
    (PROPSTREAM_READ_BURST, 100 by default) instead of the database."""
    reader = platform.user("trader", name="lister")
    statuses: list[int] = []
    with _client(platform, "127.0.0.70") as client:
        client.headers.update(reader.headers)
        for _ in range(160):
            answer = client.get("/accounts", params={"limit": 200})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                break
        assert answer.status_code == 429, statuses
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        assert int(answer.headers["retry-after"]) >= 1
    assert 90 <= statuses.index(429) <= 150, statuses.index(429)
    assert set(statuses[:-1]) == {200}
    # Another caller on another address reads on.
    with _client(platform, "127.0.0.71") as other:
        assert other.get("/instruments").status_code == 200

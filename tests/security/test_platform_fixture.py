"""The suite's platform is real: every role logs in, and a scoped key is a caller of its own."""

from __future__ import annotations

from tests.security.conftest import Platform, Who


def test_each_person_is_who_the_platform_says(platform: Platform, people: dict[str, Who]) -> None:
    for name in ("trader", "analyst", "admin", "admin-key[reports:read]"):
        who = people[name]
        with platform.client(who) as c:
            me = c.get("/me")
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == who.user_id
        assert me.json()["role"] == who.role
    with platform.client(people["anonymous"]) as c:
        assert c.get("/me").status_code == 401

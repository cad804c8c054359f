"""Connection limits: counted in and out per key, and the address a connection counts under
(a spoofed X-Forwarded-For from an untrusted peer changes nothing)."""

from __future__ import annotations

from ipaddress import ip_network

from ws_gateway.domain.ratelimit import Limits, client_address

INGRESS = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def test_a_key_holds_at_most_the_limit_and_a_leave_makes_room() -> None:
    limits = Limits(2)
    assert limits.enter("a") and limits.enter("a")
    assert not limits.enter("a")
    assert limits.enter("b")  # another key has its own room
    limits.leave("a")
    assert limits.enter("a")
    for _ in range(5):  # more leaves than enters never leave a negative count behind
        limits.leave("b")
    assert "b" not in limits.open


def test_a_limit_of_zero_admits_everyone() -> None:
    limits = Limits(0)
    assert all(limits.enter("a") for _ in range(10_000))


def test_an_untrusted_peer_is_counted_as_itself_whatever_it_claims() -> None:
    assert client_address("203.0.113.7", "1.2.3.4", INGRESS) == "203.0.113.7"
    assert client_address("203.0.113.7", None, INGRESS) == "203.0.113.7"
    assert client_address("203.0.113.7", "1.2.3.4", ()) == "203.0.113.7"


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_counts() -> None:
    # the client wrote "6.6.6.6" itself; the ingress appended the address it saw
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.9", INGRESS) == "198.51.100.9"
    assert client_address("10.1.2.3", "198.51.100.9, 10.9.9.9", INGRESS) == "198.51.100.9"
    assert client_address("fd00::1", "2001:db8::5", INGRESS) == "2001:db8::5"


def test_a_garbled_or_all_trusted_header_counts_the_proxy() -> None:
    assert client_address("10.1.2.3", "not-an-ip", INGRESS) == "10.1.2.3"
    assert client_address("10.1.2.3", "10.0.0.5, 10.0.0.6", INGRESS) == "10.1.2.3"
    assert client_address("10.1.2.3", ",,,", INGRESS) == "10.1.2.3"
    assert client_address("unknown", "1.2.3.4", INGRESS) == "unknown"

"""Control messages: what a client may send, and the error each mistake gets."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ws_gateway.domain.protocol import (
    Auth,
    Channel,
    Ping,
    Position,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    error_frame,
    parse_channel,
    parse_control,
)

PRIVATE = frozenset({"account"})
ACCOUNT = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2"


def parse(message: object) -> object:
    return parse_control(json.dumps(message), private_families=PRIVATE)


def test_subscribe_to_a_market_channel_with_a_position_to_resume_from() -> None:
    assert parse({"type": "subscribe", "channel": "market:BTC-USD", "id": "r1",
                  "since": {"epoch": 7, "seq": 2048}}) == Subscribe(
        Channel("market", "BTC-USD"), Position(7, 2048), "r1")


def test_resume_is_a_subscribe_from_a_position() -> None:
    assert parse({"type": "resume", "channel": f"account:{ACCOUNT.upper()}", "epoch": 1,
                  "seq": 0}) == Subscribe(Channel("account", ACCOUNT), Position(1, 0), None)


def test_unsubscribe_ping_and_auth() -> None:
    assert parse({"type": "unsubscribe", "channel": "bars:ETH-USD"}) == Unsubscribe(
        Channel("bars", "ETH-USD"), None)
    assert parse({"type": "ping", "id": "p"}) == Ping("p")
    assert parse({"type": "auth", "token": "abc"}) == Auth("abc", None)


def test_malformed_json_is_a_bad_json_error() -> None:
    error = parse_control(b"{not json", private_families=PRIVATE)
    assert isinstance(error, ProtocolError) and error.code == "bad-json"
    assert orjson.loads(error_frame(error))["type"] == "error"


def test_unknown_types_and_non_objects_are_named_errors() -> None:
    for message, code in (({"type": "hack"}, "unknown-type"), ([1, 2], "bad-message"),
                          ({"type": "subscribe"}, "bad-channel"),
                          ({"type": "subscribe", "channel": "market:btc usd"}, "bad-channel"),
                          ({"type": "subscribe", "channel": "account:not-a-uuid"},
                           "bad-channel"),
                          ({"type": "subscribe", "channel": f"orders:{ACCOUNT}"}, "bad-channel"),
                          ({"type": "subscribe", "channel": "market:X",
                            "since": {"epoch": -1, "seq": 0}}, "bad-message"),
                          ({"type": "resume", "channel": "market:X", "epoch": 1,
                            "seq": 2**64}, "bad-message"),
                          ({"type": "auth"}, "bad-message")):
        error = parse(message)
        assert isinstance(error, ProtocolError), message
        assert error.code == code, message


def test_a_request_id_is_echoed_only_when_short_text() -> None:
    assert parse({"type": "ping", "id": "x" * 65}) == Ping(None)
    assert parse({"type": "ping", "id": 5}) == Ping(None)


def test_channel_names() -> None:
    assert parse_channel("news:BTC-USD", private_families=PRIVATE) == Channel("news", "BTC-USD")
    assert parse_channel("market:", private_families=PRIVATE) is None
    assert parse_channel(f"rules:{ACCOUNT}", private_families=PRIVATE) is None
    assert parse_channel(f"rules:{ACCOUNT}", private_families=frozenset({"rules"})) == Channel(
        "rules", ACCOUNT)
    assert Channel("market", "X").public and not Channel("account", ACCOUNT).public


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
controls = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "resume", "ping", "auth", "x"])},
    optional={"channel": st.one_of(json_values, st.sampled_from(
                  ["market:BTC-USD", f"account:{ACCOUNT}", "market:", ":"])),
              "since": json_values, "epoch": json_values, "seq": json_values,
              "id": json_values, "token": json_values})


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 controls.map(json.dumps), json_values.map(json.dumps)))
def test_any_input_parses_to_a_control_or_an_error_never_a_crash(data: bytes | str) -> None:
    result = parse_control(data, private_families=PRIVATE)
    if isinstance(result, ProtocolError):
        frame = orjson.loads(error_frame(result))
        assert frame["type"] == "error" and frame["code"] and frame["message"]
    else:
        assert isinstance(result, Subscribe | Unsubscribe | Ping | Auth)

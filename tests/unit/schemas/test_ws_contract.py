"""The gateway's AsyncAPI document, and what the gateway's code sends checked against it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from schemas import ws
from schemas.export import CONTRACT_VERSION
from ws_gateway.domain.frames import TickEntry
from ws_gateway.domain.messages import event_message, tick_message, ticks_bundle, with_epoch
from ws_gateway.domain.protocol import ProtocolError, error_frame, reply

DOC = ws.asyncapi_document(CONTRACT_VERSION)
MODELS: dict[str, type[BaseModel]] = {m.__name__: m for m in
                                      (*ws.CLIENT_MESSAGES, *ws.SERVER_MESSAGES)}


def resolve(ref: str) -> Any:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_document_is_asyncapi_3_with_every_message_on_the_gateway_channel() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    channel = DOC["channels"]["gateway"]
    assert channel["address"] == "/ws"
    assert set(channel["messages"]) == {*MODELS, "TickFrame"}
    for op in DOC["operations"].values():
        for message in op["messages"]:
            assert resolve(message["$ref"]) is not None
    assert "little-endian" in DOC["components"]["messages"]["TickFrame"]["description"].lower()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves() -> None:
    for ref in _refs(DOC):
        assert resolve(ref) is not None, ref


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_example_validates_against_its_model(name: str) -> None:
    [example] = DOC["components"]["messages"][name]["examples"]
    MODELS[name].model_validate(example["payload"])


def test_what_the_gateway_sends_validates_against_the_contract() -> None:
    entry = TickEntry("market:BTC-USD", 1, 7, 2048, 1_795_000_000_000_000_000, 100.5, 2.0,
                      100.0, 101.0)
    ws.TickData.model_validate_json(with_epoch(tick_message(entry), 7))
    ws.Ticks.model_validate_json(ticks_bundle([entry], {"market:BTC-USD": 7}))
    ws.Event.model_validate_json(with_epoch(event_message(
        channel="account:6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2", seq=1024,
        event_type="trading.order-filled", at="2026-12-06T00:00:00Z",
        payload=orjson.dumps({"qty": "1"})), 9))
    ws.Error.model_validate_json(error_frame(ProtocolError("forbidden", "not yours", "r")))
    ws.Pong.model_validate_json(reply("pong", "p"))
    ws.Subscribed.model_validate_json(reply("subscribed", None, channel="market:X", epoch=0,
                                            instrument_id=3))
    ws.Welcome.model_validate_json(reply("welcome", None, session="abc", format="json",
                                         user=None, expires_at=None))

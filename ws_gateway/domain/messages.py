"""JSON data messages: built once per channel message, stored in the history as is.

A stored message has no epoch (the history's epoch is drawn by Redis when it starts);
`with_epoch` puts it in front when the message is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ws_gateway.domain.frames import TickEntry


def tick_message(entry: TickEntry) -> bytes:
    """A tick as a JSON object (history member and JSON delivery)."""
    return orjson.dumps({"type": "tick", "channel": entry.channel, "seq": entry.seq,
                         "id": entry.instrument_id, "ts": entry.ts_ns, "price": entry.price,
                         "size": entry.volume, "bid": entry.bid, "ask": entry.ask})


def tick_from_message(message: bytes, *, epoch: int) -> TickEntry | None:
    """A stored tick back as an entry (to replay it in a binary frame); None if not a tick."""
    try:
        m = orjson.loads(message)
        if m.get("type") != "tick":
            return None
        return TickEntry(channel=m["channel"], instrument_id=m["id"], epoch=epoch, seq=m["seq"],
                         ts_ns=m["ts"], price=m["price"], volume=m["size"], bid=m["bid"],
                         ask=m["ask"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def event_message(*, channel: str, seq: int, event_type: str, at: str, payload: bytes) -> bytes:
    """An event of a private channel or a market event (bar, news, regime); `payload` is
    the event's JSON payload, copied as is."""
    head = orjson.dumps({"type": "event", "channel": channel, "seq": seq, "event": event_type,
                         "at": at})
    return head[:-1] + b',"data":' + payload + b"}"


def with_epoch(message: bytes, epoch: int) -> bytes:
    """`message` (a JSON object) with the channel's epoch as its first field."""
    return b'{"epoch":' + str(epoch).encode() + b"," + message[1:]


def ticks_bundle(entries: Sequence[TickEntry], epochs: dict[str, int]) -> bytes:
    """One JSON frame carrying a delivery round's ticks, for a client that chose JSON."""
    parts = [with_epoch(tick_message(e), epochs.get(e.channel, e.epoch)) for e in entries]
    return b'{"type":"ticks","data":[' + b",".join(parts) + b"]}"

"""The binary tick frame (seed 001's layout, extended for resume), little-endian throughout.

    offset 0   u32  CRC32 (IEEE, as zlib.crc32) of every byte after this field
    offset 4   u16  entry count N
    offset 6   N entries of 38 bytes:
               u16  instrument id (announced in the `subscribed` message of its channel)
               u32  channel epoch
               u64  channel sequence
               i64  venue time, ns since the epoch
               f64  price
               f64  volume (the tick's size)

A frame bundles every tick of one delivery round for one client, across channels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<IH")
ENTRY = struct.Struct("<HIQqdd")
MAX_ENTRIES = 0xFFFF


@dataclass(frozen=True, slots=True)
class TickEntry:
    """One tick as a channel delivers it."""

    channel: str
    instrument_id: int
    epoch: int
    seq: int
    ts_ns: int
    price: float
    volume: float
    bid: float | None = None
    ask: float | None = None
    received_ns: int = 0


def encode_frame(entries: Sequence[TickEntry]) -> bytes:
    """One binary frame of up to 65,535 entries (the caller splits longer rounds)."""
    count = len(entries)
    if count > MAX_ENTRIES:
        raise ValueError(f"{count} entries do not fit one frame (at most {MAX_ENTRIES})")
    buf = bytearray(HEADER.size + ENTRY.size * count)
    pack = ENTRY.pack_into
    offset = HEADER.size
    for e in entries:
        pack(buf, offset, e.instrument_id, e.epoch, e.seq, e.ts_ns, e.price, e.volume)
        offset += ENTRY.size
    struct.pack_into("<H", buf, 4, count)
    struct.pack_into("<I", buf, 0, zlib.crc32(memoryview(buf)[4:]))
    return bytes(buf)


def encode_frames(entries: Sequence[TickEntry]) -> list[bytes]:
    """As many frames as `entries` need."""
    return [encode_frame(entries[i:i + MAX_ENTRIES])
            for i in range(0, len(entries), MAX_ENTRIES)] if entries else []


@dataclass(frozen=True, slots=True)
class DecodedEntry:
    instrument_id: int
    epoch: int
    seq: int
    ts_ns: int
    price: float
    volume: float


class BadFrame(ValueError):
    """A frame whose length or CRC does not hold."""


def decode_frame(frame: bytes) -> list[DecodedEntry]:
    """The entries of a frame; BadFrame when it is short, long or its CRC is wrong."""
    if len(frame) < HEADER.size:
        raise BadFrame("shorter than the header")
    crc, count = HEADER.unpack_from(frame, 0)
    if len(frame) != HEADER.size + count * ENTRY.size:
        raise BadFrame(f"{len(frame)} bytes for {count} entries")
    if zlib.crc32(memoryview(frame)[4:]) != crc:
        raise BadFrame("CRC mismatch")
    return [DecodedEntry(*ENTRY.unpack_from(frame, HEADER.size + i * ENTRY.size))
            for i in range(count)]

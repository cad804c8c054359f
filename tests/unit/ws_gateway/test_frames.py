"""The binary tick frame, checked by a decoder written here from the documented layout."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ws_gateway.domain.frames import BadFrame, TickEntry, decode_frame, encode_frame, encode_frames


def independent_decode(frame: bytes) -> list[tuple[int, int, int, int, float, float]]:
    """Little-endian: u32 CRC of the rest, u16 count, count x (u16 u32 u64 i64 f64 f64)."""
    (crc,) = struct.unpack("<I", frame[:4])
    assert crc == zlib.crc32(frame[4:])
    (count,) = struct.unpack("<H", frame[4:6])
    assert len(frame) == 6 + 38 * count
    return [struct.unpack("<HIQqdd", frame[6 + 38 * i: 44 + 38 * i]) for i in range(count)]


entries = st.builds(
    TickEntry, channel=st.just("market:X"), instrument_id=st.integers(0, 0xFFFF),
    epoch=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**64 - 1),
    ts_ns=st.integers(-(2**63), 2**63 - 1),
    price=st.floats(allow_nan=False), volume=st.floats(allow_nan=False))


@given(st.lists(entries, max_size=50))
def test_a_frame_carries_every_field_of_every_entry_under_its_crc(ticks: list[TickEntry]) -> None:
    frame = encode_frame(ticks)
    assert independent_decode(frame) == [
        (t.instrument_id, t.epoch, t.seq, t.ts_ns, t.price, t.volume) for t in ticks]
    assert [(d.instrument_id, d.seq) for d in decode_frame(frame)] == [
        (t.instrument_id, t.seq) for t in ticks]


def test_a_flipped_bit_anywhere_fails_the_crc() -> None:
    frame = bytearray(encode_frame([TickEntry("market:X", 7, 3, 1024, 1, 100.5, 2.0)]))
    for position in range(4, len(frame)):
        broken = bytearray(frame)
        broken[position] ^= 0x10
        if position in (4, 5):  # the count: the length no longer matches
            with pytest.raises(BadFrame):
                decode_frame(bytes(broken))
            continue
        with pytest.raises(BadFrame, match="CRC"):
            decode_frame(bytes(broken))


def test_the_header_is_little_endian_crc_then_count() -> None:
    frame = encode_frame([TickEntry("market:X", 1, 2, 3, 4, 5.0, 6.0)] * 2)
    assert frame[4:6] == b"\x02\x00"
    assert frame[6:8] == b"\x01\x00"
    assert int.from_bytes(frame[:4], "little") == zlib.crc32(frame[4:])


def test_more_entries_than_a_count_holds_split_into_frames() -> None:
    ticks = [TickEntry("market:X", 1, 1, i, 0, 1.0, 1.0) for i in range(70_000)]
    frames = encode_frames(ticks)
    assert [len(independent_decode(f)) for f in frames] == [65_535, 4_465]
    with pytest.raises(ValueError):
        encode_frame(ticks)


def test_short_and_truncated_frames_are_refused() -> None:
    frame = encode_frame([TickEntry("market:X", 1, 1, 1, 0, 1.0, 1.0)])
    for bad in (b"", frame[:5], frame[:-1], frame + b"\x00"):
        with pytest.raises(BadFrame):
            decode_frame(bad)

"""Server frames built once for many sockets, checked against the websockets library's own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ws_gateway.domain.wire import parse_server_frame, server_frame


def library_parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
@pytest.mark.parametrize("text", [True, False])
def test_the_library_reads_our_frames_at_every_length_boundary(size: int, text: bool) -> None:
    payload = b"x" * size
    frame = library_parse(server_frame(payload, text=text))
    assert frame.fin and frame.opcode is (Opcode.TEXT if text else Opcode.BINARY)
    assert frame.data == payload


@given(st.binary(max_size=70_000), st.booleans())
def test_parse_is_the_inverse_of_build(payload: bytes, text: bool) -> None:
    assert parse_server_frame(server_frame(payload, text=text)) == (1 if text else 2, payload)


def test_a_truncated_frame_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_server_frame(server_frame(b"abc", text=True)[:-1])

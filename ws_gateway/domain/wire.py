"""A server-to-client WebSocket frame (RFC 6455 5.2), built once and written to many sockets.

A server's frames are not masked, so the bytes of a message are the same for every client:
the hub frames a round's message once per subscription set and writes those bytes to each
socket, where `websockets.broadcast` frames it again for each connection. Single, final
frames only, no extension (the server runs with compression off).
"""

from __future__ import annotations

OP_TEXT = 0x1
OP_BINARY = 0x2


def server_frame(payload: bytes, *, text: bool) -> bytes:
    head = 0x80 | (OP_TEXT if text else OP_BINARY)
    size = len(payload)
    if size < 126:
        return bytes((head, size)) + payload
    if size < 1 << 16:
        return bytes((head, 126)) + size.to_bytes(2, "big") + payload
    return bytes((head, 127)) + size.to_bytes(8, "big") + payload


def parse_server_frame(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one whole unmasked frame; ValueError when it is not one."""
    if len(frame) < 2 or frame[0] & 0x70 or not frame[0] & 0x80 or frame[1] & 0x80:
        raise ValueError("not a final, unmasked frame without extensions")
    size, head = frame[1] & 0x7F, 2
    if size == 126:
        size, head = int.from_bytes(frame[2:4], "big"), 4
    elif size == 127:
        size, head = int.from_bytes(frame[2:10], "big"), 10
    if len(frame) != head + size:
        raise ValueError("frame length does not match its header")
    return frame[0] & 0x0F, frame[head:]

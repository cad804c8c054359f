"""Raw WebSocket clients for the gateway's tests and bench: one that never reads, and the
close code a server sent it."""

from __future__ import annotations

import base64
import os
import socket

import orjson


def never_reading_client(port: int, headers: dict[str, str], *channels: str
                         ) -> socket.socket:
    """A raw WebSocket client that subscribes to `channels`, then never reads (a tiny
    receive buffer): the slow client of the backpressure test and bench."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    for channel in channels:
        payload = orjson.dumps({"type": "subscribe", "channel": channel})
        mask = os.urandom(4)
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def close_code_of(sock: socket.socket, timeout: float = 15) -> int | None:
    """Read everything the server sent until its close frame; return the close code."""
    sock.settimeout(timeout)
    data = b""
    pos = 0
    while True:
        while True:  # parse the complete frames held so far
            if len(data) - pos < 2:
                break
            opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if len(data) - pos < 4:
                    break
                size, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
            elif size == 127:
                if len(data) - pos < 10:
                    break
                size, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            if len(data) - pos < head + size:
                break
            if opcode == 0x8:
                return int.from_bytes(data[pos + head:pos + head + 2], "big")
            pos += head + size
        chunk = sock.recv(1 << 20)
        if not chunk:
            return None
        data += chunk

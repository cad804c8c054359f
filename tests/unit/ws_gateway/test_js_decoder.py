"""The documented JavaScript decoder (docs/ws/decoder.js) reads the gateway's frames."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ws_gateway.domain.frames import TickEntry, encode_frame

DECODER = Path(__file__).resolve().parents[3] / "docs" / "ws" / "decoder.js"
NODE = shutil.which("node")


def run_decoder(frame: bytes) -> str:
    assert NODE is not None
    script = (f"import {{ decodeTickFrame }} from {json.dumps(DECODER.as_uri())};"
              f"const b = Buffer.from({json.dumps(frame.hex())}, 'hex');"
              "const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length);"
              "try { console.log(JSON.stringify(decodeTickFrame(ab), "
              "(k, v) => typeof v === 'bigint' ? v.toString() : v)); }"
              "catch (e) { console.log('error: ' + e.message); }")
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_js_decoder_reads_every_field_and_refuses_a_bad_crc() -> None:
    entries = [TickEntry("market:X", 3, 4_000_000_000, 2**60 + 5, 1_795_000_000_000_000_123,
                         97012.5, 0.25),
               TickEntry("market:Y", 65535, 1, 1024, -1, 0.01, 1e9)]
    frame = encode_frame(entries)
    decoded = json.loads(run_decoder(frame))
    assert decoded == [
        {"instrumentId": e.instrument_id, "epoch": e.epoch, "seq": str(e.seq),
         "ts": str(e.ts_ns), "price": e.price, "volume": e.volume} for e in entries]
    broken = bytearray(frame)
    broken[-1] ^= 1
    assert run_decoder(bytes(broken)) == "error: CRC mismatch"

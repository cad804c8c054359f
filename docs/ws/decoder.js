// Decode a propstream WebSocket binary tick frame (docs/decisions/0014-ws-gateway.md).
// Little-endian: u32 CRC32 of the rest, u16 count, then count x 38-byte entries:
// u16 instrument id, u32 epoch, u64 seq, i64 venue time (ns), f64 price, f64 volume.
// seq and ts are BigInt (they exceed 2^53); throws on a short frame or a CRC mismatch.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function decodeTickFrame(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 6) throw new Error("frame shorter than its header");
  const count = view.getUint16(4, true);
  if (buffer.byteLength !== 6 + 38 * count) throw new Error("frame length does not match its count");
  if (view.getUint32(0, true) !== crc32(new Uint8Array(buffer, 4))) throw new Error("CRC mismatch");
  const ticks = [];
  for (let i = 0, o = 6; i < count; i++, o += 38) {
    ticks.push({
      instrumentId: view.getUint16(o, true),
      epoch: view.getUint32(o + 2, true),
      seq: view.getBigUint64(o + 6, true),
      ts: view.getBigInt64(o + 14, true),
      price: view.getFloat64(o + 22, true),
      volume: view.getFloat64(o + 30, true),
    });
  }
  return ticks;
}

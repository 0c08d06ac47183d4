// Read the test pattern's barcode from decoded pixels (mirror of publisher/src/barcode.rs).
//
// Layout: 128 bits = frame (u32) + capture_us (u64, µs since the UNIX epoch) + tag (u16) +
// CRC-16, most significant bit first, as 16×16 luma blocks (16 = 0, 235 = 1), left to right
// then top to bottom from the top-left corner, width/16 blocks per row. We average each
// block's central 8×8 pixels, where compression ringing at block edges does not reach.
//
// The browser hands us RGB, converted from video-range YUV: the strip's chroma is neutral,
// so R = G = B and luma is recovered as 16 + full * 219 / 255.

export const BLOCK = 16;
export const BITS = 128;
// Centre averages in here are neither a clear 0 nor a clear 1: no barcode (a real camera,
// picture content), rejected rather than guessed at.
const AMBIGUOUS_LOW = 80;
const AMBIGUOUS_HIGH = 170;

/** Block rows the barcode takes at `width`, or 0 when too narrow for one. */
export function rowsForWidth(width) {
  const perRow = Math.floor(width / BLOCK);
  return perRow > 0 ? Math.ceil(BITS / perRow) : 0;
}

/** Height in pixels of the barcode strip at the top of a frame `width` wide. */
export function stripHeight(width) {
  return rowsForWidth(width) * BLOCK;
}

/** CRC-16/CCITT-FALSE with the output xor 0xa5a5 (barcode.rs `crc16`). */
export function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc ^ 0xa5a5;
}

/**
 * Read a stamp from RGBA pixels (`rgba.length >= width * height * 4`, rows packed) whose top
 * rows hold the barcode. Returns `{frame, captureUs, tag}` or null when there is none or its
 * check fails. Never throws.
 */
export function readStamp(rgba, width, height) {
  if (!rgba || !Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    return null;
  }
  const strip = stripHeight(width);
  if (strip === 0 || strip > height || rgba.length < ((strip - 1) * width + width) * 4) return null;
  const perRow = Math.floor(width / BLOCK);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < BITS; i++) {
    const bx = (i % perRow) * BLOCK;
    const by = Math.floor(i / perRow) * BLOCK;
    let sum = 0;
    for (let row = by + 4; row < by + 12; row++) {
      let p = (row * width + bx + 4) * 4;
      for (let col = 0; col < 8; col++, p += 4) {
        sum += 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
      }
    }
    const luma = 16 + ((sum / 64) * 219) / 255;
    if (luma >= AMBIGUOUS_LOW && luma <= AMBIGUOUS_HIGH) return null;
    if (luma > AMBIGUOUS_HIGH) bytes[i >> 3] |= 0x80 >> (i & 7);
  }
  const check = (bytes[14] << 8) | bytes[15];
  if (crc16(bytes.subarray(0, 14)) !== check) return null;
  const view = new DataView(bytes.buffer);
  return {
    frame: view.getUint32(0),
    captureUs: Number(view.getBigUint64(4)),
    tag: view.getUint16(12),
  };
}

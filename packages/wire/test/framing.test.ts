/** Framing caps: refused at the header, before the frame is buffered; skipped and counted on request. */
import {
  decodeHostToHsm,
  encodeHostToHsm,
  FrameBatch,
  FrameDecoder,
  frame,
  frames,
  isBkvError,
  MAX_BLOB,
  MAX_FRAME_BYTES,
  MAX_PEER_MESSAGE_BYTES,
  PEER_FRAME_OVERHEAD,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

const header = (len: number) => {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, len);
  return h;
};

describe("FrameDecoder", () => {
  it("refuses a frame over its cap at the header, holding nothing", () => {
    const d = new FrameDecoder({ maxFrame: 100 });
    let err: unknown;
    try {
      d.push(header(101));
    } catch (e) {
      err = e;
    }
    expect(isBkvError(err, "MALFORMED")).toBe(true);
    expect(d.refused).toBe(1);
    expect(d.bufferedBytes).toBe(0);
  });

  it("accepts a frame at its cap, split across chunks", () => {
    const d = new FrameDecoder({ maxFrame: 100 });
    const f = frame(new Uint8Array(100).fill(3));
    expect(d.push(f.subarray(0, 2))).toEqual([]);
    expect(d.push(f.subarray(2, 50))).toEqual([]);
    const out = d.push(f.subarray(50));
    expect(out.length).toBe(1);
    expect(out[0]!.length).toBe(100);
    expect(d.bufferedBytes).toBe(0);
  });

  it("skips an oversized frame as its bytes pass and decodes the next one", () => {
    const d = new FrameDecoder({ maxFrame: 10, skipOversized: true });
    const big = frame(new Uint8Array(1000).fill(1));
    const ok = frame(new Uint8Array([7, 8, 9]));
    const stream = new Uint8Array(big.length + ok.length);
    stream.set(big);
    stream.set(ok, big.length);
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += 37) {
      out.push(...d.push(stream.subarray(i, i + 37)));
      expect(d.bufferedBytes).toBeLessThanOrEqual(4 + 10 + 37);
    }
    expect(d.refused).toBe(1);
    expect(out.map((f) => [...f])).toEqual([[7, 8, 9]]);
  });
});

describe("frame caps agree from host to HSM", () => {
  it("a peer message of the biggest size a host forwards decodes in the HSM and fits its frame cap", () => {
    expect(MAX_PEER_MESSAGE_BYTES + PEER_FRAME_OVERHEAD).toBeLessThan(MAX_FRAME_BYTES);
    const bytes = new Uint8Array(MAX_PEER_MESSAGE_BYTES);
    const f = frame(encodeHostToHsm({ type: "peer", from: 2, bytes }));
    expect(f.length).toBe(MAX_PEER_MESSAGE_BYTES + PEER_FRAME_OVERHEAD);
    const [inner] = new FrameDecoder().push(f);
    const m = decodeHostToHsm(inner!);
    expect(m.type === "peer" && m.bytes.length).toBe(MAX_PEER_MESSAGE_BYTES);
    expect(MAX_PEER_MESSAGE_BYTES).toBeLessThanOrEqual(MAX_BLOB);
  });
});

describe("FrameBatch", () => {
  it("writes the frames pushed in one turn as one buffer, in order, byte for byte what frame() gives", () => {
    const writes: Uint8Array[] = [];
    const scheduled: (() => void)[] = [];
    const b = new FrameBatch(
      (bytes) => writes.push(bytes),
      (f) => scheduled.push(f),
    );
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(9)];
    for (const p of payloads) b.push(p);
    expect(scheduled).toHaveLength(1);
    expect(writes).toHaveLength(0);
    expect(b.queuedBytes).toBe(3 * 4 + 303);
    scheduled[0]!();
    expect(writes).toHaveLength(1);
    expect(b.queuedBytes).toBe(0);
    const each = payloads.map((p) => frame(p));
    expect(writes[0]).toEqual(frames(payloads));
    expect(Array.from(writes[0]!)).toEqual(each.flatMap((f) => Array.from(f)));
    expect(new FrameDecoder().push(writes[0]!)).toEqual(payloads);
    // The next push schedules a new flush; a discard drops what is queued and writes nothing.
    b.push(new Uint8Array([7]));
    expect(scheduled).toHaveLength(2);
    b.discard();
    scheduled[1]!();
    expect(writes).toHaveLength(1);
    expect(b.queuedBytes).toBe(0);
  });
});

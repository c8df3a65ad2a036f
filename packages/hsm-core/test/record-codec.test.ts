/**
 * One record's bytes (the same inside a snapshot and inside a record blob) decode only in their one
 * canonical form, and a record blob opens only under its fleet's key at the record key it was sealed
 * to. The layouts are pinned by testdata/formats/vault-record.json and record-blob.json.
 */
import { createHmac } from "node:crypto";
import { nodeHsmCrypto } from "@bkv/hsm-software";
import { BkvError, bytesEqual, ErrorCode, Writer } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import {
  decodeRecord,
  encodeRecord,
  openRecord,
  recordSecretsFromSeed,
  sealRecord,
} from "../src/record-codec.js";
import { recordKey } from "../src/record-tree.js";
import { type VaultRecord, VaultState } from "../src/state.js";

const crypto = nodeHsmCrypto();
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

function record(pendingSeqs: number[], guessSeq: number): VaultRecord {
  return {
    credential: fill(16, 1),
    registration: fill(192, 2),
    wrappedKey: fill(60, 3),
    guessesUsed: pendingSeqs.length,
    guessSeq,
    pending: new Map(
      pendingSeqs.map((seq) => [
        Buffer.from(fill(16, 0x10 + seq)).toString("hex"),
        { loginState: `state-${seq}`, expiresAt: 1_000 + seq, seq },
      ]),
    ),
  };
}

/** A record written field by field, pending logins as given (session id byte, guess number). */
function layout(pending: [number, number][], guessSeq: number): Uint8Array {
  const w = new Writer().string("alice").fixed(fill(16, 1)).bytes(fill(4, 2)).bytes(fill(5, 3));
  w.u32(0).u32(guessSeq);
  w.list(pending, (w, [id, seq]) => {
    w.fixed(fill(16, id)).string("s").u64(9).u32(seq);
  });
  return w.finish();
}

function refusedWith(code: ErrorCode, f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(code);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

async function refusedAsync(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(ErrorCode.RecordProof);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

describe("record bytes", () => {
  it("round-trip, and are the bytes a snapshot holds for the record", () => {
    const r = record([2, 3], 3);
    const bytes = encodeRecord("alice", r);
    const back = decodeRecord(bytes);
    expect(back.user).toBe("alice");
    expect(encodeRecord(back.user, back.record)).toEqual(bytes);
    expect([...back.record.pending.values()].map((p) => p.seq)).toEqual([2, 3]);

    const s = new VaultState();
    s.records.set("alice", r);
    const snap = s.encode();
    // The snapshot: index, term, chain hash, clock, no genesis, record count, then the record.
    const at = 8 + 8 + 32 + 8 + 1 + 4;
    expect(bytesEqual(snap.subarray(at, at + bytes.length), bytes)).toBe(true);
  });

  it("lay pending logins out in the order their guesses were counted, whatever the map's order", () => {
    const r = record([3, 2], 3);
    const sorted = record([2, 3], 3);
    expect(encodeRecord("alice", r)).toEqual(encodeRecord("alice", sorted));
  });

  it("accept only ascending guess numbers, none past the guess sequence, no session twice", () => {
    expect(
      decodeRecord(
        layout(
          [
            [1, 1],
            [2, 2],
          ],
          2,
        ),
      ).record.pending.size,
    ).toBe(2);
    expect(
      refusedWith(ErrorCode.Malformed, () =>
        decodeRecord(
          layout(
            [
              [1, 2],
              [2, 1],
            ],
            2,
          ),
        ),
      ),
    ).toMatch(/ascending guess order/);
    expect(
      refusedWith(ErrorCode.Malformed, () =>
        decodeRecord(
          layout(
            [
              [1, 1],
              [2, 1],
            ],
            2,
          ),
        ),
      ),
    ).toMatch(/ascending guess order/);
    expect(refusedWith(ErrorCode.Malformed, () => decodeRecord(layout([[1, 3]], 2)))).toMatch(
      /past the guess sequence/,
    );
    expect(refusedWith(ErrorCode.Malformed, () => decodeRecord(layout([[1, 0]], 2)))).toMatch(
      /ascending guess order/,
    );
    expect(
      refusedWith(ErrorCode.Malformed, () =>
        decodeRecord(
          layout(
            [
              [1, 1],
              [1, 2],
            ],
            2,
          ),
        ),
      ),
    ).toMatch(/pending login twice/);
  });

  it("refuse a byte more, and the bytes cut short anywhere", () => {
    const bytes = encodeRecord("alice", record([1], 1));
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    refusedWith(ErrorCode.Malformed, () => decodeRecord(longer));
    for (let n = 0; n < bytes.length; n++)
      refusedWith(ErrorCode.Malformed, () => decodeRecord(bytes.subarray(0, n)));
  });
});

describe("record blobs", () => {
  const seed = fill(32, 7);
  const secrets = recordSecretsFromSeed(crypto, seed);
  const keyA = recordKey(crypto.sha256, secrets.keySecret, "alice");
  const keyB = recordKey(crypto.sha256, secrets.keySecret, "bob");
  const plain = encodeRecord("alice", record([1], 1));

  it("come from the seed alone: the same for every member, another for another fleet", () => {
    const again = recordSecretsFromSeed(crypto, fill(32, 7));
    expect(again).toEqual(secrets);
    const other = recordSecretsFromSeed(crypto, fill(32, 8));
    expect(bytesEqual(other.sealKey, secrets.sealKey)).toBe(false);
    expect(bytesEqual(other.keySecret, secrets.keySecret)).toBe(false);
    expect(bytesEqual(secrets.keySecret, secrets.sealKey)).toBe(false);
    expect(() => recordSecretsFromSeed(crypto, fill(31, 7))).toThrow(/32 bytes/);
  });

  it("are placed by HMAC-SHA256 of the user under the fleet's key secret", () => {
    const expected = createHmac("sha256", secrets.keySecret).update("bkv record key v1\0alice").digest();
    expect(bytesEqual(keyA, expected)).toBe(true);
    expect(bytesEqual(keyA, keyB)).toBe(false);
  });

  it("open under the fleet's key at their record key", async () => {
    const blob = await sealRecord(crypto, secrets, keyA, plain, fill(12, 9));
    expect(await openRecord(crypto, secrets, keyA, blob)).toEqual(plain);
  });

  it("refuse, as RECORD_PROOF, a blob moved to another key, changed, cut, or of another fleet", async () => {
    const blob = await sealRecord(crypto, secrets, keyA, plain, fill(12, 9));
    expect(await refusedAsync(() => openRecord(crypto, secrets, keyB, blob))).toMatch(/does not open/);
    for (const i of [0, 12, blob.length - 1]) {
      const changed = blob.slice();
      changed[i]! ^= 1;
      await refusedAsync(() => openRecord(crypto, secrets, keyA, changed));
    }
    expect(await refusedAsync(() => openRecord(crypto, secrets, keyA, blob.subarray(0, 27)))).toMatch(
      /too short/,
    );
    await refusedAsync(() => openRecord(crypto, secrets, keyA, blob.subarray(0, blob.length - 1)));
    const other = recordSecretsFromSeed(crypto, fill(32, 8));
    await refusedAsync(() => openRecord(crypto, other, keyA, blob));
  });

  it("take a 12-byte nonce only", async () => {
    await expect(sealRecord(crypto, secrets, keyA, plain, fill(11, 9))).rejects.toThrow(/12 bytes/);
  });
});

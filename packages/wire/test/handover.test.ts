/**
 * The handover statement (wire handover.ts): the old fleet's signed word naming its successor.
 * Decoding is strict (one encoding per statement; anything else MALFORMED and nothing returned),
 * and the signature binds every field: an operator who edits any byte of a genuine statement, or
 * replays a signature the fleet key made over another message, gets nothing that verifies.
 */
import { ed25519PublicKeyOf, ed25519SignWith } from "@bkv/hsm-software";
import { ed25519VerifyStrict } from "@bkv/tlog";
import {
  BkvError,
  countersignMessage,
  decodeSignedHandover,
  ErrorCode,
  encodeSignedHandover,
  type Handover,
  handoverSignedBytes,
  type SignedHandover,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const FLEET_SEED = fill(32, 0x66);
const FLEET_KEY = ed25519PublicKeyOf(FLEET_SEED);

const HANDOVER: Handover = {
  namespace: "bkv-test",
  epoch: 1,
  fleetId: fill(16, 0xf1),
  successorEpoch: 2,
  successorFleetId: fill(16, 0xf2),
  successorEvidenceDigest: fill(32, 0x90),
  checkpointSize: 12,
  checkpointRoot: fill(32, 0xc0),
  time: 1_767_225_600_000,
};

function signed(h: Handover = HANDOVER, seed = FLEET_SEED): SignedHandover {
  return { ...h, signature: ed25519SignWith(seed, handoverSignedBytes(h)) };
}

/** What a verifier of the handover does: decode strictly, then check the old fleet's signature. */
function verifies(bytes: Uint8Array, fleetKey = FLEET_KEY): boolean {
  const h = decodeSignedHandover(bytes);
  return ed25519VerifyStrict(fleetKey, handoverSignedBytes(h), h.signature);
}

function malformed(f: () => unknown, words: string): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BkvError);
  expect((err as BkvError).code).toBe(ErrorCode.Malformed);
  expect((err as BkvError).message).toContain(words);
}

describe("handover statement", () => {
  it("round-trips, and the old fleet's signature verifies over exactly these bytes", () => {
    const bytes = encodeSignedHandover(signed());
    expect(decodeSignedHandover(bytes)).toEqual(signed());
    expect(verifies(bytes)).toBe(true);
    expect(verifies(bytes, ed25519PublicKeyOf(fill(32, 0x67)))).toBe(false);
  });

  it("any edited field breaks the signature (every byte before it is signed)", () => {
    const bytes = encodeSignedHandover(signed());
    const body = handoverSignedBytes(HANDOVER).length;
    let checked = 0;
    for (let i = 0; i < body; i++) {
      const b = bytes.slice();
      b[i]! ^= 0x01;
      let ok: boolean;
      try {
        ok = verifies(b);
      } catch (e) {
        expect((e as BkvError).code).toBe(ErrorCode.Malformed);
        ok = false;
      }
      expect(ok, `byte ${i}`).toBe(false);
      checked++;
    }
    expect(checked).toBe(body);
  });

  it("a statement signed by the operator's key, or edited and re-signed by it, is not the old fleet's", () => {
    const own = fill(32, 0x99);
    expect(verifies(encodeSignedHandover(signed(HANDOVER, own)))).toBe(false);
    const other = { ...HANDOVER, successorEvidenceDigest: fill(32, 0x91) };
    expect(verifies(encodeSignedHandover(signed(other, own)))).toBe(false);
  });

  it("domain separated: the fleet key's counter-signature over a bundle is no handover signature", () => {
    const countersigned = countersignMessage({
      namespace: "bkv-test",
      epoch: 1,
      artifactDigest: fill(32, 1),
      logSignature: fill(64, 2),
    });
    const sig = ed25519SignWith(FLEET_SEED, countersigned);
    expect(verifies(encodeSignedHandover({ ...HANDOVER, signature: sig }))).toBe(false);
    // And a handover's signed bytes never begin like a counter-signed message.
    expect(Buffer.from(handoverSignedBytes(HANDOVER).subarray(0, 16)).toString()).toBe("bkv-handover/v1\0");
  });

  it("strict decoding: trailing or missing bytes, another domain or version", () => {
    const bytes = encodeSignedHandover(signed());
    malformed(() => decodeSignedHandover(new Uint8Array([...bytes, 0])), "trailing");
    malformed(() => decodeSignedHandover(bytes.subarray(0, bytes.length - 1)), "too short");
    const v2 = bytes.slice();
    v2[14] = "2".charCodeAt(0);
    malformed(() => decodeSignedHandover(v2), "wrong domain");
    malformed(() => decodeSignedHandover(new Uint8Array(0)), "too short");
  });

  it("statements that cannot be: a successor epoch other than the next, a fleet handing over to itself, no namespace, an empty checkpoint", () => {
    for (const successorEpoch of [1, 3, 0])
      malformed(() => handoverSignedBytes({ ...HANDOVER, successorEpoch }), "is not the old epoch 1 + 1");
    malformed(
      () => handoverSignedBytes({ ...HANDOVER, epoch: 0xffffffff, successorEpoch: 0x100000000 }),
      "has no next epoch",
    );
    malformed(() => handoverSignedBytes({ ...HANDOVER, successorFleetId: HANDOVER.fleetId }), "to itself");
    malformed(() => handoverSignedBytes({ ...HANDOVER, namespace: "" }), "namespace");
    malformed(() => handoverSignedBytes({ ...HANDOVER, checkpointSize: 0 }), "checkpoint size 0");
    malformed(() => handoverSignedBytes({ ...HANDOVER, checkpointRoot: fill(31, 0) }), "root");
    malformed(
      () => encodeSignedHandover({ ...HANDOVER, signature: fill(63, 0) }),
      "the signature is 64 bytes",
    );
    // The same statements as bytes (built by hand, the encoder refuses them) do not decode either.
    const body = handoverSignedBytes(HANDOVER);
    const third = body.slice();
    // The successor epoch sits after the domain (16), the namespace (4 + 8), the epoch (4) and the fleet id (16).
    new DataView(third.buffer).setUint32(16 + 4 + 8 + 4 + 16, 3);
    malformed(
      () => decodeSignedHandover(new Uint8Array([...third, ...fill(64, 0)])),
      "is not the old epoch 1 + 1",
    );
    const self = body.slice();
    self.set(HANDOVER.fleetId, 16 + 4 + 8 + 4 + 16 + 4);
    malformed(() => decodeSignedHandover(new Uint8Array([...self, ...fill(64, 0)])), "to itself");
  });
});

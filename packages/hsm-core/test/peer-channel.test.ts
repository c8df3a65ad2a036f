/**
 * The channel between HSMs: only a member can send as itself, only within its fleet; replays,
 * forgeries, misdirected messages and messages from an earlier boot epoch are refused and counted.
 */

import { PeerChannel, peerKey } from "@bkv/hsm-core";
import { memoryPlatform, newMemoryHsm } from "@bkv/hsm-software";
import { decodeAttestation, utf8 } from "@bkv/wire";
import { describe, expect, it } from "vitest";

async function pair(fleetId = new Uint8Array(16).fill(1), epochA = 1, epochB = 1) {
  const a = memoryPlatform(newMemoryHsm());
  const b = memoryPlatform(newMemoryHsm());
  const ka = await a.identityAgree(decodeAttestation(await b.identity()).agreeKey);
  const kb = await b.identityAgree(decodeAttestation(await a.identity()).agreeKey);
  const c = a.crypto;
  const chA = new PeerChannel(
    c,
    1,
    epochA,
    new Map([[2, { send: peerKey(c, ka, fleetId, 1, 2), recv: peerKey(c, ka, fleetId, 2, 1) }]]),
  );
  const chB = new PeerChannel(
    c,
    2,
    epochB,
    new Map([[1, { send: peerKey(c, kb, fleetId, 2, 1), recv: peerKey(c, kb, fleetId, 1, 2) }]]),
  );
  return { a, b, chA, chB, ka };
}

describe("peer channel", () => {
  it("delivers authentic messages, also out of order", async () => {
    const { chA, chB } = await pair();
    const m1 = await chA.seal(2, utf8("one"));
    const m2 = await chA.seal(2, utf8("two"));
    expect(new TextDecoder().decode((await chB.open(m2))!.plaintext)).toBe("two");
    const o1 = await chB.open(m1);
    expect(o1?.from).toBe(1);
    expect(new TextDecoder().decode(o1!.plaintext)).toBe("one");
    expect(chB.counters).toEqual({ forged: 0, replayed: 0 });
  });

  it("refuses and counts a replay", async () => {
    const { chA, chB } = await pair();
    const m = await chA.seal(2, utf8("vote"));
    expect(await chB.open(m)).not.toBeNull();
    expect(await chB.open(m)).toBeNull();
    expect(await chB.open(m)).toBeNull();
    expect(chB.counters.replayed).toBe(2);
  });

  it("refuses and counts forgeries: any altered byte, a message sent back to its sender, garbage", async () => {
    const { chA, chB } = await pair();
    const m = await chA.seal(2, utf8("append"));
    for (let i = 0; i < m.length; i += 3) {
      const bad = m.slice();
      bad[i]! ^= 0x10;
      expect(await chB.open(bad)).toBeNull();
    }
    expect(await chA.open(m)).toBeNull(); // addressed to 2, not to 1
    expect(await chB.open(new Uint8Array(10))).toBeNull();
    expect(chB.counters.forged).toBeGreaterThan(5);
    // The authentic message still gets through once.
    expect(await chB.open(m)).not.toBeNull();
  });

  it("keys are bound to the fleet: another fleet's channel cannot read or forge", async () => {
    const { chA, a, b } = await pair(new Uint8Array(16).fill(1));
    const otherFleet = new Uint8Array(16).fill(2);
    const kb = await b.identityAgree(decodeAttestation(await a.identity()).agreeKey);
    const c = b.crypto;
    const chB2 = new PeerChannel(
      c,
      2,
      1,
      new Map([[1, { send: peerKey(c, kb, otherFleet, 2, 1), recv: peerKey(c, kb, otherFleet, 1, 2) }]]),
    );
    expect(await chB2.open(await chA.seal(2, utf8("x")))).toBeNull();
    expect(chB2.counters.forged).toBe(1);
  });

  it("after the sender restarts (a new epoch), messages of its old epoch are refused", async () => {
    const fleet = new Uint8Array(16).fill(1);
    const { a, b, chB, ka } = await pair(fleet, 1, 1);
    const c = a.crypto;
    const keys = new Map([[2, { send: peerKey(c, ka, fleet, 1, 2), recv: peerKey(c, ka, fleet, 2, 1) }]]);
    const old = new PeerChannel(c, 1, 1, keys);
    const restarted = new PeerChannel(c, 1, 2, keys);
    const stale = await old.seal(2, utf8("old"));
    expect(await chB.open(await restarted.seal(2, utf8("new")))).not.toBeNull();
    expect(await chB.open(stale)).toBeNull();
    expect(chB.counters.replayed).toBe(1);
    void b;
  });
});

/**
 * The channel between HSMs: only a member can send as itself, only within its fleet; replays,
 * forgeries, misdirected messages and messages meant for or sent from an earlier boot of either end
 * are refused and counted.
 */

import { PeerChannel, peerKey } from "@bkv/hsm-core";
import { memoryPlatform, newMemoryHsm } from "@bkv/hsm-software";
import { decodeAttestation, utf8 } from "@bkv/wire";
import { describe, expect, it } from "vitest";

const FLEET = new Uint8Array(16).fill(1);

async function pair(fleetId = FLEET) {
  const a = memoryPlatform(newMemoryHsm());
  const b = memoryPlatform(newMemoryHsm());
  const ka = await a.identityAgree(decodeAttestation(await b.identity()).agreeKey);
  const kb = await b.identityAgree(decodeAttestation(await a.identity()).agreeKey);
  const c = a.crypto;
  /** Node 1's channel (to 2) or node 2's channel (to 1) in boot epoch `epoch`. */
  const channelA = (epoch: number) =>
    new PeerChannel(
      c,
      1,
      epoch,
      new Map([[2, { send: peerKey(c, ka, fleetId, 1, 2), recv: peerKey(c, ka, fleetId, 2, 1) }]]),
    );
  const channelB = (epoch: number) =>
    new PeerChannel(
      c,
      2,
      epoch,
      new Map([[1, { send: peerKey(c, kb, fleetId, 2, 1), recv: peerKey(c, kb, fleetId, 1, 2) }]]),
    );
  return { a, b, channelA, channelB };
}

/** Both ends say hello, as members do when they boot. */
async function introduce(x: PeerChannel, xId: number, y: PeerChannel, yId: number): Promise<void> {
  expect(await y.open(await x.hello(yId))).not.toBeNull();
  expect(await x.open(await y.hello(xId))).not.toBeNull();
}

async function connected() {
  const p = await pair();
  const chA = p.channelA(1);
  const chB = p.channelB(1);
  await introduce(chA, 1, chB, 2);
  return { ...p, chA, chB };
}

const text = (b: Uint8Array | null | undefined) => new TextDecoder().decode(b ?? new Uint8Array(0));

describe("peer channel", () => {
  it("sends nothing to a peer whose boot epoch it has not heard, and owes it a hello", async () => {
    const { channelA, channelB } = await pair();
    const chA = channelA(1);
    const chB = channelB(5);
    expect(chA.helloDue.has(2)).toBe(true);
    expect(await chA.seal(2, utf8("vote"))).toBeNull();
    const hello = await chA.open(await chB.hello(1));
    expect(hello).toEqual({ from: 2, epoch: 5, plaintext: null });
    expect(chA.peerEpoch(2)).toBe(5);
    const m = await chA.seal(2, utf8("vote"));
    expect(m).not.toBeNull();
    // B has not heard from A's boot yet, but A knows B's: the message is for B's boot, so it opens.
    expect(text((await chB.open(m!))?.plaintext)).toBe("vote");
    expect(chB.peerEpoch(1)).toBe(1);
  });

  it("delivers authentic messages, also out of order", async () => {
    const { chA, chB } = await connected();
    const m1 = (await chA.seal(2, utf8("one")))!;
    const m2 = (await chA.seal(2, utf8("two")))!;
    expect(text((await chB.open(m2))?.plaintext)).toBe("two");
    const o1 = await chB.open(m1);
    expect(o1?.from).toBe(1);
    expect(o1?.epoch).toBe(1);
    expect(text(o1?.plaintext)).toBe("one");
    expect(chB.counters).toEqual({ forged: 0, replayed: 0 });
  });

  it("refuses and counts a replay", async () => {
    const { chA, chB } = await connected();
    const m = (await chA.seal(2, utf8("vote")))!;
    expect(await chB.open(m)).not.toBeNull();
    expect(await chB.open(m)).toBeNull();
    expect(await chB.open(m)).toBeNull();
    expect(chB.counters.replayed).toBe(2);
  });

  it("refuses and counts forgeries: any altered byte, a message sent back to its sender, garbage", async () => {
    const { chA, chB } = await connected();
    const m = (await chA.seal(2, utf8("append")))!;
    for (let i = 0; i < m.length; i += 3) {
      const bad = m.slice();
      bad[i]! ^= 0x10;
      expect(await chB.open(bad)).toBeNull();
    }
    expect(await chA.open(m)).toBeNull(); // addressed to 2, not to 1
    expect(await chB.open(new Uint8Array(10))).toBeNull();
    expect(chB.counters.forged).toBeGreaterThan(5);
    expect(chB.counters.replayed).toBe(0);
    // The authentic message still gets through once.
    expect(await chB.open(m)).not.toBeNull();
  });

  it("keys are bound to the fleet: another fleet's channel cannot read or forge", async () => {
    const { chA, a, b } = await connected();
    const otherFleet = new Uint8Array(16).fill(2);
    const kb = await b.identityAgree(decodeAttestation(await a.identity()).agreeKey);
    const c = b.crypto;
    const chB2 = new PeerChannel(
      c,
      2,
      1,
      new Map([[1, { send: peerKey(c, kb, otherFleet, 2, 1), recv: peerKey(c, kb, otherFleet, 1, 2) }]]),
    );
    expect(await chB2.open((await chA.seal(2, utf8("x")))!)).toBeNull();
    expect(await chB2.open(await chA.hello(2))).toBeNull();
    expect(chB2.counters.forged).toBe(2);
  });

  it("after the sender restarts (a new epoch), messages of its old epoch are refused", async () => {
    const { channelA, chA, chB } = await connected();
    const stale = (await chA.seal(2, utf8("old")))!;
    const restarted = channelA(2);
    await introduce(restarted, 1, chB, 2);
    expect(text((await chB.open((await restarted.seal(2, utf8("new")))!))?.plaintext)).toBe("new");
    expect(await chB.open(stale)).toBeNull();
    expect(chB.counters.replayed).toBe(1);
  });

  it("after the receiver restarts, a message recorded before is refused, and the sender is owed a hello", async () => {
    const { channelB, chA, chB } = await connected();
    const recorded = (await chA.seal(2, utf8("append 3-5")))!;
    expect(await chB.open(recorded)).not.toBeNull();
    // The receiver restarts: its replay window is gone, but the message names its old boot.
    const restarted = channelB(2);
    restarted.helloDue.clear();
    expect(await restarted.open(recorded)).toBeNull();
    expect(restarted.counters.replayed).toBe(1);
    expect(restarted.helloDue.has(1)).toBe(true);
    // Once the sender hears the new boot, its new messages get through; the old one still does not.
    expect(await chA.open(await restarted.hello(1))).not.toBeNull();
    expect(text((await restarted.open((await chA.seal(2, utf8("append 6")))!))?.plaintext)).toBe("append 6");
    expect(await restarted.open(recorded)).toBeNull();
    expect(restarted.counters.replayed).toBe(2);
  });

  it("a replayed hello from an earlier boot does not move the peer's epoch back", async () => {
    const { channelB, chA } = await connected();
    const oldHello = await channelB(1).hello(1);
    const restarted = channelB(3);
    await chA.open(await restarted.hello(1));
    expect(chA.peerEpoch(2)).toBe(3);
    expect(await chA.open(oldHello)).not.toBeNull();
    expect(chA.peerEpoch(2)).toBe(3);
    // So A keeps addressing B's newest boot, and a message for it opens there.
    expect(await restarted.open((await chA.seal(2, utf8("x")))!)).not.toBeNull();
  });

  it("never uses one nonce twice under a key: the nonce is the sender's epoch and counter", async () => {
    const { chA } = await connected();
    const nonces = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const m = (await chA.seal(2, utf8(`m${i}`)))!;
      nonces.add(Buffer.from(m.subarray(12, 24)).toString("hex"));
    }
    expect(nonces.size).toBe(50);
  });
});

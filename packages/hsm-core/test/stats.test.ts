/**
 * The Stats frame: the HSM reports counts of its decisions (guesses started, wrong, right, records
 * destroyed) and of its NVRAM writes, and nothing that names a user or carries a secret.
 */
import { VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { SimFleet } from "@bkv/sim";
import { decodeHsmToHost, encodeHsmToHost, type HsmStats, NVRAM_WRITE_BUCKETS_MS, utf8 } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { LIGHT, TestHost } from "./harness.js";

const KEY = new Uint8Array(32).map((_, i) => i + 1);
const USER = "stats-user-7f3a9c";

async function stats(host: TestHost): Promise<HsmStats> {
  host.node.stats = null;
  await host.send({ type: "stats" });
  if (host.node.stats === null) throw new Error("no stats frame");
  return host.node.stats;
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe("HSM stats", () => {
  it("counts wrong and right guesses and destroyed records, and no user id", async () => {
    const host = await TestHost.create(3);
    const client = () =>
      new VaultClient({
        user: USER,
        vaultPublicKey: host.vaultPublicKey(),
        transport: host.transport(),
        keyStretching: LIGHT,
        hpke: nodeHpkeSealer,
        now: () => host.now(),
      });
    const s0 = await stats(host);
    expect(s0.nvramWrites).toBeGreaterThan(0);
    expect(s0.nvramWriteBuckets).toHaveLength(NVRAM_WRITE_BUCKETS_MS.length + 1);
    expect(s0.nvramWriteBuckets.reduce((a, b) => a + b, 0)).toBe(s0.nvramWrites);
    expect(s0.lastIndex).toBeGreaterThan(0);
    await client().register("1234", KEY);
    await client()
      .recover("0000")
      .catch(() => {});
    const s1 = await stats(host);
    expect([s1.guessesStarted, s1.guessesWrong, s1.guessesRight, s1.recordsDestroyed]).toEqual([
      s0.guessesStarted + 1,
      s0.guessesWrong + 1,
      s0.guessesRight,
      s0.recordsDestroyed,
    ]);
    await client().recover("1234");
    const s2 = await stats(host);
    expect([s2.guessesStarted, s2.guessesWrong, s2.guessesRight]).toEqual([
      s1.guessesStarted + 1,
      s1.guessesWrong,
      s1.guessesRight + 1,
    ]);
    for (const pin of ["1", "2", "3"])
      await client()
        .recover(pin)
        .catch(() => {});
    const s3 = await stats(host);
    expect(s3.guessesWrong).toBe(s2.guessesWrong + 3);
    expect(s3.recordsDestroyed).toBe(s2.recordsDestroyed + 1);
    // The frame the host receives names no user.
    expect(contains(encodeHsmToHost({ type: "stats", ...s3 }), utf8(USER))).toBe(false);
    // A fleet of one leads and has no peers to report.
    expect(s3.peers).toEqual([]);
  });

  it("the leader reports each peer's match index; a follower none", async () => {
    const fleet = await SimFleet.create({ nodes: 3, guessLimit: 3 });
    const leader = await fleet.waitForLeader();
    for (let i = 0; i < 5; i++) await fleet.tick();
    for (const id of [1, 2, 3]) {
      const n = fleet.node(id);
      n.stats = null;
      await fleet.deliverFrame(n, { type: "stats" });
      const s = n.stats as HsmStats | null;
      if (s === null) throw new Error("no stats frame");
      if (id === leader) {
        expect(s.peers.map((p) => p.node).sort()).toEqual([1, 2, 3].filter((x) => x !== leader));
        for (const p of s.peers) {
          expect(p.match).toBeGreaterThan(0);
          expect(p.match).toBeLessThanOrEqual(s.lastIndex);
        }
      } else {
        expect(s.peers).toEqual([]);
      }
    }
  });

  it("a stats frame with the wrong number of NVRAM buckets is refused by the host's decoder", () => {
    const s: HsmStats = {
      guessesStarted: 0,
      guessesWrong: 0,
      guessesRight: 0,
      recordsDestroyed: 0,
      nvramWrites: 0,
      nvramWriteMs: 0,
      nvramWriteBuckets: [0, 0],
      lastIndex: 0,
      peers: [],
    };
    expect(() => decodeHsmToHost(encodeHsmToHost({ type: "stats", ...s }))).toThrow(/NVRAM buckets/);
  });
});

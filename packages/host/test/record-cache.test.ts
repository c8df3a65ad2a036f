/**
 * The leader's record cache (hsm-core/src/record-cache.ts) against the host's real SQLite store
 * (record-store.ts), with the host applying entries only later, as it will when they commit: the
 * root after every entry, computed from reads checked against the confirmed root alone, equals the
 * root the host reaches when it applies that entry; users written since the confirmed index are
 * answered from the cache, never from the host; what the cache holds stays bounded by the writes in
 * flight. Then what a host lying about time can do: answer from its tree before a write the cache
 * holds, from an older tree after a confirm, or confirm what was never written.
 */
import { createHash } from "node:crypto";
import {
  encodeRecord,
  RecordCache,
  type RecordChange,
  type RecordSecrets,
  RecordTree,
  recordSecretsFromSeed,
  sealRecord,
  type VaultRecord,
} from "@bkv/hsm-core";
import { nodeHsmCrypto } from "@bkv/hsm-software";
import { BkvError, ErrorCode } from "@bkv/wire";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { RecordStore, type RecordWrite } from "../src/record-store.js";
import { prng, rec } from "./seeded.js";

const crypto = nodeHsmCrypto();
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

async function refused(code: string, f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(code);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

/** A leader HSM's cache and its host, the host applying entries when told (they committed). */
class World {
  readonly tree = new RecordTree(sha256);
  readonly store = new RecordStore(new Database(":memory:"));
  readonly secrets: RecordSecrets = recordSecretsFromSeed(crypto, new Uint8Array(32).fill(3));
  readonly cache = new RecordCache(this.tree, crypto, this.secrets, { index: 0, root: this.tree.emptyRoot });
  /** Entries written by the cache, not yet applied by the host: index, tree writes, root after. */
  readonly pending: { index: number; writes: RecordWrite[]; root: Uint8Array }[] = [];
  private next = 0;
  private nonce = 0;

  /** What an honest host answers for a user's record. */
  answer(user: string) {
    return { treeIndex: this.store.state().applied, ...this.store.read(this.cache.keyOf(user)) };
  }

  /** The leader reads each user (from its cache or its host) and writes the entry's changes. */
  async entry(changes: RecordChange[]): Promise<Uint8Array> {
    for (const c of changes) await this.cache.answer(c.user, this.answer(c.user));
    const index = ++this.next;
    const root = this.cache.write(index, changes);
    const writes: RecordWrite[] = [];
    for (const c of changes) {
      const key = this.cache.keyOf(c.user);
      if (c.record === null) writes.push({ key, blob: null });
      else {
        const plain = encodeRecord(c.user, c.record);
        const nonce = new Uint8Array(12);
        new DataView(nonce.buffer).setUint32(0, ++this.nonce);
        writes.push({
          key,
          blob: await sealRecord(crypto, this.secrets, key, plain, nonce),
          valueHash: this.tree.valueHash(key, plain),
        });
      }
    }
    this.pending.push({ index, writes, root });
    return root;
  }

  /** The host applies the first n pending entries (committed), and the cache learns it. */
  apply(n: number): void {
    let last = 0;
    for (const e of this.pending.splice(0, n)) {
      expect(Buffer.from(this.store.apply(e.writes, e.index)).toString("hex")).toBe(
        Buffer.from(e.root).toString("hex"),
      );
      last = e.index;
    }
    if (last > 0) this.cache.confirm(last);
  }
}

describe("record cache: the leader's roots from checked reads, ahead of its host", () => {
  it("random entries, the host lagging behind: every root the cache gives is the one the host reaches", async () => {
    const rnd = prng(42);
    const w = new World();
    const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const model = new Map<string, VaultRecord | null>();
    let largestDirty = 0;
    for (let e = 0; e < 150; e++) {
      const changes: RecordChange[] = [];
      const n = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < n; i++) {
        const user = users[Math.floor(rnd() * users.length)]!;
        const had = model.get(user) ?? null;
        const record = had !== null && rnd() < 0.2 ? null : rec((had?.guessesUsed ?? 0) + 1, (e % 200) + 1);
        changes.push({ user, record });
        model.set(user, record);
      }
      await w.entry(changes);
      // Every user reads as the model says, from the cache or through the host.
      const probe = users[Math.floor(rnd() * users.length)]!;
      expect(await w.cache.answer(probe, w.answer(probe))).toEqual(model.get(probe) ?? null);
      largestDirty = Math.max(largestDirty, w.cache.size.dirty);
      if (rnd() < 0.3) w.apply(1 + Math.floor(rnd() * w.pending.length));
    }
    w.apply(w.pending.length);
    expect(w.cache.confirmed.root).toEqual(w.store.state().root);
    expect(w.cache.root).toEqual(w.store.state().root);
    // All confirmed: nothing dirty, and the partial tree back to (nearly) nothing.
    expect(w.cache.size).toEqual({ nodes: 1, dirty: 0 });
    expect(largestDirty).toBeGreaterThan(3); // the host really lagged
    for (const u of users) expect(await w.cache.answer(u, w.answer(u))).toEqual(model.get(u) ?? null);
  });
});

describe("record cache: a host lying about time", () => {
  async function world(): Promise<World> {
    const w = new World();
    await w.entry([{ user: "alice", record: rec(0) }]);
    await w.entry([{ user: "bob", record: rec(0, 5) }]);
    w.apply(2);
    return w;
  }

  it("a user written since the confirmed index is answered from the cache, not from the host's older tree", async () => {
    const w = await world();
    // A guess counted for alice at entry 3; the host has not applied it.
    await w.entry([{ user: "alice", record: rec(1) }]);
    const old = w.answer("alice"); // honest for the confirmed tree: alice with 0 guesses used
    expect(await w.cache.answer("alice", old)).toEqual(rec(1));
  });

  it("after a confirm, an answer from the tree before it is refused: UNAVAILABLE by its index, RECORD_PROOF if it claims the new one", async () => {
    const w = await world();
    const before = w.answer("alice");
    await w.entry([{ user: "alice", record: rec(1) }]);
    w.apply(1);
    await refused(ErrorCode.Unavailable, () => w.cache.answer("alice", before));
    await refused(ErrorCode.RecordProof, () => w.cache.answer("alice", { ...before, treeIndex: 3 }));
    expect(await w.cache.answer("alice", w.answer("alice"))).toEqual(rec(1));
  });

  it("a confirm past what was written, or going back, is CORRUPT; a write for a user never read is CORRUPT and changes nothing", async () => {
    const w = await world();
    await refused(ErrorCode.Corrupt, () => w.cache.confirm(3));
    await refused(ErrorCode.Corrupt, () => w.cache.confirm(1));
    const root = w.cache.root;
    await refused(ErrorCode.Corrupt, () =>
      w.cache.write(3, [
        { user: "alice", record: rec(1) },
        { user: "zoe", record: rec(0) },
      ]),
    );
    expect(w.cache.root).toEqual(root);
    await refused(ErrorCode.Corrupt, () => w.cache.write(2, []));
  });
});

/**
 * The HSM reading records from its host's tree (hsm-core/src/record-reader.ts) against the host's
 * real SQLite store (record-store.ts), with the operator answering instead of the store: every way
 * the host can answer wrongly is refused by name before any decision could be taken on it. The HSM
 * side computes each new root itself from verified proofs (PartialTree), never from the host.
 */
import { createHash } from "node:crypto";
import {
  encodeRecord,
  PartialTree,
  type RecordAnswer,
  RecordReader,
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
import { RecordStore } from "../src/record-store.js";
import { rec } from "./seeded.js";

const crypto = nodeHsmCrypto();
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/** One HSM and its host: the HSM holds only the confirmed index and root. */
class World {
  readonly tree = new RecordTree(sha256);
  readonly db = new Database(":memory:");
  readonly store = new RecordStore(this.db);
  readonly secrets: RecordSecrets;
  readonly reader: RecordReader;
  private index = 0;
  private nonce = 0;

  /** seed: the fleet's seed (another seed, another fleet). */
  constructor(seed = 9) {
    this.secrets = recordSecretsFromSeed(crypto, new Uint8Array(32).fill(seed));
    this.reader = new RecordReader(this.tree, crypto, this.secrets, { index: 0, root: this.tree.emptyRoot });
  }

  /** What an honest host answers from a store. */
  answer(user: string, store: RecordStore = this.store): RecordAnswer {
    return { treeIndex: store.state().applied, ...store.read(this.reader.keyOf(user)) };
  }

  /** The HSM changes a user's record (null: destroys it) at the next index; its host applies the write. */
  async put(user: string, record: VaultRecord | null): Promise<void> {
    const key = this.reader.keyOf(user);
    const read = await this.reader.read(user, this.answer(user));
    const partial = new PartialTree(this.tree, this.reader.confirmedTree.root);
    partial.absorb(read.path);
    this.index++;
    if (record === null) {
      const root = partial.set(key, null);
      this.store.apply([{ key, blob: null }], this.index);
      this.reader.confirm(this.index, root);
      return;
    }
    const plain = encodeRecord(user, record);
    const valueHash = this.tree.valueHash(key, plain);
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(0, ++this.nonce);
    const blob = await sealRecord(crypto, this.secrets, key, plain, nonce);
    const root = partial.set(key, valueHash);
    this.store.apply([{ key, blob, valueHash }], this.index);
    this.reader.confirm(this.index, root);
  }
}

async function refused(code: string, f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(code);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

async function world(): Promise<World> {
  const w = new World();
  await w.put("alice", rec(0));
  await w.put("bob", rec(0, 5));
  await w.put("carol", rec(1, 7));
  return w;
}

describe("reading a record from the host's tree", () => {
  it("an honest host's answers give each user's own record, and none for a stranger", async () => {
    const w = await world();
    expect((await w.reader.read("alice", w.answer("alice"))).record).toEqual(rec(0));
    expect((await w.reader.read("carol", w.answer("carol"))).record).toEqual(rec(1, 7));
    const none = await w.reader.read("dave", w.answer("dave"));
    expect(none.record).toBeNull();
    expect(none.path.valueHash).toBeNull();
    // The HSM's own roots and the host's agree after every write.
    expect(w.reader.confirmedTree.root).toEqual(w.store.state().root);
  });

  it("refuses an old copy of a record with its old proof (before a counted guess)", async () => {
    const w = await world();
    const before = w.answer("alice");
    await w.put("alice", rec(1));
    expect((await w.reader.read("alice", w.answer("alice"))).record?.guessesUsed).toBe(1);
    // The old answer, claimed to be from the current tree.
    const stale = { ...before, treeIndex: w.reader.confirmedTree.index };
    expect(await refused(ErrorCode.RecordProof, () => w.reader.read("alice", stale))).toMatch(/root/);
    // The old blob with the current proof.
    const mixed = { ...w.answer("alice"), blob: before.blob };
    await refused(ErrorCode.RecordProof, () => w.reader.read("alice", mixed));
  });

  it("refuses a wrong proof and a changed blob", async () => {
    const w = await world();
    const a = w.answer("alice");
    for (let i = 0; i < a.proof.length; i += Math.max(1, Math.floor(a.proof.length / 7))) {
      const proof = a.proof.slice();
      proof[i]! ^= 1;
      await refused(ErrorCode.RecordProof, () => w.reader.read("alice", { ...a, proof }));
    }
    for (const i of [0, 20, a.blob!.length - 1]) {
      const blob = a.blob!.slice();
      blob[i]! ^= 1;
      await refused(ErrorCode.RecordProof, () => w.reader.read("alice", { ...a, blob }));
    }
  });

  it("refuses another user's record, with its own proof or with this user's", async () => {
    const w = await world();
    const bob = w.answer("bob");
    expect(await refused(ErrorCode.RecordProof, () => w.reader.read("alice", bob))).toMatch(/does not open/);
    const mixed = { ...w.answer("alice"), blob: bob.blob };
    await refused(ErrorCode.RecordProof, () => w.reader.read("alice", mixed));
  });

  it("refuses 'no record' for a user who has one", async () => {
    const w = await world();
    const a = w.answer("alice");
    await refused(ErrorCode.RecordProof, () => w.reader.read("alice", { ...a, blob: null }));
    // Nor with a stranger's proof of absence.
    const dave = w.answer("dave");
    await refused(ErrorCode.RecordProof, () => w.reader.read("alice", dave));
  });

  it("refuses the record of a destroyed user, served with its proof from before", async () => {
    const w = await world();
    const before = w.answer("carol");
    await w.put("carol", null);
    expect((await w.reader.read("carol", w.answer("carol"))).record).toBeNull();
    const stale = { ...before, treeIndex: w.reader.confirmedTree.index };
    await refused(ErrorCode.RecordProof, () => w.reader.read("carol", stale));
  });

  it("refuses a whole older tree (a restored copy), whatever index the host claims for it", async () => {
    const w = await world();
    const oldDb = new Database(w.db.serialize());
    await w.put("alice", rec(1));
    await w.put("alice", rec(2));
    const oldStore = new RecordStore(oldDb);
    // Its own index: not the confirmed one, so nothing is learned from it; asked again.
    expect(
      await refused(ErrorCode.Unavailable, () => w.reader.read("alice", w.answer("alice", oldStore))),
    ).toMatch(/ask again/);
    // The confirmed index claimed for it: the proof does not reach the root.
    const claimed = { ...w.answer("alice", oldStore), treeIndex: w.reader.confirmedTree.index };
    await refused(ErrorCode.RecordProof, () => w.reader.read("alice", claimed));
    // Even a user it did not change: every proof from the old tree leads to the old root.
    const bobOld = { ...w.answer("bob", oldStore), treeIndex: w.reader.confirmedTree.index };
    await refused(ErrorCode.RecordProof, () => w.reader.read("bob", bobOld));
  });

  it("answers from a tree that moved on are asked again, and the confirmed index never goes back", async () => {
    const w = await world();
    const at = w.reader.confirmedTree;
    // The host applied a write the HSM has not seen confirmed (its answer names a later index).
    const ahead = { ...w.answer("alice"), treeIndex: at.index + 1 };
    await refused(ErrorCode.Unavailable, () => w.reader.read("alice", ahead));
    expect(() => w.reader.confirm(at.index - 1, at.root)).toThrow(
      expect.objectContaining({ code: ErrorCode.Corrupt }),
    );
    expect(w.reader.confirmedTree).toEqual(at);
  });

  it("refuses a blob sealed by another fleet at the same user's key", async () => {
    const w = await world();
    const other = new World(10);
    await other.put("alice", rec(0));
    // Another fleet places alice at another key; its blob, put at this fleet's key, does not open.
    expect(other.reader.keyOf("alice")).not.toEqual(w.reader.keyOf("alice"));
    const foreign = { ...w.answer("alice"), blob: other.answer("alice").blob };
    expect(await refused(ErrorCode.RecordProof, () => w.reader.read("alice", foreign))).toMatch(
      /does not open/,
    );
  });
});

/**
 * The record tree at size (issue 13 item 4; prints figures, not a test): the host's SQLite record
 * store (host/src/record-store.ts) filled with N realistic record blobs (each user's record encoded
 * and sealed as record-codec.ts does, keys as the fleet derives them), and the HSM's side of each
 * read (hsm-core/src/record-reader.ts: open, decode, verify against its root). The store is filled
 * by its bulk loader, which only benchmarks and tests use; everything measured afterwards is the
 * code a host and an HSM run. Printed side by side for each size with the ratio of the last to the
 * first: host storage per record, store open time (host boot), proof read on the host, the HSM's
 * check of it, one tree write, and the HSM's streaming check of the whole tree (what a wiped
 * follower's catch-up costs the HSM).
 *
 * Not yet measurable here: HSM memory and recovery latency with records outside the HSM, which
 * need the core to read through its host (docs/record-tree.md, steps 2 to 5).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { RecordStore } from "@bkv/host";
import {
  encodeRecord,
  RecordCache,
  RecordReader,
  RecordTree,
  recordKey,
  recordSecretsFromSeed,
  StreamingRoot,
  sealRecord,
  type VaultRecord,
} from "@bkv/hsm-core";
import { nodeHsmCrypto } from "@bkv/hsm-software";
import Database from "better-sqlite3";

const crypto = nodeHsmCrypto();

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** A user's record as a recovery leaves it: no login in progress, sizes of the real formats. */
function recordOf(i: number): VaultRecord {
  const b = (n: number, x: number) => new Uint8Array(n).fill((i + x) & 0xff);
  return {
    credential: b(16, 1),
    registration: b(192, 2),
    wrappedKey: b(60, 3),
    guessesUsed: i % 3,
    guessSeq: i % 7,
    pending: new Map(),
  };
}

interface Figures {
  records: number;
  loadSeconds: number;
  bytesPerRecord: number;
  openMs: number;
  proofBytes: number;
  hostReadP50: number;
  hostReadP99: number;
  hsmCheckP50: number;
  hsmCheckP99: number;
  leaderP50: number;
  leaderP99: number;
  cacheNodes: number;
  writeP50: number;
  writeP99: number;
  streamSeconds: number;
}

async function measure(n: number, samples: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "bkv-bench-records-"));
  const file = join(dir, "records.sqlite");
  try {
    const tree = new RecordTree(crypto.sha256);
    const secrets = recordSecretsFromSeed(crypto, new Uint8Array(32).fill(7));
    const user = (i: number) => `bench-user-${i}`;
    let t = performance.now();
    const records: { key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array; user: number }[] = [];
    const nonce = new Uint8Array(12);
    const view = new DataView(nonce.buffer);
    for (let i = 0; i < n; i++) {
      const key = recordKey(crypto.sha256, secrets.keySecret, user(i));
      const plain = encodeRecord(user(i), recordOf(i));
      view.setUint32(0, i);
      const blob = await sealRecord(crypto, secrets, key, plain, nonce);
      records.push({ key, blob, valueHash: tree.valueHash(key, plain), user: i });
    }
    records.sort((a, b) => Buffer.compare(a.key, b.key));
    let db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    let store = new RecordStore(db);
    const root = db.transaction(() => store.loadSorted(records, 1))();
    const loadSeconds = (performance.now() - t) / 1000;
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    const bytesPerRecord = statSync(file).size / n;

    t = performance.now();
    db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    store = new RecordStore(db);
    const opened = store.state();
    const openMs = performance.now() - t;
    if (Buffer.compare(opened.root, root) !== 0)
      throw new Error("bench: the reopened store has another root");

    const reader = new RecordReader(tree, crypto, secrets, { index: opened.applied, root: opened.root });
    const pick = (j: number) => records[Math.floor((((j * 2654435761) % 2 ** 32) / 2 ** 32) * n)]!;
    const hostRead: number[] = [];
    const hsmCheck: number[] = [];
    let proofBytes = 0;
    for (let j = 0; j < samples; j++) {
      const r = pick(j);
      const name = user(r.user);
      let s = performance.now();
      const answer = { treeIndex: opened.applied, ...store.read(r.key) };
      hostRead.push(performance.now() - s);
      proofBytes += answer.proof.length;
      s = performance.now();
      const got = await reader.read(name, answer);
      hsmCheck.push(performance.now() - s);
      if (got.record === null) throw new Error("bench: a stored record read as absent");
    }

    // The leader's side of a recovery's write through its record cache: check the host's answer
    // (as above), then compute the root after the entry from it. The host applies the entries ten
    // at a time (as they commit) and then confirms, so the cache holds what ten entries touched.
    const cache = new RecordCache(tree, crypto, secrets, { index: opened.applied, root: opened.root });
    const leader: number[] = [];
    let cacheNodes = 0;
    let index = opened.applied;
    let pending: { index: number; key: Uint8Array; blob: Uint8Array; valueHash: Uint8Array }[] = [];
    for (let j = 0; j < Math.min(samples, 200); j++) {
      const r = pick(j * 13 + 5);
      const name = user(r.user);
      const answer = { treeIndex: store.state().applied, ...store.read(r.key) };
      const s = performance.now();
      const before = await cache.answer(name, answer);
      if (before === null) throw new Error("bench: a stored record read as absent");
      const after = { ...before, guessesUsed: before.guessesUsed + 1, guessSeq: before.guessSeq + 1 };
      cache.write(++index, [{ user: name, record: after }]);
      leader.push(performance.now() - s);
      cacheNodes = Math.max(cacheNodes, cache.size.nodes);
      const plain = encodeRecord(name, after);
      view.setUint32(0, n + j);
      const blob = await sealRecord(crypto, secrets, r.key, plain, nonce);
      pending.push({ index, key: r.key, blob, valueHash: tree.valueHash(r.key, plain) });
      if (pending.length === 10) {
        const batch = pending;
        db.transaction(() => {
          for (const p of batch) store.apply([p], p.index);
        })();
        cache.confirm(index);
        if (Buffer.compare(cache.confirmed.root, store.state().root) !== 0)
          throw new Error("bench: the record cache's root differs from the host's");
        pending = [];
      }
    }

    // Tree writes inside the caller's transaction (the host's persist transaction), fsync excluded.
    const writes: number[] = [];
    db.transaction(() => {
      for (let j = 0; j < Math.min(samples, 1000); j++) {
        const r = pick(j * 7 + 3);
        const blob = r.blob.slice();
        blob[blob.length - 1]! ^= 1;
        const s = performance.now();
        store.apply([{ key: r.key, blob, valueHash: crypto.sha256(blob) }], index + 1 + j);
        writes.push(performance.now() - s);
      }
    })();

    t = performance.now();
    const stream = new StreamingRoot(tree);
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      const chunk = store.scan(after, 1000);
      if (chunk.length === 0) break;
      for (const c of chunk) stream.add(c.key, c.valueHash);
      after = chunk.at(-1)!.key;
    }
    if (Buffer.compare(stream.root(), store.state().root) !== 0)
      throw new Error("bench: the streamed root differs");
    const streamSeconds = (performance.now() - t) / 1000;
    db.close();
    return {
      records: n,
      loadSeconds,
      bytesPerRecord,
      openMs,
      proofBytes: proofBytes / samples,
      hostReadP50: percentile(hostRead, 50),
      hostReadP99: percentile(hostRead, 99),
      hsmCheckP50: percentile(hsmCheck, 50),
      hsmCheckP99: percentile(hsmCheck, 99),
      leaderP50: percentile(leader, 50),
      leaderP99: percentile(leader, 99),
      cacheNodes,
      writeP50: percentile(writes, 50),
      writeP99: percentile(writes, 99),
      streamSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchRecords(opts: { sizes: number[]; samples?: number }): Promise<void> {
  const samples = opts.samples ?? 2000;
  const figures: Figures[] = [];
  for (const n of opts.sizes) figures.push(await measure(n, samples));
  const cols = figures.map((f) => f.records.toLocaleString("en-US"));
  const row = (name: string, pick: (f: Figures) => number, digits: number) => {
    const vals = figures.map(pick);
    const ratio = vals.length > 1 && vals[0]! > 0 ? `${(vals.at(-1)! / vals[0]!).toFixed(2)}x` : "";
    // ratio column: the last size's figure over the first's
    return `  ${name.padEnd(48)}${vals.map((v) => v.toFixed(digits).padStart(14)).join("")}${ratio.padStart(12)}`;
  };
  const out = [
    `record tree benchmark: host SQLite store (WAL, synchronous=FULL) and the HSM's checks, Node ${process.version}, ${samples} sampled reads`,
    "",
    `  ${"records".padEnd(48)}${cols.map((c) => c.padStart(14)).join("")}${"last/first".padStart(12)}`,
    row("make, seal and bulk-load the records, s (setup)", (f) => f.loadSeconds, 1),
    row("host storage, bytes per record", (f) => f.bytesPerRecord, 0),
    row("open the store (host boot), ms", (f) => f.openMs, 1),
    row("host: read + proof, p50 ms", (f) => f.hostReadP50, 3),
    row("host: read + proof, p99 ms", (f) => f.hostReadP99, 3),
    row("proof of a stored record, mean bytes", (f) => f.proofBytes, 0),
    row("HSM: open + decode + verify, p50 ms", (f) => f.hsmCheckP50, 3),
    row("HSM: open + decode + verify, p99 ms", (f) => f.hsmCheckP99, 3),
    row("HSM: check read, root after, p50 ms", (f) => f.leaderP50, 3),
    row("HSM: check read, root after, p99 ms", (f) => f.leaderP99, 3),
    row("HSM: record cache nodes held, most", (f) => f.cacheNodes, 0),
    row("host: one tree write (no fsync), p50 ms", (f) => f.writeP50, 3),
    row("host: one tree write (no fsync), p99 ms", (f) => f.writeP99, 3),
    row("HSM: streaming check of the whole tree, s", (f) => f.streamSeconds, 2),
  ];
  process.stdout.write(`${out.join("\n")}\n\n`);
}

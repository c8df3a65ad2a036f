// Test/benchmark only: bulk-load N random records into a host record store (SQLite file) and print
// rough figures: load time, file size per record, opening the store, a proof read + HSM verify, and
// the HSM's streaming check of the whole tree (what a wiped follower's catch-up costs the HSM).
// Not reachable from the HSM core or the host's API. Usage: node scripts/record-tree-load.mjs [N] [file]
import { createHash, randomBytes } from "node:crypto";
import { rmSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { RecordStore } from "../packages/host/dist/record-store.js";
import { RecordTree, StreamingRoot } from "../packages/hsm-core/dist/record-tree.js";

const n = Number(process.argv[2] ?? 100000);
const file = process.argv[3] ?? "/tmp/bkv-record-tree-load.sqlite";
rmSync(file, { force: true });
const sha256 = (b) => new Uint8Array(createHash("sha256").update(b).digest());
const tree = new RecordTree(sha256);
const mb = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);

let db = new Database(file);
db.pragma("journal_mode = WAL");
let store = new RecordStore(db);
let t = performance.now();
const keys = [];
for (let done = 0; done < n; ) {
  const writes = [];
  for (let i = 0; i < 5000 && done < n; i++, done++) {
    const key = new Uint8Array(randomBytes(32));
    const blob = new Uint8Array(randomBytes(260)); // about a sealed record's size
    if (done % 1000 === 0) keys.push(key);
    writes.push({ key, blob, valueHash: tree.valueHash(key, blob) });
  }
  db.transaction(() => store.apply(writes, done))();
}
console.log(`load ${n} records: ${((performance.now() - t) / 1000).toFixed(1)} s`);
db.pragma("wal_checkpoint(TRUNCATE)");
const root = store.state().root;
db.close();
console.log(`host storage: ${(statSync(file).size / n).toFixed(0)} bytes per record`);

t = performance.now();
db = new Database(file);
store = new RecordStore(db);
const { applied, root: opened } = store.state();
console.log(
  `open store (host boot): ${(performance.now() - t).toFixed(1)} ms, applied ${applied}, same root ${Buffer.compare(opened, root) === 0}`,
);

t = performance.now();
for (const key of keys) {
  const { blob, proof } = store.read(key);
  tree.verify(root, key, tree.valueHash(key, blob), proof);
}
console.log(`read + proof + HSM verify: ${((performance.now() - t) / keys.length).toFixed(2)} ms each`);

const before = mb();
t = performance.now();
const s = new StreamingRoot(tree);
let after = new Uint8Array(0);
for (;;) {
  const chunk = store.scan(after, 1000);
  if (chunk.length === 0) break;
  for (const r of chunk) s.add(r.key, tree.valueHash(r.key, r.blob));
  after = chunk.at(-1).key;
}
const ok = Buffer.compare(s.root(), root) === 0;
console.log(
  `HSM streaming check of the whole tree: ${((performance.now() - t) / 1000).toFixed(1)} s, root ok ${ok}, rss ${before} -> ${mb()} MiB`,
);
db.close();

/**
 * The checkpoint store never goes back (issue 11, item 6): updates are compare-and-swap on
 * (size, root). Many verifications racing on one store (in memory, in a file, and processes sharing
 * the file) end with the largest checkpoint stored, never a smaller one written last.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type CheckpointStore, memoryCheckpointStore, verifyBundle } from "@bkv/client";
import { fileCheckpointStore } from "@bkv/client/node";
import { toBase64 } from "@bkv/tlog";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NOW, world } from "./bundle-world.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "..");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bkv-checkpoints-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A log of `n` entries and bundles for entry 0 at every checkpoint size from 2 to n, each proven consistent from size 1. */
async function racing(n: number) {
  const w = world();
  for (let i = 0; i < n; i++) w.append(w.fleet({ epoch: i + 1 }));
  const first = await w.bundle(0, 1);
  const bundles = [];
  for (let size = n; size >= 2; size--) {
    const b = await w.bundle(0, size);
    b.consistency = { from: 1, proof: w.tree.consistencyProof(1, size).map(toBase64) };
    bundles.push(b);
  }
  return { w, first, bundles };
}

/**
 * Race verifications of bundles at sizes n..2 (largest first: with load-then-save, the smallest,
 * finishing last, would be written last) on `inner`, recording every write that took. Each write
 * must be larger than the one before; the store ends with the last (largest) write. The first
 * writer wins: a loser holding a larger checkpoint it cannot prove consistent with the stored one
 * leaves the stored one (the next verification asks for a proof from it).
 */
async function race(inner: CheckpointStore, n: number): Promise<number[]> {
  const { w, first, bundles } = await racing(n);
  const writes: number[] = [];
  const store: CheckpointStore = {
    load: () => inner.load(),
    async save(expected, next) {
      const ok = await inner.save(expected, next);
      if (ok) writes.push(next.size);
      return ok;
    },
    ...(inner.verified === undefined ? {} : { verified: inner.verified }),
  };
  await verifyBundle(first, w.pins, store, NOW);
  const results = await Promise.all(bundles.map((b) => verifyBundle(b, w.pins, store, NOW)));
  expect(results.map((r) => r.checkpoint.size)).toEqual(bundles.map((_, i) => n - i));
  expect(writes.length).toBeGreaterThanOrEqual(2);
  for (let i = 1; i < writes.length; i++) expect(writes[i]!).toBeGreaterThan(writes[i - 1]!);
  expect((await inner.load())?.size).toBe(writes.at(-1));
  return writes;
}

describe("checkpoint stores are compare-and-swap", () => {
  it("the memory store swaps only from what the caller read", async () => {
    const s = memoryCheckpointStore();
    const a = { size: 1, root: "AA==" };
    const b = { size: 2, root: "AQ==" };
    expect(await s.save(null, a)).toBe(true);
    expect(await s.save(null, b)).toBe(false);
    expect(await s.save({ size: 1, root: "AQ==" }, b)).toBe(false);
    expect(await s.save(a, b)).toBe(true);
    expect(await s.load()).toEqual(b);
  });

  it("many concurrent verifyBundle calls on one memory store keep the largest checkpoint", async () => {
    await race(memoryCheckpointStore(), 12);
  });

  it("many concurrent verifyBundle calls on one file store keep the largest checkpoint", async () => {
    const path = join(dir, "race", "checkpoint.json");
    const writes = await race(fileCheckpointStore(path), 12);
    // A second store object on the same file (another run) sees it, and the verified artifact too.
    expect((await fileCheckpointStore(path).load())?.size).toBe(writes.at(-1));
    expect(
      readFileSync(`${join(dir, "race", "checkpoint")}.verified`, "utf8")
        .trim()
        .split("\n").length,
    ).toBe(1);
  });

  it("racing verifications of epochs 1..n keep the newest epoch; an older one is refused afterwards (memory and file)", async () => {
    for (const inner of [
      memoryCheckpointStore(),
      fileCheckpointStore(join(dir, "epochs", "checkpoint.json")),
    ]) {
      const n = 6;
      const w = world();
      for (let i = 0; i < n; i++) w.append(w.fleet({ epoch: i + 1 }));
      const bundles = await Promise.all(Array.from({ length: n }, (_, i) => w.bundle(i, n)));
      const epochs: number[] = [];
      const store: CheckpointStore = {
        load: () => inner.load(),
        async save(expected, next) {
          const ok = await inner.save(expected, next);
          if (ok) epochs.push(next.epoch ?? 0);
          return ok;
        },
      };
      const outcomes = await Promise.all(
        [...bundles].reverse().map((b) =>
          verifyBundle(b, w.pins, store, NOW).then(
            () => "ok",
            (e: { code?: string }) => e.code ?? String(e),
          ),
        ),
      );
      // Each lost race is a refusal of an older epoch, never another error.
      expect(outcomes.every((o) => o === "ok" || o === "BUNDLE_ROLLBACK")).toBe(true);
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]!).toBeGreaterThan(epochs[i - 1]!);
      expect((await inner.load())?.epoch).toBe(n);
      await expect(verifyBundle(bundles[0]!, w.pins, store, NOW)).rejects.toMatchObject({
        code: "BUNDLE_ROLLBACK",
      });
    }
  });

  it("a loser with a larger checkpoint replaces the stored one only with a proof of consistency from it", async () => {
    const { w, first } = await racing(4);
    const store = memoryCheckpointStore();
    await verifyBundle(first, w.pins, store, NOW);
    const seen = await store.load();
    // Between this verification's load and its save, another one stored size 2.
    const two = { size: 2, root: toBase64(w.tree.root(2)) };
    const sneaky: CheckpointStore = {
      load: () => store.load(),
      async save(expected, next) {
        if (expected !== null && expected.size === 1) await store.save(seen, two);
        return store.save(expected, next);
      },
    };
    const b = await w.bundle(0, 4);
    b.consistency = { from: 1, proof: w.tree.consistencyProof(1, 4).map(toBase64) };
    await verifyBundle(b, w.pins, sneaky, NOW);
    // The stored checkpoint stays (no proof from it), with the epoch verified here recorded on it.
    expect(await store.load()).toMatchObject({ ...two, epoch: 1 });
    // With a proof from the stored size, the larger one goes in.
    const c = await w.bundle(0, 4);
    c.consistency = { from: 2, proof: w.tree.consistencyProof(2, 4).map(toBase64) };
    await verifyBundle(c, w.pins, store, NOW);
    expect((await store.load())?.size).toBe(4);
  });

  it("the file store swaps only from what the caller read, and refuses a file that is not a checkpoint", async () => {
    const path = join(dir, "cas", "checkpoint.json");
    const s = fileCheckpointStore(path);
    const a = { size: 1, root: "AA==" };
    expect(await s.save(null, a)).toBe(true);
    expect(await s.save(null, { size: 5, root: "AQ==" })).toBe(false);
    expect(await s.save(a, { size: 5, root: "AQ==" })).toBe(true);
    writeFileSync(path, "{}");
    await expect(s.load()).rejects.toMatchObject({ code: "CORRUPT" });
  });

  it("the file store keeps the fleet verified at the newest epoch: after a restart, another fleet at that epoch is refused", async () => {
    const w = world();
    const a = w.append(w.fleet({ epoch: 1 }));
    const b = w.append(w.fleet({ epoch: 1 }));
    const path = join(dir, "sibling", "checkpoint.json");
    await verifyBundle(await w.bundle(a), w.pins, fileCheckpointStore(path), NOW);
    const stored = JSON.parse(readFileSync(path, "utf8")) as { epoch: number; artifact: string };
    expect(stored.epoch).toBe(1);
    expect(stored.artifact).toMatch(/^[0-9a-f]{64}$/);
    // A new process (a new store on the same file) is offered the sibling fleet.
    await expect(
      verifyBundle(await w.bundle(b), w.pins, fileCheckpointStore(path), NOW),
    ).rejects.toMatchObject({
      code: "BUNDLE_SPLIT_VIEW",
    });
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(stored);
    // A stored artifact that is not a SHA-256 in hex makes the file no checkpoint.
    writeFileSync(path, JSON.stringify({ ...stored, artifact: "A".repeat(64) }));
    await expect(fileCheckpointStore(path).load()).rejects.toMatchObject({ code: "CORRUPT" });
  });

  it("a checkpoint stored before artifacts were kept learns the fleet at its epoch, then refuses another", async () => {
    const w = world();
    const a = w.append(w.fleet({ epoch: 1 }));
    const b = w.append(w.fleet({ epoch: 1 }));
    const first = await w.bundle(a);
    const old = memoryCheckpointStore(null);
    await verifyBundle(first, w.pins, old, NOW);
    const { artifact: _learned, ...legacy } = (await old.load())!;
    const store = memoryCheckpointStore(legacy);
    await verifyBundle(first, w.pins, store, NOW);
    expect((await store.load())?.artifact).toBe(_learned);
    await expect(verifyBundle(await w.bundle(b), w.pins, store, NOW)).rejects.toMatchObject({
      code: "BUNDLE_SPLIT_VIEW",
    });
    // The next epoch is another fleet by design: it is accepted and becomes the one remembered.
    const c = w.append(w.fleet({ epoch: 2 }));
    const next = await w.bundle(c);
    next.consistency = {
      from: (await store.load())!.size,
      proof: w.tree.consistencyProof((await store.load())!.size, w.tree.size).map(toBase64),
    };
    await verifyBundle(next, w.pins, store, NOW);
    expect((await store.load())?.epoch).toBe(2);
    expect((await store.load())?.artifact).not.toBe(_learned);
  });

  it("processes sharing one file never replace a larger checkpoint with a smaller one", async () => {
    // The real file store, built by esbuild for plain node; each process pushes checkpoints of its own sizes
    // with the same compare-and-swap loop verifyBundle uses.
    const script = join(dir, "store.mjs");
    await build({
      entryPoints: [join(ROOT, "packages", "client", "src", "node", "checkpoint-file.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: script,
      tsconfig: join(ROOT, "tsconfig.test.json"),
      logLevel: "silent",
    });
    const child = join(dir, "child.mjs");
    writeFileSync(
      child,
      `import { fileCheckpointStore } from ${JSON.stringify(script)};
const [path, sizes] = [process.argv[2], process.argv[3].split(",").map(Number)];
const store = fileCheckpointStore(path);
for (const size of sizes) {
  const next = { size, root: "r" + size };
  for (;;) {
    const seen = await store.load();
    if (seen !== null && seen.size >= size) break;
    if (await store.save(seen, next)) break;
  }
}
`,
    );
    const path = join(dir, "procs", "checkpoint.json");
    const run = (sizes: number[]) =>
      new Promise<void>((res, rej) =>
        execFile(process.execPath, [child, path, sizes.join(",")], (err, _out, stderr) =>
          err ? rej(new Error(stderr || err.message)) : res(),
        ),
      );
    // Four processes, interleaved sizes up to 80; one of them ends with small sizes.
    const plans = [0, 1, 2, 3].map((k) => Array.from({ length: 20 }, (_, i) => 4 * i + k + 1));
    plans[3]!.reverse();
    await Promise.all(plans.map(run));
    expect(await fileCheckpointStore(path).load()).toEqual({ size: 80, root: "r80" });
  }, 60_000);
});

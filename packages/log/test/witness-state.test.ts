/**
 * Witnesses cannot be fooled by storage (issue 11, item 8). A witness keeps, beside its key, a
 * MACed record of the largest tree it cosigned per log. Restarted on an empty database or on a
 * restored (older) one while its key and record remain, it refuses to cosign (503 WITNESS_STATE):
 * on the old code it would cosign a fork from size 0 or from the restored size. A tampered record,
 * another witness's record, or a missing record beside a used database are refused too. A fresh
 * witness works, "old 0" for a log it has cosigned is refused (409 with its size), and a record
 * behind its database (a crash between the two writes) is no reason to stop.
 */
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ed25519NoteSigner,
  formatAddCheckpointRequest,
  formatCheckpoint,
  formatSignerKey,
  leafHash,
  MerkleTree,
  SIG_ED25519,
  signNote,
} from "@bkv/tlog";
import { afterEach, describe, expect, it } from "vitest";
import {
  loadOrCreateKey,
  type RunningWitness,
  startLogServer,
  startWitnessServer,
  WITNESS_STATE_FILE,
} from "../src/index.js";
import { fleetWorld } from "./fleet-world.js";
import { add, postWitness, tempDir } from "./helpers.js";

const ORIGIN = "log.example/witness-state";
const quiet = () => {};

/** A log key in the test's hands, two trees (the real one and a fork), and add-checkpoint bodies. */
function setup() {
  const dir = tempDir();
  const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519);
  const signer = ed25519NoteSigner(formatSignerKey(logKey.key));
  const tree = MerkleTree.fromLeafHashes(Array.from({ length: 8 }, (_, i) => leafHash(new Uint8Array([i]))));
  // A fork that agrees with the real tree on its first 2 entries and differs after.
  const fork = MerkleTree.fromLeafHashes(
    Array.from({ length: 8 }, (_, i) => leafHash(new Uint8Array(i < 2 ? [i] : [i, 0xff]))),
  );
  const body = async (t: MerkleTree, old: number, size: number) =>
    formatAddCheckpointRequest({
      oldSize: old,
      proof: old === 0 || old === size ? [] : t.consistencyProof(old, size),
      checkpoint: await signNote(
        formatCheckpoint({ origin: ORIGIN, size, root: t.root(size), extensions: [] }),
        [signer],
      ),
    });
  const witnessDir = join(dir.path, "witness");
  const running: RunningWitness[] = [];
  const start = async (o: { adoptState?: boolean } = {}) => {
    const w = await startWitnessServer(
      { dir: witnessDir, name: "w.example", logs: [[ORIGIN, logKey.vkey]], onEvent: quiet, ...o },
      "127.0.0.1",
      0,
    );
    running.push(w);
    return w;
  };
  const stop = async (w: RunningWitness) => {
    await w.close();
    running.splice(running.indexOf(w), 1);
  };
  const db = join(witnessDir, "witness.sqlite");
  const dbFiles = [db, `${db}-wal`, `${db}-shm`];
  const removeDb = () => {
    for (const f of dbFiles) rmSync(f, { force: true });
  };
  const saveDb = (to: string) => {
    for (const f of dbFiles) if (existsSync(f)) copyFileSync(f, `${to}${f.slice(db.length)}`);
  };
  const restoreDb = (from: string) => {
    removeDb();
    for (const f of dbFiles) {
      const src = `${from}${f.slice(db.length)}`;
      if (existsSync(src)) copyFileSync(src, f);
    }
  };
  const cleanup = async () => {
    for (const w of [...running]) await stop(w);
    dir.remove();
  };
  return { dir, logKey, tree, fork, body, witnessDir, start, stop, removeDb, saveDb, restoreDb, cleanup };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("a witness and its state record", () => {
  it("a fresh witness (no record, no database) cosigns and starts its record beside its key", async () => {
    const s = setup();
    cleanup = s.cleanup;
    const w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 2))).status).toBe(200);
    expect((await postWitness(w.url, await s.body(s.tree, 2, 5))).status).toBe(200);
    const record = join(s.witnessDir, WITNESS_STATE_FILE);
    expect(statSync(record).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(record, "utf8")).logs).toEqual([
      [ORIGIN, 5, Buffer.from(s.tree.root(5)).toString("base64")],
    ]);
    // "old 0" for a log it has cosigned: refused, and told its size.
    const old0 = await postWitness(w.url, await s.body(s.fork, 0, 6));
    expect([old0.status, old0.body]).toEqual([409, "5\n"]);
  });

  it("restarted on an empty database (lost) while its key and record remain: refuses to cosign", async () => {
    const s = setup();
    cleanup = s.cleanup;
    let w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 5))).status).toBe(200);
    await s.stop(w);
    s.removeDb();
    const recordBefore = readFileSync(join(s.witnessDir, WITNESS_STATE_FILE), "utf8");
    w = await s.start();
    // The fork, from size 0, as a fresh witness would take it.
    const fromZero = await postWitness(w.url, await s.body(s.fork, 0, 6));
    expect(fromZero.status).toBe(503);
    expect(fromZero.body).toMatch(
      /^WITNESS_STATE: .*cosigned .* at size 5, but its database has no checkpoint/,
    );
    // The real tree is refused too: the witness cannot tell what it cosigned.
    expect((await postWitness(w.url, await s.body(s.tree, 0, 6))).status).toBe(503);
    expect((await postWitness(w.url, await s.body(s.tree, 5, 6))).status).toBe(503);
    expect(w.service.latest(ORIGIN)).toBeUndefined();
    expect(readFileSync(join(s.witnessDir, WITNESS_STATE_FILE), "utf8")).toBe(recordBefore);
  });

  it("restarted on a restored (older) database: refuses to cosign a fork from the restored size", async () => {
    const s = setup();
    cleanup = s.cleanup;
    let w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 2))).status).toBe(200);
    await s.stop(w);
    s.saveDb(join(s.dir.path, "backup.sqlite"));
    w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 2, 5))).status).toBe(200);
    await s.stop(w);
    s.restoreDb(join(s.dir.path, "backup.sqlite"));
    w = await s.start();
    expect(w.service.latest(ORIGIN)?.size).toBe(2);
    // The fork agrees with what the restored database holds (size 2): the old code cosigned it.
    const fork = await postWitness(w.url, await s.body(s.fork, 2, 6));
    expect(fork.status).toBe(503);
    expect(fork.body).toMatch(/^WITNESS_STATE: .*at size 5, but its database is at 2/);
    expect((await postWitness(w.url, await s.body(s.tree, 5, 6))).status).toBe(503);
    expect(w.service.latest(ORIGIN)?.size).toBe(2);
  });

  it("a tampered record, another witness's record, or none beside a used database: refused", async () => {
    const s = setup();
    cleanup = s.cleanup;
    let w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 5))).status).toBe(200);
    await s.stop(w);
    const path = join(s.witnessDir, WITNESS_STATE_FILE);
    const genuine = readFileSync(path, "utf8");

    // Lowered to size 2 without the key: the MAC fails.
    const lowered = JSON.parse(genuine);
    lowered.logs[0][1] = 2;
    writeFileSync(path, JSON.stringify(lowered));
    s.removeDb();
    w = await s.start();
    const tampered = await postWitness(w.url, await s.body(s.fork, 0, 6));
    expect([tampered.status, tampered.body]).toEqual([503, expect.stringContaining("MAC does not verify")]);
    await s.stop(w);

    // Another witness's (valid) record: not under this key.
    const other = setup();
    const ow = await other.start();
    await other.stop(ow);
    writeFileSync(path, readFileSync(join(other.witnessDir, WITNESS_STATE_FILE)));
    await other.cleanup();
    w = await s.start();
    expect((await postWitness(w.url, await s.body(s.fork, 0, 6))).status).toBe(503);
    await s.stop(w);

    // The record deleted beside a database that holds checkpoints (from a fresh start here).
    rmSync(path);
    s.removeDb();
    w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 2))).status).toBe(200);
    await s.stop(w);
    rmSync(path);
    w = await s.start();
    const missing = await postWitness(w.url, await s.body(s.tree, 2, 5));
    expect([missing.status, missing.body]).toEqual([
      503,
      expect.stringContaining(`${WITNESS_STATE_FILE} is missing`),
    ]);
    await s.stop(w);
    // --adopt-state writes it from the database (an upgrade of a witness made before the record).
    w = await s.start({ adoptState: true });
    expect((await postWitness(w.url, await s.body(s.tree, 2, 5))).status).toBe(200);
  });

  it("a record behind its database (a crash after the commit, before the record) still cosigns", async () => {
    const s = setup();
    cleanup = s.cleanup;
    let w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 0, 2))).status).toBe(200);
    const path = join(s.witnessDir, WITNESS_STATE_FILE);
    const at2 = readFileSync(path);
    expect((await postWitness(w.url, await s.body(s.tree, 2, 5))).status).toBe(200);
    await s.stop(w);
    writeFileSync(path, at2);
    w = await s.start();
    expect((await postWitness(w.url, await s.body(s.tree, 5, 6))).status).toBe(200);
    expect(JSON.parse(readFileSync(path, "utf8")).logs[0][1]).toBe(6);
  });

  it("a log whose witness lost its database publishes nothing until the witness is whole", async () => {
    const s = setup();
    cleanup = s.cleanup;
    const world = fleetWorld(s.logKey.publicKey, { freshMembers: true });
    let w = await s.start();
    const port = Number(new URL(w.url).port);
    const log = await startLogServer(
      {
        dir: join(s.dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        witnesses: [[w.url, w.service.key.vkey]],
        namespaces: [{ namespace: "ns", submitterKey: world.submitterKey }],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
    try {
      const [f1, f2] = [world.fleet("ns", 1), world.fleet("ns", 2)];
      expect((await add(log.url, f1, world.sign(f1))).status).toBe(200);
      await s.stop(w);
      s.removeDb();
      w = await startWitnessServer(
        { dir: s.witnessDir, name: "w.example", logs: [[ORIGIN, s.logKey.vkey]], onEvent: quiet },
        "127.0.0.1",
        port,
      );
      const r = await add(log.url, f2, world.sign(f2));
      expect([r.status, r.body.code]).toEqual([503, "UNAVAILABLE"]);
      expect(log.service.checkpoint()?.size).toBe(1);
    } finally {
      await log.close();
      await w.close();
    }
  });
});

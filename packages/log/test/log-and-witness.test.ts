/**
 * The log service and witnesses in one process on 127.0.0.1 ephemeral ports: appends of fleets
 * whose evidence verifies, signed by the namespace's submitter, witness cosigning, refusals, tiles
 * and proofs verified with @bkv/tlog, split-view and rollback refusal by the witness, the
 * threshold, and durability across restarts. (The operator's attacks on /add and on the witnesses'
 * storage are in add-attacks.test.ts and witness-state.test.ts.)
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  decodeLogEntry,
  ed25519NoteSigner,
  emptyRoot,
  evidenceDigest,
  formatAddCheckpointRequest,
  formatCheckpoint,
  formatSignerKey,
  leafHash,
  MerkleTree,
  openCosignedCheckpoint,
  parseCheckpoint,
  parseNote,
  SIG_ED25519,
  signNote,
  TiledLog,
  TLOG_SIZE_CONTENT_TYPE,
  verifyConsistency,
  verifyInclusion,
  verifyLogBundle,
} from "@bkv/tlog";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  loadOrCreateKey,
  type RunningLog,
  type RunningWitness,
  startLogServer,
  startWitnessServer,
} from "../src/index.js";
import { type FleetWorld, fleetWorld, type Submission } from "./fleet-world.js";
import { add, addRaw, b64, bundleFromAdd, getText, httpTileReader, postWitness, tempDir } from "./helpers.js";

const ORIGIN = "log.example/bkv";
const quiet = () => {};
const NAMESPACES = ["fleet/a", "fleet/b", "fleet/c", "fleet/d", "fill"];

describe("log with two witnesses", () => {
  const dir = tempDir();
  let w1: RunningWitness;
  let w2: RunningWitness;
  let log: RunningLog;
  let logVkey: string;
  let policy: { logKey: string; witnessKeys: string[]; threshold: number };
  let world: FleetWorld;
  const fleets = new Map<string, Submission>();
  /** The fleet of (namespace, epoch), made once, and the log's answer to its signed /add. */
  const fleet = (ns: string, epoch: number): Submission => {
    const k = `${ns} ${epoch}`;
    if (!fleets.has(k)) fleets.set(k, world.fleet(ns, epoch));
    return fleets.get(k)!;
  };
  const submit = (s: Submission) => add(log.url, s, world.sign(s));

  const startLog = () =>
    startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        witnesses: [
          [w1.url, w1.service.key.vkey],
          [w2.url, w2.service.key.vkey],
        ],
        namespaces: NAMESPACES.map((namespace) => ({ namespace, submitterKey: world.submitterKey })),
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519);
    logVkey = logKey.vkey;
    world = fleetWorld(logKey.publicKey, { freshMembers: true });
    w1 = await startWitnessServer(
      { dir: join(dir.path, "w1"), name: "w1.example", logs: [[ORIGIN, logVkey]], onEvent: quiet },
      "127.0.0.1",
      0,
    );
    w2 = await startWitnessServer(
      { dir: join(dir.path, "w2"), name: "w2.example", logs: [[ORIGIN, logVkey]], onEvent: quiet },
      "127.0.0.1",
      0,
    );
    log = await startLog();
    expect(log.service.key.vkey).toBe(logVkey);
    policy = { logKey: logVkey, witnessKeys: [w1.service.key.vkey, w2.service.key.vkey], threshold: 2 };
  });

  afterAll(async () => {
    await log?.close();
    await w1?.close();
    await w2?.close();
    dir.remove();
  });

  it("has no checkpoint before the first append", async () => {
    expect((await getText(`${log.url}/checkpoint`)).status).toBe(404);
  });

  it("appends, gets both cosignatures, and answers with a bundle a client verifies", async () => {
    const a1 = fleet("fleet/a", 1);
    const r = await submit(a1);
    expect(r.status).toBe(200);
    expect(r.body.index).toBe(0);
    expect(r.body.evidenceDigest).toBe(Buffer.from(evidenceDigest(a1.evidence)).toString("base64"));
    const cp = verifyLogBundle(bundleFromAdd(r.body, a1.artifact), policy);
    expect(cp.cosigners).toEqual(["w1.example", "w2.example"]);
    expect(cp.checkpoint.size).toBe(1);

    const r2 = await submit(fleet("fleet/a", 2));
    const r3 = await submit(fleet("fleet/b", 1));
    expect([r2.body.index, r3.body.index]).toEqual([1, 2]);
    verifyLogBundle(bundleFromAdd(r3.body, fleet("fleet/b", 1).artifact), policy);
    // Older answers stay valid against their own checkpoint.
    verifyLogBundle(bundleFromAdd(r2.body, fleet("fleet/a", 2).artifact), policy);
  });

  it("serves the latest checkpoint as a C2SP signed note with both cosignatures", async () => {
    const res = await getText(`${log.url}/checkpoint`);
    expect(res.status).toBe(200);
    expect(res.type).toBe("text/plain; charset=utf-8");
    const note = parseNote(res.body);
    expect(note.signatures.map((s) => s.name)).toEqual([ORIGIN, "w1.example", "w2.example"]);
    const cp = openCosignedCheckpoint(res.body, policy);
    expect(cp.checkpoint).toMatchObject({ origin: ORIGIN, size: 3 });
    // The witnesses' monitoring endpoint serves the same tree head.
    const hash = createHash("sha256").update(ORIGIN).digest("hex");
    const fromWitness = await getText(`${w1.url}/${hash}/checkpoint`);
    expect(parseCheckpoint(parseNote(fromWitness.body).text)).toEqual(cp.checkpoint);
  });

  it("refuses another fleet for a logged (namespace, epoch); the same one is idempotent", async () => {
    const before = (await getText(`${log.url}/checkpoint`)).body;
    // A genuine fleet, properly signed, for an epoch already logged.
    const bad = await submit(world.fleet("fleet/a", 2));
    expect([bad.status, bad.body.code]).toEqual([409, "INVALID"]);
    // The logged artifact with other (genuine) evidence.
    const otherEvidence = { ...fleet("fleet/a", 2), evidence: world.fleet("fleet/a", 2).evidence };
    expect((await submit(otherEvidence)).status).toBe(409);
    const again = await submit(fleet("fleet/a", 2));
    expect(again.status).toBe(200);
    expect(again.body.index).toBe(1);
    expect(log.service.size).toBe(3);
    expect((await getText(`${log.url}/checkpoint`)).body).toBe(before);
    verifyLogBundle(bundleFromAdd(again.body, fleet("fleet/a", 2).artifact), policy);
  });

  it("takes each namespace's epochs in order: 1 first, then the next, none skipped", async () => {
    const skipped = await submit(world.fleet("fleet/a", 4));
    expect(skipped.status).toBe(409);
    expect(skipped.body).toMatchObject({ code: "INVALID" });
    expect(skipped.body.message).toContain("the next epoch of fleet/a is 3");
    expect((await submit(world.fleet("fleet/c", 0))).status).toBe(409);
    expect((await submit(world.fleet("fleet/c", 2))).status).toBe(409);
    expect(log.service.size).toBe(3);
  });

  it("rejects malformed requests", async () => {
    const x = fleet("fleet/a", 1);
    const signed = (o: Partial<Submission>) => {
      const s = { ...x, ...o };
      return add(log.url, s, world.sign(s));
    };
    expect((await add(log.url, { ...x, namespace: "bad namespace" }, new Uint8Array(64))).status).toBe(400);
    expect((await add(log.url, { ...x, epoch: -1 }, new Uint8Array(64))).status).toBe(400);
    const big = await signed({ artifact: new Uint8Array(70_000) });
    expect([big.status, big.body.code]).toEqual([400, "MALFORMED"]);
    const res = await addRaw(log.url, { namespace: "fill", epoch: 1, artifact: "AQ", evidence: "" });
    expect([res.status, res.body.code]).toEqual([400, "MALFORMED"]);
    const badSig = await addRaw(log.url, {
      namespace: "fill",
      epoch: 1,
      artifact: "AQ==",
      evidence: "",
      submitterSignature: "not base64",
    });
    expect(badSig.status).toBe(400);
    expect(log.service.size).toBe(3);
  });

  it("hands out bundles by namespace and epoch", async () => {
    const res = await fetch(`${log.url}/bundle?namespace=fleet/a`);
    const j = (await res.json()) as Record<string, unknown>;
    expect(j.epoch).toBe(2);
    const bundle = {
      namespace: j.namespace as string,
      epoch: j.epoch as number,
      artifact: b64(j.artifact as string),
      evidenceDigest: b64(j.evidenceDigest as string),
      index: j.index as number,
      logSignature: b64(j.logSignature as string),
      inclusionProof: (j.inclusionProof as string[]).map(b64),
      checkpoint: j.checkpoint as string,
    };
    expect(verifyLogBundle(bundle, policy).checkpoint.size).toBe(3);
    expect((await fetch(`${log.url}/bundle?namespace=fleet/a&epoch=1`)).status).toBe(200);
    expect((await fetch(`${log.url}/bundle?namespace=fleet/a&epoch=9`)).status).toBe(404);
    expect((await fetch(`${log.url}/bundle?namespace=nobody`)).status).toBe(404);
  });

  it("serves tiles and entries tiles from which proofs and entries verify with the library", async () => {
    for (let epoch = 1; epoch <= 270; epoch++) {
      const r = await submit(fleet("fill", epoch));
      expect(r.status).toBe(200);
    }
    const cp = openCosignedCheckpoint((await getText(`${log.url}/checkpoint`)).body, policy).checkpoint;
    expect(cp.size).toBe(273);
    const tiled = new TiledLog(httpTileReader(log.url), cp.size, cp.root);
    await tiled.verifiedRoot();
    const entries = [...(await tiled.entries(0)), ...(await tiled.entries(1))];
    expect(entries).toHaveLength(273);
    const e5 = decodeLogEntry(entries[5]!);
    expect(e5).toMatchObject({ namespace: "fill", epoch: 3 });
    const ev = await fetch(`${log.url}/evidence/${Buffer.from(e5.evidenceDigest).toString("hex")}`);
    expect(new Uint8Array(await ev.arrayBuffer())).toEqual(fleet("fill", 3).evidence);
    for (const i of [0, 100, 255, 256, 272]) {
      verifyInclusion(i, cp.size, leafHash(entries[i]!), await tiled.inclusionProof(i), cp.root);
    }
    const old = parseCheckpoint(
      parseNote(
        (await getText(`${w1.url}/${createHash("sha256").update(ORIGIN).digest("hex")}/checkpoint`)).body,
      ).text,
    );
    expect(old.size).toBe(273);
    const tree = MerkleTree.fromLeafHashes(entries.map(leafHash));
    for (const m of [1, 3, 256, 272]) {
      verifyConsistency(m, cp.size, tree.root(m), cp.root, await tiled.consistencyProof(m));
      const j = (await (await fetch(`${log.url}/consistency?from=${m}&to=${cp.size}`)).json()) as {
        proof: string[];
      };
      verifyConsistency(m, cp.size, tree.root(m), cp.root, j.proof.map(b64));
    }
    const p = (await (await fetch(`${log.url}/proof?index=7&size=200`)).json()) as { proof: string[] };
    verifyInclusion(7, 200, leafHash(entries[7]!), p.proof.map(b64), tree.root(200));
    // Full tiles are immutable; tiles beyond the published tree do not exist.
    const full = await fetch(`${log.url}/tile/0/000`);
    expect(full.headers.get("cache-control")).toContain("immutable");
    expect((await fetch(`${log.url}/tile/0/001`)).status).toBe(404);
    expect((await fetch(`${log.url}/tile/0/001.p/17`)).status).toBe(200);
    expect((await fetch(`${log.url}/tile/0/001.p/18`)).status).toBe(404);
    expect((await fetch(`${log.url}/tile/1/000.p/1`)).status).toBe(200);
    // A non-canonical tile path is no tile path: malformed.
    expect((await fetch(`${log.url}/tile/0/x000/000`)).status).toBe(400);
    expect((await fetch(`${log.url}/proof?index=7&size=300`)).status).toBe(400);
  }, 240_000); // 270 appends, each checking the evidence and waiting for two cosignatures

  it("the witness refuses a split view, a rollback, a forged signature and an unknown log", async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519);
    const signer = ed25519NoteSigner(formatSignerKey(logKey.key));
    const current = openCosignedCheckpoint((await getText(`${log.url}/checkpoint`)).body, policy).checkpoint;
    const n = current.size;
    const signed = (size: number, root: Uint8Array, origin = ORIGIN) =>
      signNote(formatCheckpoint({ origin, size, root, extensions: [] }), [signer]);
    // Split view: same size, another root, signed by the real log key.
    const fork = await signed(n, leafHash(new Uint8Array([0xee])));
    const split = await postWitness(w1.url, `old ${n}\n\n${fork}`);
    expect(split.status).toBe(422);
    // A bigger fork whose proof cannot connect to what the witness cosigned.
    const forkTree = MerkleTree.fromLeafHashes(
      Array.from({ length: n + 5 }, (_, i) => leafHash(new Uint8Array([i, 1]))),
    );
    const bigFork = formatAddCheckpointRequest({
      oldSize: n,
      proof: forkTree.consistencyProof(n, n + 5),
      checkpoint: await signed(n + 5, forkTree.root()),
    });
    expect((await postWitness(w1.url, bigFork)).status).toBe(422);
    // Rollback: a smaller tree.
    const smaller = await signed(n - 1, leafHash(new Uint8Array([1])));
    expect((await postWitness(w1.url, `old ${n}\n\n${smaller}`)).status).toBe(400);
    const stale = await postWitness(w1.url, `old ${n - 1}\n\n${smaller}`);
    expect(stale).toEqual({ status: 409, type: TLOG_SIZE_CONTENT_TYPE, body: `${n}\n` });
    // Forged: another key with the log's name.
    const other = loadOrCreateKey(join(dir.path, "forger"), "log.key", ORIGIN, SIG_ED25519);
    const forged = await signNote(formatCheckpoint({ ...current, extensions: [] }), [
      ed25519NoteSigner(formatSignerKey(other.key)),
    ]);
    expect((await postWitness(w1.url, `old ${n}\n\n${forged}`)).status).toBe(403);
    expect(
      (await postWitness(w1.url, `old 0\n\n${await signed(0, emptyRoot(), "other.example/log")}`)).status,
    ).toBe(404);
    expect((await postWitness(w1.url, "old 0\n")).status).toBe(400);
    // The witness still holds the real tree and the log goes on.
    expect(w1.service.latest(ORIGIN)?.size).toBe(n);
    const r = await submit(fleet("fleet/c", 1));
    expect(r.status).toBe(200);
    verifyLogBundle(bundleFromAdd(r.body, fleet("fleet/c", 1).artifact), policy);
  });

  it("keeps its key, checkpoint and entries across a restart, and appends go on", async () => {
    const before = (await getText(`${log.url}/checkpoint`)).body;
    await log.close();
    // Forget what the log knew of the witnesses: it must learn their size from a 409.
    const db = new Database(join(dir.path, "log", "log.sqlite"));
    db.prepare("DELETE FROM witness_sizes").run();
    db.close();
    log = await startLog();
    expect(log.service.key.vkey).toBe(logVkey);
    expect((await getText(`${log.url}/checkpoint`)).body).toBe(before);
    const size = parseCheckpoint(parseNote(before).text).size;
    const r = await submit(fleet("fleet/d", 1));
    expect(r.status).toBe(200);
    expect(r.body.index).toBe(size);
    expect(verifyLogBundle(bundleFromAdd(r.body, fleet("fleet/d", 1).artifact), policy).checkpoint.size).toBe(
      size + 1,
    );
    const again = await submit(fleet("fleet/a", 1));
    expect(again.body.index).toBe(0);
    // Epochs go on from what the database holds.
    expect((await submit(world.fleet("fleet/d", 3))).status).toBe(409);
  }, 120_000);
});

describe("the witness threshold", () => {
  it("publishes only once enough witnesses cosigned; a retry after they return succeeds", async () => {
    const dir = tempDir();
    const logVkey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).vkey;
    const w1 = await startWitnessServer(
      { dir: join(dir.path, "w1"), name: "w1.example", logs: [[ORIGIN, logVkey]], onEvent: quiet },
      "127.0.0.1",
      0,
    );
    let w2 = await startWitnessServer(
      { dir: join(dir.path, "w2"), name: "w2.example", logs: [[ORIGIN, logVkey]], onEvent: quiet },
      "127.0.0.1",
      0,
    );
    const w2Port = Number(new URL(w2.url).port);
    const w2Key = w2.service.key.vkey;
    const world = fleetWorld(
      loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey,
      { freshMembers: true },
    );
    const [f1, f2] = [world.fleet("ns", 1), world.fleet("ns", 2)];
    const log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        witnesses: [
          [w1.url, w1.service.key.vkey],
          [w2.url, w2Key],
        ],
        witnessThreshold: 2,
        namespaces: [{ namespace: "ns", submitterKey: world.submitterKey }],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
    try {
      expect((await add(log.url, f1, world.sign(f1))).status).toBe(200);
      await w2.close();
      const down = await add(log.url, f2, world.sign(f2));
      expect([down.status, down.body.code]).toEqual([503, "UNAVAILABLE"]);
      expect(parseCheckpoint(parseNote((await getText(`${log.url}/checkpoint`)).body).text).size).toBe(1);
      expect((await fetch(`${log.url}/bundle?namespace=ns&epoch=2`)).status).toBe(404);
      w2 = await startWitnessServer(
        { dir: join(dir.path, "w2"), name: "w2.example", logs: [[ORIGIN, logVkey]], onEvent: quiet },
        "127.0.0.1",
        w2Port,
      );
      // The log publishes the pending entry by itself once the witness is back.
      expect(await log.service.publishPending()).toBe(true);
      expect(parseCheckpoint(parseNote((await getText(`${log.url}/checkpoint`)).body).text).size).toBe(2);
      const retry = await add(log.url, f2, world.sign(f2));
      expect(retry.status).toBe(200);
      expect(retry.body.index).toBe(1);
      const policy = { logKey: logVkey, witnessKeys: [w1.service.key.vkey, w2Key], threshold: 2 };
      expect(verifyLogBundle(bundleFromAdd(retry.body, f2.artifact), policy).cosigners).toHaveLength(2);
    } finally {
      await log.close();
      await w1.close();
      await w2.close();
      dir.remove();
    }
  });
});

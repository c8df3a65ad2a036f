/**
 * Red team, sixth round (the vault operator, DESIGN.md §2: it serves the monitor any bytes, but holds
 * neither the log's key nor any witness's key): `bkv monitor`'s witness count.
 *
 * A cosignature/v1 signature covers "cosignature/v1\ntime T\n" and the checkpoint text: not the
 * witness's name. So a cosignature line can be copied under any other name, with that name's key ID
 * (SHA-256(name || 0x0A || 0x04 || key)[:4], computable by anyone). The client's pins refuse one
 * witness key pinned twice (pins.ts checkWitnesses), but the monitor's policy (checkPolicy, from
 * --witness-key flags or a dev folder's transparency.json) and tlog's openCosignedCheckpoint (the
 * monitor's and the transparency page's checkpoint verifier) did not: with one witness's key listed
 * under two names (a list of witnesses copied from two places, one witness renamed), a threshold of
 * 2 was met by ONE witness's cosignature, relabelled by whoever serves the checkpoint. The threshold
 * is what makes a split view need that many independent witnesses.
 *
 * Expected: a policy with one key under two names is refused (INVALID when the monitor parses its
 * flags, TLOG_BAD_KEY from the verifier), and one witness never counts twice.
 *
 * Second, the monitor's follow state: a checkpoint it verified (log key, witnesses, consistency with
 * what it saw before) became the one later checkpoints must extend only once every entry under it
 * had been read. An operator that withholds a tile for one poll (a failure the monitor reports as
 * entries.read) could then serve the log's older checkpoint, and the monitor took it as the first it
 * had seen: no checkpoint.rollback, and entries read again under the older root. Expected: once a
 * checkpoint has verified, a smaller one later in the run is a rollback.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  cosignatureSigner,
  ed25519NoteSigner,
  encodeEntriesTile,
  encodeLogEntry,
  encodeSignedRelease,
  entriesPath,
  formatCheckpoint,
  formatVerifierKey,
  generateSignerKey,
  keyId,
  leafHash,
  MerkleTree,
  openCosignedCheckpoint,
  parseNote,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  signNote,
  TlogErrorCode,
  tilePath,
} from "@bkv/tlog";
import { ErrorCode, utf8 } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPolicy } from "../src/monitor/config.js";
import type { MonitorEvent } from "../src/monitor/events.js";
import { Monitor } from "../src/monitor/follow.js";
import { parseMonitorFlags } from "../src/monitor/options.js";

const ORIGIN = "example.test/red-team-6-log";

/** The log, one real witness, and the same witness's key under a second name. */
function keys() {
  const log = generateSignerKey(ORIGIN);
  const w = generateSignerKey("example.test/w1", SIG_COSIGNATURE_V1);
  const wPub = parseVerifierKey(w.vkey).publicKey;
  const alias = formatVerifierKey({ name: "example.test/w2", type: SIG_COSIGNATURE_V1, publicKey: wPub });
  return { log, w, alias };
}

/** A checkpoint signed by the log and cosigned by the one witness, its line copied under the alias name. */
async function relabelled(k: ReturnType<typeof keys>, size: number, root: Uint8Array): Promise<string> {
  const text = formatCheckpoint({ origin: ORIGIN, size, root, extensions: [] });
  const note = await signNote(text, [
    ed25519NoteSigner(k.log.skey),
    cosignatureSigner(k.w.skey, () => 1_700_000_000),
  ]);
  const cosig = parseNote(note).signatures.find((s) => s.name === "example.test/w1")!;
  const alias = parseVerifierKey(k.alias);
  const id = keyId(alias.name, SIG_COSIGNATURE_V1, alias.publicKey);
  const raw = new Uint8Array(4 + cosig.signature.length);
  new DataView(raw.buffer).setUint32(0, id);
  raw.set(cosig.signature, 4);
  return `${note}— ${alias.name} ${Buffer.from(raw).toString("base64")}\n`;
}

describe("red team 6: the monitor's witness count and follow state", () => {
  let server: Server;
  let url: string;
  let note = "";
  /** Tiles the log serves, by path (anything else is 404). */
  let files = new Map<string, Uint8Array>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const file = files.get((req.url ?? "").slice(1));
      if (req.url === "/checkpoint") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(note);
      } else if (file !== undefined) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(file);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it("the monitor's flags refuse one witness key given twice under two names (INVALID)", () => {
    const k = keys();
    const flags = ["--log", url, "--log-key", k.log.vkey, "--witness-key", k.w.vkey];
    expect(() => parseMonitorFlags([...flags, "--witness-key", k.alias])).toThrow(
      expect.objectContaining({ code: ErrorCode.Invalid }),
    );
    expect(() => checkPolicy({ logKey: k.log.vkey, witnessKeys: [k.w.vkey, k.alias], threshold: 2 })).toThrow(
      expect.objectContaining({ code: ErrorCode.Invalid }),
    );
    // The same key twice under one name too; one key each is fine.
    expect(() =>
      checkPolicy({ logKey: k.log.vkey, witnessKeys: [k.w.vkey, k.w.vkey], threshold: 2 }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.Invalid }));
    expect(parseMonitorFlags(flags).config.policy.threshold).toBe(1);
  });

  it("the monitor refuses the log's own key as a witness, and a threshold of no witnesses (INVALID)", () => {
    const k = keys();
    const self = formatVerifierKey({
      name: "example.test/self",
      type: SIG_COSIGNATURE_V1,
      publicKey: parseVerifierKey(k.log.vkey).publicKey,
    });
    const invalid = expect.objectContaining({ code: ErrorCode.Invalid });
    expect(() => parseMonitorFlags(["--log", url, "--log-key", k.log.vkey, "--witness-key", self])).toThrow(
      invalid,
    );
    expect(() => checkPolicy({ logKey: k.log.vkey, witnessKeys: [k.w.vkey, self], threshold: 1 })).toThrow(
      invalid,
    );
    // With no witness required, the log operator alone could show the monitor its own history.
    expect(() => checkPolicy({ logKey: k.log.vkey, witnessKeys: [k.w.vkey], threshold: 0 })).toThrow(invalid);
    expect(() =>
      parseMonitorFlags([
        "--log",
        url,
        "--log-key",
        k.log.vkey,
        "--witness-key",
        k.w.vkey,
        "--witness-threshold",
        "0",
      ]),
    ).toThrow(/at least 1/);
  });

  it("the checkpoint verifier never counts one witness's cosignature twice, relabelled under a second name", async () => {
    const k = keys();
    const tree = new MerkleTree();
    tree.append(leafHash(utf8("an entry")));
    const n = await relabelled(k, 1, tree.root(1));
    // Sanity: both lines are there, and the witness really cosigned once.
    expect(parseNote(n).signatures.map((s) => s.name)).toEqual([
      ORIGIN,
      "example.test/w1",
      "example.test/w2",
    ]);
    expect(
      openCosignedCheckpoint(n, { logKey: k.log.vkey, witnessKeys: [k.w.vkey], threshold: 1 }).cosigners,
    ).toEqual(["example.test/w1"]);
    let outcome: unknown;
    try {
      outcome = openCosignedCheckpoint(n, {
        logKey: k.log.vkey,
        witnessKeys: [k.w.vkey, k.alias],
        threshold: 2,
      }).cosigners;
    } catch (e) {
      outcome = (e as { code?: string }).code;
    }
    expect(outcome).toBe(TlogErrorCode.BadKey);
  });

  it("a monitor built with such a policy does not take the relabelled checkpoint as cosigned by two witnesses", async () => {
    const k = keys();
    // An empty log: the checkpoint alone decides the poll (no tiles to read).
    note = await relabelled(k, 0, new MerkleTree().root(0));
    const events: MonitorEvent[] = [];
    const m = new Monitor(
      {
        logUrl: url,
        policy: { logKey: k.log.vkey, witnessKeys: [k.w.vkey, k.alias], threshold: 2 },
        vendorRoots: null,
        statePath: null,
        maxGuessLimit: 10,
      },
      { emit: (e) => events.push(e) },
    );
    const held = await m.poll();
    expect({ held, checkpoints: events.filter((e) => e.type === "checkpoint").length }).toEqual({
      held: false,
      checkpoints: 0,
    });
    expect(m.summary().failures.map((f) => f.check)).toEqual(["checkpoint.signatures"]);
  });

  it("a log whose entries skip an epoch or log an older epoch after a newer one fails epoch.next", async () => {
    const k = keys();
    const ns = "example.test/releases";
    const release = (epoch: number) =>
      encodeLogEntry({
        namespace: ns,
        epoch,
        artifact: encodeSignedRelease({
          namespace: ns,
          epoch,
          measurement: new Uint8Array(32).fill(epoch),
          sourceRevision: "0123456789abcdef0123456789abcdef01234567",
          buildRecipe: "npm ci && npm run build",
          time: Date.UTC(2026, 10, 1),
          signature: new Uint8Array(64),
        }),
        evidenceDigest: new Uint8Array(createHash("sha256").digest()),
      });
    // What an honest log never writes: epoch 1, then 3 (2 skipped), then 2 (older after newer).
    const entries = [release(1), release(3), release(2)];
    const tree = new MerkleTree();
    const leaves = entries.map((e) => leafHash(e));
    for (const l of leaves) tree.append(l);
    note = await signNote(
      formatCheckpoint({
        origin: ORIGIN,
        size: entries.length,
        root: tree.root(entries.length),
        extensions: [],
      }),
      [ed25519NoteSigner(k.log.skey), cosignatureSigner(k.w.skey, () => 1_700_000_000)],
    );
    files = new Map([
      [tilePath({ level: 0, index: 0, width: entries.length }), Buffer.concat(leaves)],
      [entriesPath(0, entries.length), encodeEntriesTile(entries)],
    ]);
    const m = new Monitor(
      {
        logUrl: url,
        policy: { logKey: k.log.vkey, witnessKeys: [k.w.vkey], threshold: 1 },
        vendorRoots: null,
        statePath: null,
        maxGuessLimit: 10,
      },
      { emit: () => {} },
    );
    await m.poll();
    const epochNext = m
      .summary()
      .failures.filter((f) => f.check === "epoch.next")
      .map((f) => [f.index, f.message]);
    expect(epochNext).toEqual([
      [1, `${ns} epoch 3 skips from 1; the next epoch is 2`],
      [2, `${ns} epoch 2 logged after epoch 3: an older epoch after a newer one`],
    ]);
  });

  it("following: a checkpoint verified in an earlier poll whose entries could not all be read still bars an older one (checkpoint.rollback)", async () => {
    const k = keys();
    const entries = [utf8("entry 0"), utf8("entry 1")];
    const tree = new MerkleTree();
    for (const e of entries) tree.append(leafHash(e));
    const signed = (size: number) =>
      signNote(formatCheckpoint({ origin: ORIGIN, size, root: tree.root(size), extensions: [] }), [
        ed25519NoteSigner(k.log.skey),
        cosignatureSigner(k.w.skey, () => 1_700_000_000),
      ]);
    const events: MonitorEvent[] = [];
    const m = new Monitor(
      {
        logUrl: url,
        policy: { logKey: k.log.vkey, witnessKeys: [k.w.vkey], threshold: 1 },
        vendorRoots: null,
        statePath: null,
        maxGuessLimit: 10,
      },
      { emit: (e) => events.push(e) },
    );
    // Poll 1: the log's checkpoint of 2 entries verifies (log key, witness), but its tiles are
    // withheld, so its entries cannot be read.
    note = await signed(2);
    files = new Map();
    expect(await m.poll()).toBe(false);
    expect(events.filter((e) => e.type === "checkpoint").map((e) => (e as { size: number }).size)).toEqual([
      2,
    ]);
    // Poll 2: the operator replays the log's older checkpoint of 1 entry, with its tiles.
    note = await signed(1);
    files = new Map([
      [tilePath({ level: 0, index: 0, width: 1 }), tree.root(1)],
      [entriesPath(0, 1), encodeEntriesTile([entries[0]!])],
    ]);
    await m.poll();
    expect(m.summary().failures.map((f) => f.check)).toContain("checkpoint.rollback");
  });
});

/**
 * A handovers namespace (handover-check.ts): the log appends a handover statement only if it links
 * two fleets it has logged in the namespace it serves, as the statement names them, signed by the
 * old fleet's signing key, naming a checkpoint the log had. The operator (who holds the submitter
 * key) tries a handover signed by its own key, one before the successor is logged, one naming
 * another successor or old fleet, one naming a checkpoint the log never had, one of another
 * namespace, bytes that are no handover, and evidence beside it: each is refused and nothing is
 * appended. The genuine one is appended, once.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { evidenceDigest, parseCheckpoint, parseNote, SIG_ED25519 } from "@bkv/tlog";
import { encodeSignedHandover, type Handover, handoverSignedBytes } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld, NOW, type Submission } from "./fleet-world.js";
import { add, tempDir } from "./helpers.js";

const ORIGIN = "log.example/handovers";
const FLEETS = "example.test/vault";
const HANDOVERS = "example.test/handovers";
const quiet = () => {};

describe("a handovers namespace", () => {
  const dir = tempDir();
  let log: RunningLog;
  let world: FleetWorld;
  const oldSeed = new Uint8Array(randomBytes(32));
  let old: Submission;
  let successor: Submission;
  let handover: Handover;

  const signed = (h: Handover, seed = oldSeed) =>
    encodeSignedHandover({ ...h, signature: ed25519.sign(handoverSignedBytes(h), seed) });
  const submit = (
    artifact: Uint8Array,
    evidence: Uint8Array = new Uint8Array(0),
    epoch = 1,
    namespace = HANDOVERS,
  ) => {
    const s = { namespace, epoch, artifact, evidence };
    return add(log.url, s, world.sign(s));
  };

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey, { freshMembers: true });
    log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        namespaces: [
          { namespace: FLEETS, submitterKey: world.submitterKey },
          { namespace: HANDOVERS, submitterKey: world.submitterKey, handoversOf: FLEETS },
        ],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
    old = world.fleet(FLEETS, 1, { statement: { fleetSigningKey: ed25519.getPublicKey(oldSeed) } });
    expect((await add(log.url, old, world.sign(old))).status).toBe(200);
    successor = world.fleet(FLEETS, 2);
  });

  afterAll(async () => {
    await log?.close();
    dir.remove();
  });

  it("refuses a handover to a successor not logged yet", async () => {
    const h: Handover = {
      namespace: FLEETS,
      epoch: 1,
      fleetId: old.statement.fleetId,
      successorEpoch: 2,
      successorFleetId: successor.statement.fleetId,
      successorEvidenceDigest: evidenceDigest(successor.evidence),
      checkpointSize: 1,
      checkpointRoot: new Uint8Array(32),
      time: NOW,
    };
    const r = await submit(signed(h));
    expect([r.status, r.body.code]).toEqual([422, "INVALID"]);
    expect(r.body.message).toContain("is not logged");
    expect(log.service.size).toBe(1);
  });

  it("appends the old fleet's handover naming its logged successor, once", async () => {
    const r = await add(log.url, successor, world.sign(successor));
    expect(r.status).toBe(200);
    const cp = parseCheckpoint(parseNote(r.body.checkpoint).text);
    handover = {
      namespace: FLEETS,
      epoch: 1,
      fleetId: old.statement.fleetId,
      successorEpoch: 2,
      successorFleetId: successor.statement.fleetId,
      successorEvidenceDigest: evidenceDigest(successor.evidence),
      checkpointSize: cp.size,
      checkpointRoot: cp.root,
      time: NOW,
    };
    // Every forgery first: none is appended.
    const own = new Uint8Array(randomBytes(32));
    const cases: [Uint8Array, Uint8Array | undefined, string, string][] = [
      [signed(handover, own), undefined, "SIGNATURE", "not signed by the fleet signing key"],
      [
        signed({ ...handover, successorEvidenceDigest: evidenceDigest(new Uint8Array([1])) }),
        undefined,
        "INVALID",
        "is not the one the handover names",
      ],
      [
        signed({ ...handover, successorFleetId: new Uint8Array(16).fill(7) }),
        undefined,
        "INVALID",
        "is not the one the handover names",
      ],
      [
        signed({ ...handover, fleetId: new Uint8Array(16).fill(8) }),
        undefined,
        "INVALID",
        "another fleet than the handover names",
      ],
      [
        signed({ ...handover, checkpointRoot: new Uint8Array(32).fill(9) }),
        undefined,
        "INVALID",
        "never had the checkpoint",
      ],
      [signed({ ...handover, checkpointSize: 3 }), undefined, "INVALID", "never had the checkpoint"],
      [signed({ ...handover, namespace: "elsewhere" }), undefined, "MALFORMED", "elsewhere"],
      [successor.artifact, undefined, "MALFORMED", "not a handover statement"],
      [signed(handover), new Uint8Array([1]), "MALFORMED", "evidence must be empty"],
    ];
    for (const [artifact, evidence, code, words] of cases) {
      const x = await submit(artifact, evidence);
      expect([x.status, x.body.code], words).toEqual([422, code]);
      expect(x.body.message).toContain(words);
    }
    expect(log.service.size).toBe(2);
    const ok = await submit(signed(handover));
    expect([ok.status, ok.body.index, ok.body.namespace, ok.body.epoch]).toEqual([200, 2, HANDOVERS, 1]);
    // The same handover again answers the same entry; another one for epoch 1 cannot follow it.
    expect((await submit(signed(handover))).body.index).toBe(2);
    const other = await submit(signed({ ...handover, time: NOW + 1 }));
    expect([other.status, other.body.code]).toEqual([409, "INVALID"]);
    expect(log.service.size).toBe(3);
  });

  it("a handover in the fleets namespace is no fleet", async () => {
    const r = await submit(signed(handover), undefined, 3, FLEETS);
    expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
    expect(log.service.size).toBe(3);
  });
});

/**
 * Red team, sixth round (the vault operator, DESIGN.md §2: it holds the namespace's submitter key,
 * so only the log's evidence check stands between it and an append): evidence and artifacts that
 * say something other than what the members signed, in ways add-attacks.test.ts does not name:
 * evidence with other than one signature per member in member order (fewer, one repeated, two
 * swapped, one extra), evidence with trailing bytes, an artifact whose members are the statement's
 * in another order, and an artifact with trailing bytes. Each is refused (422 BUNDLE_EVIDENCE) and
 * nothing is appended; the genuine fleet appends afterwards. All hold today.
 */
import { join } from "node:path";
import { SIG_ED25519 } from "@bkv/tlog";
import { concatBytes, decodeArtifact, decodeEvidence, encodeArtifact, encodeEvidence } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld, type Submission } from "./fleet-world.js";
import { add, getText, tempDir } from "./helpers.js";

const ORIGIN = "log.example/red-team-6";
const NS = "example.test/vault";

describe("red team 6: the log appends only evidence that is one signature per member, in order, and the statement's artifact", () => {
  const dir = tempDir();
  let log: RunningLog;
  let world: FleetWorld;

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey, { freshMembers: true });
    log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: () => {},
        namespaces: [{ namespace: NS, submitterKey: world.submitterKey }],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
  });

  afterAll(async () => {
    await log?.close();
    dir.remove();
  });

  /** The answer to a submission signed by the real submitter key, and the log's size after it. */
  const submit = async (s: Omit<Submission, "statement">) => {
    const r = await add(log.url, s, world.sign(s));
    return { status: r.status, code: r.body.code, size: log.service.size };
  };

  it("fewer, repeated, swapped or extra member signatures, trailing bytes after the evidence, reordered members or trailing bytes in the artifact: 422, nothing appended", async () => {
    const f = world.fleet(NS, 1);
    const ev = decodeEvidence(f.evidence);
    const [s1, s2, s3] = ev.signatures as [Uint8Array, Uint8Array, Uint8Array];
    const evidences = [
      encodeEvidence({ ...ev, signatures: [s1, s2] }),
      encodeEvidence({ ...ev, signatures: [s1, s2, s1] }),
      encodeEvidence({ ...ev, signatures: [s2, s1, s3] }),
      encodeEvidence({ ...ev, signatures: [s1, s2, s3, s3] }),
      concatBytes(f.evidence, new Uint8Array([0])),
    ];
    for (const evidence of evidences)
      expect(await submit({ ...f, evidence })).toEqual({ status: 422, code: "BUNDLE_EVIDENCE", size: 0 });
    const a = decodeArtifact(f.artifact);
    const [m1, m2, m3] = a.members;
    const artifacts = [
      encodeArtifact({ ...a, members: [m2!, m1!, m3!] }),
      concatBytes(f.artifact, new Uint8Array([0])),
    ];
    for (const artifact of artifacts)
      expect(await submit({ ...f, artifact })).toEqual({ status: 422, code: "BUNDLE_EVIDENCE", size: 0 });
    expect((await getText(`${log.url}/checkpoint`)).status).toBe(404);
    // The genuine submission of the same fleet appends at epoch 1.
    expect(await submit(f)).toEqual({ status: 200, code: undefined, size: 1 });
  });
});

/**
 * A releases namespace: release entries (measurement, source revision, build recipe) signed by the
 * release key the log registers for the namespace, appended to the same log as the fleets. A
 * release not signed by the release key (another key, or altered after signing), one that names
 * another epoch, one with evidence, a fleet in the releases namespace, a release in a fleet
 * namespace, and one without the submitter's signature are refused; nothing is appended. The log
 * serves a measurement's release with its proof (GET /release/<hex>, GET /bundle?releases=R).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  decodeSignedRelease,
  encodeSignedRelease,
  fromBase64,
  logEntryLeafHash,
  parseCheckpoint,
  parseNote,
  type Release,
  releaseSignedBytes,
  SIG_ED25519,
  verifyInclusion,
  verifyRelease,
} from "@bkv/tlog";
import type { ReleaseBundleJson } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld, NOW } from "./fleet-world.js";
import { add, tempDir } from "./helpers.js";

const ORIGIN = "log.example/releases";
const FLEETS = "example.test/vault";
const RELEASES = "example.test/releases";
const quiet = () => {};

describe("a releases namespace", () => {
  const dir = tempDir();
  let log: RunningLog;
  let world: FleetWorld;
  const releaseSeed = new Uint8Array(randomBytes(32));
  const releaseKey = ed25519.getPublicKey(releaseSeed);

  const release = (epoch: number, o: Partial<Release> = {}): Release => ({
    namespace: RELEASES,
    epoch,
    measurement: world.measurement,
    sourceRevision: "0123456789abcdef0123456789abcdef01234567",
    buildRecipe: "npm ci && npm run build; bkv measure",
    time: NOW,
    ...o,
  });
  const signed = (r: Release, seed = releaseSeed) =>
    encodeSignedRelease({ ...r, signature: ed25519.sign(releaseSignedBytes(r), seed) });
  const submit = (
    epoch: number,
    artifact: Uint8Array,
    evidence: Uint8Array = new Uint8Array(0),
    namespace = RELEASES,
  ) => {
    const s = { namespace, epoch, artifact, evidence };
    return add(log.url, s, world.sign(s));
  };

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey);
    log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        namespaces: [
          { namespace: FLEETS, submitterKey: world.submitterKey },
          { namespace: RELEASES, submitterKey: world.submitterKey, releaseKey },
        ],
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

  it("appends a release signed by the release key, beside the fleets, and serves it", async () => {
    const r = await submit(1, signed(release(1)));
    expect([r.status, r.body.index, r.body.epoch]).toEqual([200, 0, 1]);
    const f = world.fleet(FLEETS, 1);
    expect((await add(log.url, f, world.sign(f))).status).toBe(200);
    const b = (await (await fetch(`${log.url}/bundle?namespace=${encodeURIComponent(RELEASES)}`)).json()) as {
      artifact: string;
    };
    const served = decodeSignedRelease(fromBase64(b.artifact)!);
    expect(served).toMatchObject({ namespace: RELEASES, epoch: 1, buildRecipe: release(1).buildRecipe });
    expect(served.measurement).toEqual(world.measurement);
    expect(verifyRelease(served, releaseKey)).toBe(true);
  });

  it("refuses releases the release key did not sign as they are, and appends nothing", async () => {
    const cases: [Uint8Array, Uint8Array | undefined, number, string][] = [
      // Signed by another key (the operator's own).
      [signed(release(2), new Uint8Array(randomBytes(32))), undefined, 422, "SIGNATURE"],
      // Altered after signing: another measurement under the real signature.
      [
        encodeSignedRelease({
          ...release(2, { measurement: new Uint8Array(32).fill(1) }),
          signature: ed25519.sign(releaseSignedBytes(release(2)), releaseSeed),
        }),
        undefined,
        422,
        "SIGNATURE",
      ],
      // A genuine release for epoch 3 submitted as epoch 2.
      [signed(release(3)), undefined, 422, "MALFORMED"],
      // With evidence.
      [signed(release(2)), new Uint8Array([1]), 422, "MALFORMED"],
      // A fleet artifact in the releases namespace.
      [world.fleet(RELEASES, 2).artifact, undefined, 422, "MALFORMED"],
    ];
    for (const [artifact, evidence, status, code] of cases) {
      const r = await submit(2, artifact, evidence);
      expect([r.status, r.body.code]).toEqual([status, code]);
    }
    // A release in a fleet namespace is no fleet.
    const inFleets = signed(release(2, { namespace: FLEETS }));
    expect((await submit(2, inFleets, undefined, FLEETS)).body.code).toBe("BUNDLE_EVIDENCE");
    // Without the submitter's signature.
    const unsigned = await add(log.url, {
      namespace: RELEASES,
      epoch: 2,
      artifact: signed(release(2)),
      evidence: new Uint8Array(0),
    });
    expect(unsigned.body.code).toBe("SUBMITTER_SIGNATURE");
    expect(log.service.size).toBe(2);
    expect((await submit(2, signed(release(2)))).status).toBe(200);
  });

  it("serves the release of a measurement with its proof, alone or beside the fleet's bundle at one checkpoint", async () => {
    const hex = Buffer.from(world.measurement).toString("hex");
    const get = async (path: string) => {
      const res = await fetch(`${log.url}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const r = await get(`/release/${hex}?namespace=${encodeURIComponent(RELEASES)}`);
    expect(r.status).toBe(200);
    const rel = r.body as unknown as ReleaseBundleJson;
    // The highest epoch releasing it (epochs 1 and 2 both do), proven against the latest checkpoint.
    expect([rel.namespace, rel.epoch]).toEqual([RELEASES, 2]);
    const cp = parseCheckpoint(parseNote(rel.checkpoint).text);
    const artifact = fromBase64(rel.artifact)!;
    verifyInclusion(
      rel.index,
      cp.size,
      logEntryLeafHash({
        namespace: RELEASES,
        epoch: 2,
        artifact,
        evidenceDigest: fromBase64(rel.evidenceDigest)!,
      }),
      rel.inclusionProof.map((p) => fromBase64(p)!),
      cp.root,
    );
    expect(verifyRelease(decodeSignedRelease(artifact), releaseKey)).toBe(true);

    // With the fleet's bundle: the same release, against the very same checkpoint.
    const b = await get(
      `/bundle?namespace=${encodeURIComponent(FLEETS)}&releases=${encodeURIComponent(RELEASES)}`,
    );
    expect(b.status).toBe(200);
    expect(b.body.release).toEqual(rel);
    expect(b.body.checkpoint).toBe(rel.checkpoint);
    // No release there (another measurement, or no releases namespace): the bundle comes without one.
    const plain = await get(
      `/bundle?namespace=${encodeURIComponent(FLEETS)}&releases=${encodeURIComponent(FLEETS)}`,
    );
    expect([plain.status, "release" in plain.body]).toEqual([200, false]);

    const other = "11".repeat(32);
    expect((await get(`/release/${other}?namespace=${encodeURIComponent(RELEASES)}`)).status).toBe(404);
    expect((await get(`/release/${hex}?namespace=${encodeURIComponent(FLEETS)}`)).status).toBe(404);
    expect((await get(`/release/${hex}`)).status).toBe(400);
    expect((await get(`/release/xyz?namespace=${encodeURIComponent(RELEASES)}`)).body.code).toBe("MALFORMED");
  });
});

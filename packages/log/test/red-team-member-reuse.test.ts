/**
 * Red team (operator): an HSM takes part in one genesis in its life (its NVRAM records it; wiping
 * NVRAM gives it new keys), so one member key in the evidence of two fleets proves that an identity
 * outlived its NVRAM: a rollback, a cloned folder or token, or an "unused" marker written back
 * (hsm-software/test/red-team-one-genesis.test.ts shows the software platform doing exactly this).
 * Each fleet's evidence audits clean on its own, and nothing compares members across fleets: the
 * log appends the next epoch with the very same members, and `bkv monitor` reports them as
 * "unchanged" members rather than as an alarm. The log sees every fleet it appends and could
 * refuse a member key it has already logged.
 */
import { join } from "node:path";
import { SIG_ED25519 } from "@bkv/tlog";
import { attestationSignedBytes } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld, type Submission } from "./fleet-world.js";
import { add, tempDir } from "./helpers.js";

const ORIGIN = "log.example/red-team-member-reuse";
const NS = "example.test/vault";

describe("red team: one HSM in two fleets' evidence", () => {
  const dir = tempDir();
  let log: RunningLog;
  let world: FleetWorld;

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey);
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

  it("the log does not append a fleet whose members already signed another fleet's genesis", async () => {
    const first = world.fleet(NS, 1);
    expect((await add(log.url, first, world.sign(first))).status).toBe(200);
    // Epoch 2: a new fleet id, new fleet keys, new challenges, and the same three member identities.
    const second = world.fleet(NS, 2);
    expect(second.statement.members.map((m) => m.signKey)).toEqual(
      first.statement.members.map((m) => m.signKey),
    );
    const r = await add(log.url, second, world.sign(second));
    // Today: 200, appended.
    expect(r.status).not.toBe(200);
    expect(log.service.size).toBe(1);
  });
});

describe("the log's member index: one HSM, one genesis, across namespaces and restarts", () => {
  const dir = tempDir();
  const OTHER = "example.test/other";
  let world: FleetWorld;
  let log: RunningLog;
  let first: Submission;
  const open = () =>
    startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: () => {},
        namespaces: [
          { namespace: NS, submitterKey: world.submitterKey },
          { namespace: OTHER, submitterKey: world.submitterKey },
        ],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519).publicKey;
    world = fleetWorld(logKey);
    log = await open();
  });

  afterAll(async () => {
    await log?.close();
    dir.remove();
  });

  it("refuses the members of a logged fleet in another namespace, naming the member and the entry", async () => {
    first = world.fleet(NS, 1);
    expect((await add(log.url, first, world.sign(first))).status).toBe(200);
    const fleetId = Buffer.from(first.statement.fleetId).toString("hex");
    // Two new HSMs and one of epoch 1's, in another namespace.
    const members = [...world.newMembers().slice(0, 2), world.members[2]!];
    const other = world.fleet(OTHER, 1, { members });
    const r = await add(log.url, other, world.sign(other));
    expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
    expect(r.body.message).toMatch(
      new RegExp(
        `member 3 \\(signing key [0-9a-f]{16}…\\): its signing and agreement keys are member keys of fleet ${fleetId} \\(entry 0: ${NS} epoch 1\\)`,
      ),
    );
    expect(r.body.message).not.toContain("member 1 ");
    expect(log.service.size).toBe(1);
  });

  it("refuses a member whose agreement key alone is a logged member's", async () => {
    // A new signing key, attested by the vendor with epoch 1's member 1's agreement key.
    const { signSeed, attestation: a } = world.memberOf(world.vendorSeed);
    const body = {
      platform: a.platform,
      vendor: a.vendor,
      signKey: a.signKey,
      agreeKey: world.members[0]!.attestation.agreeKey,
      measurement: a.measurement,
      properties: a.properties,
    };
    const twin = {
      signSeed,
      attestation: { ...body, signature: ed25519.sign(attestationSignedBytes(body), world.vendorSeed) },
    };
    const [m1, , m3] = world.newMembers();
    const f = world.fleet(OTHER, 1, { members: [m1!, twin, m3!] });
    const r = await add(log.url, f, world.sign(f));
    expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
    expect(r.body.message).toContain("member 2 (signing key");
    expect(r.body.message).toContain(`its agreement key is a member key of fleet`);
    expect(r.body.message).not.toContain("member 1 ");
    expect(log.service.size).toBe(1);
  });

  it("answers the very same submission again (idempotent), and appends new HSMs", async () => {
    const again = await add(log.url, first, world.sign(first));
    expect([again.status, again.body.index]).toEqual([200, 0]);
    const fresh = world.fleet(OTHER, 1, { members: world.newMembers() });
    const r = await add(log.url, fresh, world.sign(fresh));
    expect([r.status, r.body.index]).toEqual([200, 1]);
    const same = await add(log.url, fresh, world.sign(fresh));
    expect([same.status, same.body.index]).toEqual([200, 1]);
  });

  it("rebuilds its index from the database when it opens again", async () => {
    await log.close();
    log = await open();
    const f = world.fleet(NS, 2);
    const r = await add(log.url, f, world.sign(f));
    expect([r.status, r.body.code]).toEqual([422, "BUNDLE_EVIDENCE"]);
    expect(r.body.message).toContain(`(entry 0: ${NS} epoch 1)`);
    expect(log.service.size).toBe(2);
  });
});

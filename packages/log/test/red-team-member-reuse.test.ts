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
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKey, type RunningLog, startLogServer } from "../src/index.js";
import { type FleetWorld, fleetWorld } from "./fleet-world.js";
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

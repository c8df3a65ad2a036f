/**
 * `bkv monitor` against the real log and witness processes (packages/log/dist) on 127.0.0.1, with
 * fleets from real in-memory genesis ceremonies (SimFleet) attested by TEST_VENDOR. The command
 * runs in-process (monitorCommand) except --follow, which runs the built CLI and is stopped with
 * SIGINT.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newVendorRoot, TEST_VENDOR, writeVendorRoot } from "@bkv/hsm-software";
import { encodeSignedRelease, type Release, releaseSignedBytes } from "@bkv/tlog";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../src/args.js";
import { monitorCommand } from "../src/commands/monitor.js";
import type { FleetEvent, MonitorEvent, SummaryEvent } from "../src/monitor/events.js";
import {
  addEntry,
  addFleet,
  artifactOf,
  BKV,
  ensureBuilt,
  FROZEN_RELEASE_HEX,
  FROZEN_RELEASE_SEED,
  fleetFor,
  heldFleetFor,
  heldMembers,
  killAll,
  makeFleet,
  newLogKeys,
  type RunningLog,
  startLog,
  strayWitnessKey,
  type TestFleet,
} from "./monitor-helpers.js";

const NS = "demo";

let work: string;
let vendorPub: string;
let fleetA: TestFleet;
let fleetB: TestFleet;
let fleetC: TestFleet;
const logs: RunningLog[] = [];

beforeAll(async () => {
  ensureBuilt("log", "log-main.js");
  work = mkdtempSync(join(tmpdir(), "bkv-monitor-test-"));
  vendorPub = join(work, "vendor-root.pub");
  writeVendorRoot(TEST_VENDOR, join(work, "vendor-root.key"), vendorPub);
  fleetA = await makeFleet(1, 5);
  fleetB = await makeFleet(2, 10);
  fleetC = await makeFleet(3, 5);
}, 120_000);

afterAll(async () => {
  await Promise.all(logs.map((l) => l.stop()));
  killAll();
  rmSync(work, { recursive: true, force: true });
});

async function newLog(name: string, keys = newLogKeys()): Promise<RunningLog> {
  const l = await startLog(join(work, name), keys);
  logs.push(l);
  return l;
}

function logFlags(l: RunningLog): string[] {
  return ["--log", l.url, "--log-key", l.keys.logKey, "--witness-key", l.keys.witnessKey];
}

async function monitor(...args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await monitorCommand(args, {
    write: (s) => {
      out += s;
    },
  });
  return { code, out };
}

function events(out: string): MonitorEvent[] {
  return out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as MonitorEvent);
}

const fleetsOf = (ev: MonitorEvent[]) => ev.filter((e): e is FleetEvent => e.type === "fleet");
const summaryOf = (ev: MonitorEvent[]) => ev.find((e): e is SummaryEvent => e.type === "summary")!;

describe("a clean log with two epochs of one namespace", () => {
  let log: RunningLog;
  beforeAll(async () => {
    log = await newLog("clean");
    await addFleet(log.url, NS, 1, fleetA);
    await addFleet(log.url, NS, 2, fleetB);
  });

  it("reports both fleets and what changed (human-readable)", async () => {
    const r = await monitor(...logFlags(log), "--vendor-root", vendorPub, "--allow-test-roots");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`log ${log.keys.origin}: checkpoint size 2`);
    expect(r.out).toContain("cosigned by witness.example/w1 (1 required)");
    expect(r.out).toContain("entry 0: demo epoch 1");
    expect(r.out).toContain("first epoch of namespace demo");
    expect(r.out).toContain("entry 1: demo epoch 2");
    expect(r.out).toContain("changes since epoch 1 (entry 0):");
    expect(r.out).toMatch(/policy\s+guess limit 5 → 10/);
    expect(r.out).toMatch(/key vault-hpke\s+[0-9a-f]{16}… → [0-9a-f]{16}…/);
    expect(r.out).toMatch(/key fleet-signing/);
    expect(r.out).toMatch(/member added\s+memory [0-9a-f]{16}…/);
    expect(r.out).toMatch(/member removed\s+memory/);
    const b = await fleetFor(log.url, NS, 2, fleetB);
    expect(r.out).toContain(`fleet        ${Buffer.from(b.statement.fleetId).toString("hex")}`);
    // Each fleet's evidence digest, as the README says (what GET <log>/evidence/<digest> serves).
    const digestB = createHash("sha256").update(b.evidence).digest("hex");
    expect(r.out).toContain(`evidence     sha256 ${digestB}`);
    // What each fleet's genesis froze for its successors.
    expect(r.out).toContain(`successors   code released under ${FROZEN_RELEASE_HEX}, guess limit at most 5`);
    expect(r.out).not.toContain("NOT checked");
    expect(r.out).toContain("MONITOR PASSED: checkpoint size 2; 2 entries checked");
  });

  it("--json: one JSON object per report", async () => {
    const r = await monitor(...logFlags(log), "--vendor-root", vendorPub, "--allow-test-roots", "--json");
    expect(r.code).toBe(0);
    const ev = events(r.out);
    expect(ev[0]).toMatchObject({ type: "checkpoint", size: 2, cosigners: ["witness.example/w1"] });
    const [e1, e2] = fleetsOf(ev);
    const a = await fleetFor(log.url, NS, 1, fleetA);
    expect(e1).toMatchObject({ index: 0, namespace: NS, epoch: 1, ok: true, diff: null, failures: [] });
    expect(e1!.fleet).toMatchObject({
      fleetId: Buffer.from(a.statement.fleetId).toString("hex"),
      measurement: Buffer.from(a.statement.measurement).toString("hex"),
      policy: { guessLimit: 5, n: 3, quorum: 2 },
      notBefore: "2025-01-01T00:00:00.000Z",
      evidenceDigest: createHash("sha256").update(a.evidence).digest("hex"),
      successors: { releaseKey: FROZEN_RELEASE_HEX, maxGuessLimit: 5 },
    });
    expect(Object.keys(e1!.fleet!.keys).sort()).toEqual(["fleet-signing", "vault-hpke"]);
    expect(e1!.fleet!.members.map((m) => m.platform)).toEqual(["memory", "memory", "memory"]);
    expect(e1!.passed).toEqual(
      expect.arrayContaining([
        "evidence.digest",
        "bundle.signature",
        "bundle.inclusion",
        "evidence.artifact",
        "audit.attestation.1",
        "audit.signature.3",
      ]),
    );
    expect(e2!.diff).toMatchObject({
      previousEpoch: 1,
      policy: [{ field: "guess limit", from: 5, to: 10 }],
      measurement: null,
    });
    expect(e2!.diff!.keys.changed.map((k) => k.role).sort()).toEqual(["fleet-signing", "vault-hpke"]);
    expect(e2!.diff!.members.added).toHaveLength(3);
    expect(e2!.diff!.members.removed).toHaveLength(3);
    expect(summaryOf(ev)).toMatchObject({
      ok: true,
      size: 2,
      entries: 2,
      vendorRootChecked: true,
      failures: [],
    });
  });

  it("with --release-key, each fleet must have frozen that key: the operator's own fails by name", async () => {
    const same = events((await monitor(...logFlags(log), "--release-key", FROZEN_RELEASE_HEX, "--json")).out);
    expect(summaryOf(same).ok).toBe(true);
    for (const f of fleetsOf(same)) expect(f.passed).toContain("audit.statement.release-key");
    const other = Buffer.from(ed25519.getPublicKey(new Uint8Array(32).fill(0x53))).toString("hex");
    const r = await monitor(...logFlags(log), "--release-key", other);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `FAIL audit.statement.release-key: the fleet froze release key ${FROZEN_RELEASE_HEX}, not ${other}`,
    );
  });

  it("each fleet must have frozen the monitor's witness policy: one frozen to other witnesses fails by name", async () => {
    const same = events((await monitor(...logFlags(log), "--json")).out);
    for (const f of fleetsOf(same)) expect(f.passed).toContain("audit.statement.witnesses");
    // The monitor trusts one more witness (1 of 2): the checkpoint still holds, but these fleets froze
    // only the log's one witness, so each would accept a successor under another policy than trusted.
    const r = await monitor(...logFlags(log), "--witness-key", strayWitnessKey(), "--witness-threshold", "1");
    expect(r.code).toBe(1);
    expect(r.out).not.toContain("FAIL checkpoint.signatures");
    expect(r.out).toMatch(
      /FAIL audit\.statement\.witnesses: the fleet froze witnesses 1 of witness\.example\/w1 /,
    );
    expect(r.out).toContain("MONITOR FAILED: 2 failed checks: entry 0 audit.statement.witnesses");
  });

  it("without --vendor-root says attestations were not checked, and passes", async () => {
    const r = await monitor(...logFlags(log));
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      "NOTE no vendor root given: member attestations are NOT checked against a vendor root",
    );
    expect(r.out).toContain("attestations NOT checked against a vendor root (3 skipped)");
    // It says what it did not check: not "every check holds".
    expect(r.out).toContain("MONITOR PASSED (INCOMPLETE): checkpoint size 2; 2 entries checked");
    expect(r.out).toContain("every check run holds");
    expect(r.out).not.toContain("every check holds");
    const j = events((await monitor(...logFlags(log), "--json")).out);
    expect(fleetsOf(j)[0]!.skipped).toEqual([
      "audit.attestation.1",
      "audit.attestation.2",
      "audit.attestation.3",
    ]);
    expect(summaryOf(j).vendorRootChecked).toBe(false);
  });

  it("fails attestations under another vendor root, and a guess limit above --max-guess-limit", async () => {
    const other = join(work, "other-vendor.pub");
    writeVendorRoot(newVendorRoot(), join(work, "other-vendor.key"), other);
    const r = await monitor(...logFlags(log), "--vendor-root", other);
    expect(r.code).toBe(1);
    expect(r.out).toContain("FAIL audit.attestation.1: memory: not signed by any trusted vendor root");
    expect(r.out).toMatch(/MONITOR FAILED: 6 failed checks: entry 0 audit\.attestation\.1/);

    // The test vendor root counts only with --allow-test-roots (development).
    const t = await monitor(...logFlags(log), "--vendor-root", vendorPub);
    expect(t.code).toBe(1);
    expect(t.out).toContain("a test vendor root (development only; not allowed here)");

    const g = await monitor(
      ...logFlags(log),
      "--vendor-root",
      vendorPub,
      "--allow-test-roots",
      "--max-guess-limit",
      "5",
    );
    expect(g.code).toBe(1);
    expect(g.out).toContain("entry 1: demo epoch 2 (new) FAILED");
    expect(g.out).toContain("FAIL audit.policy.guess-limit: guess limit 10, above the 5 accepted");
    expect(g.out).toContain("MONITOR FAILED: 1 failed check: entry 1 audit.policy.guess-limit");
  });

  it("fails a checkpoint with fewer witness cosignatures than the threshold", async () => {
    const r = await monitor(
      ...logFlags(log),
      "--witness-key",
      strayWitnessKey(),
      "--witness-threshold",
      "2",
      "--vendor-root",
      vendorPub,
      "--allow-test-roots",
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      "FAIL checkpoint.signatures: the checkpoint does not verify: 1 witness cosignatures, 2 required",
    );
    expect(r.out).not.toContain("entry 0");
    expect(r.out).toContain("MONITOR FAILED: 1 failed check: checkpoint.signatures");
    // Two keys, the default threshold is both.
    expect((await monitor(...logFlags(log), "--witness-key", strayWitnessKey())).code).toBe(1);
    // A threshold above the keys given is a usage error.
    await expect(monitor(...logFlags(log), "--witness-threshold", "2")).rejects.toThrow(UsageError);
  });

  it("fails a checkpoint not signed by the pinned log key", async () => {
    const other = newLogKeys(log.keys.origin);
    const r = await monitor(
      "--log",
      log.url,
      "--log-key",
      other.logKey,
      "--witness-key",
      log.keys.witnessKey,
    );
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /FAIL checkpoint\.signatures: the checkpoint does not verify: .*not signed by the log/,
    );
  });
});

describe("an entry whose evidence is another fleet's", () => {
  it("is reported as failed with its index", async () => {
    const log = await newLog("mismatch");
    await addFleet(log.url, NS, 1, fleetA);
    // Fleet A's artifact for epoch 2 with fleet B's (valid) evidence: the log refuses it...
    const [a2, b2] = [await fleetFor(log.url, NS, 2, fleetA), await fleetFor(log.url, NS, 2, fleetB)];
    await expect(addEntry(log.url, NS, 2, artifactOf(a2), b2.evidence)).rejects.toThrow(/422 .*fleet id/);
    // ...so a dishonest log operator appends it behind its log's back; the monitor catches it.
    await log.appendUnchecked(NS, 2, artifactOf(a2), b2.evidence);
    const state = join(work, "mismatch-state.json");
    const r = await monitor(
      ...logFlags(log),
      "--vendor-root",
      vendorPub,
      "--allow-test-roots",
      "--state",
      state,
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain("entry 1: demo epoch 2 (new) FAILED");
    expect(r.out).toMatch(
      /FAIL evidence\.artifact: the evidence's genesis statement \(fleet [0-9a-f]{32}\) differs from the artifact in: fleet id, vault key, fleet signing key, policy, members/,
    );
    expect(r.out).toContain("MONITOR FAILED: 1 failed check: entry 1 evidence.artifact");
    expect(r.out).toContain("checkpoint not saved (a check failed)");
    expect(() => readFileSync(state)).toThrow();

    const j = events(
      (await monitor(...logFlags(log), "--vendor-root", vendorPub, "--allow-test-roots", "--json")).out,
    );
    const [ok, bad] = fleetsOf(j);
    expect(ok!.ok).toBe(true);
    expect(bad).toMatchObject({ index: 1, ok: false, failures: [{ check: "evidence.artifact" }] });
    expect(summaryOf(j)).toMatchObject({ ok: false, failures: [{ check: "evidence.artifact", index: 1 }] });
  });
});

describe("two fleets at one epoch", () => {
  it("the log refuses the second; appended behind its back, the monitor fails epoch.first", async () => {
    const log = await startLog(join(work, "sibling"), newLogKeys(), [NS]);
    logs.push(log);
    const first = heldFleetFor(log.url, NS, 1, heldMembers());
    const second = heldFleetFor(log.url, NS, 1, heldMembers());
    await addEntry(log.url, NS, 1, artifactOf(first), first.evidence);
    await expect(addEntry(log.url, NS, 1, artifactOf(second), second.evidence)).rejects.toThrow(/409/);
    await log.appendUnchecked(NS, 1, artifactOf(second), second.evidence, 1000);
    const flags = [...logFlags(log), "--vendor-root", vendorPub, "--allow-test-roots"];
    const r = await monitor(...flags);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `FAIL epoch.first: entry 0 is already a fleet at ${NS} epoch 1: two fleets at one epoch`,
    );
    const [e0, e1] = fleetsOf(events((await monitor(...flags, "--json")).out));
    expect(e0!.passed).toContain("epoch.first");
    expect(e1!.failures.map((f) => f.check)).toContain("epoch.first");
    // Fresh HSMs: only the epoch is wrong with the second fleet.
    expect(e1!.passed).toContain("members.fresh");
  });
});

describe("one HSM in two fleets (a clone or a rolled-back NVRAM)", () => {
  it("the log refuses the second fleet; appended behind its back, the monitor fails members.fresh", async () => {
    const log = await startLog(join(work, "reuse"), newLogKeys(), [NS, "other"]);
    logs.push(log);
    const members = heldMembers();
    const first = heldFleetFor(log.url, NS, 1, members);
    await addEntry(log.url, NS, 1, artifactOf(first), first.evidence);
    // The same three HSMs sign another genesis, for the next epoch and for another namespace.
    const again = heldFleetFor(log.url, NS, 2, members);
    const elsewhere = heldFleetFor(log.url, "other", 1, members);
    const firstId = Buffer.from(first.statement.fleetId).toString("hex");
    for (const [ns, epoch, f] of [
      [NS, 2, again],
      ["other", 1, elsewhere],
    ] as const) {
      await expect(addEntry(log.url, ns, epoch, artifactOf(f), f.evidence)).rejects.toThrow(
        new RegExp(
          `422 .*member 1 \\(signing key [0-9a-f]{16}…\\): its signing and agreement keys are member keys of fleet ${firstId} \\(entry 0: demo epoch 1\\)`,
        ),
      );
    }
    // Resubmitting the first fleet stays idempotent.
    expect((await addEntry(log.url, NS, 1, artifactOf(first), first.evidence)).index).toBe(0);

    // A dishonest operator writes both into the log's database; the log publishes them.
    await log.appendUnchecked(NS, 2, artifactOf(again), again.evidence);
    await log.appendUnchecked("other", 1, artifactOf(elsewhere), elsewhere.evidence);
    const flags = [...logFlags(log), "--vendor-root", vendorPub, "--allow-test-roots"];
    const r = await monitor(...flags);
    expect(r.code).toBe(1);
    expect(r.out).toContain("entry 1: demo epoch 2 (new) FAILED");
    expect(r.out).toContain("entry 2: other epoch 1 (new) FAILED");
    expect(r.out).toMatch(/members\s+the SAME HSMs as before: NOT new HSMs/);
    expect(r.out).toContain(
      "REUSED HSMs: members of this genesis already took part in an earlier fleet's genesis",
    );
    expect(r.out).toMatch(
      /member 2 \(software [0-9a-f]{16}…\): its signing and agreement keys were member keys of fleet [0-9a-f]{16}… at entry 0 \(demo epoch 1\)/,
    );
    expect(r.out).toContain(
      `FAIL members.fresh: an HSM takes part in one genesis in its life, yet member 1's signing and agreement keys are member keys of fleet ${firstId} (entry 0: demo epoch 1)`,
    );
    expect(r.out).toContain("MONITOR FAILED: 2 failed checks: entry 1 members.fresh, entry 2 members.fresh");

    const ev = events((await monitor(...flags, "--json")).out);
    const [e0, e1, e2] = fleetsOf(ev);
    expect(e0).toMatchObject({ ok: true, reusedMembers: [] });
    expect(e0!.passed).toContain("members.fresh");
    for (const e of [e1!, e2!]) {
      expect(e).toMatchObject({ ok: false, failures: [{ check: "members.fresh" }] });
      // Each member's signing and agreement keys, each first seen in entry 0.
      expect(e.reusedMembers.map((m) => [m.member, m.key])).toEqual([
        [1, "sign"],
        [1, "agree"],
        [2, "sign"],
        [2, "agree"],
        [3, "sign"],
        [3, "agree"],
      ]);
      expect(e.reusedMembers.every((m) => m.earlier.index === 0 && m.earlier.fleetId === firstId)).toBe(true);
    }
    expect(summaryOf(ev)).toMatchObject({
      ok: false,
      failures: [
        { check: "members.fresh", index: 1 },
        { check: "members.fresh", index: 2 },
      ],
    });
  });
});

describe("a releases namespace", () => {
  it("reports release entries as releases, their signature checked under --release-key, else unchecked", async () => {
    // The deployment's release key: the one its fleets froze at genesis.
    const seed = FROZEN_RELEASE_SEED;
    const releaseKey = FROZEN_RELEASE_HEX;
    const l = await startLog(
      join(work, "releases"),
      newLogKeys(),
      [NS, `${NS}-releases`],
      ["--release-key", `${NS}-releases=${releaseKey}`],
    );
    logs.push(l);
    await addFleet(l.url, NS, 1, fleetA);
    const measurement = (await fleetFor(l.url, NS, 1, fleetA)).statement.measurement;
    const r: Release = {
      namespace: `${NS}-releases`,
      epoch: 1,
      measurement,
      sourceRevision: "0123456789abcdef0123456789abcdef01234567",
      buildRecipe: "npm ci && npm run build (esbuild 0.28.2)",
      time: Date.UTC(2026, 10, 1),
    };
    const artifact = encodeSignedRelease({ ...r, signature: ed25519.sign(releaseSignedBytes(r), seed) });
    await addEntry(l.url, `${NS}-releases`, 1, artifact, new Uint8Array(0));
    const base = [...logFlags(l), "--vendor-root", vendorPub, "--allow-test-roots"];

    const unchecked = await monitor(...base);
    expect(unchecked.code).toBe(0);
    expect(unchecked.out).toContain("entry 1: demo-releases epoch 1");
    expect(unchecked.out).toContain(`release      measurement ${Buffer.from(measurement).toString("hex")}`);
    expect(unchecked.out).toContain("source       0123456789abcdef0123456789abcdef01234567");
    expect(unchecked.out).toContain("recipe       npm ci && npm run build (esbuild 0.28.2)");
    expect(unchecked.out).toContain("signature NOT checked (no release key given)");
    expect(unchecked.out).not.toContain("FAIL");

    const checked = events((await monitor(...base, "--release-key", releaseKey, "--json")).out);
    const [, rel] = fleetsOf(checked);
    expect(rel).toMatchObject({
      index: 1,
      ok: true,
      fleet: null,
      release: { measurement: Buffer.from(measurement).toString("hex"), signature: "verified" },
      skipped: [],
    });
    expect(rel!.passed).toEqual(
      expect.arrayContaining([
        "release.decode",
        "release.epoch",
        "epoch.next",
        "release.evidence",
        "release.signature",
      ]),
    );
    expect(summaryOf(checked).ok).toBe(true);

    const other = Buffer.from(ed25519.getPublicKey(new Uint8Array(32).fill(8))).toString("hex");
    const wrong = await monitor(...base, "--release-key", other);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain("FAIL release.signature: the release is not signed by the given release key");
    await expect(monitor(...base, "--release-key", "zz")).rejects.toThrow(UsageError);
  });
});

describe("the state file", () => {
  it("catches a log that rolled back or forked, and accepts one that grew", async () => {
    const keys = newLogKeys("log.example/forked");
    const main = await newLog("state-main", keys);
    await addFleet(main.url, NS, 1, fleetA);
    await addFleet(main.url, NS, 2, fleetB);
    const state = join(work, "state.json");
    const flags = (l: RunningLog) => [
      ...logFlags(l),
      "--vendor-root",
      vendorPub,
      "--allow-test-roots",
      "--state",
      state,
    ];

    const first = await monitor(...flags(main));
    expect(first.code).toBe(0);
    expect(first.out).toContain("no checkpoint of this log seen before");
    expect(first.out).toContain(`checkpoint saved to ${state}`);
    expect(JSON.parse(readFileSync(state, "utf8"))).toMatchObject({
      version: 1,
      origin: keys.origin,
      size: 2,
    });
    const again = await monitor(...flags(main));
    expect(again.code).toBe(0);
    expect(again.out).toContain("the same tree as the checkpoint seen before (size 2)");
    const saved = readFileSync(state, "utf8");

    // The same log key and witness key on fresh folders: a log that lost its last entry...
    const fork = await newLog("state-fork", keys);
    await addFleet(fork.url, NS, 1, fleetA);
    const rolled = await monitor(...flags(fork));
    expect(rolled.code).toBe(1);
    expect(rolled.out).toContain(
      "FAIL checkpoint.rollback: rollback: the log's checkpoint has 1 entries, fewer than the 2 of the checkpoint seen before",
    );
    expect(rolled.out).not.toContain("entry 0");
    expect(readFileSync(state, "utf8")).toBe(saved);

    // ...then shows another entry 1: the same size, another root.
    await addFleet(fork.url, NS, 2, fleetC);
    const split = await monitor(...flags(fork));
    expect(split.code).toBe(1);
    expect(split.out).toMatch(
      /FAIL checkpoint\.split-view: split view: the log's checkpoint of size 2 has root/,
    );
    expect(readFileSync(state, "utf8")).toBe(saved);
    const j = events((await monitor(...flags(fork), "--json")).out);
    expect(summaryOf(j)).toMatchObject({
      ok: false,
      stateSaved: null,
      failures: [{ check: "checkpoint.split-view" }],
    });

    // The real log grows: a consistency proof from the tiles verifies against the saved root.
    await addFleet(main.url, NS, 3, fleetC);
    const grown = await monitor(...flags(main));
    expect(grown.code).toBe(0);
    expect(grown.out).toContain("consistent with the checkpoint of size 2 seen before");
    expect(grown.out).toContain("entry 2: demo epoch 3 (new)");
    expect(grown.out).not.toContain("entry 1: demo epoch 2 (new)");
    expect(grown.out).toContain("3 entries checked (1 new)");
    expect(JSON.parse(readFileSync(state, "utf8"))).toMatchObject({ size: 3 });

    // The fork grows past the saved size: no consistency proof can connect it.
    await addFleet(fork.url, NS, 3, fleetA);
    await addFleet(fork.url, NS, 4, fleetB);
    const diverged = await monitor(...flags(fork));
    expect(diverged.code).toBe(1);
    expect(diverged.out).toMatch(
      /FAIL checkpoint\.split-view: split view: no valid proof that the log's tree of size 4 extends the tree of size 3/,
    );
  });
});

describe("--dev DIR", () => {
  it("reads DIR/transparency.json and DIR/vendor-root.pub, and keeps DIR/monitor-state.json", async () => {
    const log = await newLog("dev-log");
    await addFleet(log.url, NS, 1, fleetA);
    const dir = mkdtempSync(join(work, "dev-"));
    writeVendorRoot(TEST_VENDOR, join(dir, "vendor-root.key"), join(dir, "vendor-root.pub"));
    writeFileSync(
      join(dir, "transparency.json"),
      JSON.stringify({
        log: log.url,
        logKey: log.keys.logKey,
        witnessKeys: [log.keys.witnessKey],
        witnessThreshold: 1,
        namespace: NS,
      }),
    );
    const r = await monitor("--dev", dir);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain("NOT checked");
    expect(r.out).toContain(`checkpoint saved to ${join(dir, "monitor-state.json")}`);
    expect(JSON.parse(readFileSync(join(dir, "monitor-state.json"), "utf8"))).toMatchObject({ size: 1 });
    await expect(monitor("--dev", dir, "--log", log.url)).rejects.toThrow(UsageError);

    writeFileSync(join(dir, "transparency.json"), JSON.stringify({ log: log.url }));
    expect((await monitor("--dev", dir)).code).toBe(1);
  });
});

describe("--follow", () => {
  beforeAll(() => ensureBuilt("cli", "commands/monitor.js"), 300_000);

  it("prints a new epoch after it is appended, and stops cleanly on SIGINT", async () => {
    const log = await newLog("follow");
    await addFleet(log.url, NS, 1, fleetA);
    const child = spawn(
      process.execPath,
      [
        BKV,
        "monitor",
        ...logFlags(log),
        "--vendor-root",
        vendorPub,
        "--allow-test-roots",
        "--follow",
        "--interval",
        "0.2",
        "--json",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines = lineReader(child);
    try {
      const first = await lines.waitFor((e) => e.type === "fleet" && e.epoch === 1);
      expect(first).toMatchObject({ ok: true, index: 0 });
      await addFleet(log.url, NS, 2, fleetB);
      const second = (await lines.waitFor((e) => e.type === "fleet" && e.epoch === 2)) as FleetEvent;
      expect(second).toMatchObject({ ok: true, index: 1, new: true });
      expect(second.diff!.policy).toEqual([{ field: "guess limit", from: 5, to: 10 }]);
      // Only the new entry was printed after the first pass.
      expect(lines.seen().filter((e) => e.type === "fleet" && e.epoch === 1)).toHaveLength(1);
      const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      const all = lines.seen();
      expect(all[all.length - 1]).toMatchObject({ type: "summary", ok: true, size: 2, entries: 2 });
    } finally {
      child.kill("SIGKILL");
    }
  });
});

/** Parse a child's stdout as JSON lines; waitFor resolves with the first match, or fails after 30 s. */
function lineReader(child: ChildProcess): {
  waitFor(pred: (e: MonitorEvent) => boolean): Promise<MonitorEvent>;
  seen(): MonitorEvent[];
} {
  const seen: MonitorEvent[] = [];
  const waiters: { pred: (e: MonitorEvent) => boolean; resolve: (e: MonitorEvent) => void }[] = [];
  let buf = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const e = JSON.parse(buf.slice(0, nl)) as MonitorEvent;
      buf = buf.slice(nl + 1);
      seen.push(e);
      for (const w of [...waiters]) {
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    }
  });
  return {
    seen: () => seen,
    waitFor: (pred) => {
      const found = seen.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(new Error(`no matching line within 30 s; seen ${JSON.stringify(seen)}; stderr ${stderr}`)),
          30_000,
        );
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`bkv monitor exited with ${code}: ${stderr}`));
        });
      });
    },
  };
}

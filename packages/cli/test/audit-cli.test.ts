/**
 * `bkv audit` runs the SDK's one verifier (auditEvidence with strict Ed25519), so it gives the
 * browser's verdict: the small-order forgery node:crypto accepts fails here; a test vendor root
 * (bkv dev's, whose key file says so) counts only with --allow-test-roots; a fleet of one only with
 * --allow-small-fleet; and with --trust it checks exactly what a client pinning trust.json checks.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type AuditReport, auditEvidence } from "@bkv/client";
import { decodeEvidence, encodeEvidence, toHex } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MEASUREMENT, member, reattest, vendorRoot, world } from "../../client/test/bundle-world.js";
import { FORGED, IDENTITY } from "../../client/test/ed25519-points.js";
import { auditCommand } from "../src/commands/audit.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bkv-audit-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const w = world();
const file = (name: string, data: Uint8Array | string) => {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
};
const pubFile = (name: string, key: Uint8Array, test: boolean) =>
  file(
    name,
    `# ${test ? "bkv test vendor root (development only)" : "example vendor root"}: Ed25519 public key, hex\n${toHex(key)}\n`,
  );

async function audit(args: string[]): Promise<{ code: number; report: AuditReport; text: string }> {
  let out = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  let code: number;
  let text: string;
  try {
    code = await auditCommand(args);
    out = "";
    await auditCommand([...args, "--json"]);
    const json = out;
    out = "";
    await auditCommand(args);
    text = out;
    out = json;
  } finally {
    spy.mockRestore();
  }
  return { code, report: JSON.parse(out) as AuditReport, text };
}
const failed = (r: AuditReport) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => c.name)
    .sort();

describe("bkv audit", () => {
  const m = toHex(MEASUREMENT);

  it("passes genuine evidence under a pinned production root, and prints every check", async () => {
    const ev = file("genuine.bin", w.fleet().evidence);
    const root = pubFile("root.pub", w.root.publicKey, false);
    const r = await audit(["--evidence", ev, "--vendor-root", root, "--measurement", m]);
    expect(r.code).toBe(0);
    expect(r.text).toContain("AUDIT PASSED");
    expect(r.text).toContain("PASS  attestation.3");
    expect(r.report.ok).toBe(true);
  });

  it("gives the SDK's verdict on the small-order forgery (node:crypto would pass its signature)", async () => {
    const mm = member(w.root);
    const small = { ...mm, attestation: reattest({ ...mm.attestation, signKey: IDENTITY }, w.root) };
    const f = w.fleet({ members: [member(w.root), member(w.root), small] });
    const ev = decodeEvidence(f.evidence);
    const forged = encodeEvidence({ ...ev, signatures: [ev.signatures[0]!, ev.signatures[1]!, FORGED] });
    const root = pubFile("root.pub", w.root.publicKey, false);
    const r = await audit([
      "--evidence",
      file("forged.bin", forged),
      "--vendor-root",
      root,
      "--measurement",
      m,
    ]);
    expect(r.code).toBe(1);
    expect(failed(r.report)).toEqual(["keys.3", "signature.3"]);
    const sdk = auditEvidence(forged, {
      vendorRoots: [w.root.pin],
      measurements: [MEASUREMENT],
      maxGuessLimit: 10,
    });
    const verdicts = (c: AuditReport["checks"]) => c.map(({ name, ok }) => ({ name, ok }));
    expect(verdicts(r.report.checks)).toEqual(verdicts(sdk.checks));
  });

  it("a test vendor root (as bkv dev writes it) counts only with --allow-test-roots", async () => {
    const dev = vendorRoot("dev", true);
    const ev = file("dev.bin", w.fleet({ root: dev }).evidence);
    const devPub = pubFile("dev-root.pub", dev.publicKey, true);
    const refused = await audit(["--evidence", ev, "--vendor-root", devPub, "--measurement", m]);
    expect(refused.code).toBe(1);
    expect(failed(refused.report)).toEqual(["attestation.1", "attestation.2", "attestation.3"]);
    expect(refused.text).toContain("a test vendor root");
    // Named as a test root on the command line, even from a file that does not say so.
    const plain = pubFile("dev-plain.pub", dev.publicKey, false);
    expect((await audit(["--evidence", ev, "--test-root", plain, "--measurement", m])).code).toBe(1);
    expect(
      (await audit(["--evidence", ev, "--test-root", plain, "--measurement", m, "--allow-test-roots"])).code,
    ).toBe(0);
  });

  it("a fleet of one passes only with --allow-small-fleet", async () => {
    const ev = file("one.bin", w.fleet({ n: 1 }).evidence);
    const root = pubFile("root.pub", w.root.publicKey, false);
    const r = await audit(["--evidence", ev, "--vendor-root", root, "--measurement", m]);
    expect(failed(r.report)).toEqual(["policy.members"]);
    expect(
      (await audit(["--evidence", ev, "--vendor-root", root, "--measurement", m, "--allow-small-fleet"]))
        .code,
    ).toBe(0);
  });

  it("with --trust it checks what a client pinning trust.json checks: roots, code, policy, namespace, log key", async () => {
    const trust = file("trust.json", JSON.stringify(w.pins));
    const ok = await audit(["--evidence", file("t1.bin", w.fleet().evidence), "--trust", trust]);
    expect(ok.code).toBe(0);
    expect(ok.report.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining(["statement.namespace", "statement.log-key"]),
    );
    const other = await audit([
      "--evidence",
      file("t2.bin", w.fleet({ namespace: "x.test/v" }).evidence),
      "--trust",
      trust,
    ]);
    expect(failed(other.report)).toEqual(["statement.namespace"]);
    const loose = await audit([
      "--evidence",
      file("t3.bin", w.fleet({ guessLimit: 50 }).evidence),
      "--trust",
      trust,
    ]);
    expect(failed(loose.report)).toEqual(["policy.guess-limit"]);
    const code = await audit([
      "--evidence",
      file("t4.bin", w.fleet({ measurement: new Uint8Array(32) }).evidence),
      "--trust",
      trust,
    ]);
    expect(failed(code.report)).toEqual(["measurement.source"]);
    // A fleet that froze another witness than the pinned ones: it would check its successor's log
    // entries under a witness the auditor does not trust.
    const witnesses = await audit([
      "--evidence",
      file(
        "t5.bin",
        w.fleet({
          witnessPolicy: {
            witnesses: [{ name: "operator.example/w", key: vendorRoot().publicKey }],
            threshold: 1,
          },
        }).evidence,
      ),
      "--trust",
      trust,
    ]);
    expect(failed(witnesses.report)).toEqual(["statement.witnesses"]);
    expect(witnesses.text).toContain("FAIL  statement.witnesses");
    expect(witnesses.text).toContain("operator.example/w");
    expect(ok.report.checks.find((c) => c.name === "statement.witnesses")?.ok).toBe(true);
  });
});

describe("bkv audit and the SDK's browser build give the same verdict on every case", () => {
  it("genuine, small-order forgery, test root with and without the flag, a fleet of one", async () => {
    // The very file pages load (built by `npm run build`; rebuilt here so the test sees this source).
    const repo = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "..");
    execFileSync(process.execPath, [join(repo, "packages", "client", "build-browser.mjs")], {
      cwd: repo,
      stdio: "pipe",
    });
    const browser = (await import(
      /* @vite-ignore */ pathToFileURL(join(repo, "packages", "client", "dist", "browser", "bkv-client.js"))
        .href
    )) as { auditEvidence: typeof auditEvidence };
    const m = toHex(MEASUREMENT);
    const mm = member(w.root);
    const small = { ...mm, attestation: reattest({ ...mm.attestation, signKey: IDENTITY }, w.root) };
    const ev3 = decodeEvidence(w.fleet({ members: [member(w.root), member(w.root), small] }).evidence);
    const forged = encodeEvidence({ ...ev3, signatures: [ev3.signatures[0]!, ev3.signatures[1]!, FORGED] });
    const dev = vendorRoot("dev", true);
    const root = pubFile("same-root.pub", w.root.publicKey, false);
    const devPub = pubFile("same-dev.pub", dev.publicKey, true);
    const cases: {
      name: string;
      evidence: Uint8Array;
      args: string[];
      pins: Parameters<typeof auditEvidence>[1];
    }[] = [
      {
        name: "genuine",
        evidence: w.fleet().evidence,
        args: ["--vendor-root", root],
        pins: { vendorRoots: [w.root.pin], measurements: [MEASUREMENT], maxGuessLimit: 10 },
      },
      {
        name: "forged",
        evidence: forged,
        args: ["--vendor-root", root],
        pins: { vendorRoots: [w.root.pin], measurements: [MEASUREMENT], maxGuessLimit: 10 },
      },
      {
        name: "test root",
        evidence: w.fleet({ root: dev }).evidence,
        args: ["--vendor-root", devPub],
        pins: { vendorRoots: [dev.pin], measurements: [MEASUREMENT], maxGuessLimit: 10 },
      },
      {
        name: "test root allowed",
        evidence: w.fleet({ root: dev }).evidence,
        args: ["--vendor-root", devPub, "--allow-test-roots"],
        pins: {
          vendorRoots: [dev.pin],
          measurements: [MEASUREMENT],
          maxGuessLimit: 10,
          allowTestRoots: true,
        },
      },
      {
        name: "one member",
        evidence: w.fleet({ n: 1 }).evidence,
        args: ["--vendor-root", root],
        pins: { vendorRoots: [w.root.pin], measurements: [MEASUREMENT], maxGuessLimit: 10 },
      },
    ];
    const verdicts = (c: AuditReport["checks"]) => c.map(({ name, ok }) => ({ name, ok }));
    const seen: Record<string, boolean> = {};
    for (const c of cases) {
      const cli = await audit([
        "--evidence",
        file(`same-${c.name}.bin`, c.evidence),
        ...c.args,
        "--measurement",
        m,
      ]);
      const page = browser.auditEvidence(c.evidence, c.pins);
      expect(verdicts(page.checks), c.name).toEqual(verdicts(cli.report.checks));
      expect(page.ok, c.name).toBe(cli.code === 0);
      seen[c.name] = page.ok;
    }
    expect(seen).toEqual({
      genuine: true,
      forged: false,
      "test root": false,
      "test root allowed": true,
      "one member": false,
    });
  });
});

/**
 * `bkv audit --evidence FILE --vendor-root KEYFILE [--measurement HEX | --source DIR] [--fleet ID]
 * [--max-guess-limit N] [--json]`: check a fleet's deployment evidence from public data. Without
 * --measurement the expected measurement is rebuilt from source (--source, default this checkout).
 * Prints a report a person can read (or JSON) naming every check; exit 0 only if all hold.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type AuditReport, auditEvidence } from "@bkv/client";
import { DEFAULT_GUESS_LIMIT } from "@bkv/hsm-core";
import { ed25519VerifyWith, readVendorRootPub } from "@bkv/hsm-software";
import { fromHex } from "@bkv/wire";
import { parse, required, UsageError } from "../args.js";
import { buildCore, OWN_SOURCE_ROOT } from "../measure.js";

function hex(v: string, flag: string, bytes: number): Uint8Array {
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(v))
    throw new UsageError(`${flag} must be ${bytes * 2} hex digits`);
  return fromHex(v);
}

export function formatReport(r: AuditReport, measurementFrom: string): string {
  const lines: string[] = [];
  if (r.fleet !== null) {
    const f = r.fleet;
    lines.push(`fleet ${f.fleetId}`);
    lines.push(`  created      ${f.time}`);
    lines.push(`  members      ${f.n} (quorum ${f.quorum}); guess limit ${f.guessLimit}`);
    lines.push(`  measurement  ${f.measurement}`);
    lines.push(`  vault key    ${f.vaultPublicKey}`);
    lines.push(`  signing key  ${f.fleetSigningKey}`);
    for (const m of f.members) lines.push(`  node ${m.node}       ${m.platform}: ${m.vendor}`);
  }
  lines.push(`expected measurement from ${measurementFrom}`);
  lines.push("");
  for (const c of r.checks) lines.push(`${c.ok ? "PASS" : "FAIL"}  ${c.name.padEnd(20)} ${c.detail}`);
  lines.push("");
  const failed = r.checks.filter((c) => !c.ok);
  lines.push(
    failed.length === 0
      ? `AUDIT PASSED: all ${r.checks.length} checks hold`
      : `AUDIT FAILED: ${failed.length} of ${r.checks.length} checks failed: ${failed.map((c) => c.name).join(", ")}`,
  );
  return `${lines.join("\n")}\n`;
}

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    evidence: { type: "string" },
    "vendor-root": { type: "string" },
    measurement: { type: "string" },
    source: { type: "string" },
    fleet: { type: "string" },
    "max-guess-limit": { type: "string" },
    json: { type: "boolean" },
  });
  if (values.measurement !== undefined && values.source !== undefined)
    throw new UsageError("give --measurement or --source, not both");
  const evidence = new Uint8Array(readFileSync(required(values.evidence, "--evidence")));
  const vendorRoot = readVendorRootPub(required(values["vendor-root"], "--vendor-root"));
  let expected: Uint8Array;
  let from: string;
  if (values.measurement !== undefined) {
    expected = hex(values.measurement, "--measurement", 32);
    from = "--measurement";
  } else {
    const source = resolve(values.source ?? OWN_SOURCE_ROOT);
    expected = fromHex((await buildCore(source)).measurement);
    from = `a build of ${source}`;
  }
  const maxGuessLimit = Number(values["max-guess-limit"] ?? DEFAULT_GUESS_LIMIT);
  if (!Number.isInteger(maxGuessLimit) || maxGuessLimit < 1)
    throw new UsageError("--max-guess-limit must be a whole number");
  const report = auditEvidence(evidence, {
    vendorRoots: [vendorRoot],
    expectedMeasurement: expected,
    ...(values.fleet === undefined ? {} : { expectedFleetId: hex(values.fleet, "--fleet", 16) }),
    maxGuessLimit,
    verify: ed25519VerifyWith,
    sha256: (b) => new Uint8Array(createHash("sha256").update(b).digest()),
  });
  process.stdout.write(
    values.json === true
      ? `${JSON.stringify({ ...report, expectedFrom: from })}\n`
      : formatReport(report, from),
  );
  return report.ok ? 0 : 1;
}

/**
 * `bkv audit --evidence FILE (--vendor-root KEYFILE | --test-root KEYFILE | --aws-nitro-root | --trust trust.json)
 * [--measurement HEX | --source DIR] [--fleet ID] [--namespace NS] [--epoch E] [--log-key HEX]
 * [--release-key HEX] [--max-guess-limit N] [--allow-test-roots] [--allow-small-fleet] [--json]`: check a fleet's
 * deployment evidence from public data, with auditEvidence, the same strict verifier the SDK runs in
 * Node and browsers. Without --measurement (or trust pins) the expected measurement is rebuilt from
 * source (--source, default this checkout); so it is with trust pins that list no measurements (they
 * pin a release key). A test vendor root (--test-root, or a key file that says
 * it is one, as `bkv dev`'s does) counts only with --allow-test-roots; fleets of fewer than 3 pass
 * only with --allow-small-fleet (both for development). --aws-nitro-root pins the AWS Nitro Enclaves
 * root (by its certificate's SHA-256) for members attested by Nitro documents. Prints a report a
 * person can read (or JSON)
 * naming every check; exit 0 only if all hold. The release key the fleet must have frozen comes from
 * --release-key or the trust pins' release key (check "statement.release-key"); the witness policy it
 * must have frozen, from the trust pins' witnessKeys and witnessThreshold (check "statement.witnesses").
 */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  type AuditReport,
  AWS_NITRO_ROOT_SHA256,
  auditEvidence,
  DEFAULT_MAX_GUESS_LIMIT,
  type PinnedVendorRoot,
} from "@bkv/client";
import { parseVerifierKey } from "@bkv/tlog";
import { fromHex } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import { readTrust } from "../dev-files.js";
import { buildCore, OWN_SOURCE_ROOT } from "../measure.js";
import { pinVendorRootFile } from "../vendor-root-file.js";

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
    lines.push(
      `  successors   released under ${f.releaseKey}; guess limit at most ${f.maxSuccessorGuessLimit}`,
    );
    lines.push(
      `  witnesses    ${f.witnessThreshold} of ${f.witnesses.map((w) => w.name).join(", ")} (a successor's log entries)`,
    );
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
    "test-root": { type: "string" },
    "aws-nitro-root": { type: "boolean" },
    trust: { type: "string" },
    measurement: { type: "string" },
    source: { type: "string" },
    fleet: { type: "string" },
    namespace: { type: "string" },
    epoch: { type: "string" },
    "log-key": { type: "string" },
    "release-key": { type: "string" },
    "max-guess-limit": { type: "string" },
    "allow-test-roots": { type: "boolean" },
    "allow-small-fleet": { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.measurement !== undefined && values.source !== undefined)
    throw new UsageError("give --measurement or --source, not both");
  const evidence = new Uint8Array(readFileSync(required(values.evidence, "--evidence")));
  // What the auditor pins: roots, accepted code and policy, from trust.json (the very pins clients
  // use, so the CLI and the SDK give the same verdict) and/or flags.
  const pins = values.trust === undefined ? null : readTrust(values.trust);
  const vendorRoots: PinnedVendorRoot[] = [...(pins?.vendorRoots ?? [])];
  if (values["vendor-root"] !== undefined) vendorRoots.push(pinVendorRootFile(values["vendor-root"], false));
  if (values["test-root"] !== undefined) vendorRoots.push(pinVendorRootFile(values["test-root"], true));
  if (values["aws-nitro-root"] === true)
    vendorRoots.push({
      name: "AWS Nitro Enclaves root G1",
      key: AWS_NITRO_ROOT_SHA256,
      test: false,
      kind: "aws-nitro",
    });
  if (vendorRoots.length === 0)
    throw new UsageError("give --vendor-root, --test-root, --aws-nitro-root or --trust");
  const measurements = (pins?.measurements ?? []).map(fromHex);
  let from: string;
  if (values.measurement !== undefined) {
    measurements.push(hex(values.measurement, "--measurement", 32));
    from = "--measurement";
  } else if (values.source !== undefined || pins === null || pins.measurements.length === 0) {
    // Pins with a release key and no measurements: the code is what this source builds (a release
    // entry names its revision and recipe, so its measurement is reproduced the same way).
    const source = resolve(values.source ?? OWN_SOURCE_ROOT);
    measurements.push(fromHex((await buildCore(source)).measurement));
    from = `a build of ${source}${pins === null || pins.measurements.length === 0 ? "" : " and the trust pins"}`;
  } else {
    from = `the trust pins (${values.trust})`;
  }
  const maxGuessLimit = intFlag(
    values["max-guess-limit"],
    "--max-guess-limit",
    pins?.maxGuessLimit ?? DEFAULT_MAX_GUESS_LIMIT,
    1,
    1000,
  );
  const logKey =
    values["log-key"] !== undefined
      ? hex(values["log-key"], "--log-key", 32)
      : pins === null
        ? undefined
        : parseVerifierKey(pins.logKey).publicKey;
  const releaseKey =
    values["release-key"] !== undefined
      ? hex(values["release-key"], "--release-key", 32)
      : pins?.release === undefined
        ? undefined
        : fromHex(pins.release.key);
  const namespace = values.namespace ?? pins?.namespace;
  const witnessPolicy =
    pins === null
      ? undefined
      : {
          witnesses: pins.witnessKeys.map((k) => {
            const v = parseVerifierKey(k);
            return { name: v.name, key: v.publicKey };
          }),
          threshold: pins.witnessThreshold,
        };
  const report = auditEvidence(evidence, {
    vendorRoots,
    measurements,
    ...(values.fleet === undefined ? {} : { expectedFleetId: hex(values.fleet, "--fleet", 16) }),
    ...(namespace === undefined ? {} : { expectedNamespace: namespace }),
    ...(values.epoch === undefined
      ? {}
      : { expectedEpoch: intFlag(values.epoch, "--epoch", 0, 0, 0xffffffff) }),
    ...(logKey === undefined ? {} : { expectedLogKey: logKey }),
    ...(releaseKey === undefined ? {} : { expectedReleaseKey: releaseKey }),
    ...(witnessPolicy === undefined ? {} : { expectedWitnessPolicy: witnessPolicy }),
    maxGuessLimit,
    allowTestRoots: values["allow-test-roots"] === true || pins?.allowTestRoots === true,
    allowSmallFleet: values["allow-small-fleet"] === true || pins?.allowSmallFleet === true,
  });
  process.stdout.write(
    values.json === true
      ? `${JSON.stringify({ ...report, expectedFrom: from })}\n`
      : formatReport(report, from),
  );
  return report.ok ? 0 : 1;
}

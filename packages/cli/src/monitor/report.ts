/**
 * The monitor's events as text: one JSON object per line (--json), or a report a person reads.
 */
import { groupReuse, reusedKeysText } from "@bkv/client";
import type { FleetDiff, FleetMemberView, FleetView } from "./diff.js";
import { isEmptyDiff } from "./diff.js";
import type { CheckpointEvent, FleetEvent, MonitorEvent, SummaryEvent } from "./events.js";

export function formatJson(e: MonitorEvent): string {
  return `${JSON.stringify(e)}\n`;
}

const short = (hex: string): string => (hex.length > 16 ? `${hex.slice(0, 16)}…` : hex);
const member = (m: FleetMemberView): string => `${m.platform} ${short(m.signKey)}`;
const label = (s: string): string => `  ${s.padEnd(13)}`;

function checkpointText(e: CheckpointEvent): string[] {
  const c = e.consistency;
  const cosigned =
    e.cosigners.length === 0 ? "no witness cosignatures" : `cosigned by ${e.cosigners.join(", ")}`;
  return [
    `log ${e.origin}: checkpoint size ${e.size}, root ${short(e.root)}, ${cosigned} (${e.threshold} required)`,
    c.kind === "first"
      ? "  no checkpoint of this log seen before"
      : c.kind === "same"
        ? `  the same tree as the checkpoint seen before (size ${c.size})`
        : `  consistent with the checkpoint of size ${c.from} seen before`,
  ];
}

function fleetLines(f: FleetView): string[] {
  const roles = Object.keys(f.keys).sort();
  return [
    `${label("fleet")}${f.fleetId}`,
    `${label("measurement")}${f.measurement}`,
    `${label("policy")}guess limit ${f.policy.guessLimit}, ${f.policy.n} members, quorum ${f.policy.quorum}`,
    ...roles.map((r, i) => `${label(i === 0 ? "keys" : "")}${r.padEnd(14)} ${f.keys[r]}`),
    ...f.members.map((m, i) => `${label(i === 0 ? "members" : "")}${i + 1}  ${member(m)}`),
    `${label("valid")}${f.notBefore} to ${f.notAfter}`,
    ...(f.evidenceDigest === undefined ? [] : [`${label("evidence")}sha256 ${f.evidenceDigest}`]),
    ...(f.successors === undefined
      ? []
      : [
          `${label("successors")}code released under ${f.successors.releaseKey}, guess limit at most ${f.successors.maxGuessLimit}`,
        ]),
  ];
}

function diffLines(d: FleetDiff, reused: boolean): string[] {
  const out = [`  changes since epoch ${d.previousEpoch} (entry ${d.previousIndex}):`];
  const line = (what: string, text: string) => out.push(`    ${what.padEnd(22)} ${text}`);
  if (isEmptyDiff(d)) line("none", `same fleet, keys, ${reused ? "" : "members, "}measurement and policy`);
  const sameMembers = d.members.added.length + d.members.removed.length + d.members.changed.length === 0;
  if (reused && sameMembers)
    line("members", "the SAME HSMs as before: NOT new HSMs (one HSM, one genesis: FAIL members.fresh)");
  if (d.fleetId !== null) line("fleet id", `${d.fleetId.from} → ${d.fleetId.to}`);
  for (const k of d.keys.changed) line(`key ${k.role}`, `${short(k.from)} → ${short(k.to)}`);
  for (const k of d.keys.added) line(`key ${k.role} added`, short(k.key));
  for (const k of d.keys.removed) line(`key ${k.role} removed`, short(k.key));
  for (const m of d.members.added) line("member added", member(m));
  for (const m of d.members.removed) line("member removed", member(m));
  for (const m of d.members.changed) line("member changed", `${member(m.from)} → ${member(m.to)}`);
  if (d.measurement !== null)
    line("measurement", `${short(d.measurement.from)} → ${short(d.measurement.to)}`);
  for (const p of d.policy) line("policy", `${p.field} ${p.from} → ${p.to}`);
  if (d.validity !== null)
    line(
      "validity",
      `${d.validity.from.notBefore} to ${d.validity.from.notAfter} → ${d.validity.to.notBefore} to ${d.validity.to.notAfter}`,
    );
  return out;
}

function fleetEventText(e: FleetEvent): string[] {
  const name = e.namespace === null ? "(undecodable entry)" : `${e.namespace} epoch ${e.epoch}`;
  const out = [`entry ${e.index}: ${name}${e.new ? " (new)" : ""}${e.ok ? "" : " FAILED"}`];
  if (e.release !== null) {
    const r = e.release;
    out.push(
      `${label("release")}measurement ${r.measurement}`,
      `${label("source")}${r.sourceRevision}`,
      `${label("recipe")}${r.buildRecipe}`,
      `${label("signed")}${r.time}, ${
        r.signature === "verified"
          ? "by the given release key"
          : r.signature === "bad"
            ? "NOT by the given release key"
            : "signature NOT checked (no release key given)"
      }`,
    );
  }
  if (e.fleet !== null) {
    out.push(...fleetLines(e.fleet));
    if (e.diff !== null) out.push(...diffLines(e.diff, e.reusedMembers.length > 0));
    else out.push(`  first epoch of namespace ${e.fleet.namespace} in the log`);
  }
  if (e.reusedMembers.length > 0) {
    out.push(
      "  REUSED HSMs: members of this genesis already took part in an earlier fleet's genesis; an HSM",
      "  takes part in one genesis in its life, so these are cloned HSMs or HSMs whose NVRAM was rolled back",
    );
    for (const g of groupReuse(e.reusedMembers)) {
      const m = e.fleet?.members[g.member - 1];
      out.push(
        `${label("")}member ${g.member}${m === undefined ? "" : ` (${member(m)})`}: its ${reusedKeysText(g.keys)} ${g.keys.length === 1 ? "was a member key" : "were member keys"} of fleet ${short(g.earlier.fleetId)} at entry ${g.earlier.index} (${g.earlier.namespace} epoch ${g.earlier.epoch})`,
      );
    }
  }
  out.push(
    `${label("checks")}${e.passed.length} passed` +
      (e.failures.length > 0 ? `, ${e.failures.length} failed` : "") +
      (e.skipped.length > 0
        ? e.release !== null
          ? "; release signature NOT checked (1 skipped)"
          : `; attestations NOT checked against a vendor root (${e.skipped.length} skipped)`
        : ""),
  );
  for (const f of e.failures) out.push(`  FAIL ${f.check}: ${f.message}`);
  return out;
}

function summaryText(s: SummaryEvent): string[] {
  const failures = s.failures.map((f) => (f.index === undefined ? f.check : `entry ${f.index} ${f.check}`));
  const head = s.ok
    ? `MONITOR PASSED${s.vendorRootChecked ? "" : " (INCOMPLETE)"}: checkpoint size ${s.size}; ${s.entries} entr${s.entries === 1 ? "y" : "ies"} checked (${s.newEntries} new), ${s.vendorRootChecked ? "every check holds" : "every check run holds"}`
    : `MONITOR FAILED: ${s.failures.length} failed check${s.failures.length === 1 ? "" : "s"}: ${failures.join(", ")}`;
  const out = [head];
  if (!s.vendorRootChecked) out.push("  member attestations were NOT checked against a vendor root");
  out.push(
    s.stateSaved !== null
      ? `  checkpoint saved to ${s.stateSaved}`
      : "  checkpoint not saved" + (s.ok ? " (no state file)" : " (a check failed)"),
  );
  return out;
}

export function formatText(e: MonitorEvent): string {
  let lines: string[];
  switch (e.type) {
    case "checkpoint":
      lines = [...checkpointText(e), ""];
      break;
    case "fleet":
      lines = [...fleetEventText(e), ""];
      break;
    case "failure":
      lines = [`FAIL ${e.check}: ${e.message}`, ""];
      break;
    case "note":
      lines = [`NOTE ${e.message}`];
      break;
    case "summary":
      lines = summaryText(e);
      break;
  }
  return `${lines.join("\n")}\n`;
}

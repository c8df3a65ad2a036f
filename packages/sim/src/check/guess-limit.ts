/**
 * A second, independent line of defence for the vault: no more than `limit` starts may return ok
 * (each released a KE2, i.e. a PIN guess) between two resets of the guess count, where a reset is
 * a put (a put without replace only if it was not refused) or a finish with the right PIN.
 *
 * It only reports certain violations. A group of starts that returned ok is a violation when it has
 * more than `limit` members and every possible reset on the key (a put, or a right-PIN finish that
 * returned ok or never returned) lies entirely before all of them or entirely after all of them in
 * real time: then no linearization can place a reset between two of them, so they all drew on
 * the same budget. (A start overlapping a possible reset is only in a group of its own, which
 * matters for limit 0.) Real-time order is the checker's: see events.ts.
 */
import { precedes } from "./events.js";
import type { Operation } from "./types.js";
import { formatVaultOutput, type VaultInput, type VaultOutput } from "./vault-model.js";

type VaultOp = Operation<VaultInput, VaultOutput>;

function mayReset(op: VaultOp): boolean {
  if (op.input.op === "put") return true;
  // A put without replace resets only if it may have created the record: not when it was refused.
  if (op.input.op === "put-new") return op.output === undefined || "ok" in op.output;
  if (op.input.op !== "finish" || !op.input.correct) return false;
  return op.output === undefined || ("ok" in op.output && op.output.ok === true);
}

function startedOk(op: VaultOp): boolean {
  return op.input.op === "start" && op.output !== undefined && "session" in op.output;
}

function describe(i: number, op: VaultOp): string {
  const out = op.output === undefined ? "?" : formatVaultOutput(op.output);
  return `#${i} client ${op.client} [${op.call}, ${op.ret}] start → ${out}`;
}

/** Check a history of vault operations for certain guess-limit violations (see above). */
export function checkGuessLimitHistory(
  ops: readonly VaultOp[],
  limit: number,
): { ok: boolean; violations: string[] } {
  const keys = new Map<string, { starts: number[]; resets: number[] }>();
  ops.forEach((op, i) => {
    let k = keys.get(op.key);
    if (k === undefined) {
      k = { starts: [], resets: [] };
      keys.set(op.key, k);
    }
    if (startedOk(op)) k.starts.push(i);
    else if (mayReset(op)) k.resets.push(i);
  });

  const violations: string[] = [];
  for (const [key, { starts, resets }] of keys) {
    // Starts with the same before/after pattern against every reset form a group.
    const groups = new Map<string, number[]>();
    for (const s of starts) {
      const start = ops[s]!;
      let sig = "";
      for (const r of resets) {
        const reset = ops[r]!;
        if (precedes(start, reset)) sig += "<";
        else if (precedes(reset, start)) sig += ">";
        else {
          sig = `overlap #${s}`;
          break;
        }
      }
      const g = groups.get(sig);
      if (g === undefined) groups.set(sig, [s]);
      else g.push(s);
    }
    for (const g of groups.values()) {
      if (g.length <= limit) continue;
      violations.push(
        `key "${key}": ${g.length} starts returned ok (limit ${limit}) with no put or right-PIN finish ` +
          `possibly between them:\n${g.map((i) => `  ${describe(i, ops[i]!)}`).join("\n")}`,
      );
    }
  }
  return { ok: violations.length === 0, violations };
}

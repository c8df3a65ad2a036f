/**
 * Test helpers for the checkers: a seeded PRNG, a read/write register model, and two independent
 * referees: a witness verifier (is this order a valid linearization?) and a brute-force search
 * without memoization for small histories.
 */
import type { Model, Operation } from "../../src/check/index.js";

/** mulberry32: deterministic, good enough for tests. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]) => xs[int(xs.length)]! };
}

export type RegInput = { op: "write"; value: number } | { op: "read" };
/** "ok" for a write, the value for a read. */
export type RegOutput = number | "ok";

export const register: Model<number, RegInput, RegOutput> = {
  init: () => 0,
  step(state, input, output) {
    if (input.op === "write") return output === undefined || output === "ok" ? input.value : null;
    return output === undefined || output === state ? state : null;
  },
  hash: (s) => String(s),
  describe: (input, output) =>
    `${input.op === "write" ? `write(${input.value})` : "read"} → ${output === undefined ? "?" : output}`,
};

export function w(
  value: number,
  call: number,
  ret: number,
  client = 0,
  key = "x",
): Operation<RegInput, RegOutput> {
  return {
    client,
    key,
    call,
    ret,
    input: { op: "write", value },
    output: ret === Infinity ? undefined : "ok",
  };
}

export function r(
  value: number | undefined,
  call: number,
  ret: number,
  client = 0,
  key = "x",
): Operation<RegInput, RegOutput> {
  return { client, key, call, ret, input: { op: "read" }, output: value };
}

/** Real-time order, written independently of the checker: a returned at or before b's call. */
function before(a: { call: number; ret: number }, b: { call: number; ret: number }): boolean {
  const bothZero = a.call === a.ret && b.call === b.ret;
  return a.ret < b.call || (a.ret === b.call && !bothZero);
}

/** Why `order` (per key) is not a linearization of `ops`, or null if it is one. */
export function witnessError<S, I, O>(
  ops: readonly Operation<I, O>[],
  model: Model<S, I, O>,
  linearizations: Map<string, number[]>,
): string | null {
  const seen = new Set<number>();
  for (const [key, order] of linearizations) {
    let state = model.init();
    for (const [pos, i] of order.entries()) {
      const op = ops[i];
      if (op === undefined || op.key !== key || seen.has(i)) return `bad index ${i} for key ${key}`;
      seen.add(i);
      for (const j of order.slice(pos + 1)) if (before(ops[j]!, op)) return `#${j} must precede #${i}`;
      const next = model.step(state, op.input, op.output);
      if (next === null) return `#${i} is illegal at position ${pos}`;
      state = next;
    }
  }
  for (const [i, op] of ops.entries()) {
    if (op.ret !== Infinity && !seen.has(i)) return `returned operation #${i} missing`;
    if (!linearizations.has(op.key)) return `key ${op.key} missing`;
  }
  return null;
}

/** Exhaustive search (no memoization): is the history linearizable? Only for tiny histories. */
export function bruteForce<S, I, O>(ops: readonly Operation<I, O>[], model: Model<S, I, O>): boolean {
  const keys = [...new Set(ops.map((o) => o.key))];
  return keys.every((key) => {
    const part = ops.filter((o) => o.key === key);
    const done = new Array<boolean>(part.length).fill(false);
    const go = (state: S): boolean => {
      if (part.every((o, i) => done[i] || o.ret === Infinity)) return true;
      for (const [i, op] of part.entries()) {
        if (done[i]) continue;
        if (part.some((o, j) => j !== i && !done[j] && before(o, op))) continue;
        const next = model.step(state, op.input, op.output);
        if (next === null) continue;
        done[i] = true;
        const found = go(next);
        done[i] = false;
        if (found) return true;
      }
      return false;
    };
    return go(model.init());
  });
}

/** Gives sequential operations (in order) overlapping intervals that contain points 10, 20, … */
export function overlap<T extends { call: number; ret: number }>(
  seq: readonly T[],
  rand: ReturnType<typeof prng>,
  spread = 25,
): T[] {
  return seq.map((op, i) => {
    const p = 10 * (i + 1);
    return {
      ...op,
      call: p - rand.int(spread + 1),
      ret: op.ret === Infinity ? Infinity : p + rand.int(spread + 1),
    };
  });
}

export function shuffle<T>(xs: readonly T[], rand: ReturnType<typeof prng>): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rand.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Property tests with a seeded PRNG: histories generated from the models themselves, stretched
 * into overlapping intervals, must be linearizable; one mutated output must make them illegal
 * unless the mutation is still legal (then the checker's witness must be a valid linearization);
 * and on tiny random histories the checker must agree with a brute-force search.
 */
import { describe, expect, it } from "vitest";
import {
  checkLinearizable,
  formatVaultOutput,
  type Model,
  type Operation,
  type VaultInput,
  type VaultOutput,
  type VaultState,
  vaultApply,
  vaultModel,
} from "../../src/check/index.js";
import {
  bruteForce,
  overlap,
  prng,
  type RegInput,
  type RegOutput,
  register,
  shuffle,
  witnessError,
} from "./helpers.js";

type Rand = ReturnType<typeof prng>;
type VaultOp = Operation<VaultInput, VaultOutput>;
type RegOp = Operation<RegInput, RegOutput>;

/** A sequential vault history on a few keys; some answers are lost, some lost requests never ran. */
function genVault(rand: Rand, count: number, limit: number): VaultOp[] {
  const keys = ["k0", "k1"];
  const states = new Map<string, VaultState>(keys.map((k) => [k, vaultModel(limit).init()]));
  const known = new Map<string, string[]>(keys.map((k) => [k, []]));
  const ops: VaultOp[] = [];
  let sessions = 0;
  const randomInput = (key: string, exists: boolean): VaultInput => {
    const x = rand.next();
    if (x < (exists ? 0.1 : 0.4)) return { op: rand.next() < 0.3 ? "put-new" : "put" };
    if (x < 0.6) return { op: "start" };
    const ks = known.get(key)!;
    const session = ks.length > 0 && rand.next() < 0.8 ? rand.pick(ks) : `bogus${rand.int(3)}`;
    return {
      op: "finish",
      session,
      correct: rand.next() < 0.5,
      action: rand.next() < 0.15 ? "delete" : "recover",
    };
  };
  for (let i = 0; i < count; i++) {
    const key = rand.pick(keys);
    const state = states.get(key)!;
    const input = randomInput(key, state.exists);
    const client = rand.int(5);
    if (rand.next() < 0.05) {
      ops.push({ client, key, call: 0, ret: Infinity, input, output: undefined }); // never ran
      continue;
    }
    const res = vaultApply(limit, state, input, `s${sessions++}`);
    states.set(key, res.state);
    const lost = rand.next() < 0.08;
    if (!lost && "session" in res.output) known.get(key)!.push(res.output.session);
    ops.push({
      client,
      key,
      call: 0,
      ret: lost ? Infinity : 0,
      input,
      output: lost ? undefined : res.output,
    });
  }
  return ops;
}

function genRegister(rand: Rand, count: number): RegOp[] {
  const values = new Map<string, number>();
  const ops: RegOp[] = [];
  for (let i = 0; i < count; i++) {
    const key = rand.pick(["a", "b"]);
    const client = rand.int(5);
    const input: RegInput = rand.next() < 0.5 ? { op: "write", value: rand.int(4) } : { op: "read" };
    if (rand.next() < 0.05) {
      ops.push({ client, key, call: 0, ret: Infinity, input, output: undefined });
      continue;
    }
    let output: RegOutput = values.get(key) ?? 0;
    if (input.op === "write") {
      values.set(key, input.value);
      output = "ok";
    }
    const lost = rand.next() < 0.08;
    ops.push({ client, key, call: 0, ret: lost ? Infinity : 0, input, output: lost ? undefined : output });
  }
  return ops;
}

function vaultOutputs(limit: number, session: string): VaultOutput[] {
  const outs: VaultOutput[] = [{ ok: true }, { error: "NO_RECORD" }];
  for (let remaining = 0; remaining <= limit; remaining++) {
    outs.push(
      { ok: true, session, remaining },
      { error: "WRONG_PIN", remaining },
      { error: "NO_SESSION", remaining },
    );
  }
  return outs;
}

/** Replaces one known output by a different one; returns the index changed. */
function mutate<I, O>(
  ops: Operation<I, O>[],
  rand: Rand,
  alternatives: (o: O) => O[],
  eligible: (o: O) => boolean = () => true,
): number {
  const known = ops.flatMap((o, i) => (o.output === undefined || !eligible(o.output) ? [] : [i]));
  const i = rand.pick(known);
  const op = ops[i]!;
  ops[i] = { ...op, output: rand.pick(alternatives(op.output!)) };
  return i;
}

/** Other outputs; for a successful start, also the same answer with a renamed session (often still legal). */
const vaultAlternatives = (limit: number) => (o: VaultOutput) => {
  const outs = vaultOutputs(limit, "session" in o ? o.session : "s-new");
  if ("session" in o) outs.push({ ...o, session: "renamed" }, { ...o, session: "renamed" });
  return outs.filter((x) => formatVaultOutput(x) !== formatVaultOutput(o));
};

const registerAlternatives = (o: RegOutput): RegOutput[] =>
  [0, 1, 2, 3, 4, "ok" as const].filter((x) => x !== o);

/** Sequential legality of operations that are already in real-time order, each key on its own. */
function replay<S, I, O>(ops: readonly Operation<I, O>[], model: Model<S, I, O>): boolean {
  const states = new Map<string, S>();
  for (const op of ops) {
    const next = model.step(states.get(op.key) ?? model.init(), op.input, op.output);
    if (next === null) return false;
    states.set(op.key, next);
  }
  return true;
}

function expectOk<S, I, O>(ops: Operation<I, O>[], model: Model<S, I, O>): void {
  const res = checkLinearizable(ops, model);
  expect(res.result, res.info).toBe("ok");
  expect(witnessError(ops, model, res.linearizations!)).toBeNull();
}

describe("generated histories", () => {
  it("are linearizable with overlapping intervals (vault)", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = prng(seed);
      const limit = 1 + (seed % 3);
      expectOk(shuffle(overlap(genVault(rand, 40, limit), rand), rand), vaultModel(limit));
    }
  });

  it("are linearizable with overlapping intervals (register)", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = prng(seed);
      expectOk(shuffle(overlap(genRegister(rand, 40), rand), rand), register);
    }
  });

  it("become illegal with one mutated output, unless the checker shows a valid linearization", () => {
    let illegal = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const rand = prng(1000 + seed);
      const limit = 1 + (seed % 3);
      const model = vaultModel(limit);
      const ops = overlap(genVault(rand, 30, limit), rand, 12);
      const changed = mutate(ops, rand, vaultAlternatives(limit));
      const res = checkLinearizable(ops, model);
      if (res.result === "ok") {
        expect(witnessError(ops, model, res.linearizations!)).toBeNull();
      } else {
        expect(res.result).toBe("illegal");
        expect(res.key).toBe(ops[changed]!.key);
        expect(res.stuck!.length).toBeGreaterThan(0);
        illegal++;
      }
    }
    expect(illegal).toBeGreaterThan(30);
  });

  it("without overlap or lost answers, are legal after a mutation exactly when replay says so", () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 60; seed++) {
      const rand = prng(2000 + seed);
      const limit = 1 + (seed % 3);
      const model = vaultModel(limit);
      const ops = genVault(rand, 30, limit)
        .filter((o) => o.ret !== Infinity)
        .map((o, i) => ({ ...o, call: 10 * i, ret: 10 * i + 5 }));
      // Every other seed: rename a handed-out session (legal unless a later finish names it).
      if (seed % 2 === 0 && ops.some((o) => o.output !== undefined && "session" in o.output)) {
        mutate(
          ops,
          rand,
          (o) => ["session" in o ? { ...o, session: "renamed" } : o],
          (o) => "session" in o,
        );
      } else {
        mutate(ops, rand, vaultAlternatives(limit));
      }
      const res = checkLinearizable(ops, model).result;
      expect(res).toBe(replay(ops, model) ? "ok" : "illegal");
      outcomes.add(res);

      const regs = genRegister(rand, 30)
        .filter((o) => o.ret !== Infinity)
        .map((o, i) => ({ ...o, call: 10 * i, ret: 10 * i + 5 }));
      mutate(regs, rand, registerAlternatives);
      expect(checkLinearizable(regs, register).result).toBe(replay(regs, register) ? "ok" : "illegal");
    }
    expect([...outcomes].sort()).toEqual(["illegal", "ok"]);
  });
});

/** Random times on a tiny clock: many ties, zero-length and unreturned operations. */
function randomTimes(rand: Rand): { call: number; ret: number } {
  const call = rand.int(6);
  return { call, ret: rand.next() < 0.15 ? Infinity : call + rand.int(4) };
}

describe("tiny random histories", () => {
  it("agree with brute force (register)", () => {
    const verdicts = { ok: 0, illegal: 0 };
    for (let seed = 1; seed <= 400; seed++) {
      const rand = prng(3000 + seed);
      const ops: RegOp[] = Array.from({ length: 2 + rand.int(6) }, () => {
        const t = randomTimes(rand);
        const write = rand.next() < 0.5;
        const input: RegInput = write ? { op: "write", value: rand.int(3) } : { op: "read" };
        const output = t.ret === Infinity ? undefined : write ? "ok" : rand.int(3);
        return { client: rand.int(3), key: rand.pick(["a", "a", "b"]), ...t, input, output };
      });
      const res = checkLinearizable(ops, register);
      expect(res.result, JSON.stringify(ops)).toBe(bruteForce(ops, register) ? "ok" : "illegal");
      if (res.result === "ok") expect(witnessError(ops, register, res.linearizations!)).toBeNull();
      verdicts[res.result === "ok" ? "ok" : "illegal"]++;
    }
    expect(verdicts.ok).toBeGreaterThan(50);
    expect(verdicts.illegal).toBeGreaterThan(50);
  });

  it("agree with brute force (vault)", () => {
    const verdicts = { ok: 0, illegal: 0 };
    for (let seed = 1; seed <= 400; seed++) {
      const rand = prng(4000 + seed);
      const limit = 1 + rand.int(2);
      const model = vaultModel(limit);
      const ops: VaultOp[] = Array.from({ length: 2 + rand.int(6) }, (_, i) => {
        const t = i === 0 ? { call: 0, ret: 1 } : randomTimes(rand);
        const x = rand.next();
        const session = rand.pick(["a", "b"]);
        const input: VaultInput =
          i === 0 || x < 0.1
            ? { op: "put" }
            : x < 0.2
              ? { op: "put-new" }
              : x < 0.55
                ? { op: "start" }
                : {
                    op: "finish",
                    session,
                    correct: rand.next() < 0.5,
                    action: rand.next() < 0.2 ? "delete" : "recover",
                  };
        const candidates =
          input.op === "put"
            ? [{ ok: true } as const]
            : vaultOutputs(limit, session).filter((o) => input.op === "start" || !("session" in o));
        const output = t.ret === Infinity ? undefined : rand.pick(candidates);
        return { client: rand.int(3), key: "u", ...t, input, output };
      });
      const res = checkLinearizable(ops, model);
      expect(res.result, JSON.stringify(ops)).toBe(bruteForce(ops, model) ? "ok" : "illegal");
      if (res.result === "ok") expect(witnessError(ops, model, res.linearizations!)).toBeNull();
      verdicts[res.result === "ok" ? "ok" : "illegal"]++;
    }
    expect(verdicts.ok).toBeGreaterThan(20);
    expect(verdicts.illegal).toBeGreaterThan(50);
  });
});

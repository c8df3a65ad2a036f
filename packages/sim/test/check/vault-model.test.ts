/**
 * The vault record model under the checker: sequential use, racing starts at the guess limit,
 * stale counts, unknown sessions, destruction.
 */
import { describe, expect, it } from "vitest";
import {
  checkLinearizable,
  type Operation,
  type VaultInput,
  type VaultOutput,
  vaultApply,
  vaultModel,
} from "../../src/check/index.js";
import { witnessError } from "./helpers.js";

type Op = Operation<VaultInput, VaultOutput>;

const put = (call: number, ret: number, client = 0, key = "u"): Op => ({
  client,
  key,
  call,
  ret,
  input: { op: "put" },
  output: ret === Infinity ? undefined : { ok: true },
});

const start = (out: VaultOutput | undefined, call: number, ret: number, client = 0, key = "u"): Op => ({
  client,
  key,
  call,
  ret,
  input: { op: "start" },
  output: out,
});

const finish = (
  session: string,
  correct: boolean,
  out: VaultOutput | undefined,
  call: number,
  ret: number,
  action: "recover" | "delete" = "recover",
  client = 0,
  key = "u",
): Op => ({ client, key, call, ret, input: { op: "finish", session, correct, action }, output: out });

const ok = (session: string, remaining: number): VaultOutput => ({ ok: true, session, remaining });
const NO_RECORD: VaultOutput = { error: "NO_RECORD" };
const DONE: VaultOutput = { ok: true };

function check(ops: Op[], limit = 3) {
  const model = vaultModel(limit);
  const res = checkLinearizable(ops, model);
  if (res.result === "ok") expect(witnessError(ops, model, res.linearizations!)).toBeNull();
  return res;
}

describe("vault model", () => {
  it("applies requests sequentially like the HSM", () => {
    let s = vaultModel(2).init();
    const run = (input: VaultInput, session = "") => {
      const r = vaultApply(2, s, input, session);
      s = r.state;
      return r.output;
    };
    expect(run({ op: "start" })).toEqual(NO_RECORD);
    expect(run({ op: "put" })).toEqual(DONE);
    expect(run({ op: "start" }, "a")).toEqual(ok("a", 1));
    expect(run({ op: "start" }, "b")).toEqual(ok("b", 0));
    expect(s).toEqual({
      exists: true,
      used: 2,
      pending: [
        { session: "a", after: 1 },
        { session: "b", after: 0 },
      ],
    });
    expect(run({ op: "finish", session: "a", correct: false, action: "recover" })).toEqual({
      error: "WRONG_PIN",
      remaining: 0,
    });
    expect(s).toEqual({ exists: false, used: 0, pending: [] });
    expect(() => vaultModel(-1)).toThrow(RangeError);
  });

  it("a right PIN keeps counting the guesses started after its own login (a held KE3 resets nothing more)", () => {
    let s = vaultModel(3).init();
    const run = (input: VaultInput, session = "") => {
      const r = vaultApply(3, s, input, session);
      s = r.state;
      return r.output;
    };
    run({ op: "put" });
    run({ op: "start" }, "victim");
    run({ op: "start" }, "x1");
    run({ op: "start" }, "x2");
    expect(run({ op: "finish", session: "victim", correct: true, action: "recover" })).toEqual(DONE);
    expect(s).toEqual({
      exists: true,
      used: 2,
      pending: [
        { session: "x1", after: 1 },
        { session: "x2", after: 0 },
      ],
    });
    expect(run({ op: "start" }, "x3")).toEqual(ok("x3", 0));
    expect(run({ op: "start" })).toEqual(NO_RECORD);
  });

  it("a put without replace creates a record, or is refused and changes nothing", () => {
    let s = vaultModel(3).init();
    const run = (input: VaultInput, session = "") => {
      const r = vaultApply(3, s, input, session);
      s = r.state;
      return r.output;
    };
    expect(run({ op: "put-new" })).toEqual(DONE);
    run({ op: "start" }, "a");
    run({ op: "start" }, "b");
    const before = s;
    expect(run({ op: "put-new" })).toEqual({ error: "RECORD_EXISTS" });
    expect(s).toBe(before);
    expect(run({ op: "start" }, "c")).toEqual(ok("c", 0));
    expect(run({ op: "start" })).toEqual(NO_RECORD);
    // Once the record is gone, a put without replace creates it again.
    expect(run({ op: "put-new" })).toEqual(DONE);
    expect(s).toEqual({ exists: true, used: 0, pending: [] });
  });

  it("refuses a history where a refused put-new gave the guesses back", () => {
    const putNew = (out: VaultOutput, call: number, ret: number): Op => ({
      client: 0,
      key: "u",
      call,
      ret,
      input: { op: "put-new" },
      output: out,
    });
    const ops: Op[] = [
      put(0, 1),
      start(ok("a", 0), 2, 3),
      putNew({ error: "RECORD_EXISTS" }, 4, 5),
      start(ok("b", 0), 6, 7),
    ];
    expect(check(ops, 1).result).not.toBe("ok");
    expect(check([put(0, 1), start(ok("a", 0), 2, 3), putNew({ ok: true }, 4, 5)], 1).result).not.toBe("ok");
    expect(
      check([put(0, 1), start(ok("a", 0), 2, 3), start(NO_RECORD, 4, 5), putNew({ ok: true }, 6, 7)], 1)
        .result,
    ).toBe("ok");
  });

  it("accepts a sequential history", () => {
    const ops = [
      put(0, 1),
      start(ok("s1", 2), 2, 3),
      finish("s1", false, { error: "WRONG_PIN", remaining: 2 }, 4, 5),
      start(ok("s2", 1), 6, 7),
      finish("s2", true, DONE, 8, 9),
      start(ok("s3", 2), 10, 11),
      finish("s1", true, { error: "NO_SESSION", remaining: 2 }, 12, 13),
    ];
    expect(check(ops).result).toBe("ok");
  });

  it("accepts five racing starts where three get a guess and two find no record", () => {
    const ops = [
      put(0, 1),
      start(ok("a", 1), 2, 20, 1),
      start(NO_RECORD, 3, 21, 2),
      start(ok("b", 0), 4, 22, 3),
      start(NO_RECORD, 5, 23, 4),
      start(ok("c", 2), 6, 24, 5),
    ];
    expect(check(ops).result).toBe("ok");
    // ...and then the record is gone.
    expect(check([...ops, start(NO_RECORD, 30, 31)]).result).toBe("ok");
    expect(check([...ops, put(30, 31), start(ok("d", 2), 32, 33)]).result).toBe("ok");
  });

  it("rejects four racing starts that all got a guess with a limit of 3", () => {
    const ops = [
      put(0, 1),
      start(ok("a", 1), 2, 20, 1),
      start(ok("d", 0), 3, 21, 2),
      start(ok("b", 0), 4, 22, 3),
      start(NO_RECORD, 5, 23, 4),
      start(ok("c", 2), 6, 24, 5),
    ];
    const res = check(ops);
    expect(res.result).toBe("illegal");
    expect(res.key).toBe("u");
    expect(res.info).toContain("start → ok session=");
    expect(res.info).toContain("Longest linearizable prefix found: 5 operation(s)");
  });

  it("rejects two racing starts that report the same remaining count", () => {
    const ops = [put(0, 1), start(ok("a", 1), 2, 20, 1), start(ok("b", 1), 3, 21, 2)];
    expect(check(ops).result).toBe("illegal");
  });

  it("rejects a stale remaining count", () => {
    const ops = [put(0, 1), start(ok("s1", 2), 2, 3), start(ok("s2", 2), 4, 5)];
    const res = check(ops);
    expect(res.result).toBe("illegal");
    expect(res.prefix).toEqual([0, 1]);
    expect(res.stuck).toEqual([2]);
    expect(res.info).toContain("#2 client 0 [4, 5] start → ok session=s2 remaining=2: not a legal step");
    expect(res.info).toContain("Model state after it: record, 1/3 guesses used, sessions [s1+0]");
  });

  it("answers NO_SESSION for a session no client was given, counting the lost start or not", () => {
    const base = [put(0, 1), start(undefined, 2, Infinity, 1)];
    for (const remaining of [3, 2]) {
      const ops = [...base, finish("ghost", true, { error: "NO_SESSION", remaining }, 5, 6)];
      expect(check(ops).result).toBe("ok");
    }
    const wrong = [...base, finish("ghost", true, { error: "NO_SESSION", remaining: 1 }, 5, 6)];
    expect(check(wrong).result).toBe("illegal");
    // A lost start takes effect at most once.
    const twice = [
      ...base,
      finish("ghost", true, { error: "NO_SESSION", remaining: 2 }, 5, 6),
      finish("ghost", true, { error: "NO_SESSION", remaining: 3 }, 7, 8),
    ];
    expect(check(twice).result).toBe("illegal");
  });

  it("destroys the record on a wrong PIN with no guess left", () => {
    const ops = [
      put(0, 1),
      start(ok("s1", 0), 2, 3),
      finish("s1", false, { error: "WRONG_PIN", remaining: 0 }, 4, 5),
    ];
    expect(check([...ops, start(NO_RECORD, 6, 7)], 1).result).toBe("ok");
    expect(check([...ops, start(ok("s2", 0), 6, 7)], 1).result).toBe("illegal");
  });

  it("destroys the record on a start once every guess is used", () => {
    const ops = [put(0, 1), start(ok("s1", 0), 2, 3), start(NO_RECORD, 4, 5)];
    expect(check([...ops, finish("s1", true, NO_RECORD, 6, 7)], 1).result).toBe("ok");
    expect(check([...ops, finish("s1", true, DONE, 6, 7)], 1).result).toBe("illegal");
  });

  it("deletes the record on a right-PIN finish with the delete action", () => {
    const ops = [put(0, 1), start(ok("s1", 2), 2, 3), finish("s1", true, DONE, 4, 5, "delete")];
    expect(check([...ops, start(NO_RECORD, 6, 7)]).result).toBe("ok");
    expect(check([...ops, start(ok("s2", 2), 6, 7)]).result).toBe("illegal");
  });

  it("lets an unreturned put reset the count, or not", () => {
    const ops = [put(0, 1), start(ok("a", 0), 2, 3), put(4, Infinity, 1)];
    expect(check([...ops, start(NO_RECORD, 5, 6)], 1).result).toBe("ok");
    expect(check([...ops, start(ok("b", 0), 5, 6)], 1).result).toBe("ok");
  });
});

describe("vault model: expiry", () => {
  it("a pending login may end as NO_SESSION (expired) without changing the guess count", async () => {
    const { vaultModel } = await import("../../src/check/index.js");
    const m = vaultModel(3);
    let s = m.step(m.init(), { op: "put" }, { ok: true })!;
    s = m.step(s, { op: "start" }, { ok: true, session: "a", remaining: 2 })!;
    const expired = m.step(
      s,
      { op: "finish", session: "a", correct: true, action: "recover" },
      { error: "NO_SESSION", remaining: 2 },
    );
    expect(expired).toEqual({ exists: true, used: 1, pending: [] });
    // The remaining count must still be right.
    expect(
      m.step(
        s,
        { op: "finish", session: "a", correct: true, action: "recover" },
        { error: "NO_SESSION", remaining: 3 },
      ),
    ).toBeNull();
  });
});

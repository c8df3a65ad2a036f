/**
 * The generic checker on a read/write register: classic linearizable and non-linearizable
 * histories, unknown outcomes, the tie rule, independent keys, the budget, and the report.
 */
import { describe, expect, it } from "vitest";
import { checkLinearizable, type Operation } from "../../src/check/index.js";
import { type RegInput, type RegOutput, r, register, w, witnessError } from "./helpers.js";

type Op = Operation<RegInput, RegOutput>;

function check(ops: Op[], opts = {}) {
  const res = checkLinearizable(ops, register, opts);
  if (res.result === "ok") expect(witnessError(ops, register, res.linearizations!)).toBeNull();
  return res;
}

describe("register histories", () => {
  it("accepts the empty history and a sequential one", () => {
    expect(check([]).result).toBe("ok");
    expect(check([w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)]).result).toBe("ok");
  });

  it("accepts either order of concurrent writes, but not a value never written", () => {
    const writes = [w(1, 0, 10, 1), w(2, 1, 11, 2)];
    expect(check([...writes, r(1, 12, 13, 3)]).result).toBe("ok");
    expect(check([...writes, r(2, 12, 13, 3)]).result).toBe("ok");
    expect(check([...writes, r(3, 12, 13, 3)]).result).toBe("illegal");
  });

  it("lets a read concurrent with a write see the old or the new value", () => {
    expect(check([w(1, 0, 10), r(0, 2, 3, 1)]).result).toBe("ok");
    expect(check([w(1, 0, 10), r(1, 2, 3, 1)]).result).toBe("ok");
  });

  it("rejects a stale read after a completed write", () => {
    const ops = [w(1, 0, 1, 1), w(2, 2, 3, 1), r(1, 4, 5, 2)];
    const res = check(ops);
    expect(res.result).toBe("illegal");
    expect(res.key).toBe("x");
    expect(res.prefix).toEqual([0, 1]);
    expect(res.stuck).toEqual([2]);
    expect(res.info).toContain('key "x"');
    expect(res.info).toContain("#2 client 2 [4, 5] read → 1: not a legal step from this state");
    expect(res.info).toContain("#1 client 1 [2, 3] write(2) → ok");
  });

  it("rejects a new-then-old read pair during one write", () => {
    // Once a read has seen 1, the write took effect: a later read cannot see 0 again.
    expect(check([w(1, 0, 10), r(1, 1, 2, 1), r(0, 3, 4, 2)]).result).toBe("illegal");
    expect(check([w(1, 0, 10), r(0, 1, 2, 1), r(1, 3, 4, 2)]).result).toBe("ok");
  });

  it("orders a return at t before a call at t", () => {
    expect(check([w(1, 0, 5), r(0, 5, 6, 1)]).result).toBe("illegal");
    expect(check([w(1, 0, 5), r(0, 4, 6, 1)]).result).toBe("ok");
    expect(check([w(1, 0, 5), r(1, 5, 6, 1)]).result).toBe("ok");
  });

  it("treats zero-length operations at the same time as concurrent", () => {
    expect(check([w(1, 5, 5), r(0, 5, 5, 1)]).result).toBe("ok");
    expect(check([w(1, 5, 5), r(1, 5, 5, 1)]).result).toBe("ok");
    // ...but after returns and before calls of longer operations at that time.
    expect(check([w(1, 5, 5), r(0, 5, 9, 1)]).result).toBe("illegal");
    expect(check([w(1, 1, 5), r(0, 5, 5, 1)]).result).toBe("illegal");
  });

  it("rejects bad times", () => {
    expect(() => check([w(1, 5, 4)])).toThrow(RangeError);
    expect(() => check([w(1, Number.NaN, 4)])).toThrow(RangeError);
    expect(() => check([r(0, 1, Number.NaN)])).toThrow(RangeError);
  });
});

describe("operations that never returned", () => {
  it("may take effect or not", () => {
    const lost = w(1, 0, Infinity);
    expect(check([lost, r(0, 5, 6, 1)]).result).toBe("ok");
    expect(check([lost, r(1, 5, 6, 1)]).result).toBe("ok");
    expect(check([lost, r(0, 5, 6, 1), r(1, 7, 8, 1)]).result).toBe("ok");
    expect(check([lost, r(2, 5, 6, 1)]).result).toBe("illegal");
  });

  it("take effect at most once and only after their call", () => {
    const lost = w(1, 3, Infinity);
    expect(check([lost, r(1, 5, 6, 1), r(0, 7, 8, 1)]).result).toBe("illegal");
    expect(check([r(1, 0, 2, 1), lost]).result).toBe("illegal");
  });

  it("leaves out unreturned operations from the linearization when they have no effect", () => {
    const ops = [w(1, 0, 1), w(2, 2, Infinity, 1), r(1, 5, 6)];
    const res = check(ops);
    expect(res.result).toBe("ok");
    expect(res.linearizations!.get("x")).toEqual([0, 2]);
  });

  it("accepts a history of nothing but unreturned operations", () => {
    expect(check([w(1, 0, Infinity), r(7, 1, Infinity)]).result).toBe("ok");
  });
});

describe("independent keys", () => {
  it("checks each key on its own", () => {
    // On one register this would be illegal (the read of a would have to see b's write).
    const ops = [w(1, 0, 1, 0, "a"), w(2, 2, 3, 1, "b"), r(1, 4, 5, 2, "a"), r(2, 4, 5, 3, "b")];
    const res = check(ops);
    expect(res.result).toBe("ok");
    expect([...res.linearizations!.keys()]).toEqual(["a", "b"]);
    expect(res.linearizations!.get("b")).toEqual([1, 3]);
  });

  it("reports the key that fails", () => {
    const ops = [w(1, 0, 1, 0, "a"), r(1, 2, 3, 0, "a"), w(2, 0, 1, 1, "b"), r(0, 2, 3, 1, "b")];
    const res = check(ops);
    expect(res.result).toBe("illegal");
    expect(res.key).toBe("b");
    expect(res.prefix).toEqual([2]);
    expect(res.stuck).toEqual([3]);
  });
});

describe("budget", () => {
  // Many concurrent writes and a read of a value nobody wrote: the search must try every subset.
  const hard: Op[] = [...Array.from({ length: 10 }, (_, i) => w(i + 1, 0, 100, i)), r(99, 50, 60, 99)];

  it("says unknown, never illegal, when the steps run out", () => {
    const res = check(hard, { maxSteps: 50 });
    expect(res.result).toBe("unknown");
    expect(res.key).toBe("x");
    expect(res.info).toContain("budget exhausted");
    expect(res.steps).toBe(50);
    expect(res.prefix).toBeUndefined();
  });

  it("says unknown, never ok, when the time runs out", () => {
    const easy = [w(1, 0, 1), r(1, 2, 3)];
    expect(check(easy, { timeoutMs: 0 }).result).toBe("unknown");
    expect(check(easy, { maxSteps: 1 }).result).toBe("unknown");
    expect(check(easy, { maxSteps: 10 }).result).toBe("ok");
  });

  it("shares the budget between keys", () => {
    const two = [w(1, 0, 1, 0, "a"), r(1, 2, 3, 0, "a"), w(1, 0, 1, 0, "b"), r(1, 2, 3, 0, "b")];
    const all = check(two);
    expect(all.result).toBe("ok");
    const res = check(two, { maxSteps: all.steps - 1 });
    expect(res.result).toBe("unknown");
    expect(res.key).toBe("b");
  });

  it("finishes the hard history with enough budget", () => {
    const res = check(hard);
    expect(res.result).toBe("illegal");
    expect(res.stuck).toContain(10);
  });
});

describe("scale", () => {
  it("checks a long history of overlapping operations", () => {
    // Client c writes c*1000+k then reads it back; clients overlap in time but use disjoint keys
    // half the time, and the same key otherwise.
    const ops: Op[] = [];
    for (let k = 0; k < 150; k++) {
      for (let c = 0; c < 4; c++) {
        const t = k * 10 + c;
        const key = c < 2 ? "shared" : `own${c}`;
        if (key === "shared") ops.push(w(c * 1000 + k, t, t + 15, c, key));
        else {
          ops.push(w(c * 1000 + k, t, t + 3, c, key));
          ops.push(r(c * 1000 + k, t + 4, t + 8, c, key));
        }
      }
    }
    expect(check(ops).result).toBe("ok");
  });
});

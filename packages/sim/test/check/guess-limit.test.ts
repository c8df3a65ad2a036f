/** The independent guess-limit check: certain violations only, per key. */
import { describe, expect, it } from "vitest";
import {
  checkGuessLimitHistory,
  type Operation,
  type VaultInput,
  type VaultOutput,
} from "../../src/check/index.js";

type Op = Operation<VaultInput, VaultOutput>;

let n = 0;
const put = (call: number, ret: number, key = "u"): Op => ({
  client: 0,
  key,
  call,
  ret,
  input: { op: "put" },
  output: ret === Infinity ? undefined : { ok: true },
});
const start = (call: number, ret: number, remaining = 0, key = "u"): Op => ({
  client: 1,
  key,
  call,
  ret,
  input: { op: "start" },
  output: { ok: true, session: `s${n++}`, remaining },
});
const finish = (
  call: number,
  ret: number,
  output: VaultOutput | undefined,
  correct = true,
  key = "u",
): Op => ({
  client: 2,
  key,
  call,
  ret,
  input: { op: "finish", session: "s0", correct, action: "recover" },
  output,
});
/** Sequential starts from time t on. */
const starts = (count: number, t: number, key = "u") =>
  Array.from({ length: count }, (_, i) => start(t + 2 * i, t + 2 * i + 1, 0, key));

describe("checkGuessLimitHistory", () => {
  it("accepts up to the limit between resets", () => {
    expect(checkGuessLimitHistory([put(0, 1), ...starts(3, 2), put(10, 11), ...starts(3, 12)], 3)).toEqual({
      ok: true,
      violations: [],
    });
    expect(
      checkGuessLimitHistory([put(0, 1), ...starts(3, 2), finish(10, 11, { ok: true }), ...starts(3, 12)], 3)
        .ok,
    ).toBe(true);
  });

  it("reports more starts than the limit in one window", () => {
    const res = checkGuessLimitHistory([put(0, 1), ...starts(4, 2)], 3);
    expect(res.ok).toBe(false);
    expect(res.violations).toHaveLength(1);
    expect(res.violations[0]).toContain('key "u": 4 starts returned ok (limit 3)');
    expect(res.violations[0]).toContain("[2, 3] start → ok session=");
  });

  it("does not count a failed or wrong-PIN finish as a reset", () => {
    const noSession = finish(10, 11, { error: "NO_SESSION", remaining: 1 });
    expect(checkGuessLimitHistory([put(0, 1), ...starts(2, 2), noSession, ...starts(2, 12)], 3).ok).toBe(
      false,
    );
    const wrong = finish(10, 11, { error: "WRONG_PIN", remaining: 1 }, false);
    expect(checkGuessLimitHistory([put(0, 1), ...starts(2, 2), wrong, ...starts(2, 12)], 3).ok).toBe(false);
  });

  it("gives the benefit of the doubt to resets that may fall between starts", () => {
    // A start concurrent with a put may come before it.
    expect(checkGuessLimitHistory([start(0, 20), put(2, 3), ...starts(3, 4)], 3).ok).toBe(true);
    // A put or right-PIN finish that never returned may have happened.
    expect(
      checkGuessLimitHistory([put(0, 1), ...starts(3, 2), put(9, Infinity), ...starts(3, 12)], 3).ok,
    ).toBe(true);
    const lost = finish(9, Infinity, undefined);
    expect(checkGuessLimitHistory([put(0, 1), ...starts(3, 2), lost, ...starts(3, 12)], 3).ok).toBe(true);
  });

  it("counts a put without replace as a reset only when it was not refused", () => {
    const putNew = (call: number, ret: number, output: VaultOutput | undefined): Op => ({
      client: 0,
      key: "u",
      call,
      ret,
      input: { op: "put-new" },
      output,
    });
    const refused = putNew(10, 11, { error: "RECORD_EXISTS" });
    expect(checkGuessLimitHistory([put(0, 1), ...starts(3, 2), refused, ...starts(1, 12)], 3).ok).toBe(false);
    expect(
      checkGuessLimitHistory([put(0, 1), ...starts(3, 2), putNew(10, 11, { ok: true }), ...starts(3, 12)], 3)
        .ok,
    ).toBe(true);
    expect(
      checkGuessLimitHistory(
        [put(0, 1), ...starts(3, 2), putNew(10, Infinity, undefined), ...starts(3, 12)],
        3,
      ).ok,
    ).toBe(true);
  });

  it("keeps keys apart", () => {
    expect(
      checkGuessLimitHistory([put(0, 1, "a"), put(0, 1, "b"), ...starts(3, 2, "a"), ...starts(3, 2, "b")], 3)
        .ok,
    ).toBe(true);
    const res = checkGuessLimitHistory(
      [put(0, 1, "a"), put(0, 1, "b"), ...starts(3, 2, "a"), ...starts(4, 2, "b")],
      3,
    );
    expect(res.violations).toHaveLength(1);
    expect(res.violations[0]).toContain('key "b"');
  });

  it("with limit 0, reports every start that returned ok", () => {
    expect(checkGuessLimitHistory([put(0, 1)], 0).ok).toBe(true);
    expect(checkGuessLimitHistory([start(0, 20), put(2, 3)], 0).violations).toHaveLength(1);
  });
});

import { BkvError, ErrorCode } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import {
  BACKUP_KEY_SIZE,
  backupKeyId,
  formatBackupKey,
  generateBackupKey,
  parseBackupKey,
} from "../src/backup/index.js";

function malformed(f: () => unknown): BkvError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(ErrorCode.Malformed);
    return e as BkvError;
  }
  throw new Error("expected an error");
}

describe("backup key", () => {
  it("is 32 fresh random bytes", () => {
    const a = generateBackupKey();
    const b = generateBackupKey();
    expect(a.length).toBe(BACKUP_KEY_SIZE);
    expect(a).not.toEqual(b);
  });

  it("formats as 16 groups of 4 lowercase hex digits and a check group", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 1);
    const text = formatBackupKey(key);
    expect(text).toMatch(/^[0-9a-f]{4}(-[0-9a-f]{4}){16}$/);
    expect(text.startsWith("0109-1119-")).toBe(true);
    expect(parseBackupKey(text)).toEqual(key);
  });

  it("parses the grouped form, plain hex, any case, with whitespace", () => {
    const key = generateBackupKey();
    const text = formatBackupKey(key);
    const plain = text.replace(/-/g, "");
    expect(parseBackupKey(text)).toEqual(key);
    expect(parseBackupKey(text.toUpperCase())).toEqual(key);
    expect(parseBackupKey(plain)).toEqual(key);
    expect(parseBackupKey(plain.toUpperCase())).toEqual(key);
    expect(parseBackupKey(`  ${text}\n`)).toEqual(key);
    expect(parseBackupKey(text.replace(/-/g, " - ").replace(/(.{20})/g, "$1\n\t"))).toEqual(key);
    expect(parseBackupKey(plain.replace(/(.{8})/g, "$1 "))).toEqual(key);
  });

  it("refuses every single mistyped digit and every swap of two neighbouring digits", () => {
    for (let round = 0; round < 8; round++) {
      const text = formatBackupKey(generateBackupKey());
      const plain = text.replace(/-/g, "");
      for (let i = 0; i < plain.length; i++) {
        for (const d of "0123456789abcdef") {
          if (d === plain[i]) continue;
          const typo = `${plain.slice(0, i)}${d}${plain.slice(i + 1)}`;
          expect(() => parseBackupKey(typo), `digit ${i} as ${d}`).toThrow(
            /\(the check group\) does not match/,
          );
        }
        if (i + 1 < plain.length && plain[i] !== plain[i + 1]) {
          const swapped = `${plain.slice(0, i)}${plain[i + 1]}${plain[i]}${plain.slice(i + 2)}`;
          const e = malformed(() => parseBackupKey(swapped));
          expect(e.message).toMatch(/mistyped or two are swapped/);
          expect(e.message).not.toContain(plain.slice(0, 8));
        }
      }
    }
  });

  it("still reads a key written before the check group (16 groups, or 64 plain digits), unchecked", () => {
    const key = generateBackupKey();
    const old = formatBackupKey(key).split("-").slice(0, 16).join("-");
    expect(parseBackupKey(old)).toEqual(key);
    expect(parseBackupKey(old.replace(/-/g, ""))).toEqual(key);
    // Written out again, it gets its check group.
    expect(formatBackupKey(parseBackupKey(old))).toBe(`${old}-${formatBackupKey(key).slice(-4)}`);
  });

  it("rejects bad inputs with MALFORMED and a message that does not repeat the key", () => {
    const text = formatBackupKey(generateBackupKey());
    const plain = text.replace(/-/g, "");
    const cases: [string, RegExp][] = [
      ["", /empty/],
      ["   \n", /empty/],
      [text.slice(0, -1), /67 hex digits/],
      [`${text}0`, /69 hex digits/],
      [`${plain}00`, /70 hex digits/],
      [plain.slice(2), /66 hex digits/],
      [plain.slice(6), /62 hex digits/],
      [`${text.slice(0, 10)}g${text.slice(11)}`, /character 11 is not a hex digit/],
      [text.replace(/-/g, "_"), /character 5 is not a hex digit/],
      [`${plain.slice(0, 3)}-${plain.slice(3)}`, /separators/],
      [`${text}-`, /separators/],
      [`-${text}`, /separators/],
      [text.replace("-", "--"), /separators/],
      [`0x${plain}`, /not a hex digit/],
    ];
    for (const [input, why] of cases) {
      const e = malformed(() => parseBackupKey(input));
      expect(e.message).toMatch(why);
      expect(e.message).toMatch(/64 hex digits/);
      if (input.length > 8) expect(e.message).not.toContain(input.trim().slice(0, 8));
    }
  });

  it("refuses to format or derive from keys of the wrong size", async () => {
    expect(() => formatBackupKey(new Uint8Array(31))).toThrow(BkvError);
    await expect(backupKeyId(new Uint8Array(33))).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it("has a stable 8-byte key id that differs between keys", async () => {
    const a = generateBackupKey();
    const id = await backupKeyId(a);
    expect(id.length).toBe(8);
    expect(await backupKeyId(a.slice())).toEqual(id);
    expect(await backupKeyId(generateBackupKey())).not.toEqual(id);
  });

  it("derives the key id as HKDF-SHA256(K, empty salt, 'bkv key id v1')[0..8]", async () => {
    const { hkdfSync } = await import("node:crypto");
    const key = generateBackupKey();
    const expected = new Uint8Array(hkdfSync("sha256", key, new Uint8Array(0), "bkv key id v1", 8));
    expect(await backupKeyId(key)).toEqual(expected);
  });
});

/**
 * Golden vectors of every byte format this project defines (testdata/formats/*.json, made by
 * scripts/format-vectors.mjs from test/format-vectors/formats.ts). Each vector is decoded and
 * must give its fields, its fields are encoded and must give its bytes exactly, and the same bytes
 * with one byte more or one byte less are refused. Reordering, resizing or dropping a field in an
 * encoder or a decoder changes the bytes or the fields, so one of these checks fails.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FORMATS, fromJson, toJson, type VectorFile } from "./format-vectors/formats.js";

const DIR = new URL("../testdata/formats/", import.meta.url);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function refuses(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error("accepted");
}

describe("golden vectors", () => {
  it("every format has a vector file, and every file a format", () => {
    const files = readdirSync(DIR)
      .filter((n) => n.endsWith(".json"))
      .map((n) => n.slice(0, -5))
      .sort();
    expect(files).toEqual(FORMATS.map((f) => f.name).sort());
  });

  for (const format of FORMATS) {
    describe(format.name, () => {
      const file = JSON.parse(readFileSync(new URL(`${format.name}.json`, DIR), "utf8")) as VectorFile;

      it("the file names this format and holds vectors", () => {
        expect(file.format).toBe(format.name);
        expect(file.vectors.length).toBeGreaterThan(0);
      });

      for (const v of file.vectors) {
        const bytes = new Uint8Array(Buffer.from(v.hex, "hex"));
        const context = v.context === undefined ? undefined : fromJson(v.context);

        it(`${v.type}: the fields encode to exactly the bytes`, async () => {
          expect(hex(await format.encode(fromJson(v.fields), context))).toBe(v.hex);
        });

        if (format.decode === undefined) continue;
        const decode = format.decode;

        it(`${v.type}: the bytes decode to exactly the fields`, async () => {
          expect(toJson(await decode(bytes, context))).toEqual(v.fields);
        });

        it(`${v.type}: the bytes cut short anywhere (inside any field) are refused`, async () => {
          for (let n = 0; n < bytes.length; n++) {
            const outcome = await refuses(() => decode(bytes.subarray(0, n), context)).catch(
              () => "accepted",
            );
            expect(outcome, `accepted the first ${n} of ${bytes.length} bytes`).not.toBe("accepted");
          }
        });

        it(`${v.type}: one byte more, one byte less, or a byte changed in the middle is refused`, async () => {
          await refuses(() => decode(Uint8Array.of(...bytes, 0), context));
          await refuses(() => decode(bytes.subarray(0, bytes.length - 1), context));
          // A changed byte either is refused or decodes to other fields: never to the same ones.
          const changed = bytes.slice();
          changed[bytes.length >> 1]! ^= 0x01;
          let decoded: unknown;
          try {
            decoded = toJson(await decode(changed, context));
          } catch {
            decoded = "refused";
          }
          expect(decoded).not.toEqual(v.fields);
        });
      }
    });
  }
});
